//! CPU die temperature, fans, thermal pressure and throttle counts.
//!
//! Linux reads hwmon (kernel Documentation/hwmon/sysfs-interface.rst,
//! coretemp.rst, k10temp.rst), thermal zones and cooling devices
//! (Documentation/driver-api/thermal/sysfs-api.rst) and the Intel
//! thermal_throttle counters
//! (Documentation/admin-guide/thermal/intel_thermal_throttle.rst); see
//! docs/FORMATS.md, hwmon, Thermal zones and thermal_throttle counters.
//! Temperatures are millidegrees Celsius. The pressure rule is
//! [`pressure_level`], documented in semconv/registry.yaml.
//!
//! Section `[families.thermal]`: `enabled` (default true). On macOS the
//! same metrics come from powermetrics (`families::macos`).

use toml::Table;

#[cfg(target_os = "linux")]
use super::when;
use super::{Builder, Family, OnOff, SectionError, Settings, section};
use crate::point::Point;
use crate::semconv::{self, attr};
use crate::sources::snapshot::{FamilySample, Snapshot};

pub const FAMILY: Family = Family {
    name: "thermal",
    build: Settings::Section(build),
};

fn build(t: &Table) -> Result<Option<Builder>, SectionError> {
    let cfg: OnOff = section(t)?;
    #[cfg(target_os = "linux")]
    return Ok(when(cfg.enabled, |paths| {
        Box::new(ThermalSource::new(paths.clone()))
    }));
    #[cfg(not(target_os = "linux"))]
    {
        let _ = cfg;
        Ok(None)
    }
}

/// What the thermal source found in one cycle.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ThermalStats {
    /// Hottest CPU die sensor, °C.
    pub temperature: Option<f64>,
    /// 0 nominal, 1 fair, 2 serious, 3 critical.
    pub pressure: Option<u8>,
    /// (fan attribute, RPM).
    pub fans: Vec<(String, f64)>,
    /// Core (per physical core) plus package (per package) throttle events
    /// since boot.
    pub throttle_events: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TripKind {
    Critical,
    Hot,
    Passive,
    Active,
    /// `cold`, `critical_cold`, `unknown`: not a heat limit.
    Other,
}

pub fn parse_trip_kind(s: &str) -> TripKind {
    match s.trim() {
        "critical" => TripKind::Critical,
        "hot" => TripKind::Hot,
        "passive" => TripKind::Passive,
        "active" => TripKind::Active,
        _ => TripKind::Other,
    }
}

/// One thermal zone's temperature and trip points, in m°C.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneReading {
    pub temp_mc: i64,
    pub trips: Vec<(TripKind, i64)>,
}

/// One CPU hwmon channel and its thresholds, in m°C.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SensorReading {
    pub temp_mc: i64,
    pub max_mc: Option<i64>,
    pub crit_mc: Option<i64>,
}

/// Everything the pressure level is derived from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PressureInputs {
    pub zones: Vec<ZoneReading>,
    pub sensors: Vec<SensorReading>,
    /// thermal_throttle counters exist on this host.
    pub throttle_counters: bool,
    /// A throttle counter increased since the previous cycle.
    pub throttled: bool,
    /// Processor cooling devices exist on this host.
    pub cooling_devices: bool,
    /// One of them has cur_state > 0.
    pub cooling_active: bool,
}

/// "Within 10 °C below" a passive trip point or max threshold is fair.
pub const NEAR_MC: i64 = 10_000;

/// Trip points and thresholds at or below 0 °C are placeholders:
/// x86_pkg_temp's unset trips read 0, THERMAL_TEMP_INVALID is -274000.
fn valid(t: i64) -> bool {
    t > 0
}

/// The host's thermal pressure, 0–3, as the registry note for
/// `thermal.pressure` defines it: the highest level any input gives.
/// `None` when the host has no input at all (no trip point, threshold,
/// throttle counter or processor cooling device, as in most VMs).
pub fn pressure_level(inp: &PressureInputs) -> Option<u8> {
    let any_trip = inp.zones.iter().any(|z| {
        z.trips
            .iter()
            .any(|&(k, t)| k != TripKind::Other && valid(t))
    });
    let any_threshold = inp
        .sensors
        .iter()
        .any(|s| s.max_mc.is_some_and(valid) || s.crit_mc.is_some_and(valid));
    if !(any_trip || any_threshold || inp.throttle_counters || inp.cooling_devices) {
        return None;
    }
    let mut level = 0u8;
    for z in &inp.zones {
        for &(kind, t) in z.trips.iter().filter(|(_, t)| valid(*t)) {
            let l = match kind {
                TripKind::Critical | TripKind::Hot if z.temp_mc >= t => 3,
                TripKind::Passive if z.temp_mc >= t => 2,
                TripKind::Passive if z.temp_mc >= t - NEAR_MC => 1,
                TripKind::Active if z.temp_mc >= t => 1,
                _ => 0,
            };
            level = level.max(l);
        }
    }
    for s in &inp.sensors {
        if s.crit_mc.is_some_and(|c| valid(c) && s.temp_mc >= c) {
            level = level.max(3);
        }
        if let Some(m) = s.max_mc.filter(|&m| valid(m)) {
            if s.temp_mc >= m {
                level = level.max(2);
            } else if s.temp_mc >= m - NEAR_MC {
                level = level.max(1);
            }
        }
    }
    if inp.throttled || inp.cooling_active {
        level = level.max(2);
    }
    Some(level)
}

/// Which temperature channels of a hwmon chip are CPU die sensors, given
/// `(channel, label)` pairs. acpitz, nvme, amdgpu, super-I/O chips: none.
pub fn cpu_channels(chip: &str, channels: &[(u32, Option<String>)]) -> Vec<u32> {
    let with = |pred: &dyn Fn(&str) -> bool| -> Vec<u32> {
        channels
            .iter()
            .filter(|(_, l)| l.as_deref().is_some_and(pred))
            .map(|(n, _)| *n)
            .collect()
    };
    let unlabelled = channels.iter().all(|(_, l)| l.is_none());
    match chip {
        // Package sensors (Sandy Bridge and later), else per-core ones.
        "coretemp" if unlabelled => channels.iter().map(|(n, _)| *n).collect(),
        // Older coretemp labels the package channel `Physical id N`
        // (same channel, temp1) instead of `Package id N`.
        "coretemp" => {
            let pkg = with(&|l| l.starts_with("Package id") || l.starts_with("Physical id"));
            if pkg.is_empty() {
                with(&|l| l.starts_with("Core"))
            } else {
                pkg
            }
        }
        // Pre-Zen k10temp has one unlabelled channel (Tctl).
        "k10temp" | "zenpower" if unlabelled => channels.iter().map(|(n, _)| *n).take(1).collect(),
        // Tctl carries a fixed offset on some models (+20 °C on the
        // 1800X); those models also have Tdie, the real die temperature.
        "k10temp" | "zenpower" => {
            let mut v = with(&|l| l == "Tdie");
            if v.is_empty() {
                v = with(&|l| l == "Tctl");
            }
            v.extend(with(&|l| l.starts_with("Tccd")));
            v
        }
        "cpu_thermal" => channels.iter().map(|(n, _)| *n).collect(),
        _ => Vec::new(),
    }
}

/// What a thermal zone's `type` says about it as a CPU temperature, used
/// only when no hwmon CPU sensor exists. The type is the driver's name or,
/// for device-tree zones, the DT node name, so SoC boards differ:
/// `cpu-thermal`, `cpu0-thermal` … (one zone per core or cluster), Tegra's
/// `CPU-therm`, and zones of the whole SoC die: `soc_thermal` (Amlogic
/// vendor kernels), Tegra's `SOC0-therm`, `bcm2835_thermal` (Raspberry Pi
/// kernels before the DT name `cpu-thermal`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CpuZone {
    /// A sensor of the CPU itself (`x86_pkg_temp`, `cpu*-thermal`).
    Cpu,
    /// The SoC die the CPU is on: used only without a `Cpu` zone.
    Soc,
}

/// The rank of a zone `type` as a CPU temperature; `None` for the rest
/// (`acpitz`, GPU, junction, board and device zones).
pub fn cpu_zone(kind: &str) -> Option<CpuZone> {
    let kind = kind.trim();
    match kind {
        "x86_pkg_temp" => return Some(CpuZone::Cpu),
        "bcm2835_thermal" => return Some(CpuZone::Soc),
        _ => {}
    }
    let lower = kind.to_ascii_lowercase();
    let stem = ["-thermal", "_thermal", "-therm"]
        .iter()
        .find_map(|s| lower.strip_suffix(s))?;
    // `cpu`, `cpu0`, `soc`, `soc0`; not `cpufreq`, `cpu-big` or `gpu`.
    let numbered = |prefix: &str| {
        stem.strip_prefix(prefix)
            .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
    };
    if numbered("cpu") {
        Some(CpuZone::Cpu)
    } else if numbered("soc") {
        Some(CpuZone::Soc)
    } else {
        None
    }
}

/// Thermal zone types that stand for the CPU temperature (of either
/// rank); never `acpitz` (a motherboard ACPI zone) nor other devices.
pub fn is_cpu_zone(kind: &str) -> bool {
    cpu_zone(kind).is_some()
}

/// Cooling devices that throttle the CPU when cur_state > 0. Not `TCC
/// Offset` (a static setting) nor `intel_powerclamp` (user-driven).
pub fn is_processor_cooling(kind: &str) -> bool {
    kind == "Processor" || kind.starts_with("thermal-cpufreq") || kind.starts_with("cpufreq-")
}

#[cfg(target_os = "linux")]
mod imp {
    use std::collections::HashMap;
    use std::io;
    use std::path::PathBuf;

    use super::*;
    use crate::families::cpu::{CPUS, CpuTopology, cpu_dirs};
    use crate::host::HostPaths;
    use crate::sources::SourceError;
    use crate::sources::sysfs::{self, ValueError};
    use crate::sources::{Snapshot, Source};

    const HWMON: &str = "class/hwmon";
    const THERMAL: &str = "class/thermal";
    /// Re-read the layout (chips, zones, trip points) every this many
    /// cycles: trip points can change (ACPI notifications), chips come
    /// and go with modules.
    const REDISCOVER_EVERY: u32 = 12;

    struct Channel {
        input: PathBuf,
        max_mc: Option<i64>,
        crit_mc: Option<i64>,
    }

    struct Chip {
        /// `device/power/runtime_status` of the chip's device.
        pm: PathBuf,
        cpu: Vec<Channel>,
        fans: Vec<(String, PathBuf)>,
    }

    struct Zone {
        temp: PathBuf,
        cpu: Option<CpuZone>,
        trips: Vec<(TripKind, i64)>,
    }

    #[derive(Default)]
    struct Layout {
        chips: Vec<Chip>,
        zones: Vec<Zone>,
        cooling: Vec<PathBuf>,
        /// (key, counter file): one per physical core, one per package.
        core_counters: Vec<(String, PathBuf)>,
        package_counters: Vec<(String, PathBuf)>,
    }

    impl Layout {
        fn is_empty(&self) -> bool {
            self.chips.is_empty()
                && self.zones.is_empty()
                && self.cooling.is_empty()
                && self.core_counters.is_empty()
                && self.package_counters.is_empty()
        }
    }

    fn opt_i64(paths: &HostPaths, rel: PathBuf) -> Option<i64> {
        sysfs::read_value(paths, rel).ok()
    }

    fn discover_chips(paths: &HostPaths) -> Vec<Chip> {
        let mut chips = Vec::new();
        let mut seen: HashMap<String, u32> = HashMap::new();
        for entry in sysfs::entries(paths, HWMON) {
            let top = PathBuf::from(HWMON).join(&entry);
            // Very old drivers keep their attributes in hwmonN/device/.
            let (dir, name) = match sysfs::read_text(paths, top.join("name")) {
                Ok(n) => (top.clone(), n),
                Err(_) => match sysfs::read_text(paths, top.join("device/name")) {
                    Ok(n) => (top.join("device"), n),
                    Err(_) => continue,
                },
            };
            let files = sysfs::entries(paths, &dir);
            let mut temps: Vec<(u32, Option<String>)> = files
                .iter()
                .filter_map(|f| sysfs::channel(f, "temp", "_input"))
                .map(|n| {
                    (
                        n,
                        sysfs::read_text(paths, dir.join(format!("temp{n}_label"))).ok(),
                    )
                })
                .collect();
            temps.sort_by_key(|(n, _)| *n);
            let cpu = cpu_channels(&name, &temps)
                .into_iter()
                .map(|n| Channel {
                    input: dir.join(format!("temp{n}_input")),
                    max_mc: opt_i64(paths, dir.join(format!("temp{n}_max"))),
                    crit_mc: opt_i64(paths, dir.join(format!("temp{n}_crit"))),
                })
                .collect();
            // Two chips of one name (two GPUs) get distinct fan names.
            let count = seen.entry(name.clone()).or_insert(0);
            *count += 1;
            let prefix = if *count == 1 {
                name.clone()
            } else {
                format!("{name}-{count}")
            };
            let mut fans: Vec<(u32, PathBuf)> = files
                .iter()
                .filter_map(|f| Some((sysfs::channel(f, "fan", "_input")?, dir.join(f))))
                .collect();
            fans.sort_by_key(|(n, _)| *n);
            chips.push(Chip {
                pm: top.join("device/power/runtime_status"),
                cpu,
                fans: fans
                    .into_iter()
                    .map(|(n, p)| (format!("{prefix}.fan{n}"), p))
                    .collect(),
            });
        }
        chips.retain(|c| !c.cpu.is_empty() || !c.fans.is_empty());
        chips
    }

    fn discover_zones(paths: &HostPaths) -> (Vec<Zone>, Vec<PathBuf>) {
        let mut zones = Vec::new();
        let mut cooling = Vec::new();
        for entry in sysfs::entries(paths, THERMAL) {
            let dir = PathBuf::from(THERMAL).join(&entry);
            if entry.starts_with("thermal_zone") {
                let Ok(kind) = sysfs::read_text(paths, dir.join("type")) else {
                    continue;
                };
                if sysfs::read_text(paths, dir.join("mode")).is_ok_and(|m| m == "disabled") {
                    continue;
                }
                let mut trips = Vec::new();
                for k in 0.. {
                    let Ok(t) = sysfs::read_text(paths, dir.join(format!("trip_point_{k}_type")))
                    else {
                        break;
                    };
                    if let Some(temp) = opt_i64(paths, dir.join(format!("trip_point_{k}_temp"))) {
                        trips.push((parse_trip_kind(&t), temp));
                    }
                }
                zones.push(Zone {
                    temp: dir.join("temp"),
                    cpu: cpu_zone(&kind),
                    trips,
                });
            } else if entry.starts_with("cooling_device")
                && sysfs::read_text(paths, dir.join("type")).is_ok_and(|t| is_processor_cooling(&t))
            {
                cooling.push(dir.join("cur_state"));
            }
        }
        (zones, cooling)
    }

    /// One core counter per physical core (SMT siblings share it) and one
    /// package counter per package (every CPU of a package increments
    /// it, so it is read from one CPU only).
    type Counters = (Vec<(String, PathBuf)>, Vec<(String, PathBuf)>);

    fn discover_throttle(paths: &HostPaths) -> Counters {
        let mut core: Vec<(String, PathBuf)> = Vec::new();
        let mut package: Vec<(String, PathBuf)> = Vec::new();
        // Every cpuN directory, not the `online` list: the counters of an
        // offline CPU are removed with its thermal_throttle directory.
        for cpu in cpu_dirs(paths) {
            let dir = PathBuf::from(format!("{CPUS}/cpu{cpu}"));
            let core_file = dir.join("thermal_throttle/core_throttle_count");
            if sysfs::read_text(paths, &core_file).is_err() {
                continue;
            }
            let topo = CpuTopology::read(paths, cpu);
            let pkg = topo
                .physical_package_id
                .clone()
                .unwrap_or_else(|| "0".into());
            let core_key = topo.core_key().unwrap_or_else(|| format!("cpu {cpu}"));
            if !core.iter().any(|(k, _)| *k == core_key) {
                core.push((core_key, core_file));
            }
            let pkg_file = dir.join("thermal_throttle/package_throttle_count");
            if !package.iter().any(|(k, _)| *k == pkg) && sysfs::read_text(paths, &pkg_file).is_ok()
            {
                package.push((pkg, pkg_file));
            }
        }
        (core, package)
    }

    fn discover(paths: &HostPaths) -> Layout {
        let (zones, cooling) = discover_zones(paths);
        let (core_counters, package_counters) = discover_throttle(paths);
        Layout {
            chips: discover_chips(paths),
            zones,
            cooling,
            core_counters,
            package_counters,
        }
    }

    pub struct ThermalSource {
        paths: HostPaths,
        layout: Layout,
        cycles: u32,
        /// Last value of every throttle counter ever seen, by key: the
        /// total never drops when a CPU goes offline.
        core_last: HashMap<String, u64>,
        package_last: HashMap<String, u64>,
    }

    impl ThermalSource {
        /// Reads everything once so the first sample can tell whether a
        /// throttle counter increased.
        pub fn new(paths: HostPaths) -> Self {
            let mut s = ThermalSource {
                layout: discover(&paths),
                paths,
                cycles: 0,
                core_last: HashMap::new(),
                package_last: HashMap::new(),
            };
            let _ = s.sample(&mut Snapshot::default());
            s
        }

        /// (events since boot, whether any counter increased).
        fn read_throttle(&mut self) -> (Option<u64>, bool) {
            let mut increased = false;
            let groups = [
                (&self.layout.core_counters, &mut self.core_last),
                (&self.layout.package_counters, &mut self.package_last),
            ];
            for (files, last) in groups {
                for (key, file) in files {
                    let Ok(v) = sysfs::read_value::<u64>(&self.paths, file) else {
                        continue;
                    };
                    match last.get_mut(key) {
                        Some(prev) if v > *prev => {
                            increased = true;
                            *prev = v;
                        }
                        Some(_) => {}
                        None => {
                            last.insert(key.clone(), v);
                        }
                    }
                }
            }
            let any = !self.core_last.is_empty() || !self.package_last.is_empty();
            let total = self
                .core_last
                .values()
                .chain(self.package_last.values())
                .sum();
            (any.then_some(total), increased)
        }
    }

    impl Source for ThermalSource {
        fn name(&self) -> &'static str {
            "thermal"
        }

        fn sample(&mut self, snap: &mut Snapshot) -> Result<(), SourceError> {
            self.cycles += 1;
            if self.cycles >= REDISCOVER_EVERY || self.layout.is_empty() {
                self.layout = discover(&self.paths);
                self.cycles = 0;
            }
            if self.layout.is_empty() {
                return Err(SourceError::Unavailable(format!(
                    "no thermal sensors: no CPU temperature sensor or fan in {}, no thermal zone in {}, \
                     no thermal_throttle counters",
                    self.paths.sys_path(HWMON).display(),
                    self.paths.sys_path(THERMAL).display()
                )));
            }
            let p = &self.paths;
            let mut stats = ThermalStats::default();
            let mut inputs = PressureInputs::default();
            let mut gone = false;
            let mut note = |e: &ValueError| gone |= e.kind() == Some(io::ErrorKind::NotFound);
            let mut hottest: Option<i64> = None;
            for chip in &self.layout.chips {
                // Reading a runtime-suspended device's sensors wakes it
                // (amdgpu: pm_runtime_get_sync), keeping a hybrid
                // laptop's dGPU powered: leave it asleep.
                if sysfs::read_text(p, &chip.pm).is_ok_and(|s| s == "suspended") {
                    continue;
                }
                for ch in &chip.cpu {
                    match sysfs::read_value::<i64>(p, &ch.input) {
                        Ok(t) => {
                            hottest = hottest.max(Some(t));
                            inputs.sensors.push(SensorReading {
                                temp_mc: t,
                                max_mc: ch.max_mc,
                                crit_mc: ch.crit_mc,
                            });
                        }
                        Err(e) => note(&e),
                    }
                }
                for (fan, file) in &chip.fans {
                    match sysfs::read_value::<u64>(p, file) {
                        Ok(rpm) => stats.fans.push((fan.clone(), rpm as f64)),
                        Err(e) => note(&e),
                    }
                }
            }
            // Hottest CPU zone, hottest SoC zone.
            let (mut cpu_zone, mut soc_zone): (Option<i64>, Option<i64>) = (None, None);
            for z in &self.layout.zones {
                // A zone read can fail (ENODATA from iwlwifi when the
                // interface is down): skip it for this cycle.
                let Ok(t) = sysfs::read_value::<i64>(p, &z.temp) else {
                    continue;
                };
                match z.cpu {
                    Some(CpuZone::Cpu) => cpu_zone = cpu_zone.max(Some(t)),
                    Some(CpuZone::Soc) => soc_zone = soc_zone.max(Some(t)),
                    None => {}
                }
                inputs.zones.push(ZoneReading {
                    temp_mc: t,
                    trips: z.trips.clone(),
                });
            }
            for cur in &self.layout.cooling {
                inputs.cooling_devices = true;
                if sysfs::read_value::<i64>(p, cur).is_ok_and(|s| s > 0) {
                    inputs.cooling_active = true;
                }
            }
            stats.temperature = hottest
                .or(cpu_zone)
                .or(soc_zone)
                .map(|mc| mc as f64 / 1000.0);
            let (events, increased) = self.read_throttle();
            stats.throttle_events = events;
            inputs.throttle_counters = events.is_some();
            inputs.throttled = increased;
            stats.pressure = pressure_level(&inputs);
            snap.put(stats);
            if gone {
                // A chip went away (module unloaded): look again next cycle.
                self.cycles = REDISCOVER_EVERY;
            }
            Ok(())
        }

        fn hint(&self) -> Option<&'static str> {
            self.layout.is_empty().then_some(
                "Expected in a VM or container: hypervisors expose no CPU temperature sensors, thermal zones or \
                 throttle counters. On bare metal load the sensor driver (coretemp on Intel, k10temp on AMD); \
                 in a container mount the host's /sys and set host.sys.",
            )
        }
    }
}

#[cfg(target_os = "linux")]
pub use imp::ThermalSource;

impl FamilySample for ThermalStats {
    fn points(&self, _snap: &Snapshot, out: &mut Vec<Point>) {
        if let Some(c) = self.temperature {
            out.push(Point::new(&semconv::THERMAL_TEMPERATURE, c));
        }
        if let Some(l) = self.pressure {
            out.push(Point::new(&semconv::THERMAL_PRESSURE, f64::from(l)));
        }
        for (fan, rpm) in &self.fans {
            out.push(Point::new(&semconv::THERMAL_FAN_RPM, *rpm).with(attr::FAN, fan.as_str()));
        }
        if let Some(n) = self.throttle_events {
            out.push(Point::new(&semconv::THERMAL_THROTTLE_EVENTS, n as f64));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(temp_c: i64, trips: &[(TripKind, i64)]) -> ZoneReading {
        ZoneReading {
            temp_mc: temp_c * 1000,
            trips: trips.iter().map(|&(k, t)| (k, t * 1000)).collect(),
        }
    }

    fn level_of(zones: Vec<ZoneReading>) -> Option<u8> {
        pressure_level(&PressureInputs {
            zones,
            ..Default::default()
        })
    }

    #[test]
    fn pressure_from_trip_points_at_every_level() {
        use TripKind::*;
        let trips = [(Active, 50), (Passive, 90), (Hot, 100), (Critical, 105)];
        assert_eq!(level_of(vec![zone(40, &trips)]), Some(0));
        assert_eq!(level_of(vec![zone(50, &trips)]), Some(1), "active reached");
        let no_active = [(Passive, 90), (Critical, 105)];
        assert_eq!(level_of(vec![zone(79, &no_active)]), Some(0));
        assert_eq!(
            level_of(vec![zone(80, &no_active)]),
            Some(1),
            "10 °C below passive"
        );
        assert_eq!(level_of(vec![zone(90, &trips)]), Some(2));
        assert_eq!(level_of(vec![zone(100, &trips)]), Some(3), "hot");
        assert_eq!(level_of(vec![zone(104, &no_active)]), Some(2));
        assert_eq!(level_of(vec![zone(105, &no_active)]), Some(3), "critical");
        // The highest zone wins.
        assert_eq!(
            level_of(vec![zone(40, &trips), zone(95, &no_active)]),
            Some(2)
        );
    }

    #[test]
    fn placeholder_trips_are_ignored() {
        // x86_pkg_temp's two writable passive trips read 0 when unset.
        let pkg = zone(45, &[(TripKind::Passive, 0), (TripKind::Passive, 0)]);
        assert_eq!(level_of(vec![pkg.clone()]), None, "no real input");
        let invalid = zone(45, &[(TripKind::Critical, -274)]);
        assert_eq!(level_of(vec![pkg, invalid]), None);
        assert_eq!(level_of(vec![zone(45, &[])]), None);
    }

    #[test]
    fn pressure_from_sensors_throttling_and_cooling() {
        let s = |t: i64, max: Option<i64>, crit: Option<i64>| SensorReading {
            temp_mc: t * 1000,
            max_mc: max.map(|m| m * 1000),
            crit_mc: crit.map(|c| c * 1000),
        };
        let with = |sensors: Vec<SensorReading>| PressureInputs {
            sensors,
            ..Default::default()
        };
        assert_eq!(
            pressure_level(&with(vec![s(60, Some(80), Some(100))])),
            Some(0)
        );
        assert_eq!(
            pressure_level(&with(vec![s(70, Some(80), Some(100))])),
            Some(1)
        );
        assert_eq!(
            pressure_level(&with(vec![s(80, Some(80), Some(100))])),
            Some(2)
        );
        assert_eq!(
            pressure_level(&with(vec![s(100, Some(100), Some(100))])),
            Some(3)
        );
        assert_eq!(pressure_level(&with(vec![s(100, None, None)])), None);
        let counters = PressureInputs {
            throttle_counters: true,
            ..Default::default()
        };
        assert_eq!(pressure_level(&counters), Some(0));
        let throttled = PressureInputs {
            throttled: true,
            ..counters.clone()
        };
        assert_eq!(pressure_level(&throttled), Some(2));
        let cooling = PressureInputs {
            cooling_devices: true,
            cooling_active: true,
            ..Default::default()
        };
        assert_eq!(pressure_level(&cooling), Some(2));
    }

    fn ch(n: u32, label: Option<&str>) -> (u32, Option<String>) {
        (n, label.map(str::to_owned))
    }

    #[test]
    fn cpu_sensor_choice_by_driver() {
        let coretemp = [
            ch(1, Some("Package id 0")),
            ch(2, Some("Core 0")),
            ch(3, Some("Core 1")),
        ];
        assert_eq!(cpu_channels("coretemp", &coretemp), vec![1]);
        let old = [ch(2, Some("Core 0")), ch(3, Some("Core 1"))];
        assert_eq!(cpu_channels("coretemp", &old), vec![2, 3]);
        // The label before the rename to `Package id`.
        let physical = [
            ch(1, Some("Physical id 1")),
            ch(2, Some("Core 0")),
            ch(3, Some("Core 1")),
        ];
        assert_eq!(cpu_channels("coretemp", &physical), vec![1]);
        let zen2 = [
            ch(1, Some("Tctl")),
            ch(3, Some("Tccd1")),
            ch(4, Some("Tccd2")),
        ];
        assert_eq!(cpu_channels("k10temp", &zen2), vec![1, 3, 4]);
        let zen1_offset = [ch(1, Some("Tctl")), ch(2, Some("Tdie"))];
        assert_eq!(cpu_channels("k10temp", &zen1_offset), vec![2]);
        assert_eq!(cpu_channels("zenpower", &zen1_offset), vec![2]);
        assert_eq!(cpu_channels("k10temp", &[ch(1, None)]), vec![1]);
        assert_eq!(cpu_channels("cpu_thermal", &[ch(1, None)]), vec![1]);
        assert!(cpu_channels("acpitz", &[ch(1, None)]).is_empty());
        assert!(cpu_channels("nvme", &[ch(1, Some("Composite"))]).is_empty());
    }

    #[test]
    fn trip_kinds_and_device_types() {
        assert_eq!(parse_trip_kind("passive\n"), TripKind::Passive);
        assert_eq!(parse_trip_kind("critical_cold"), TripKind::Other);
        assert!(is_processor_cooling("Processor"));
        assert!(is_processor_cooling("thermal-cpufreq-0"));
        assert!(!is_processor_cooling("TCC Offset"));
        assert!(!is_processor_cooling("intel_powerclamp"));
        assert!(is_cpu_zone("x86_pkg_temp") && !is_cpu_zone("acpitz"));
    }

    #[test]
    fn cpu_and_soc_zone_names() {
        use CpuZone::*;
        for kind in [
            "x86_pkg_temp",
            "cpu-thermal",
            "cpu_thermal\n",
            "cpu0-thermal",
            "cpu3_thermal",
            "CPU-therm",
        ] {
            assert_eq!(cpu_zone(kind), Some(Cpu), "{kind}");
        }
        for kind in [
            "bcm2835_thermal",
            "soc_thermal",
            "soc-thermal",
            "SOC0-therm",
        ] {
            assert_eq!(cpu_zone(kind), Some(Soc), "{kind}");
        }
        for kind in [
            "acpitz",
            "gpu-thermal",
            "GPU-therm",
            "tj-therm",
            "cpufreq-thermal",
            "cpu-big-thermal",
            "pch_skylake",
            "iwlwifi_1",
            "thermal",
            "",
        ] {
            assert_eq!(cpu_zone(kind), None, "{kind}");
        }
        assert!(Cpu < Soc, "a CPU zone ranks before a SoC zone");
    }
}
