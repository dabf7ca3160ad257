//! One sample of every source per collection cycle, and the mapping from
//! that sample to metric points.
//!
//! The cycle thread takes one sample an interval ([`CycleSampler`]); the
//! export and the local server read its points. Nothing polls between
//! cycles.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::config::CompatConfig;
use crate::sources::{Source, SourceError};

pub use crate::point::{AttrValue, Point};
pub use crate::sources::{Snapshot, SourceStatus};

impl Snapshot {
    /// Every point this snapshot holds. A value a source could not read has
    /// no point at all: absent, never 0.
    pub fn points(&self) -> Vec<Point> {
        let mut out = Vec::with_capacity(32);
        for f in self.families() {
            f.points(self, &mut out);
        }
        crate::families::agent::source_points(&self.sources, &mut out);
        out
    }

    /// [`Snapshot::points`] plus the `[compat]` names the switches ask for.
    pub fn points_with(&self, compat: CompatConfig) -> Vec<Point> {
        let mut out = self.points();
        crate::compat::points(self, compat, &mut out);
        out
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
        let _cycle = crate::host::Cycle::begin();
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
                error: result.as_ref().err().cloned(),
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
    compat: CompatConfig,
}

/// The agent's cycle: one sample of every source and its points, the
/// latest kept for the local server.
#[derive(Clone)]
pub struct CycleSampler {
    state: Arc<Mutex<CycleState>>,
    /// Apart from `state`, so the local server never waits for a cycle
    /// that is sampling: the last sample and the points the export read
    /// from it.
    latest: Arc<Mutex<Option<Latest>>>,
}

type Latest = (Arc<Snapshot>, Arc<Vec<Point>>);

impl CycleSampler {
    pub fn new(sampler: Sampler) -> Self {
        CycleSampler {
            state: Arc::new(Mutex::new(CycleState {
                sampler,
                compat: CompatConfig::default(),
            })),
            latest: Arc::new(Mutex::new(None)),
        }
    }

    /// Also produce the `[compat]` points the switches ask for.
    pub fn with_compat(self, compat: CompatConfig) -> Self {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .compat = compat;
        self
    }

    /// Runs one cycle: samples every source and maps the sample to points,
    /// which become the latest.
    pub fn sample_now(&self) -> Arc<Vec<Point>> {
        // A panic in a source must not stop every later cycle.
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let snap = st.sampler.sample();
        let points = Arc::new(snap.points_with(st.compat));
        *self.latest.lock().unwrap_or_else(PoisonError::into_inner) =
            Some((Arc::new(snap), points.clone()));
        points
    }

    /// The most recent sample, if any cycle has run.
    pub fn latest(&self) -> Option<Arc<Snapshot>> {
        self.latest
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|(s, _)| s.clone())
    }

    /// The points of the most recent sample, exactly those the export read
    /// (`[compat]` names included): `/metrics` renders them as they are.
    pub fn latest_points(&self) -> Option<Arc<Vec<Point>>> {
        self.latest
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|(_, p)| p.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::families::cpu::CpuStats;
    use crate::families::memory::MemoryStats;
    use crate::families::services::{OTHER, ServicesSample};
    use crate::semconv::{self, attr};
    use std::sync::atomic::{AtomicU32, Ordering};

    struct Counting(Arc<AtomicU32>, Option<SourceError>);

    impl Source for Counting {
        fn name(&self) -> &'static str {
            "counting"
        }
        fn sample(&mut self, snap: &mut Snapshot) -> Result<(), SourceError> {
            let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
            snap.put(MemoryStats {
                total_bytes: u64::from(n) * 1024 * 1024,
                available_bytes: 0,
            });
            self.1.clone().map_or(Ok(()), Err)
        }
    }

    fn totals(points: &[Point]) -> Vec<f64> {
        points
            .iter()
            .filter(|p| std::ptr::eq(p.metric, &semconv::MEMORY_TOTAL_MB))
            .map(|p| p.value)
            .collect()
    }

    #[test]
    fn one_sample_per_cycle_and_latest_points_are_the_cycles() {
        let n = Arc::new(AtomicU32::new(0));
        let c = CycleSampler::new(Sampler::new(vec![Box::new(Counting(n.clone(), None))]));
        assert!(c.latest_points().is_none());
        assert!(c.latest().is_none());
        for cycle in 1..=3 {
            let points = c.sample_now();
            assert_eq!(totals(&points), [f64::from(cycle)]);
            assert!(Arc::ptr_eq(&points, &c.latest_points().unwrap()));
            assert_eq!(totals(&c.latest().unwrap().points()), [f64::from(cycle)]);
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
        let snap = Snapshot::default().with(CpuStats {
            percent: None,
            load: None,
            logical: Some(2),
            physical: None,
        });
        let pts = snap.points();
        assert_eq!(pts.len(), 1, "{pts:?}");
        assert_eq!(pts[0].attrs, vec![(attr::KIND, AttrValue::from("logical"))]);
    }

    #[test]
    fn every_point_uses_only_its_registered_attributes() {
        use crate::families::services::{ProcessSample, ServiceSample};
        let up = ServiceSample {
            name: "ollama".into(),
            pids: vec![10, 11],
            cpu_percent: Some(30.0),
            rss_bytes: Some(1 << 30),
            threads: Some(12),
            open_files: Some(40),
            growth_mib_per_hour: Some(1.5),
            disk_io: Some(crate::families::services::ProcIo {
                read_bytes: 4096,
                write_bytes: 1 << 20,
            }),
            ..Default::default()
        };
        let down = ServiceSample {
            name: "piper".into(),
            ..Default::default()
        };
        let mut snap = Snapshot::default()
            .with(CpuStats {
                percent: Some(50.0),
                load: Some([1.0, 2.0, 3.0]),
                logical: Some(4),
                physical: Some(2),
            })
            .with(MemoryStats {
                total_bytes: 4 << 30,
                available_bytes: 1 << 30,
            })
            .with(ServicesSample {
                services: vec![up, down],
                top: vec![ProcessSample {
                    pid: 99,
                    name: "yes".into(),
                    cpu_percent: 99.0,
                    rss_bytes: 1 << 20,
                    container: Default::default(),
                }],
            });
        snap.sources = vec![SourceStatus {
            name: "cpu",
            up: true,
            duration: Duration::from_millis(1),
            error: None,
            hint: None,
        }];
        let pts = snap.points();
        // other = 50 % of 4 cores (200 % of one) − 30, and 3 GiB used − 1 GiB.
        let other: Vec<f64> = pts
            .iter()
            .filter(|p| {
                p.attrs
                    .contains(&(attr::UNAMENTIS_SERVICE, AttrValue::from(OTHER)))
            })
            .map(|p| p.value)
            .collect();
        assert_eq!(other, vec![170.0, 2048.0]);
        let down_points: Vec<_> = pts
            .iter()
            .filter(|p| {
                p.attrs
                    .contains(&(attr::UNAMENTIS_SERVICE, AttrValue::from("piper")))
            })
            .collect();
        assert_eq!(
            down_points.len(),
            1,
            "a down service has service.up 0 and nothing else"
        );
        assert_eq!(down_points[0].value, 0.0);
        assert_eq!(pts.len(), 13 + 7 + 2 + 1 + 2 + 2);
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

#[cfg(test)]
mod service_vram_tests {
    use super::*;
    use crate::families::gpu::GpuProcess;
    use crate::families::gpu::GpuStats;
    use crate::families::services::ServiceSample;
    use crate::families::services::ServicesSample;
    use crate::semconv;

    fn vram_points(backend: &'static str) -> Vec<(String, f64)> {
        let svc = |name: &str, pids: Vec<u32>| ServiceSample {
            name: name.into(),
            pids,
            ..Default::default()
        };
        let snap = Snapshot::default()
            .with(ServicesSample {
                services: vec![svc("ollama", vec![10, 11]), svc("piper", vec![20])],
                top: vec![],
            })
            .with(GpuStats {
                backend,
                devices: vec![],
                processes: vec![
                    // One process on two GPUs, and one no service owns.
                    GpuProcess {
                        pid: 11,
                        gpu_index: 0,
                        used_bytes: 512 << 20,
                        sm_util: None,
                    },
                    GpuProcess {
                        pid: 11,
                        gpu_index: 1,
                        used_bytes: 256 << 20,
                        sm_util: None,
                    },
                    GpuProcess {
                        pid: 99,
                        gpu_index: 0,
                        used_bytes: 1 << 30,
                        sm_util: None,
                    },
                ],
                energy_joules: None,
                intervals: vec![],
            });
        snap.points()
            .into_iter()
            .filter(|p| std::ptr::eq(p.metric, &semconv::SERVICE_VRAM_MB))
            .map(|p| (p.attrs[0].1.to_string(), p.value))
            .collect()
    }

    #[test]
    fn service_vram_sums_the_gpu_process_list() {
        assert_eq!(
            vram_points("nvml"),
            vec![("ollama".to_owned(), 768.0), ("piper".to_owned(), 0.0)]
        );
    }

    #[test]
    fn no_service_vram_without_a_process_list() {
        assert!(vram_points("amdgpu").is_empty());
    }
}
