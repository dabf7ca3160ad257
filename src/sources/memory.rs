//! Host memory from `/proc/meminfo` (proc(5); values are KiB despite the
//! "kB" suffix). Other platforms use sysinfo behind the same API.

use super::ParseError;

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MemoryStats {
    pub total_bytes: u64,
    pub available_bytes: u64,
}

impl MemoryStats {
    /// Used = total − available: memory the kernel cannot hand out without
    /// swapping (what `free` shows as total − available).
    pub fn used_bytes(&self) -> u64 {
        self.total_bytes.saturating_sub(self.available_bytes)
    }

    pub fn percent(&self) -> Option<f64> {
        (self.total_bytes > 0).then(|| self.used_bytes() as f64 / self.total_bytes as f64 * 100.0)
    }
}

pub fn parse_meminfo(text: &str) -> Result<MemoryStats, ParseError> {
    let mut total = None;
    let mut available = None;
    let (mut free, mut buffers, mut cached) = (None, None, None);
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let slot = match key {
            "MemTotal" => &mut total,
            "MemAvailable" => &mut available,
            "MemFree" => &mut free,
            "Buffers" => &mut buffers,
            "Cached" => &mut cached,
            _ => continue,
        };
        let mut parts = rest.split_ascii_whitespace();
        let value = parts.next().unwrap_or("");
        let kib: u64 = value
            .parse()
            .map_err(|_| ParseError(format!("{key}: {value:?} is not a number")))?;
        match parts.next() {
            None | Some("kB") => {}
            Some(unit) => return Err(ParseError(format!("{key}: unexpected unit {unit:?}"))),
        }
        *slot = Some(kib.saturating_mul(1024));
    }
    let total = total.ok_or_else(|| ParseError("no MemTotal line".into()))?;
    // MemAvailable appeared in 3.14; before it, free + buffers + page cache is
    // the usual approximation.
    let available = match available {
        Some(a) => a,
        None => match (free, buffers, cached) {
            // Saturating: the values are external (found by fuzzing).
            (Some(f), Some(b), Some(c)) => f.saturating_add(b).saturating_add(c),
            _ => {
                return Err(ParseError(
                    "neither MemAvailable nor MemFree/Buffers/Cached".into(),
                ));
            }
        },
    };
    Ok(MemoryStats {
        total_bytes: total,
        available_bytes: available.min(total),
    })
}

#[cfg(target_os = "linux")]
mod imp {
    use super::*;
    use crate::host::HostPaths;
    use crate::snapshot::Snapshot;
    use crate::sources::{Source, SourceError};

    pub struct MemorySource {
        paths: HostPaths,
    }

    impl MemorySource {
        pub fn new(paths: HostPaths) -> Self {
            MemorySource { paths }
        }
    }

    impl Source for MemorySource {
        fn name(&self) -> &'static str {
            "memory"
        }

        fn sample(&mut self, snap: &mut Snapshot) -> Result<(), SourceError> {
            let text = self.paths.read_proc("meminfo")?;
            snap.memory = Some(parse_meminfo(&text).map_err(|e| e.in_file("/proc/meminfo"))?);
            Ok(())
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use super::*;
    use crate::host::HostPaths;
    use crate::snapshot::Snapshot;
    use crate::sources::{Source, SourceError};
    use sysinfo::System;

    pub struct MemorySource {
        sys: Option<System>,
    }

    impl MemorySource {
        pub fn new(_paths: HostPaths) -> Self {
            MemorySource {
                sys: System::new().ok(),
            }
        }
    }

    impl Source for MemorySource {
        fn name(&self) -> &'static str {
            "memory"
        }

        fn sample(&mut self, snap: &mut Snapshot) -> Result<(), SourceError> {
            let sys = self
                .sys
                .as_mut()
                .ok_or_else(|| SourceError::Unavailable("sysinfo cannot read this host".into()))?;
            sys.refresh_memory();
            let total = sys.total_memory();
            if total == 0 {
                return Err(SourceError::Failed(
                    "sysinfo reported 0 bytes of memory".into(),
                ));
            }
            snap.memory = Some(MemoryStats {
                total_bytes: total,
                available_bytes: sys.available_memory().min(total),
            });
            Ok(())
        }
    }
}

pub use imp::MemorySource;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_uses_memavailable() {
        let m = parse_meminfo("MemTotal:       16000 kB\nMemFree:  1000 kB\nMemAvailable:   4000 kB\nBuffers: 10 kB\nCached: 20 kB\n").unwrap();
        assert_eq!(m.total_bytes, 16000 * 1024);
        assert_eq!(m.available_bytes, 4000 * 1024);
        assert_eq!(m.used_bytes(), 12000 * 1024);
        assert_eq!(m.percent(), Some(75.0));
    }

    #[test]
    fn meminfo_before_3_14_estimates_available() {
        let m =
            parse_meminfo("MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 50 kB\nCached: 250 kB\n")
                .unwrap();
        assert_eq!(m.available_bytes, 400 * 1024);
    }

    #[test]
    fn meminfo_with_absurd_sizes_does_not_overflow() {
        // fuzz/artifacts/meminfo/crash-13942dcf…, reduced: the fallback sum
        // of three values near u64::MAX / 1024 overflowed.
        let huge = u64::MAX / 1024;
        let text =
            format!("MemTotal: 2 kB\nMemFree: {huge} kB\nBuffers: {huge} kB\nCached: {huge} kB\n");
        let m = parse_meminfo(&text).unwrap();
        // Available is capped at the total.
        assert_eq!(m.total_bytes, 2048);
        assert_eq!(m.available_bytes, 2048);
        assert_eq!(m.used_bytes(), 0);
    }

    #[test]
    fn meminfo_errors_name_the_key() {
        let e = parse_meminfo("MemTotal: lots kB\n").unwrap_err();
        assert!(e.0.contains("MemTotal"), "{e}");
        assert!(parse_meminfo("MemFree: 1 kB\n").is_err());
        assert!(parse_meminfo("MemTotal: 1 MB\nMemAvailable: 1 kB\n").is_err());
    }
}
