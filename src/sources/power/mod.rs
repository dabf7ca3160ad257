//! Host power and energy: what every power source writes into the
//! snapshot (the counters and integrators are in [`super::energy`]).
//!
//! Linux sources, in sampling order (an earlier one wins a domain):
//! `rapl` (powercap RAPL zones), `hwmon` (hwmon energy/power sensors where
//! RAPL has no zone for a domain), `battery` (power_supply discharge).

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
