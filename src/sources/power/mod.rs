//! Host power and energy: what every power source writes into the
//! snapshot, and the two ways a cumulative energy counter is kept exact.
//!
//! Linux sources, in sampling order (an earlier one wins a domain):
//! `rapl` (powercap RAPL zones), `hwmon` (hwmon energy/power sensors where
//! RAPL has no zone for a domain), `battery` (power_supply discharge).

use std::time::Instant;

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
}

/// A hardware energy counter in µJ that wraps back to 0 after `max_uj`
/// (powercap `max_energy_range_uj`). The total is kept in integer µJ so
/// joules are exact however many cycles pass.
#[derive(Debug, Clone, Default)]
pub struct EnergyCounter {
    max_uj: Option<u64>,
    last: Option<(u64, Instant)>,
    total_uj: Option<u64>,
}

impl EnergyCounter {
    pub fn new(max_uj: Option<u64>) -> Self {
        EnergyCounter {
            max_uj,
            ..Default::default()
        }
    }

    /// Takes a new raw reading; returns the average watts since the
    /// previous good reading. A failed read is simply not passed in: the
    /// last good reading stays the baseline, so when reads resume the
    /// energy of the gap is counted once (the hardware kept counting).
    pub fn update(&mut self, raw: u64, now: Instant) -> Option<f64> {
        let mut watts = None;
        match self.last {
            Some((prev, at)) => {
                if let Some(d) = counter_delta(prev, raw, self.max_uj) {
                    self.total_uj = Some(self.total_uj.unwrap_or(0).saturating_add(d));
                    let secs = now.saturating_duration_since(at).as_secs_f64();
                    if secs > 0.0 {
                        watts = Some(d as f64 / 1e6 / secs);
                    }
                }
            }
            None => self.total_uj = Some(self.total_uj.unwrap_or(0)),
        }
        self.last = Some((raw, now));
        watts
    }

    pub fn total_joules(&self) -> Option<f64> {
        self.total_uj.map(uj_to_joules)
    }

    pub fn total_uj(&self) -> Option<u64> {
        self.total_uj
    }
}

pub fn uj_to_joules(uj: u64) -> f64 {
    uj as f64 / 1e6
}

/// Energy between two readings of a counter that wraps after `max`.
/// `cur < prev` is one wrap when the range is known: the counter ran from
/// `prev` up to `max` and on from 0 to `cur` (the one-step gap between
/// `max` and 0 is a single hardware energy unit, ~15–61 µJ, and is not
/// added). With no known range, or `prev` above it, going backwards is a
/// reset: nothing is added rather than a guess. A counter that wrapped
/// more than once between readings cannot be told apart from one wrap
/// (AMD's 65.5 kJ range lasts ~11 min at 100 W).
pub fn counter_delta(prev: u64, cur: u64, max: Option<u64>) -> Option<u64> {
    if cur >= prev {
        return Some(cur - prev);
    }
    let max = max.filter(|&m| m >= prev)?;
    Some((max - prev).saturating_add(cur))
}

/// Integrates an instantaneous power reading (battery, hwmon power
/// sensors) into energy with the trapezoid rule. A missing reading breaks
/// the chain: the gap adds nothing rather than a guess.
#[derive(Debug, Clone, Default)]
pub struct PowerIntegrator {
    last: Option<(f64, Instant)>,
    total_j: Option<f64>,
}

impl PowerIntegrator {
    /// Returns the total joules so far (None until the first reading).
    pub fn update(&mut self, watts: Option<f64>, now: Instant) -> Option<f64> {
        match watts {
            Some(w) => {
                let total = self.total_j.get_or_insert(0.0);
                if let Some((prev, at)) = self.last {
                    let secs = now.saturating_duration_since(at).as_secs_f64();
                    *total += (prev + w) / 2.0 * secs;
                }
                self.last = Some((w, now));
            }
            None => self.last = None,
        }
        self.total_j
    }
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
    use std::time::Duration;

    #[test]
    fn delta_plain_and_across_a_wrap() {
        assert_eq!(counter_delta(100, 350, Some(1000)), Some(250));
        // 900 → max 1000 is 100, then 0 → 50: 150.
        assert_eq!(counter_delta(900, 50, Some(1000)), Some(150));
        // AMD's max_energy_range_uj (docs/FORMATS.md, RAPL).
        assert_eq!(
            counter_delta(65_532_000_000, 1_000_000, Some(65_532_610_987)),
            Some(610_987 + 1_000_000)
        );
        assert_eq!(counter_delta(900, 50, None), None, "unknown range: reset");
        assert_eq!(counter_delta(2000, 50, Some(1000)), None, "above range");
    }

    #[test]
    fn counter_survives_a_gap_and_counts_it_once() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut c = EnergyCounter::new(Some(1_000_000_000));
        assert_eq!(c.update(5_000_000, t0), None);
        assert_eq!(c.total_joules(), Some(0.0));
        assert_eq!(c.update(7_000_000, t0 + s), Some(2.0));
        // t0+2s: unreadable, nothing passed in. t0+3s: 6 J more since the
        // last good read, over 2 s.
        assert_eq!(c.update(13_000_000, t0 + 3 * s), Some(3.0));
        assert_eq!(c.total_uj(), Some(8_000_000));
        // A reset (no range known would also do): nothing added, never back.
        let mut r = EnergyCounter::new(None);
        r.update(10, t0);
        r.update(30, t0 + s);
        assert_eq!(r.update(5, t0 + 2 * s), None);
        assert_eq!(r.total_uj(), Some(20));
        assert_eq!(r.update(9, t0 + 3 * s), Some(4e-6));
        assert_eq!(r.total_uj(), Some(24));
    }

    #[test]
    fn integrator_trapezoid_and_gap() {
        let t0 = Instant::now();
        let s = Duration::from_secs(2);
        let mut i = PowerIntegrator::default();
        assert_eq!(i.update(None, t0), None);
        assert_eq!(i.update(Some(10.0), t0), Some(0.0));
        assert_eq!(i.update(Some(20.0), t0 + s), Some(30.0));
        assert_eq!(i.update(None, t0 + 2 * s), Some(30.0));
        // After a gap the chain restarts: nothing for the gap.
        assert_eq!(i.update(Some(50.0), t0 + 3 * s), Some(30.0));
        assert_eq!(i.update(Some(50.0), t0 + 4 * s), Some(130.0));
    }

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
