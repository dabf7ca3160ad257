//! hwmon power and energy sensors, for hosts where RAPL has no package zone
//! (kernel Documentation/hwmon/sysfs-interface.rst: `energy*_input` µJ,
//! `power*_input` µW; docs/FORMATS.md, hwmon).
//!
//! - `amd_energy` (in-tree until 5.13, now out of tree) and `zenergy`
//!   (out of tree): `energyN_input` labelled `Esocket<K>` is a socket's
//!   package energy, accumulated to 64 bits by the driver (no wrap);
//!   `Ecore<K>` channels are per core and not used.
//! - `zenpower` (out of tree, replaces k10temp): `powerN_input` labelled
//!   `SVI2_P_Core` is the core voltage rail's power, used for cpu.
//!
//! amdgpu power is the GPU source's; other chips have no CPU power sensor.

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::{DomainPower, PowerStats, sum_domain};
use crate::host::HostPaths;
use crate::sources::Snapshot;
use crate::sources::energy::{Counter, Trapezoid};
use crate::sources::sysfs::{self, ValueError};
use crate::sources::{Source, SourceError};

const HWMON: &str = "class/hwmon";

struct Socket {
    input: PathBuf,
    counter: Counter,
    watts: Option<f64>,
}

#[derive(Default)]
struct Sensors {
    sockets: Vec<Socket>,
    core_rails: Vec<PathBuf>,
}

/// The label of channel `prefix`N of the chip at `dir`, if any.
fn label(paths: &HostPaths, dir: &Path, prefix: &str, n: u32) -> Option<String> {
    sysfs::read_text(paths, dir.join(format!("{prefix}{n}_label"))).ok()
}

fn discover(paths: &HostPaths) -> Sensors {
    let mut s = Sensors::default();
    for chip in sysfs::entries(paths, HWMON) {
        let dir = PathBuf::from(HWMON).join(&chip);
        let Ok(name) = sysfs::read_text(paths, dir.join("name")) else {
            continue;
        };
        if !matches!(name.as_str(), "amd_energy" | "zenergy" | "zenpower") {
            continue;
        }
        for file in sysfs::entries(paths, &dir) {
            match name.as_str() {
                "amd_energy" | "zenergy" => {
                    let Some(n) = sysfs::channel(&file, "energy", "_input") else {
                        continue;
                    };
                    if label(paths, &dir, "energy", n).is_some_and(|l| l.starts_with("Esocket")) {
                        s.sockets.push(Socket {
                            input: dir.join(&file),
                            counter: Counter::microjoules(None),
                            watts: None,
                        });
                    }
                }
                "zenpower" => {
                    let Some(n) = sysfs::channel(&file, "power", "_input") else {
                        continue;
                    };
                    if label(paths, &dir, "power", n).as_deref() == Some("SVI2_P_Core") {
                        s.core_rails.push(dir.join(&file));
                    }
                }
                _ => {}
            }
        }
    }
    s
}

pub struct HwmonPowerSource {
    paths: HostPaths,
    /// RAPL has a package zone: this source is not needed.
    rapl: bool,
    sensors: Sensors,
    cpu: Trapezoid,
    permission: bool,
}

impl HwmonPowerSource {
    pub fn new(paths: HostPaths) -> Self {
        let rapl = super::rapl::RaplSource::has_package(&paths);
        let sensors = if rapl {
            Sensors::default()
        } else {
            discover(&paths)
        };
        let mut s = HwmonPowerSource {
            paths,
            rapl,
            sensors,
            cpu: Trapezoid::default(),
            permission: false,
        };
        let _ = s.read(Instant::now());
        s
    }

    fn read(&mut self, now: Instant) -> (DomainPower, DomainPower, Option<ValueError>) {
        let mut first_err = None;
        for sock in &mut self.sensors.sockets {
            match sysfs::read_value::<u64>(&self.paths, &sock.input) {
                Ok(raw) => sock.watts = sock.counter.update(raw, now),
                Err(e) => {
                    sock.watts = None;
                    first_err = first_err.or(Some(e));
                }
            }
        }
        let package = sum_domain(
            self.sensors
                .sockets
                .iter()
                .map(|s| (s.watts, s.counter.total_units())),
        );
        let cpu = if self.sensors.core_rails.is_empty() {
            package
        } else {
            let mut watts = Some(0.0);
            for rail in &self.sensors.core_rails {
                match sysfs::read_value::<u64>(&self.paths, rail) {
                    // µW
                    Ok(uw) => watts = watts.map(|w| w + uw as f64 / 1e6),
                    Err(e) => {
                        watts = None;
                        first_err = first_err.or(Some(e));
                    }
                }
            }
            DomainPower {
                watts,
                joules: self.cpu.update(watts, now),
            }
        };
        (package, cpu, first_err)
    }
}

impl Source for HwmonPowerSource {
    fn name(&self) -> &'static str {
        "hwmon"
    }

    fn sample(&mut self, snap: &mut Snapshot) -> Result<(), SourceError> {
        if self.rapl {
            return Err(SourceError::Unavailable(
                "not used: RAPL provides package and CPU power on this host".into(),
            ));
        }
        if self.sensors.sockets.is_empty() && self.sensors.core_rails.is_empty() {
            return Err(SourceError::Unavailable(format!(
                "no hwmon power or energy sensor (amd_energy, zenergy, zenpower) in {}",
                self.paths.sys_path(HWMON).display()
            )));
        }
        let (package, cpu, err) = self.read(Instant::now());
        let stats = snap.get_or_default::<PowerStats>();
        if stats.package.is_empty() {
            stats.package = package;
        }
        if stats.cpu.is_empty() {
            stats.cpu = cpu;
        }
        self.permission = err.as_ref().is_some_and(ValueError::is_permission);
        err.map_or(Ok(()), |e| Err(super::rapl::read_error(e)))
    }

    fn hint(&self) -> Option<&'static str> {
        if self.rapl {
            Some("Nothing to fix: this is only a fallback for hosts without RAPL.")
        } else if self.permission {
            Some(
                "amd_energy/zenergy energy counters are root-only like RAPL's: run the agent as root.",
            )
        } else if self.sensors.sockets.is_empty() && self.sensors.core_rails.is_empty() {
            Some(
                "Only a fallback where RAPL is missing: on AMD hosts the out-of-tree zenergy or zenpower \
                 module provides package or core power; a VM has no power sensors.",
            )
        } else {
            None
        }
    }
}
