//! System battery discharge power from the power_supply class
//! (kernel Documentation/power/power_supply_class.rst and
//! Documentation/ABI/testing/sysfs-class-power; docs/FORMATS.md, Batteries).
//!
//! Units: µW (`power_now`), µA (`current_now`), µV (`voltage_now`).
//! Supplies are selected by `type` = `Battery`, skipping `scope` = `Device`
//! (mice, headsets) and `present` = 0. The ACPI driver exports either
//! `power_now` (energy set) or `current_now` (charge set), never both, and
//! reports magnitudes whatever the ABI says about the sign, so the
//! direction comes from `status`, never from the sign.

use std::time::Instant;

use super::{DomainPower, PowerStats};
use crate::host::HostPaths;
use crate::sources::Snapshot;
use crate::sources::energy::Trapezoid;
use crate::sources::sysfs;
use crate::sources::{Source, SourceError};

const SUPPLIES: &str = "class/power_supply";

/// Discharge power of one battery in watts: 0 while it is not
/// discharging; `None` when it discharges at an unknown rate. `Unknown`
/// (and any other) status counts as discharging unless the host is on AC.
pub fn discharge_watts(
    status: &str,
    on_ac: bool,
    power_uw: Option<i64>,
    current_ua: Option<i64>,
    voltage_uv: Option<i64>,
) -> Option<f64> {
    match status {
        "Charging" | "Full" | "Not charging" => return Some(0.0),
        "Discharging" => {}
        _ if on_ac => return Some(0.0),
        _ => {}
    }
    if let Some(p) = power_uw {
        return Some(p.unsigned_abs() as f64 / 1e6);
    }
    let (i, v) = (current_ua?, voltage_uv?);
    // µA × µV = pW.
    Some(i.unsigned_abs() as f64 * v.unsigned_abs() as f64 / 1e12)
}

pub struct BatterySource {
    paths: HostPaths,
    energy: Trapezoid,
    no_battery: bool,
}

impl BatterySource {
    pub fn new(paths: HostPaths) -> Self {
        let mut s = BatterySource {
            paths,
            energy: Trapezoid::default(),
            no_battery: false,
        };
        let _ = s.read(Instant::now());
        s
    }

    /// Total discharge watts of the system batteries this cycle.
    fn read(&mut self, now: Instant) -> (DomainPower, Option<SourceError>) {
        let p = &self.paths;
        let text = |rel: String| sysfs::read_text(p, rel).ok();
        let int = |rel: String| sysfs::read_value::<i64>(p, rel).ok();
        let mut batteries = Vec::new();
        let mut on_ac = false;
        for name in sysfs::entries(p, SUPPLIES) {
            let dir = format!("{SUPPLIES}/{name}");
            match text(format!("{dir}/type")).as_deref() {
                Some("Battery") => {
                    let device = text(format!("{dir}/scope")).as_deref() == Some("Device");
                    let absent = text(format!("{dir}/present")).as_deref() == Some("0");
                    if !device && !absent {
                        batteries.push((name, dir));
                    }
                }
                Some("Mains" | "USB" | "Wireless") => {
                    on_ac |= int(format!("{dir}/online")).is_some_and(|o| o >= 1);
                }
                _ => {}
            }
        }
        self.no_battery = batteries.is_empty();
        if batteries.is_empty() {
            let kept = DomainPower {
                watts: None,
                joules: self.energy.update(None, now),
            };
            let why = format!("no system battery in {}", p.sys_path(SUPPLIES).display());
            return (kept, Some(SourceError::Unavailable(why)));
        }
        let mut total = Some(0.0);
        let mut unknown = None;
        for (name, dir) in &batteries {
            let status = text(format!("{dir}/status")).unwrap_or_default();
            let w = discharge_watts(
                &status,
                on_ac,
                int(format!("{dir}/power_now")),
                int(format!("{dir}/current_now")),
                int(format!("{dir}/voltage_now")),
            );
            if w.is_none() {
                unknown = unknown.or(Some(name.clone()));
            }
            total = total.zip(w).map(|(a, b)| a + b);
        }
        let power = DomainPower {
            watts: total,
            joules: self.energy.update(total, now),
        };
        let err = unknown.map(|name| {
            SourceError::Unavailable(format!(
                "battery {name} is discharging but reports no rate (no power_now, or no current_now and voltage_now)"
            ))
        });
        (power, err)
    }
}

impl Source for BatterySource {
    fn name(&self) -> &'static str {
        "battery"
    }

    fn sample(&mut self, snap: &mut Snapshot) -> Result<(), SourceError> {
        let (power, err) = self.read(Instant::now());
        if !power.is_empty() {
            snap.power.get_or_insert_with(PowerStats::default).battery = power;
        }
        err.map_or(Ok(()), Err)
    }

    fn hint(&self) -> Option<&'static str> {
        self.no_battery.then_some(
            "Nothing to fix on a desktop, server or VM: battery power exists only where a system battery is.",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_directions() {
        // power_now in µW.
        assert_eq!(
            discharge_watts("Discharging", false, Some(11_873_000), None, None),
            Some(11.873)
        );
        // |current_now| µA × voltage_now µV; a negative current (some
        // fuel gauges) gives the same magnitude.
        let w = discharge_watts("Discharging", false, None, Some(-512_000), Some(12_103_000));
        assert_eq!(w, Some(512_000.0 * 12_103_000.0 / 1e12));
        assert_eq!(
            discharge_watts("Charging", false, Some(20_000_000), None, None),
            Some(0.0)
        );
        assert_eq!(
            discharge_watts("Full", true, Some(0), None, None),
            Some(0.0)
        );
        assert_eq!(
            discharge_watts("Unknown", true, Some(5_000_000), None, None),
            Some(0.0)
        );
        assert_eq!(
            discharge_watts("Unknown", false, Some(5_000_000), None, None),
            Some(5.0)
        );
        assert_eq!(
            discharge_watts("Discharging", false, None, Some(1), None),
            None
        );
    }
}
