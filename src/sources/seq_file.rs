//! The escaping procfs applies to names in its tables (`seq_escape`):
//! space, tab, newline and backslash in a path or device name are
//! written as `\ooo` octal, so a field never contains the separator.
//! `/proc/<pid>/mounts`, `mountinfo` and `/proc/swaps` all use it.

/// `\ooo` escapes back to their bytes; anything else as written.
pub fn unescape(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            let oct = &b[i + 1..i + 4];
            if oct.iter().all(|c| (b'0'..=b'7').contains(c)) {
                let v = oct
                    .iter()
                    .fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0'));
                if let Ok(v) = u8::try_from(v) {
                    out.push(v);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::unescape;

    #[test]
    fn octal_escapes_and_what_is_not_one() {
        assert_eq!(unescape("/swap\\040file"), "/swap file");
        assert_eq!(unescape("/a\\011b\\012c\\134d"), "/a\tb\nc\\d");
        // At the very end, too short, not octal, above a byte: as written.
        assert_eq!(unescape("x\\040"), "x ");
        assert_eq!(unescape("x\\04"), "x\\04");
        assert_eq!(unescape("x\\089"), "x\\089");
        assert_eq!(unescape("x\\777"), "x\\777");
    }
}
