//! One sample of every source per collection cycle, and the mapping from
//! that sample to metric points.
//!
//! The PeriodicReader's collect runs every instrument callback; the first
//! callback of a cycle takes the sample and every later one reads it (see
//! [`CycleSampler`]). No background thread polls between cycles.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::semconv::{self, Metric, attr};
use crate::sources::cpu::CpuStats;
use crate::sources::memory::MemoryStats;
use crate::sources::power::PowerStats;
use crate::sources::thermal::ThermalStats;
use crate::sources::{Source, SourceError};

const MIB: f64 = 1024.0 * 1024.0;

#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub cpu: Option<CpuStats>,
    pub memory: Option<MemoryStats>,
    pub power: Option<PowerStats>,
    pub thermal: Option<ThermalStats>,
    pub sources: Vec<SourceStatus>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SourceStatus {
    pub name: &'static str,
    pub up: bool,
    pub duration: Duration,
    /// Why the source is down (`SourceError`'s text).
    pub error: Option<String>,
    /// How to fix it ([`Source::hint`]).
    pub hint: Option<&'static str>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    Str(String),
    Int(i64),
}

impl From<&str> for AttrValue {
    fn from(s: &str) -> Self {
        AttrValue::Str(s.to_owned())
    }
}

impl std::fmt::Display for AttrValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AttrValue::Str(s) => f.write_str(s),
            AttrValue::Int(i) => write!(f, "{i}"),
        }
    }
}

/// One data point: a registry metric, its attributes and its value in the
/// registry's unit.
#[derive(Debug, Clone)]
pub struct Point {
    pub metric: &'static Metric,
    pub attrs: Vec<(&'static str, AttrValue)>,
    pub value: f64,
}

impl Point {
    fn new(metric: &'static Metric, value: f64) -> Self {
        Point {
            metric,
            attrs: Vec::new(),
            value,
        }
    }

    fn with(mut self, key: &'static str, value: impl Into<AttrValue>) -> Self {
        self.attrs.push((key, value.into()));
        self
    }
}

impl Snapshot {
    /// Every point this snapshot holds. A value a source could not read has
    /// no point at all: absent, never 0.
    pub fn points(&self) -> Vec<Point> {
        let mut out = Vec::with_capacity(32);
        if let Some(cpu) = &self.cpu {
            cpu_points(cpu, &mut out);
        }
        if let Some(mem) = &self.memory {
            memory_points(mem, &mut out);
        }
        if let Some(power) = &self.power {
            power_points(power, &mut out);
        }
        if let Some(thermal) = &self.thermal {
            thermal_points(thermal, &mut out);
        }
        self_points(&self.sources, &mut out);
        out
    }
}

fn cpu_points(cpu: &CpuStats, out: &mut Vec<Point>) {
    if let Some(p) = cpu.percent {
        out.push(Point::new(&semconv::CPU_PERCENT, p));
    }
    if let Some([l1, l5, l15]) = cpu.load {
        for (period, v) in [("1m", l1), ("5m", l5), ("15m", l15)] {
            out.push(Point::new(&semconv::CPU_LOAD_AVERAGE, v).with(attr::PERIOD, period));
        }
    }
    let cores = [
        ("logical", cpu.logical.map(f64::from)),
        ("physical", cpu.physical.map(f64::from)),
        ("available", cpu.available()),
    ];
    for (kind, v) in cores {
        if let Some(v) = v {
            out.push(Point::new(&semconv::CPU_CORES, v).with(attr::KIND, kind));
        }
    }
}

fn memory_points(mem: &MemoryStats, out: &mut Vec<Point>) {
    let mib = |bytes: u64| bytes as f64 / MIB;
    out.push(Point::new(&semconv::MEMORY_TOTAL_MB, mib(mem.total_bytes)));
    out.push(Point::new(
        &semconv::MEMORY_AVAILABLE_MB,
        mib(mem.available_bytes),
    ));
    out.push(Point::new(&semconv::MEMORY_USED_MB, mib(mem.used_bytes())));
    if let Some(p) = mem.percent() {
        out.push(Point::new(&semconv::MEMORY_PERCENT, p));
    }
}

fn power_points(p: &PowerStats, out: &mut Vec<Point>) {
    let gauges = [
        (&semconv::POWER_CPU_WATTS, p.cpu.watts),
        (&semconv::POWER_PACKAGE_WATTS, p.package.watts),
        (&semconv::POWER_DRAM_WATTS, p.dram.watts),
        (&semconv::POWER_BATTERY_WATTS, p.battery.watts),
    ];
    for (metric, v) in gauges {
        if let Some(v) = v {
            out.push(Point::new(metric, v));
        }
    }
    // uncore is left to the GPU source (power.gpu_watts).
    let energy = [
        ("cpu", p.cpu.joules),
        ("package", p.package.joules),
        ("dram", p.dram.joules),
        ("battery", p.battery.joules),
    ];
    for (domain, j) in energy {
        if let Some(j) = j {
            out.push(Point::new(&semconv::ENERGY_JOULES, j).with(attr::DOMAIN, domain));
        }
    }
}

fn thermal_points(t: &ThermalStats, out: &mut Vec<Point>) {
    if let Some(c) = t.temperature {
        out.push(Point::new(&semconv::THERMAL_TEMPERATURE, c));
    }
    if let Some(l) = t.pressure {
        out.push(Point::new(&semconv::THERMAL_PRESSURE, f64::from(l)));
    }
    for (fan, rpm) in &t.fans {
        out.push(Point::new(&semconv::THERMAL_FAN_RPM, *rpm).with(attr::FAN, fan.as_str()));
    }
    if let Some(n) = t.throttle_events {
        out.push(Point::new(&semconv::THERMAL_THROTTLE_EVENTS, n as f64));
    }
}

fn self_points(sources: &[SourceStatus], out: &mut Vec<Point>) {
    for s in sources {
        let duration = s.duration.as_secs_f64();
        out.push(
            Point::new(&semconv::AGENT_COLLECTION_DURATION, duration).with(attr::SOURCE, s.name),
        );
        let up = if s.up { 1.0 } else { 0.0 };
        out.push(Point::new(&semconv::AGENT_SOURCE_UP, up).with(attr::SOURCE, s.name));
    }
}

/// How long a failing source stays quiet after a warning.
const FAILED_LOG_EVERY: Duration = Duration::from_secs(300);

struct SourceSlot {
    source: Box<dyn Source>,
    /// The last error reported, to log a state change once instead of
    /// every cycle.
    last_error: Option<SourceError>,
    last_warned: Option<Instant>,
}

/// Runs every source once per call, timing each and logging failures
/// without flooding: an unavailable source is reported once, a failing one
/// at most every five minutes, a recovery once.
pub struct Sampler {
    slots: Vec<SourceSlot>,
}

impl Sampler {
    pub fn new(sources: Vec<Box<dyn Source>>) -> Self {
        Sampler {
            slots: sources
                .into_iter()
                .map(|source| SourceSlot {
                    source,
                    last_error: None,
                    last_warned: None,
                })
                .collect(),
        }
    }

    pub fn sample(&mut self) -> Snapshot {
        let mut snap = Snapshot::default();
        for slot in &mut self.slots {
            let name = slot.source.name();
            let started = Instant::now();
            let result = slot.source.sample(&mut snap);
            let duration = started.elapsed();
            snap.sources.push(SourceStatus {
                name,
                up: result.is_ok(),
                duration,
                error: result.as_ref().err().map(ToString::to_string),
                hint: slot.source.hint(),
            });
            slot.report(name, result);
        }
        snap
    }
}

impl SourceSlot {
    fn report(&mut self, name: &str, result: Result<(), SourceError>) {
        match result {
            Ok(()) => {
                if let Some(prev) = self.last_error.take() {
                    tracing::info!(source = name, was = %prev, "source recovered");
                }
                self.last_warned = None;
            }
            Err(err) => {
                let changed = self.last_error.as_ref() != Some(&err);
                match &err {
                    SourceError::Unavailable(_) if changed => {
                        tracing::info!(source = name, "source down: {err}");
                    }
                    SourceError::Unavailable(_) => {}
                    SourceError::Failed(_) => {
                        let quiet = self
                            .last_warned
                            .is_some_and(|t| t.elapsed() < FAILED_LOG_EVERY);
                        if changed || !quiet {
                            tracing::warn!(source = name, "source failed: {err}");
                            self.last_warned = Some(Instant::now());
                        }
                    }
                }
                self.last_error = Some(err);
            }
        }
    }
}

struct CycleState {
    sampler: Sampler,
    generation: u64,
    /// The generation each reader last read; a reader that already read
    /// the current generation is the first of a new cycle.
    seen: Vec<u64>,
    points: Vec<Point>,
    latest: Option<Arc<Snapshot>>,
}

/// Shares one sample per collection cycle between many readers (the
/// instrument callbacks) without knowing their order: a reader that has
/// already seen the current sample starts a new cycle.
#[derive(Clone)]
pub struct CycleSampler {
    state: Arc<Mutex<CycleState>>,
}

impl CycleSampler {
    pub fn new(sampler: Sampler, readers: usize) -> Self {
        CycleSampler {
            state: Arc::new(Mutex::new(CycleState {
                sampler,
                generation: 0,
                seen: vec![0; readers],
                points: Vec::new(),
                latest: None,
            })),
        }
    }

    /// Calls `f` with every point of `metric` in the current cycle's sample,
    /// taking the sample first when `reader` starts a new cycle.
    pub fn read(&self, reader: usize, metric: &'static Metric, mut f: impl FnMut(&Point)) {
        // A panic in a callback must not stop every later cycle.
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let st = &mut *st;
        if st.generation == 0 || st.seen.get(reader) == Some(&st.generation) {
            let snap = st.sampler.sample();
            st.points = snap.points();
            st.latest = Some(Arc::new(snap));
            st.generation += 1;
        }
        if let Some(seen) = st.seen.get_mut(reader) {
            *seen = st.generation;
        }
        for p in st.points.iter().filter(|p| std::ptr::eq(p.metric, metric)) {
            f(p);
        }
    }

    /// The most recent sample, if any cycle has run.
    pub fn latest(&self) -> Option<Arc<Snapshot>> {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .latest
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    struct Counting(Arc<AtomicU32>, Option<SourceError>);

    impl Source for Counting {
        fn name(&self) -> &'static str {
            "counting"
        }
        fn sample(&mut self, snap: &mut Snapshot) -> Result<(), SourceError> {
            let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
            snap.memory = Some(MemoryStats {
                total_bytes: u64::from(n) * 1024 * 1024,
                available_bytes: 0,
            });
            self.1.clone().map_or(Ok(()), Err)
        }
    }

    fn total_seen(c: &CycleSampler, reader: usize) -> f64 {
        let mut v = f64::NAN;
        c.read(reader, &semconv::MEMORY_TOTAL_MB, |p| v = p.value);
        v
    }

    #[test]
    fn one_sample_per_cycle_whatever_the_reader_order() {
        let n = Arc::new(AtomicU32::new(0));
        let c = CycleSampler::new(Sampler::new(vec![Box::new(Counting(n.clone(), None))]), 3);
        // Cycle 1 in order 0,1,2; cycle 2 in order 2,0,1; cycle 3 in order 1,2,0.
        for (cycle, order) in [[0, 1, 2], [2, 0, 1], [1, 2, 0]].iter().enumerate() {
            for &r in order {
                assert_eq!(total_seen(&c, r), (cycle + 1) as f64);
            }
        }
        assert_eq!(n.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn failed_source_reports_down_and_keeps_what_it_read() {
        let n = Arc::new(AtomicU32::new(0));
        let mut s = Sampler::new(vec![Box::new(Counting(
            n,
            Some(SourceError::Failed("boom".into())),
        ))]);
        let snap = s.sample();
        assert_eq!(snap.sources.len(), 1);
        assert!(!snap.sources[0].up);
        let pts = snap.points();
        let up: Vec<_> = pts
            .iter()
            .filter(|p| std::ptr::eq(p.metric, &semconv::AGENT_SOURCE_UP))
            .collect();
        assert_eq!(up.len(), 1);
        assert_eq!(up[0].value, 0.0);
        assert_eq!(
            up[0].attrs,
            vec![(attr::SOURCE, AttrValue::from("counting"))]
        );
        assert!(
            pts.iter()
                .any(|p| std::ptr::eq(p.metric, &semconv::MEMORY_TOTAL_MB))
        );
    }

    #[test]
    fn absent_values_have_no_point() {
        let snap = Snapshot {
            cpu: Some(CpuStats {
                percent: None,
                load: None,
                logical: Some(2),
                physical: None,
            }),
            ..Default::default()
        };
        let pts = snap.points();
        assert_eq!(pts.len(), 1, "{pts:?}");
        assert_eq!(pts[0].attrs, vec![(attr::KIND, AttrValue::from("logical"))]);
    }

    #[test]
    fn every_point_uses_only_its_registered_attributes() {
        let snap = Snapshot {
            cpu: Some(CpuStats {
                percent: Some(1.0),
                load: Some([1.0, 2.0, 3.0]),
                logical: Some(4),
                physical: Some(2),
            }),
            memory: Some(MemoryStats {
                total_bytes: 4 << 30,
                available_bytes: 1 << 30,
            }),
            sources: vec![SourceStatus {
                name: "cpu",
                up: true,
                duration: Duration::from_millis(1),
                error: None,
                hint: None,
            }],
            ..Default::default()
        };
        let pts = snap.points();
        assert_eq!(pts.len(), 1 + 3 + 3 + 4 + 2);
        for p in &pts {
            assert!(
                semconv::ALL.iter().any(|m| std::ptr::eq(*m, p.metric)),
                "{} not in ALL",
                p.metric.name
            );
            for (k, _) in &p.attrs {
                assert!(
                    p.metric.attributes.contains(k),
                    "{} has unregistered attribute {k}",
                    p.metric.name
                );
            }
        }
    }
}
