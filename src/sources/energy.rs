//! The two ways a source turns hardware readings into energy, shared by
//! every domain (RAPL, hwmon, batteries, GPUs, powermetrics):
//!
//! - [`Counter`]: a cumulative hardware counter (RAPL and hwmon in µJ,
//!   NVML in mJ). Deltas are exact integers; a counter that wraps at a
//!   known range is followed across the wrap, one that goes backwards
//!   otherwise (a driver reload) adds nothing.
//! - [`Trapezoid`]: an instantaneous power reading (batteries, hwmon power
//!   sensors, powermetrics, GPUs without a counter) integrated by the
//!   trapezoid rule. A missing reading breaks the chain: the gap adds
//!   nothing rather than a guess.
//!
//! Both keep their total through gaps, so an energy counter the agent
//! reports never goes backwards.

use std::time::Instant;

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

/// A hardware energy counter in integer units of `1 / units_per_joule` J
/// that wraps back to 0 after `max` (powercap `max_energy_range_uj`). The
/// total is kept in integer units so joules stay exact however many
/// cycles pass.
#[derive(Debug, Clone)]
pub struct Counter {
    max: Option<u64>,
    units_per_joule: f64,
    last: Option<(u64, Instant)>,
    total: Option<u64>,
    last_delta: Option<u64>,
}

impl Counter {
    /// A counter in µJ (powercap, hwmon `energy*_input`).
    pub fn microjoules(max: Option<u64>) -> Self {
        Counter::new(max, 1e6)
    }

    /// A counter in mJ with no known range (NVML's total energy).
    pub fn millijoules() -> Self {
        Counter::new(None, 1e3)
    }

    fn new(max: Option<u64>, units_per_joule: f64) -> Self {
        Counter {
            max,
            units_per_joule,
            last: None,
            total: None,
            last_delta: None,
        }
    }

    /// Takes a new raw reading; returns the average watts since the
    /// previous good reading. A failed read is simply not passed in: the
    /// last good reading stays the baseline, so when reads resume the
    /// energy of the gap is counted once (the hardware kept counting).
    pub fn update(&mut self, raw: u64, now: Instant) -> Option<f64> {
        let mut watts = None;
        self.last_delta = None;
        match self.last {
            Some((prev, at)) => {
                if let Some(d) = counter_delta(prev, raw, self.max) {
                    self.total = Some(self.total.unwrap_or(0).saturating_add(d));
                    self.last_delta = Some(d);
                    let secs = now.saturating_duration_since(at).as_secs_f64();
                    if secs > 0.0 {
                        watts = Some(d as f64 / self.units_per_joule / secs);
                    }
                }
            }
            None => self.total = Some(self.total.unwrap_or(0)),
        }
        self.last = Some((raw, now));
        watts
    }

    /// Whether a reading is held to measure the next one against.
    pub fn has_baseline(&self) -> bool {
        self.last.is_some()
    }

    /// Drops the baseline (the device went away), keeping the total: the
    /// next reading starts afresh and the gap adds nothing.
    pub fn forget(&mut self) {
        self.last = None;
        self.last_delta = None;
    }

    /// Joules the last [`update`](Self::update) added (`None` on a first
    /// reading or a reset).
    pub fn last_joules(&self) -> Option<f64> {
        self.last_delta.map(|d| d as f64 / self.units_per_joule)
    }

    pub fn total_joules(&self) -> Option<f64> {
        self.total.map(|t| t as f64 / self.units_per_joule)
    }

    /// The total in the counter's own units.
    pub fn total_units(&self) -> Option<u64> {
        self.total
    }
}

/// Power readings integrated into energy by the trapezoid rule.
#[derive(Debug, Clone, Default)]
pub struct Trapezoid {
    last: Option<(f64, Instant)>,
    total: Option<f64>,
    last_joules: Option<f64>,
}

impl Trapezoid {
    /// Takes a reading (`None`, non-finite or negative: none, a gap);
    /// returns the total joules so far (`None` until the first reading).
    pub fn update(&mut self, watts: Option<f64>, now: Instant) -> Option<f64> {
        self.last_joules = None;
        match watts.filter(|w| w.is_finite() && *w >= 0.0) {
            Some(w) => {
                let total = self.total.get_or_insert(0.0);
                if let Some((prev, at)) = self.last {
                    let secs = now.saturating_duration_since(at).as_secs_f64();
                    let j = (prev + w) / 2.0 * secs;
                    *total += j;
                    self.last_joules = Some(j);
                }
                self.last = Some((w, now));
            }
            None => self.last = None,
        }
        self.total
    }

    /// Breaks the chain: the time until the next reading adds nothing.
    pub fn gap(&mut self) {
        self.last = None;
        self.last_joules = None;
    }

    /// Joules the last [`update`](Self::update) added (`None` when it
    /// started a chain or was a gap).
    pub fn last_joules(&self) -> Option<f64> {
        self.last_joules
    }

    pub fn total(&self) -> Option<f64> {
        self.total
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
        // AMD's RAPL range (max_energy_range_uj on Zen).
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
        let mut c = Counter::microjoules(Some(1_000_000_000));
        assert_eq!(c.update(5_000_000, t0), None);
        assert_eq!(c.total_joules(), Some(0.0));
        assert_eq!(c.update(7_000_000, t0 + s), Some(2.0));
        // t0+2s: unreadable, nothing passed in. t0+3s: 6 J more since the
        // last good read, over 2 s.
        assert_eq!(c.update(13_000_000, t0 + 3 * s), Some(3.0));
        assert_eq!(c.total_units(), Some(8_000_000));
        assert_eq!(c.last_joules(), Some(6.0));
        // A reset (no range known would also do): nothing added, never back.
        let mut r = Counter::microjoules(None);
        r.update(10, t0);
        r.update(30, t0 + s);
        assert_eq!(r.update(5, t0 + 2 * s), None);
        assert_eq!(r.last_joules(), None);
        assert_eq!(r.total_units(), Some(20));
        assert_eq!(r.update(9, t0 + 3 * s), Some(4e-6));
        assert_eq!(r.total_units(), Some(24));
    }

    #[test]
    fn millijoule_counter_and_forgetting_the_baseline() {
        let t0 = Instant::now();
        let ms = Duration::from_millis(500);
        let mut c = Counter::millijoules();
        c.update(10_000, t0);
        assert_eq!(c.update(60_000, t0 + ms), Some(100.0));
        assert_eq!(c.total_joules(), Some(50.0));
        c.forget();
        assert!(!c.has_baseline());
        // Back after a gap: a new baseline, the gap adds nothing.
        assert_eq!(c.update(900_000, t0 + 10 * ms), None);
        assert_eq!(c.total_joules(), Some(50.0));
    }

    #[test]
    fn trapezoid_and_gap() {
        let t0 = Instant::now();
        let s = Duration::from_secs(2);
        let mut i = Trapezoid::default();
        assert_eq!(i.update(None, t0), None);
        assert_eq!(i.update(Some(10.0), t0), Some(0.0));
        assert_eq!(i.update(Some(20.0), t0 + s), Some(30.0));
        assert_eq!(i.last_joules(), Some(30.0));
        assert_eq!(i.update(None, t0 + 2 * s), Some(30.0));
        // After a gap the chain restarts: nothing for the gap.
        assert_eq!(i.update(Some(50.0), t0 + 3 * s), Some(30.0));
        assert_eq!(i.update(Some(50.0), t0 + 4 * s), Some(130.0));
        // A non-finite or negative reading is a gap too.
        assert_eq!(i.update(Some(f64::NAN), t0 + 5 * s), Some(130.0));
        assert_eq!(i.update(Some(-1.0), t0 + 6 * s), Some(130.0));
        assert_eq!(i.update(Some(1.0), t0 + 7 * s), Some(130.0));
        i.gap();
        assert_eq!(i.update(Some(1.0), t0 + 8 * s), Some(130.0));
    }

    /// The macOS battery's discharge readings (ioreg), as they arrive.
    #[test]
    fn battery_energy_is_trapezoids_and_gaps_add_nothing() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut e = Trapezoid::default();
        assert_eq!(e.update(Some(4.0), t0), Some(0.0));
        // (4 + 6) / 2 W × 5 s = 25 J.
        assert_eq!(e.update(Some(6.0), t0 + s(5)), Some(25.0));
        e.gap();
        // First reading after a gap: nothing added for the gap.
        assert_eq!(e.update(Some(2.0), t0 + s(60)), Some(25.0));
        assert_eq!(e.update(Some(0.0), t0 + s(65)), Some(30.0));
        assert_eq!(e.update(Some(f64::NAN), t0 + s(70)), Some(30.0));
        assert_eq!(e.update(Some(1.0), t0 + s(75)), Some(30.0));
        assert_eq!(e.total(), Some(30.0));
    }
}
