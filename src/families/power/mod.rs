//! The `power` family: host power and energy, what every power source
//! writes into the snapshot, and its mapping (the counters and integrators
//! are in `sources::energy`).
//!
//! Linux sources, in sampling order (an earlier one wins a domain):
//! `rapl` (powercap RAPL zones), `hwmon` (hwmon energy/power sensors where
//! RAPL has no zone for a domain), `battery` (power_supply discharge).

use crate::point::Point;
use crate::semconv;
use crate::semconv::attr;
use crate::sources::snapshot::{FamilySample, Snapshot};

use super::gpu::GpuStats;

#[cfg(target_os = "linux")]
pub mod battery;
#[cfg(target_os = "linux")]
pub mod hwmon;
#[cfg(target_os = "linux")]
pub mod rapl;

/// One power domain in one cycle.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DomainPower {
    /// Average power over the last interval.
    pub watts: Option<f64>,
    /// Energy since the agent started; kept (not reset) while a reading
    /// fails, so the counter never goes backwards.
    pub joules: Option<f64>,
}

impl DomainPower {
    pub fn is_empty(&self) -> bool {
        self.watts.is_none() && self.joules.is_none()
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct PowerStats {
    /// The CPU cores: RAPL core zones on Intel; the package on AMD (see
    /// `rapl.rs`).
    pub cpu: DomainPower,
    pub package: DomainPower,
    /// RAPL uncore (PP1, the integrated GPU on Intel client parts). Not a
    /// host gauge of its own: the GPU source may report it as gpu power.
    pub uncore: DomainPower,
    pub dram: DomainPower,
    /// The Apple Neural Engine (macOS powermetrics; watts only).
    pub ane: DomainPower,
    /// Discharge rate of the system batteries; 0 while charging or full.
    pub battery: DomainPower,
    /// Charge, time left and AC state.
    pub battery_state: BatteryState,
}

/// What the battery source gives besides power.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct BatteryState {
    pub charge_percent: Option<f64>,
    /// Seconds to empty at this cycle's discharge rate; only while
    /// discharging (stored energy over discharge watts, as upower does).
    pub time_left_s: Option<f64>,
    /// Whether an AC, USB or wireless supply is online; `None` where the
    /// host has no such supply.
    pub ac_online: Option<bool>,
}

/// The power family's sources, in the order that lets an earlier one win
/// a domain: RAPL, hwmon, the battery (Linux; macOS's readers are in the
/// macos family).
pub fn build() -> Option<super::Builder> {
    #[cfg(target_os = "linux")]
    return Some(Box::new(|paths: &crate::host::HostPaths| {
        vec![
            Box::new(rapl::RaplSource::new(paths.clone())) as Box<dyn crate::sources::Source>,
            Box::new(hwmon::HwmonPowerSource::new(paths.clone())),
            Box::new(battery::BatterySource::new(paths.clone())),
        ]
    }));
    #[cfg(not(target_os = "linux"))]
    None
}

impl PowerStats {
    /// The energy domains of the Linux power sources; uncore is left to
    /// the GPU source (power.gpu_watts).
    fn energy(&self) -> [(&'static str, Option<f64>); 4] {
        [
            ("cpu", self.cpu.joules),
            ("package", self.package.joules),
            ("dram", self.dram.joules),
            ("battery", self.battery.joules),
        ]
    }
}

impl FamilySample for PowerStats {
    fn points(&self, _snap: &Snapshot, out: &mut Vec<Point>) {
        let gauges = [
            (&semconv::POWER_CPU_WATTS, self.cpu.watts),
            (&semconv::POWER_ANE_WATTS, self.ane.watts),
            (&semconv::POWER_PACKAGE_WATTS, self.package.watts),
            (&semconv::POWER_DRAM_WATTS, self.dram.watts),
            (&semconv::POWER_BATTERY_WATTS, self.battery.watts),
        ];
        for (metric, v) in gauges {
            if let Some(v) = v {
                out.push(Point::new(metric, v));
            }
        }
        for (domain, j) in self.energy() {
            if let Some(j) = j {
                out.push(Point::new(&semconv::ENERGY_JOULES, j).with(attr::DOMAIN, domain));
            }
        }
        self.battery_state.points(out);
    }
}

impl BatteryState {
    pub fn points(&self, out: &mut Vec<Point>) {
        for (metric, v) in [
            (&semconv::BATTERY_CHARGE_PERCENT, self.charge_percent),
            (&semconv::BATTERY_TIME_LEFT, self.time_left_s),
            (
                &semconv::POWER_AC_ONLINE,
                self.ac_online.map(|on| f64::from(u8::from(on))),
            ),
        ] {
            if let Some(v) = v {
                out.push(Point::new(metric, v));
            }
        }
    }
}

/// Package power of this cycle: Linux RAPL/hwmon or macOS powermetrics.
pub fn package_watts(snap: &Snapshot) -> Option<f64> {
    snap.get::<PowerStats>().and_then(|p| p.package.watts)
}

/// Cumulative joules since start per energy domain (`package`, `cpu`, …),
/// as `energy.joules` reports them.
pub fn energy_totals(snap: &Snapshot) -> Vec<(&'static str, f64)> {
    let mut out = Vec::new();
    if let Some(p) = snap.get::<PowerStats>() {
        out.extend(p.energy().into_iter().filter_map(|(d, j)| Some((d, j?))));
    }
    // The GPUs' total (NVML, nvidia-smi, amdgpu; powermetrics' Apple GPU).
    if let Some(j) = snap.get::<GpuStats>().and_then(|g| g.energy_joules) {
        out.push(("gpu", j));
    }
    out
}

pub fn uj_to_joules(uj: u64) -> f64 {
    uj as f64 / 1e6
}

/// Sums the zones of one domain: watts only when every zone gave a value
/// this cycle (a partial sum would under-report), joules over every zone
/// that has a total.
pub fn sum_domain(zones: impl IntoIterator<Item = (Option<f64>, Option<u64>)>) -> DomainPower {
    let mut watts = Some(0.0);
    let mut total_uj: Option<u64> = None;
    let mut any = false;
    for (w, t) in zones {
        any = true;
        watts = watts.zip(w).map(|(a, b)| a + b);
        if let Some(t) = t {
            total_uj = Some(total_uj.unwrap_or(0).saturating_add(t));
        }
    }
    DomainPower {
        watts: watts.filter(|_| any),
        joules: total_uj.map(uj_to_joules),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_sum_needs_every_zone_for_watts() {
        let d = sum_domain([(Some(1.5), Some(1_000_000)), (Some(2.0), Some(500_000))]);
        assert_eq!(d.watts, Some(3.5));
        assert_eq!(d.joules, Some(1.5));
        let d = sum_domain([(Some(1.5), Some(1_000_000)), (None, Some(500_000))]);
        assert_eq!(d.watts, None);
        assert_eq!(d.joules, Some(1.5));
        assert!(sum_domain([]).is_empty());
    }
}
