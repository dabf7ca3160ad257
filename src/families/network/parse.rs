//! `/proc/net/dev` (proc_net(5)): two header lines, then per interface
//! `name:` and 16 counters, 8 received then 8 transmitted (bytes, packets,
//! errs, drop, fifo, frame|colls, compressed, multicast|carrier). The
//! counters are 64-bit. Old kernels print no space after the colon
//! (`eth0:123`), so the name is split at the colon, not at whitespace.

use crate::sources::ParseError;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Direction {
    pub bytes: u64,
    pub packets: u64,
    pub errors: u64,
    pub dropped: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub receive: Direction,
    pub transmit: Direction,
}

pub fn parse_net_dev(text: &str) -> Result<Vec<Interface>, ParseError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().skip(2) {
        if line.trim().is_empty() {
            continue;
        }
        let Some((name, rest)) = line.split_once(':') else {
            return Err(ParseError(format!("line {}: no `name:`", i + 1)));
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.len() < 16 {
            return Err(ParseError(format!(
                "line {}: {} counters, expected 16",
                i + 1,
                f.len()
            )));
        }
        let n = |k: usize| -> Result<u64, ParseError> {
            f[k].parse()
                .map_err(|_| ParseError(format!("line {}: counter {} is {:?}", i + 1, k + 1, f[k])))
        };
        out.push(Interface {
            name: name.trim().to_owned(),
            receive: Direction {
                bytes: n(0)?,
                packets: n(1)?,
                errors: n(2)?,
                dropped: n(3)?,
            },
            transmit: Direction {
                bytes: n(8)?,
                packets: n(9)?,
                errors: n(10)?,
                dropped: n(11)?,
            },
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured on a 6.1 kernel.
    const CAPTURE: &str = "\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo: 350277783 1429709    0    0    0     0          0         0 350277783 1429709    0    0    0     0       0          0
  eth0: 9170386442 6733612    2   17    0     0          0         0 274635519 2917093    1    3    0     0       0          0
";

    #[test]
    fn reads_both_directions() {
        let i = parse_net_dev(CAPTURE).unwrap();
        assert_eq!(i.len(), 2);
        assert_eq!(i[0].name, "lo");
        assert_eq!(
            i[1].receive,
            Direction {
                bytes: 9170386442,
                packets: 6733612,
                errors: 2,
                dropped: 17
            }
        );
        assert_eq!(
            i[1].transmit,
            Direction {
                bytes: 274635519,
                packets: 2917093,
                errors: 1,
                dropped: 3
            }
        );
    }

    #[test]
    fn no_space_after_the_colon() {
        let text = "h\nh\neth0:1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n";
        let i = parse_net_dev(text).unwrap();
        assert_eq!(i[0].name, "eth0");
        assert_eq!(i[0].receive.bytes, 1);
        assert_eq!(i[0].transmit.bytes, 9);
    }

    #[test]
    fn bad_lines_name_the_line() {
        let e = parse_net_dev("h\nh\neth0 1 2\n").unwrap_err();
        assert!(e.0.contains("line 3"), "{e}");
        let e = parse_net_dev("h\nh\neth0: 1 2 3\n").unwrap_err();
        assert!(e.0.contains("3 counters"), "{e}");
    }
}
