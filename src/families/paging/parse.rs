//! `/proc/swaps` (one line per swap area under a header; sizes in KiB;
//! the name is escaped by seq_file: space, tab, newline and backslash as
//! `\ooo` octal) and the paging counters of `/proc/vmstat` (`name value`
//! lines; `pgpgin`/`pgpgout` count KiB moved between memory and block
//! devices, `pswpin`/`pswpout` pages swapped, `pgfault` all faults
//! including `pgmajfault`, the ones that waited for I/O).

use crate::sources::ParseError;
use crate::sources::seq_file::unescape;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwapArea {
    pub name: String,
    pub size_kib: u64,
    pub used_kib: u64,
}

pub fn parse_swaps(text: &str) -> Result<Vec<SwapArea>, ParseError> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
    if header.get(2) != Some(&"Size") || header.get(3) != Some(&"Used") {
        return Err(ParseError(format!(
            "header {header:?}: expected Filename Type Size Used Priority"
        )));
    }
    let mut out = Vec::new();
    for (i, line) in lines.enumerate() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.is_empty() {
            continue;
        }
        if f.len() < 4 {
            return Err(ParseError(format!("line {}: {} fields", i + 2, f.len())));
        }
        let n = |k: usize| -> Result<u64, ParseError> {
            f[k].parse()
                .map_err(|_| ParseError(format!("line {}: {:?} is not KiB", i + 2, f[k])))
        };
        out.push(SwapArea {
            name: unescape(f[0]),
            size_kib: n(2)?,
            used_kib: n(3)?,
        });
    }
    Ok(out)
}

/// The paging counters of `/proc/vmstat`; a counter the kernel lacks is
/// `None`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VmPaging {
    pub pgpgin: Option<u64>,
    pub pgpgout: Option<u64>,
    pub pswpin: Option<u64>,
    pub pswpout: Option<u64>,
    pub pgfault: Option<u64>,
    pub pgmajfault: Option<u64>,
}

pub fn parse_vmstat(text: &str) -> Result<VmPaging, ParseError> {
    let mut v = VmPaging::default();
    for line in text.lines() {
        let Some((k, val)) = line.split_once(' ') else {
            continue;
        };
        let slot = match k {
            "pgpgin" => &mut v.pgpgin,
            "pgpgout" => &mut v.pgpgout,
            "pswpin" => &mut v.pswpin,
            "pswpout" => &mut v.pswpout,
            "pgfault" => &mut v.pgfault,
            "pgmajfault" => &mut v.pgmajfault,
            _ => continue,
        };
        *slot = Some(
            val.trim()
                .parse()
                .map_err(|_| ParseError(format!("{k}: {val:?} is not a count")))?,
        );
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swap_areas_with_an_escaped_name() {
        let text = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n\
/dev/dm-1                               partition\t8388604\t\t524288\t\t-2\n\
/swap\\040file                           file\t\t1048572\t\t0\t\t-3\n";
        let s = parse_swaps(text).unwrap();
        assert_eq!(
            s,
            [
                SwapArea {
                    name: "/dev/dm-1".into(),
                    size_kib: 8388604,
                    used_kib: 524288
                },
                SwapArea {
                    name: "/swap file".into(),
                    size_kib: 1048572,
                    used_kib: 0
                }
            ]
        );
    }

    #[test]
    fn no_swap_is_an_empty_list_and_a_wrong_header_an_error() {
        let text = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n";
        assert!(parse_swaps(text).unwrap().is_empty());
        assert!(parse_swaps("").is_err());
        assert!(parse_swaps("Filename Type Used Size Priority\n").is_err());
    }

    #[test]
    fn vmstat_counters() {
        // Captured on a 6.1 kernel (excerpt, order as printed).
        let text = "nr_free_pages 1977717\npgpgin 58189641\npgpgout 300697944\npswpin 0\npswpout 0\npgalloc_dma 0\npgfault 494909543\npgmajfault 107192\n";
        let v = parse_vmstat(text).unwrap();
        assert_eq!(v.pgpgin, Some(58189641));
        assert_eq!(v.pgfault, Some(494909543));
        assert_eq!(v.pgmajfault, Some(107192));
        assert_eq!(v.pswpout, Some(0));
        assert_eq!(
            parse_vmstat("nr_free_pages 1\n").unwrap(),
            VmPaging::default()
        );
        assert!(parse_vmstat("pgfault x\n").is_err());
    }
}
