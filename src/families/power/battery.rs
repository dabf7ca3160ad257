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

use super::{BatteryState, DomainPower, PowerStats};
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

/// Stored energy of one battery, `(now, full)` in watt-hours: the energy
/// set (`energy_now`/`energy_full`, µWh) as read, the charge set (µAh)
/// times `voltage_now` (µV). `None` without either.
pub fn stored_wh(
    energy_uwh: (Option<i64>, Option<i64>),
    charge_uah: (Option<i64>, Option<i64>),
    voltage_uv: Option<i64>,
) -> Option<(f64, f64)> {
    if let (Some(now), Some(full)) = energy_uwh {
        return Some((now.max(0) as f64 / 1e6, full.max(0) as f64 / 1e6));
    }
    let (now, full, v) = (charge_uah.0?, charge_uah.1?, voltage_uv?);
    let volts = v.unsigned_abs() as f64 / 1e6;
    Some((
        now.max(0) as f64 / 1e6 * volts,
        full.max(0) as f64 / 1e6 * volts,
    ))
}

/// Charge of all system batteries together, in percent: stored over full
/// energy summed over them (a 2-battery laptop reads as one); where one
/// lacks both sets, the mean of their `capacity` files; else `None`.
pub fn combined_charge(stored: &[Option<(f64, f64)>], capacity: &[Option<f64>]) -> Option<f64> {
    if let Some(all) = stored.iter().copied().collect::<Option<Vec<_>>>() {
        let (now, full) = all.iter().fold((0.0, 0.0), |(n, f), (a, b)| (n + a, f + b));
        if full > 0.0 {
            return Some((now / full * 100.0).clamp(0.0, 100.0));
        }
    }
    let caps = capacity.iter().copied().collect::<Option<Vec<_>>>()?;
    (!caps.is_empty()).then(|| caps.iter().sum::<f64>() / caps.len() as f64)
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
    fn read(&mut self, now: Instant) -> (DomainPower, BatteryState, Option<SourceError>) {
        let p = &self.paths;
        let text = |rel: String| sysfs::read_text(p, rel).ok();
        let int = |rel: String| sysfs::read_value::<i64>(p, rel).ok();
        let mut batteries = Vec::new();
        let mut on_ac = false;
        let mut ac_supply = false;
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
                    if let Some(o) = int(format!("{dir}/online")) {
                        ac_supply = true;
                        on_ac |= o >= 1;
                    }
                }
                _ => {}
            }
        }
        self.no_battery = batteries.is_empty();
        let mut state = BatteryState {
            ac_online: ac_supply.then_some(on_ac),
            ..BatteryState::default()
        };
        if batteries.is_empty() {
            let kept = DomainPower {
                watts: None,
                joules: self.energy.update(None, now),
            };
            let why = format!("no system battery in {}", p.sys_path(SUPPLIES).display());
            return (kept, state, Some(SourceError::Unavailable(why)));
        }
        let mut total = Some(0.0);
        let mut unknown = None;
        let (mut stored, mut capacity) = (Vec::new(), Vec::new());
        for (name, dir) in &batteries {
            let status = text(format!("{dir}/status")).unwrap_or_default();
            let voltage = int(format!("{dir}/voltage_now"));
            let w = discharge_watts(
                &status,
                on_ac,
                int(format!("{dir}/power_now")),
                int(format!("{dir}/current_now")),
                voltage,
            );
            if w.is_none() {
                unknown = unknown.or(Some(name.clone()));
            }
            total = total.zip(w).map(|(a, b)| a + b);
            stored.push(stored_wh(
                (
                    int(format!("{dir}/energy_now")),
                    int(format!("{dir}/energy_full")),
                ),
                (
                    int(format!("{dir}/charge_now")),
                    int(format!("{dir}/charge_full")),
                ),
                voltage,
            ));
            capacity.push(int(format!("{dir}/capacity")).map(|c| c as f64));
        }
        state.charge_percent = combined_charge(&stored, &capacity);
        if let (Some(w), Some(all)) = (total, stored.iter().copied().collect::<Option<Vec<_>>>())
            && w > 0.0
        {
            let wh: f64 = all.iter().map(|(now, _)| now).sum();
            state.time_left_s = Some(wh / w * 3600.0);
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
        (power, state, err)
    }
}

impl Source for BatterySource {
    fn name(&self) -> &'static str {
        "battery"
    }

    fn sample(&mut self, snap: &mut Snapshot) -> Result<(), SourceError> {
        let (power, state, err) = self.read(Instant::now());
        if !power.is_empty() {
            snap.get_or_default::<PowerStats>().battery = power;
        }
        if state != BatteryState::default() {
            snap.get_or_default::<PowerStats>().battery_state = state;
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
    fn stored_energy_and_combined_charge() {
        // Energy set as read; charge set times voltage.
        assert_eq!(
            stored_wh((Some(41_230_000), Some(57_000_000)), (None, None), None),
            Some((41.23, 57.0))
        );
        let (now, full) = stored_wh(
            (None, None),
            (Some(1_580_000), Some(2_470_000)),
            Some(12_103_000),
        )
        .unwrap();
        assert!((now - 1.58 * 12.103).abs() < 1e-9 && (full - 2.47 * 12.103).abs() < 1e-9);
        assert_eq!(stored_wh((None, None), (Some(1), Some(2)), None), None);
        // Two batteries: energy-weighted, not the mean of percentages.
        let c = combined_charge(
            &[Some((10.0, 20.0)), Some((30.0, 80.0))],
            &[Some(50.0), Some(37.5)],
        );
        assert_eq!(c, Some(40.0));
        // One without either set: the mean of capacity.
        let c = combined_charge(&[Some((10.0, 20.0)), None], &[Some(50.0), Some(70.0)]);
        assert_eq!(c, Some(60.0));
        assert_eq!(combined_charge(&[None], &[None]), None);
    }

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
