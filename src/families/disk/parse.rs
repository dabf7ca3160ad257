//! `/proc/diskstats`: one line per block device, `major minor name` then
//! the I/O counters (Documentation/admin-guide/iostats.rst). Sectors are
//! always 512 bytes, whatever the device's block size. The counts are
//! 64-bit; the millisecond fields are printed as 32-bit unsigned and wrap
//! after ~49.7 days of I/O time. Kernels add columns over time (discards
//! in 4.18, flushes in 5.5): only the first 11 are needed, more are fine.

use crate::sources::ParseError;

/// One device's line, raw as the kernel prints it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiskLine {
    pub name: String,
    pub reads: u64,
    pub reads_merged: u64,
    pub sectors_read: u64,
    pub read_ms: u64,
    pub writes: u64,
    pub writes_merged: u64,
    pub sectors_written: u64,
    pub write_ms: u64,
    pub in_progress: u64,
    pub io_ms: u64,
    pub weighted_ms: u64,
}

pub fn parse_diskstats(text: &str) -> Result<Vec<DiskLine>, ParseError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.is_empty() {
            continue;
        }
        if f.len() < 14 {
            return Err(ParseError(format!(
                "line {}: {} fields, expected at least 14",
                i + 1,
                f.len()
            )));
        }
        let n = |k: usize| -> Result<u64, ParseError> {
            f[k].parse().map_err(|_| {
                ParseError(format!(
                    "line {}: field {} is {:?}, not a count",
                    i + 1,
                    k + 1,
                    f[k]
                ))
            })
        };
        out.push(DiskLine {
            name: f[2].to_owned(),
            reads: n(3)?,
            reads_merged: n(4)?,
            sectors_read: n(5)?,
            read_ms: n(6)?,
            writes: n(7)?,
            writes_merged: n(8)?,
            sectors_written: n(9)?,
            write_ms: n(10)?,
            in_progress: n(11)?,
            io_ms: n(12)?,
            weighted_ms: n(13)?,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured on a 6.1 kernel (20 columns: discards and flushes).
    const CAPTURE: &str = "\
 254       0 vda 120733 3219 9853716 69262 1995318 1532744 61858376 2133905 0 1465956 2263093 0 0 0 0 225006 59925
 254       1 vda1 120573 3219 9846124 69221 1995318 1532744 61858376 2133905 0 1465920 2203126 0 0 0 0 0 0
   7       0 loop0 55 0 2160 12 0 0 0 0 0 36 12 0 0 0 0 0 0
";

    #[test]
    fn reads_every_device_and_column() {
        let d = parse_diskstats(CAPTURE).unwrap();
        assert_eq!(d.len(), 3);
        assert_eq!(
            d[0],
            DiskLine {
                name: "vda".into(),
                reads: 120733,
                reads_merged: 3219,
                sectors_read: 9853716,
                read_ms: 69262,
                writes: 1995318,
                writes_merged: 1532744,
                sectors_written: 61858376,
                write_ms: 2133905,
                in_progress: 0,
                io_ms: 1465956,
                weighted_ms: 2263093,
            }
        );
        assert_eq!(d[2].name, "loop0");
    }

    #[test]
    fn old_kernels_with_14_columns() {
        let d = parse_diskstats("   8 0 sda 1 2 3 4 5 6 7 8 9 10 11\n").unwrap();
        assert_eq!(d[0].weighted_ms, 11);
    }

    #[test]
    fn short_or_garbled_lines_name_the_line() {
        let e = parse_diskstats("8 0 sda 1 2 3\n").unwrap_err();
        assert!(e.0.contains("line 1"), "{e}");
        let e = parse_diskstats("8 0 sda 1 2 x 4 5 6 7 8 9 10 11\n").unwrap_err();
        assert!(e.0.contains("field 6") && e.0.contains("\"x\""), "{e}");
    }
}
