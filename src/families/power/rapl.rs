//! RAPL energy counters through the powercap class
//! (kernel Documentation/power/powercap/powercap.rst; docs/FORMATS.md, RAPL).
//!
//! `/sys/class/powercap/intel-rapl:N` are the top-level zones (`package-N`,
//! or `package-N-die-M`, and `psys` on laptops), `intel-rapl:N:M` their
//! subzones (`core` = PP0, `uncore` = PP1, `dram`); N and M are hexadecimal
//! (`intel-rapl:a` is the eleventh zone). AMD Zen uses the same
//! `intel-rapl` control type with only `package-N` and `core`.
//!
//! What is counted, and why:
//! - package = the sum of the `package-*` zones over sockets; it already
//!   holds core and uncore, so subzones are never added to it.
//! - `psys` (platform: SoC + board) is its own top-level zone and is not a
//!   package; it is ignored.
//! - `intel-rapl-mmio:0` is the SAME package read through MMIO: counting it
//!   too would double the package. It is used only when `intel-rapl` has no
//!   package zone at all.
//! - cpu = the `core` zones on Intel. On AMD the `core` zone reads the core
//!   energy MSR of the one CPU the driver reads the package through (that
//!   MSR is per core), not all cores, so cpu is the package there.
//! - watts = Δenergy_uj / Δt per zone between two reads, summed; energy is
//!   kept in integer µJ across `max_energy_range_uj` wraps (see
//!   [`counter_delta`](super::counter_delta)).
//!
//! `energy_uj` is root-only (mode 0400) since Linux 5.10 (commit 949dd0104c49,
//! CVE-2020-8694 "PLATYPUS", backported to older stable trees): without
//! permission the source is down with a reason and [`RaplSource::hint`]
//! says how to fix it.

use std::path::PathBuf;
use std::time::Instant;

use super::{DomainPower, PowerStats, sum_domain};
use crate::host::HostPaths;
use crate::sources::Snapshot;
use crate::sources::energy::Counter;
use crate::sources::sysfs::{self, ValueError};
use crate::sources::{Source, SourceError};

const POWERCAP: &str = "class/powercap";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RaplDomain {
    Package,
    Core,
    Uncore,
    Dram,
}

/// A powercap zone directory name: its control type and whether it is a
/// top-level zone (`intel-rapl:0`) or a subzone (`intel-rapl:0:1`). The
/// control-type directories themselves (`intel-rapl`) are not zones.
///
/// Zone ids are lowercase hexadecimal: drivers/powercap/powercap_sys.c
/// names zones `"%s:%x"`, so the eleventh package is `intel-rapl:a` and
/// its subzones `intel-rapl:a:0`.
pub fn parse_zone_dir(dir: &str) -> Option<(&str, bool)> {
    let (ctype, rest) = dir.split_once(':')?;
    let parts: Vec<&str> = rest.split(':').collect();
    let hex = |p: &str| {
        !p.is_empty()
            && p.len() <= 8
            && p.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    if !parts.iter().all(|p| hex(p)) {
        return None;
    }
    match parts.len() {
        1 => Some((ctype, true)),
        2 => Some((ctype, false)),
        _ => None,
    }
}

/// The domain a zone counts for, from its `name` file; `None` for zones
/// that are not counted (`psys`, unknown names).
pub fn domain_of(name: &str, top_level: bool) -> Option<RaplDomain> {
    match name.trim() {
        n if top_level && n.starts_with("package-") => Some(RaplDomain::Package),
        "core" if !top_level => Some(RaplDomain::Core),
        "uncore" if !top_level => Some(RaplDomain::Uncore),
        "dram" => Some(RaplDomain::Dram),
        _ => None,
    }
}

/// `vendor_id` of the first CPU in `/proc/cpuinfo` (x86 only).
pub fn cpu_vendor(cpuinfo: &str) -> Option<&str> {
    cpuinfo.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == "vendor_id").then(|| v.trim())
    })
}

/// AMD and Hygon (an AMD Zen licensee) share AMD's RAPL layout.
pub fn is_amd(vendor: &str) -> bool {
    matches!(vendor, "AuthenticAMD" | "HygonGenuine")
}

#[derive(Debug)]
struct Zone {
    /// Relative to the sysfs root, e.g. `class/powercap/intel-rapl:0`.
    rel: PathBuf,
    domain: RaplDomain,
    counter: Counter,
    /// Watts of the current cycle; `None` when this cycle's read failed.
    watts: Option<f64>,
}

fn discover(paths: &HostPaths) -> Vec<Zone> {
    let mut msr = Vec::new();
    let mut mmio = Vec::new();
    for dir in sysfs::entries(paths, POWERCAP) {
        let Some((ctype, top)) = parse_zone_dir(&dir) else {
            continue;
        };
        let rel = PathBuf::from(POWERCAP).join(&dir);
        let Ok(name) = sysfs::read_text(paths, rel.join("name")) else {
            continue;
        };
        let Some(domain) = domain_of(&name, top) else {
            continue;
        };
        let max = sysfs::read_value(paths, rel.join("max_energy_range_uj")).ok();
        let zone = Zone {
            rel,
            domain,
            counter: Counter::microjoules(max),
            watts: None,
        };
        match ctype {
            "intel-rapl" => msr.push(zone),
            "intel-rapl-mmio" => mmio.push(zone),
            _ => {}
        }
    }
    if msr.iter().any(|z| z.domain == RaplDomain::Package) {
        msr
    } else {
        msr.extend(mmio);
        msr
    }
}

/// What [`RaplSource::hint`] has to say about the last sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Problem {
    None,
    NoZones,
    Permission,
    Other,
}

pub const HINT_PERMISSION: &str = "RAPL energy_uj is readable only by root since Linux 5.10 (CVE-2020-8694). \
Run the agent as root, or grant a group read access at boot with a udev rule: \
ACTION==\"add\", SUBSYSTEM==\"powercap\", RUN+=\"/bin/chgrp unamentis /sys%p/energy_uj\", RUN+=\"/bin/chmod g+r /sys%p/energy_uj\" \
(not a+r: that reopens the side channel to every user). In Kubernetes run the DaemonSet with \
securityContext.runAsUser: 0 and the host's /sys mounted read-only (e.g. at /host/sys, host.sys = /host/sys): \
the container's own /sys masks powercap.";

pub const HINT_NO_ZONES: &str = "No RAPL zones: on bare metal load the driver (modprobe intel_rapl_msr; \
AMD Zen needs Linux 5.11 or later). Virtual machines and cloud instances do not expose RAPL, so package and \
CPU power cannot be measured there. In a container, mount the host's /sys and set host.sys.";

/// Maps a failed `energy_uj` read to the source's error.
pub fn read_error(e: ValueError) -> SourceError {
    if e.is_permission() {
        SourceError::Unavailable(format!(
            "{e}: energy counters are readable only by root since Linux 5.10 (CVE-2020-8694)"
        ))
    } else {
        e.into()
    }
}

pub struct RaplSource {
    paths: HostPaths,
    zones: Vec<Zone>,
    amd: bool,
    problem: Problem,
}

impl RaplSource {
    /// Finds the zones and reads them once, so the first sample has watts.
    pub fn new(paths: HostPaths) -> Self {
        let amd = paths
            .read_proc("cpuinfo")
            .ok()
            .is_some_and(|t| cpu_vendor(&t).is_some_and(is_amd));
        let mut s = RaplSource {
            zones: discover(&paths),
            paths,
            amd,
            problem: Problem::None,
        };
        let _ = s.read_zones(Instant::now());
        s
    }

    /// Whether the host has a RAPL package zone (readable or not).
    pub fn has_package(paths: &HostPaths) -> bool {
        discover(paths)
            .iter()
            .any(|z| z.domain == RaplDomain::Package)
    }

    fn read_zones(&mut self, now: Instant) -> Result<(), ValueError> {
        let mut first_err = None;
        for z in &mut self.zones {
            match sysfs::read_value::<u64>(&self.paths, z.rel.join("energy_uj")) {
                Ok(raw) => z.watts = z.counter.update(raw, now),
                Err(e) => {
                    z.watts = None;
                    first_err = first_err.or(Some(e));
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    fn domain(&self, d: RaplDomain) -> DomainPower {
        sum_domain(
            self.zones
                .iter()
                .filter(|z| z.domain == d)
                .map(|z| (z.watts, z.counter.total_units())),
        )
    }
}

impl Source for RaplSource {
    fn name(&self) -> &'static str {
        "rapl"
    }

    fn sample(&mut self, snap: &mut Snapshot) -> Result<(), SourceError> {
        if self.zones.is_empty() {
            self.zones = discover(&self.paths);
        }
        if self.zones.is_empty() {
            self.problem = Problem::NoZones;
            return Err(SourceError::Unavailable(format!(
                "no RAPL zones in {}",
                self.paths.sys_path(POWERCAP).display()
            )));
        }
        let result = self.read_zones(Instant::now());
        let package = self.domain(RaplDomain::Package);
        let stats = snap.get_or_default::<PowerStats>();
        stats.package = package;
        stats.cpu = if self.amd {
            package
        } else {
            self.domain(RaplDomain::Core)
        };
        stats.uncore = self.domain(RaplDomain::Uncore);
        stats.dram = self.domain(RaplDomain::Dram);
        match result {
            Ok(()) => {
                self.problem = Problem::None;
                Ok(())
            }
            Err(e) => {
                self.problem = if e.is_permission() {
                    Problem::Permission
                } else {
                    Problem::Other
                };
                Err(read_error(e))
            }
        }
    }

    fn hint(&self) -> Option<&'static str> {
        match self.problem {
            Problem::Permission => Some(HINT_PERMISSION),
            Problem::NoZones => Some(HINT_NO_ZONES),
            Problem::None | Problem::Other => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::ReadError;
    use std::io;

    #[test]
    fn zone_dirs() {
        assert_eq!(parse_zone_dir("intel-rapl:0"), Some(("intel-rapl", true)));
        assert_eq!(
            parse_zone_dir("intel-rapl:0:1"),
            Some(("intel-rapl", false))
        );
        assert_eq!(
            parse_zone_dir("intel-rapl-mmio:0"),
            Some(("intel-rapl-mmio", true))
        );
        // Hexadecimal ids past 9 (the kernel's "%s:%x").
        assert_eq!(parse_zone_dir("intel-rapl:a"), Some(("intel-rapl", true)));
        assert_eq!(parse_zone_dir("intel-rapl:f"), Some(("intel-rapl", true)));
        assert_eq!(parse_zone_dir("intel-rapl:10"), Some(("intel-rapl", true)));
        assert_eq!(
            parse_zone_dir("intel-rapl:b:0"),
            Some(("intel-rapl", false))
        );
        assert_eq!(parse_zone_dir("intel-rapl"), None);
        assert_eq!(parse_zone_dir("intel-rapl:x"), None);
        assert_eq!(parse_zone_dir("intel-rapl:A"), None, "%x is lowercase");
        assert_eq!(parse_zone_dir("intel-rapl:+1"), None);
        assert_eq!(parse_zone_dir("intel-rapl:"), None);
        assert_eq!(parse_zone_dir("intel-rapl:0:"), None);
        assert_eq!(parse_zone_dir("intel-rapl:0:1:2"), None);
    }

    #[test]
    fn domains() {
        assert_eq!(domain_of("package-0\n", true), Some(RaplDomain::Package));
        assert_eq!(
            domain_of("package-1-die-0", true),
            Some(RaplDomain::Package)
        );
        assert_eq!(domain_of("psys", true), None);
        assert_eq!(domain_of("core", false), Some(RaplDomain::Core));
        assert_eq!(domain_of("uncore", false), Some(RaplDomain::Uncore));
        assert_eq!(domain_of("dram", false), Some(RaplDomain::Dram));
        assert_eq!(domain_of("dram", true), Some(RaplDomain::Dram));
        assert_eq!(domain_of("package-0", false), None);
    }

    #[test]
    fn vendor() {
        let text = "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\n";
        assert_eq!(cpu_vendor(text), Some("AuthenticAMD"));
        assert!(is_amd("AuthenticAMD") && is_amd("HygonGenuine"));
        assert!(!is_amd("GenuineIntel"));
        assert_eq!(cpu_vendor("processor : 0\nCPU implementer : 0x41\n"), None);
    }

    #[test]
    fn permission_denied_is_unavailable_and_names_the_file() {
        // Tests run as root, where EACCES cannot happen on a real file.
        let e = ValueError::Read(ReadError {
            path: "/sys/class/powercap/intel-rapl:0/energy_uj".into(),
            source: io::Error::from(io::ErrorKind::PermissionDenied),
        });
        assert!(e.is_permission());
        match read_error(e) {
            SourceError::Unavailable(why) => {
                assert!(
                    why.contains("/sys/class/powercap/intel-rapl:0/energy_uj"),
                    "{why}"
                );
                assert!(why.contains("root"), "{why}");
            }
            other => panic!("{other:?}"),
        }
        let e = ValueError::Read(ReadError {
            path: "x".into(),
            source: io::Error::from(io::ErrorKind::InvalidData),
        });
        assert!(matches!(read_error(e), SourceError::Failed(_)));
    }
}
