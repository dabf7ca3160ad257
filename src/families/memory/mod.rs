//! The `memory` family: host memory from `/proc/meminfo` (proc(5); values
//! are KiB despite the "kB" suffix), and with `[compat] hostmetrics` the
//! state breakdown behind `system.memory.usage` from the same read. Other
//! platforms use sysinfo behind the same API (Mach's VM page counts for
//! the states on macOS).

use crate::point::Point;
use crate::semconv::{self, attr};
use crate::sources::ParseError;
use crate::sources::snapshot::{FamilySample, Snapshot};

const MIB: f64 = 1024.0 * 1024.0;

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

/// The values of `keys` in a meminfo text, in bytes, in the order asked.
fn meminfo_values<const N: usize>(
    text: &str,
    keys: [&str; N],
) -> Result<[Option<u64>; N], ParseError> {
    let mut out = [None; N];
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        if let Some(i) = keys.iter().position(|k| *k == key) {
            out[i] = Some(bytes_of(key, rest)?);
        }
    }
    Ok(out)
}

pub fn parse_meminfo(text: &str) -> Result<MemoryStats, ParseError> {
    let [total, available, free, buffers, cached] = meminfo_values(
        text,
        ["MemTotal", "MemAvailable", "MemFree", "Buffers", "Cached"],
    )?;
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

/// The value of one meminfo line (after the colon), in bytes.
fn bytes_of(key: &str, rest: &str) -> Result<u64, ParseError> {
    let mut parts = rest.split_ascii_whitespace();
    let value = parts.next().unwrap_or("");
    let kib: u64 = value
        .parse()
        .map_err(|_| ParseError(format!("{key}: {value:?} is not a number")))?;
    match parts.next() {
        None | Some("kB") => Ok(kib.saturating_mul(1024)),
        Some(unit) => Err(ParseError(format!("{key}: unexpected unit {unit:?}"))),
    }
}

/// The meminfo fields hostmetrics reports as `system.memory.usage{state}`,
/// in bytes, as the kernel gives them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryStates {
    pub total: u64,
    pub free: u64,
    pub buffers: u64,
    /// The kernel's page cache (`Cached`, which already excludes SwapCached).
    pub cached: u64,
    /// `SReclaimable` (since 2.6.19).
    pub slab_reclaimable: Option<u64>,
    /// `SUnreclaim` (since 2.6.19).
    pub slab_unreclaimable: Option<u64>,
}

impl MemoryStates {
    /// The receiver's `cached` state: gopsutil adds `SReclaimable` to the
    /// kernel's `Cached` (so `slab_reclaimable` is counted twice across the
    /// states).
    pub fn cached_with_slab(&self) -> u64 {
        self.cached
            .saturating_add(self.slab_reclaimable.unwrap_or(0))
    }

    /// The receiver's `used`: MemTotal minus free, buffers and
    /// [`cached_with_slab`](Self::cached_with_slab): anonymous memory,
    /// unreclaimable slab, kernel stacks, page tables. used + free + buffered
    /// + cached = MemTotal.
    pub fn used(&self) -> u64 {
        self.total
            .saturating_sub(self.free)
            .saturating_sub(self.buffers)
            .saturating_sub(self.cached_with_slab())
    }
}

pub fn parse_meminfo_states(text: &str) -> Result<MemoryStates, ParseError> {
    let [total, free, buffers, cached, sreclaimable, sunreclaim] = meminfo_values(
        text,
        [
            "MemTotal",
            "MemFree",
            "Buffers",
            "Cached",
            "SReclaimable",
            "SUnreclaim",
        ],
    )?;
    match (total, free, buffers, cached) {
        (Some(total), Some(free), Some(buffers), Some(cached)) => Ok(MemoryStates {
            total,
            free,
            buffers,
            cached,
            slab_reclaimable: sreclaimable,
            slab_unreclaimable: sunreclaim,
        }),
        _ => Err(ParseError(
            "MemTotal, MemFree, Buffers or Cached is missing".into(),
        )),
    }
}

/// macOS memory as the hostmetrics receiver reports it there (gopsutil's
/// `VirtualMemory` over Mach's `host_statistics(HOST_VM_INFO)`), in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VmMemoryStates {
    /// `free_count` pages.
    pub free: u64,
    /// `inactive_count` pages.
    pub inactive: u64,
    /// hw.memsize in pages minus free and inactive pages.
    pub used: u64,
}

impl VmMemoryStates {
    /// From hw.memsize (bytes), the page size and the two page counts.
    pub fn from_pages(total: u64, page_size: u64, free_pages: u32, inactive_pages: u32) -> Self {
        let pages = |n: u64| n.saturating_mul(page_size);
        let total_pages = total.checked_div(page_size).unwrap_or(0);
        let available = u64::from(free_pages) + u64::from(inactive_pages);
        VmMemoryStates {
            free: pages(u64::from(free_pages)),
            inactive: pages(u64::from(inactive_pages)),
            used: pages(total_pages.saturating_sub(available)),
        }
    }
}

impl FamilySample for MemoryStats {
    fn points(&self, _snap: &Snapshot, out: &mut Vec<Point>) {
        let mib = |bytes: u64| bytes as f64 / MIB;
        out.push(Point::new(&semconv::MEMORY_TOTAL_MB, mib(self.total_bytes)));
        out.push(Point::new(
            &semconv::MEMORY_AVAILABLE_MB,
            mib(self.available_bytes),
        ));
        out.push(Point::new(&semconv::MEMORY_USED_MB, mib(self.used_bytes())));
        if let Some(p) = self.percent() {
            out.push(Point::new(&semconv::MEMORY_PERCENT, p));
        }
    }
}

/// `system.memory.usage{state}` as the hostmetrics receiver reports it on
/// Linux.
impl FamilySample for MemoryStates {
    fn points(&self, _snap: &Snapshot, out: &mut Vec<Point>) {
        let states = [
            ("used", Some(self.used())),
            ("free", Some(self.free)),
            ("buffered", Some(self.buffers)),
            // The receiver's cached is Cached + SReclaimable (gopsutil).
            ("cached", Some(self.cached_with_slab())),
            ("slab_reclaimable", self.slab_reclaimable),
            ("slab_unreclaimable", self.slab_unreclaimable),
        ];
        for (state, bytes) in states {
            if let Some(b) = bytes {
                out.push(
                    Point::new(&semconv::SYSTEM_MEMORY_USAGE, b as f64).with(attr::STATE, state),
                );
            }
        }
    }
}

/// macOS, as the receiver there: used = total - free - inactive.
impl FamilySample for VmMemoryStates {
    fn points(&self, _snap: &Snapshot, out: &mut Vec<Point>) {
        for (state, bytes) in [
            ("used", self.used),
            ("free", self.free),
            ("inactive", self.inactive),
        ] {
            out.push(
                Point::new(&semconv::SYSTEM_MEMORY_USAGE, bytes as f64).with(attr::STATE, state),
            );
        }
    }
}

#[cfg(target_os = "linux")]
mod imp {
    use super::*;
    use crate::host::HostPaths;
    use crate::sources::{Source, SourceError};

    pub struct MemorySource {
        paths: HostPaths,
        /// Also keep the state breakdown (`[compat] hostmetrics`).
        states: bool,
    }

    impl MemorySource {
        pub fn new(paths: HostPaths) -> Self {
            MemorySource {
                paths,
                states: false,
            }
        }

        /// Also parse the same meminfo text into [`MemoryStates`] (for
        /// `system.memory.usage{state}`).
        pub fn with_states(mut self, on: bool) -> Self {
            self.states = on;
            self
        }
    }

    impl Source for MemorySource {
        fn name(&self) -> &'static str {
            "memory"
        }

        fn sample(&mut self, snap: &mut Snapshot) -> Result<(), SourceError> {
            let text = self.paths.read_proc("meminfo")?;
            snap.put(parse_meminfo(&text).map_err(|e| e.in_file("/proc/meminfo"))?);
            if self.states {
                snap.put(parse_meminfo_states(&text).map_err(|e| e.in_file("/proc/meminfo"))?);
            }
            Ok(())
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use super::*;
    use crate::host::HostPaths;
    use crate::sources::{Source, SourceError};
    use sysinfo::System;

    pub struct MemorySource {
        sys: Option<System>,
        /// Also read the VM page counts (`[compat] hostmetrics`, macOS).
        states: bool,
    }

    impl MemorySource {
        pub fn new(_paths: HostPaths) -> Self {
            MemorySource {
                sys: System::new().ok(),
                states: false,
            }
        }

        /// macOS: also read Mach's page counts for `system.memory.usage`;
        /// other platforms have no breakdown and it is absent.
        pub fn with_states(mut self, on: bool) -> Self {
            self.states = on && cfg!(target_os = "macos");
            self
        }
    }

    /// (free_count, inactive_count) of `host_statistics(HOST_VM_INFO)`, the
    /// call gopsutil makes.
    #[cfg(target_os = "macos")]
    #[allow(deprecated)] // libc points the Mach calls to the mach2 crate
    fn vm_page_counts() -> Result<(u32, u32), SourceError> {
        use std::sync::OnceLock;
        // mach_host_self() hands out a port right per call: take one.
        static HOST: OnceLock<libc::host_t> = OnceLock::new();
        // SAFETY: mach_host_self has no preconditions.
        let host = *HOST.get_or_init(|| unsafe { libc::mach_host_self() });
        // SAFETY: an all-zero vm_statistics is a valid plain C struct.
        let mut vm: libc::vm_statistics = unsafe { std::mem::zeroed() };
        let mut count = (std::mem::size_of::<libc::vm_statistics>()
            / std::mem::size_of::<libc::integer_t>())
            as libc::mach_msg_type_number_t;
        // SAFETY: `vm` holds `count` integers, as host_statistics requires.
        let kr = unsafe {
            libc::host_statistics(
                host,
                libc::HOST_VM_INFO,
                (&mut vm as *mut libc::vm_statistics).cast(),
                &mut count,
            )
        };
        if kr != libc::KERN_SUCCESS {
            return Err(SourceError::Failed(format!(
                "host_statistics(HOST_VM_INFO) returned {kr}"
            )));
        }
        Ok((vm.free_count, vm.inactive_count))
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
            snap.put(MemoryStats {
                total_bytes: total,
                available_bytes: sys.available_memory().min(total),
            });
            #[cfg(target_os = "macos")]
            if self.states {
                let (free, inactive) = vm_page_counts()?;
                // SAFETY: sysconf has no preconditions.
                let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
                let page = u64::try_from(page).unwrap_or(0);
                if page == 0 {
                    return Err(SourceError::Failed("sysconf(_SC_PAGESIZE) failed".into()));
                }
                snap.put(VmMemoryStates::from_pages(total, page, free, inactive));
            }
            Ok(())
        }
    }
}

pub use imp::MemorySource;

/// The memory family's source; `states` with `[compat] hostmetrics`.
pub fn build(states: bool) -> super::Builder {
    super::one(move |paths| Box::new(MemorySource::new(paths.clone()).with_states(states)))
}

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
    fn meminfo_states_partition_memtotal() {
        let text = "MemTotal: 1000 kB\nMemFree: 100 kB\nMemAvailable: 600 kB\nBuffers: 50 kB\nCached: 250 kB\nSwapCached: 7 kB\nSReclaimable: 40 kB\nSUnreclaim: 30 kB\n";
        let m = parse_meminfo_states(text).unwrap();
        assert_eq!(m.free, 100 * 1024);
        assert_eq!(m.cached, 250 * 1024);
        assert_eq!(m.slab_reclaimable, Some(40 * 1024));
        assert_eq!(m.slab_unreclaimable, Some(30 * 1024));
        assert_eq!(m.cached_with_slab(), 290 * 1024);
        // 1000 - 100 - 50 - (250 + 40)
        assert_eq!(m.used(), 560 * 1024);
        let old = parse_meminfo_states(
            "MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 50 kB\nCached: 250 kB\n",
        )
        .unwrap();
        assert_eq!(
            (old.slab_reclaimable, old.slab_unreclaimable, old.used()),
            (None, None, 600 * 1024)
        );
        assert!(parse_meminfo_states("MemTotal: 1000 kB\nMemFree: 100 kB\n").is_err());
        assert!(
            parse_meminfo_states("MemTotal: 1000 kB\nMemFree: x kB\nBuffers: 1 kB\nCached: 1 kB\n")
                .is_err()
        );
    }

    #[test]
    fn macos_states_from_page_counts() {
        // 16 KiB pages, 8 GiB: 524288 pages, 1000 free, 3000 inactive.
        let m = VmMemoryStates::from_pages(8 << 30, 16384, 1000, 3000);
        assert_eq!(
            (m.free, m.inactive, m.used),
            (1000 * 16384, 3000 * 16384, (524288 - 4000) * 16384)
        );
        assert_eq!(VmMemoryStates::from_pages(1 << 20, 0, 1, 1).used, 0);
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
