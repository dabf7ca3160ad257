//! The idle clock and the idle accounting, as the last source of a cycle:
//! it reads the package power and every service's CPU that the other
//! sources put in the same snapshot.
//!
//! Per interval (previous cycle → this one, on the activity clock):
//! - the idle part is the time after `last activity + idle_after`; activity
//!   seen by this cycle's probes makes the whole interval busy;
//! - `idle.energy.joules{domain}` += the domain's energy delta × idle part
//!   / interval (exact deltas of the energy counters; package watts × idle
//!   time where only watts are known);
//! - `service.idle_cpu_seconds` += CPU% / 100 × idle time;
//! - `service.power_watts{domain=cpu}` = package watts × the service's
//!   share of the host's busy CPU; `service.energy.joules{domain=cpu}` +=
//!   package energy delta × share. `other` gets what the services leave,
//!   so the services plus other add up to package power and never exceed
//!   it;
//! - `service.power_watts{domain=gpu}` and `service.energy.joules{domain=gpu}`:
//!   each GPU's power and energy divided by [`gpu_split`](super::gpu_split);
//! - `service.idle_energy.joules{domain}` += the service's energy of the
//!   interval × the part of it in which the service was idle by its own
//!   clock (its last activity + `idle_after`).

use std::collections::BTreeMap;
use std::time::Duration;

use super::gpu_split;
use super::ollama::OllamaProbe;
use super::{Activity, ActivityStats};
use crate::families::cpu::CpuStats;
use crate::families::gpu::GpuStats;
use crate::families::models::OllamaStats;
use crate::families::power;
use crate::families::services::ServicesSample;
use crate::sources::Snapshot;
use crate::sources::{Source, SourceError};

/// Each service's share of package power, and other's: the service's CPU
/// over the host's busy CPU (both in % of one core). When the services
/// measure more than the host (their samples are a few ms apart) the
/// services' sum is the whole. No CPU reading: no share.
pub fn cpu_shares(host_busy: f64, services: &[Option<f64>]) -> (Vec<Option<f64>>, f64) {
    let sum: f64 = services.iter().flatten().map(|c| c.max(0.0)).sum();
    let whole = host_busy.max(sum);
    if whole <= 0.0 || !whole.is_finite() {
        return (services.iter().map(|c| c.map(|_| 0.0)).collect(), 1.0);
    }
    let shares: Vec<Option<f64>> = services
        .iter()
        .map(|c| c.map(|c| c.max(0.0) / whole))
        .collect();
    let used: f64 = shares.iter().flatten().sum();
    (shares, (1.0 - used).max(0.0))
}

struct Prev {
    at: Duration,
    energy: Vec<(&'static str, f64)>,
}

pub struct IdleSource {
    activity: Activity,
    ollama: Option<OllamaProbe>,
    prev: Option<Prev>,
    idle_energy: BTreeMap<&'static str, f64>,
    idle_cpu: BTreeMap<String, f64>,
    service_energy: BTreeMap<String, f64>,
    other_energy: Option<f64>,
    service_gpu_energy: BTreeMap<String, f64>,
    other_gpu_energy: Option<f64>,
    service_idle_energy: BTreeMap<(String, &'static str), f64>,
}

/// One service's energy in one interval, by domain.
type IntervalEnergy = Vec<(usize, &'static str, f64)>;

impl IdleSource {
    pub fn new(activity: Activity, ollama: Option<OllamaProbe>) -> Self {
        IdleSource {
            activity,
            ollama,
            prev: None,
            idle_energy: BTreeMap::new(),
            idle_cpu: BTreeMap::new(),
            service_energy: BTreeMap::new(),
            other_energy: None,
            service_gpu_energy: BTreeMap::new(),
            other_gpu_energy: None,
            service_idle_energy: BTreeMap::new(),
        }
    }

    fn account(&mut self, snap: &Snapshot, stats: &mut ActivityStats, now: Duration) {
        let energy = power::energy_totals(snap);
        let interval = self.prev.as_ref().map(|p| {
            let dt = now.saturating_sub(p.at);
            let idle_from = p.at.max(self.activity.idle_since());
            (p, dt, now.saturating_sub(idle_from).min(dt))
        });
        let package_w = power::package_watts(snap);
        // Energy of this interval by domain; a counter that went backwards
        // (a source restarted) adds nothing.
        let mut deltas: Vec<(&'static str, f64)> = Vec::new();
        if let Some((prev, dt, idle_dt)) = &interval {
            for &(domain, j) in &energy {
                if let Some(&(_, pj)) = prev.energy.iter().find(|(d, _)| *d == domain) {
                    deltas.push((domain, (j - pj).max(0.0)));
                }
            }
            if !energy.iter().any(|(d, _)| *d == "package")
                && let Some(w) = package_w
            {
                deltas.push(("package", w * dt.as_secs_f64()));
            }
            let frac = if dt.is_zero() {
                0.0
            } else {
                idle_dt.as_secs_f64() / dt.as_secs_f64()
            };
            for &(domain, d) in &deltas {
                *self.idle_energy.entry(domain).or_insert(0.0) += d * frac;
            }
        } else {
            for &(domain, _) in &energy {
                self.idle_energy.entry(domain).or_insert(0.0);
            }
            if package_w.is_some() {
                self.idle_energy.entry("package").or_insert(0.0);
            }
        }
        stats.idle_energy_joules = self.idle_energy.iter().map(|(d, j)| (*d, *j)).collect();

        let Some(services) = snap.get::<ServicesSample>() else {
            return;
        };
        let idle_dt = interval.as_ref().map_or(0.0, |i| i.2.as_secs_f64());
        for s in services.services.iter().filter(|s| s.up()) {
            let Some(cpu) = s.cpu_percent else { continue };
            *self.idle_cpu.entry(s.name.clone()).or_insert(0.0) += cpu / 100.0 * idle_dt;
        }
        let dt = interval.as_ref().map(|i| i.1);
        let mut spent = self.attribute(snap, stats, package_w, &deltas);
        spent.extend(self.attribute_gpu(snap, stats));
        self.add_idle_energy(services, stats, &spent, dt.unwrap_or_default());
        // Counters keep being reported through a cycle without a reading.
        for a in &mut stats.services {
            a.idle_cpu_seconds = self.idle_cpu.get(&a.name).copied();
            a.energy_joules = self.service_energy.get(&a.name).copied();
            a.gpu_energy_joules = self.service_gpu_energy.get(&a.name).copied();
            a.idle_energy_joules = self
                .service_idle_energy
                .range((a.name.clone(), "")..)
                .take_while(|((n, _), _)| *n == a.name)
                .map(|((_, d), j)| (*d, *j))
                .collect();
        }
        stats.other_energy_joules = self.other_energy;
        stats.other_gpu_energy_joules = self.other_gpu_energy;
    }

    /// Adds each service's energy of this interval, times the part of the
    /// interval in which that service was idle by its own clock, to its
    /// idle energy. The service's idle time is measured at the end of the
    /// interval: idle for `idle` means idle since `now − idle`, and idle
    /// in the accounting sense from `idle_after` later.
    fn add_idle_energy(
        &mut self,
        services: &crate::families::services::ServicesSample,
        stats: &ActivityStats,
        spent: &IntervalEnergy,
        dt: Duration,
    ) {
        for &(i, domain, joules) in spent {
            let Some(s) = services.services.get(i) else {
                continue;
            };
            let Some(a) = stats.services.iter().find(|a| a.name == s.name) else {
                continue;
            };
            let idle_dt = a.idle.saturating_sub(stats.idle_after).min(dt);
            // The first cycle has no interval: the counter starts at 0.
            let frac = if dt.is_zero() {
                0.0
            } else {
                idle_dt.as_secs_f64() / dt.as_secs_f64()
            };
            *self
                .service_idle_energy
                .entry((s.name.clone(), domain))
                .or_insert(0.0) += joules * frac;
        }
    }

    /// The GPUs' power and energy of this interval by service; returns
    /// each service's energy (index in the services sample, `gpu`).
    fn attribute_gpu(&mut self, snap: &Snapshot, stats: &mut ActivityStats) -> IntervalEnergy {
        let Some(gpu) = snap.get::<GpuStats>() else {
            return Vec::new();
        };
        let empty = crate::families::services::ServicesSample::default();
        let services = snap.get::<ServicesSample>().unwrap_or(&empty);
        let pids: Vec<Option<&[u32]>> = services
            .services
            .iter()
            .map(|s| s.up().then_some(s.pids.as_slice()))
            .collect();
        let Some(split) = gpu_split::split(gpu, &pids) else {
            return Vec::new();
        };
        let mut spent = Vec::new();
        for (i, s) in services.services.iter().enumerate() {
            if let Some(j) = split.joules[i] {
                *self.service_gpu_energy.entry(s.name.clone()).or_insert(0.0) += j;
                spent.push((i, "gpu", j));
            } else if split.watts[i].is_some() {
                // The first reading: the counter starts at 0.
                self.service_gpu_energy.entry(s.name.clone()).or_insert(0.0);
            }
            if let Some(a) = stats.services.iter_mut().find(|a| a.name == s.name) {
                a.gpu_power_watts = split.watts[i];
            }
        }
        if let Some(j) = split.other_joules {
            *self.other_gpu_energy.get_or_insert(0.0) += j;
        } else if split.other_watts.is_some() {
            self.other_gpu_energy.get_or_insert(0.0);
        }
        stats.other_gpu_power_watts = split.other_watts;
        spent
    }

    /// Package power and energy of this interval by service's CPU share;
    /// returns each service's energy (index in the services sample, `cpu`).
    fn attribute(
        &mut self,
        snap: &Snapshot,
        stats: &mut ActivityStats,
        package_w: Option<f64>,
        deltas: &[(&'static str, f64)],
    ) -> IntervalEnergy {
        let mut spent = Vec::new();
        let Some(services) = snap.get::<ServicesSample>() else {
            return spent;
        };

        let host_busy = snap
            .get::<CpuStats>()
            .and_then(|c| Some(c.percent? * f64::from(c.logical?)));
        let (Some(watts), Some(busy)) = (package_w, host_busy) else {
            return spent;
        };
        let cpus: Vec<Option<f64>> = services
            .services
            .iter()
            .map(|s| s.cpu_percent.filter(|_| s.up()))
            .collect();
        let (shares, other_share) = cpu_shares(busy, &cpus);
        let package_j = deltas
            .iter()
            .find(|(d, _)| *d == "package")
            .map_or(0.0, |(_, j)| *j);
        for (i, (s, share)) in services.services.iter().zip(&shares).enumerate() {
            let Some(share) = share else { continue };
            *self.service_energy.entry(s.name.clone()).or_insert(0.0) += package_j * share;
            spent.push((i, "cpu", package_j * share));
            if let Some(a) = stats.services.iter_mut().find(|a| a.name == s.name) {
                a.power_watts = Some(watts * share);
            }
        }
        *self.other_energy.get_or_insert(0.0) += package_j * other_share;
        let named: f64 = stats.services.iter().filter_map(|a| a.power_watts).sum();
        stats.other_power_watts = Some((watts - named).max(0.0));
        spent
    }
}

impl Source for IdleSource {
    fn name(&self) -> &'static str {
        "idle"
    }

    fn sample(&mut self, snap: &mut Snapshot) -> Result<(), SourceError> {
        if let Some(p) = &mut self.ollama {
            p.observe(snap.get::<OllamaStats>());
        }
        let now = self.activity.now();
        let mut stats = self.activity.stats_at(now);
        // The connections probe ran earlier in this cycle.
        if let Some(conns) = snap.take::<ActivityStats>() {
            for c in conns.services {
                if let Some(s) = stats.services.iter_mut().find(|s| s.name == c.name) {
                    s.connections = c.connections;
                }
            }
        }
        self.account(snap, &mut stats, now);
        self.prev = Some(Prev {
            at: now,
            energy: power::energy_totals(snap),
        });
        snap.put(stats);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activity::{ManualClock, ServiceActivity};
    use crate::families::power::{DomainPower, PowerStats};
    use crate::families::services::{ServiceSample, ServicesSample};
    use std::sync::Arc;

    fn snap(
        busy_pct: f64,
        cores: u32,
        pkg: (f64, f64),
        services: &[(&str, Option<f64>)],
    ) -> Snapshot {
        Snapshot::default()
            .with(CpuStats {
                percent: Some(busy_pct),
                load: None,
                logical: Some(cores),
                physical: None,
            })
            .with(PowerStats {
                package: DomainPower {
                    watts: Some(pkg.0),
                    joules: Some(pkg.1),
                },
                ..Default::default()
            })
            .with(ServicesSample {
                services: services
                    .iter()
                    .map(|(name, cpu)| ServiceSample {
                        name: (*name).into(),
                        pids: if cpu.is_some() { vec![1] } else { vec![] },
                        cpu_percent: *cpu,
                        ..Default::default()
                    })
                    .collect(),
                top: vec![],
            })
    }

    fn source(names: &[&str], clock: &ManualClock) -> IdleSource {
        let a = Activity::new(
            names.iter().map(|n| n.to_string()).collect(),
            Duration::from_secs(1),
            Arc::new(clock.clone()),
        );
        IdleSource::new(a, None)
    }

    fn get<'a>(s: &'a ActivityStats, name: &str) -> &'a ServiceActivity {
        s.services.iter().find(|a| a.name == name).unwrap()
    }

    #[test]
    fn power_energy_and_idle_cpu_by_cpu_share() {
        let clock = ManualClock::default();
        let names = ["a", "b", "c"];
        let mut src = source(&names, &clock);
        // 4 cores 50 % busy = 200 % of one core; a 50 %, b 30 %, c down.
        let services = [("a", Some(50.0)), ("b", Some(30.0)), ("c", None)];
        clock.advance(Duration::from_secs(5));
        let mut s1 = snap(50.0, 4, (20.0, 100.0), &services);
        src.sample(&mut s1).unwrap();
        let st = s1.get::<ActivityStats>().unwrap();
        assert_eq!(get(st, "a").power_watts, Some(5.0));
        assert_eq!(get(st, "b").power_watts, Some(3.0));
        assert_eq!(get(st, "c").power_watts, None, "down: no estimate");
        assert_eq!(st.other_power_watts, Some(12.0));
        assert_eq!(get(st, "a").energy_joules, Some(0.0));
        assert_eq!(get(st, "a").idle_cpu_seconds, Some(0.0));
        assert_eq!(st.idle_energy_joules, vec![("package", 0.0)]);

        // 10 s later, all of it idle (idle from t = 1 s), 20 J more.
        clock.advance(Duration::from_secs(10));
        let mut s2 = snap(50.0, 4, (2.0, 120.0), &services);
        src.sample(&mut s2).unwrap();
        let st = s2.get::<ActivityStats>().unwrap();
        assert_eq!(get(st, "a").energy_joules, Some(5.0));
        assert_eq!(get(st, "b").energy_joules, Some(3.0));
        assert_eq!(st.other_energy_joules, Some(12.0));
        assert_eq!(get(st, "a").idle_cpu_seconds, Some(5.0));
        assert_eq!(get(st, "b").idle_cpu_seconds, Some(3.0));
        assert_eq!(get(st, "c").idle_cpu_seconds, None);
        assert_eq!(st.idle_energy_joules, vec![("package", 20.0)]);
        assert_eq!(get(st, "a").power_watts, Some(0.5));

        // Without a package reading the estimate is absent; the counters stay.
        clock.advance(Duration::from_secs(10));
        let mut s3 = snap(50.0, 4, (2.0, 120.0), &services);
        s3.take::<PowerStats>();
        src.sample(&mut s3).unwrap();
        let st = s3.get::<ActivityStats>().unwrap();
        assert_eq!(get(st, "a").power_watts, None);
        assert_eq!(st.other_power_watts, None);
        assert_eq!(get(st, "a").energy_joules, Some(5.0));
        assert_eq!(get(st, "a").idle_cpu_seconds, Some(10.0));
    }

    #[test]
    fn gpu_power_by_service_and_energy_while_each_service_idles() {
        use crate::activity::{Kind, Probe};
        use crate::families::gpu::{GpuInterval, GpuProcess, GpuStats};
        let clock = ManualClock::default();
        let activity = Activity::new(
            vec!["a".into(), "b".into()],
            Duration::from_secs(1),
            Arc::new(clock.clone()),
        );
        let mut src = IdleSource::new(activity.clone(), None);
        let gpu_snap = |joules: Option<f64>| {
            Snapshot::default()
                .with(ServicesSample {
                    services: vec![
                        ServiceSample {
                            name: "a".into(),
                            pids: vec![1],
                            ..Default::default()
                        },
                        ServiceSample {
                            name: "b".into(),
                            pids: vec![2, 3],
                            ..Default::default()
                        },
                    ],
                    top: vec![],
                })
                .with(GpuStats {
                    backend: "nvml",
                    devices: vec![],
                    processes: vec![
                        GpuProcess {
                            pid: 1,
                            gpu_index: 0,
                            used_bytes: 1 << 30,
                            sm_util: Some(60),
                        },
                        GpuProcess {
                            pid: 3,
                            gpu_index: 0,
                            used_bytes: 3 << 30,
                            sm_util: Some(20),
                        },
                    ],
                    energy_joules: None,
                    intervals: vec![GpuInterval {
                        gpu_index: 0,
                        watts: Some(100.0),
                        joules,
                    }],
                })
        };
        clock.advance(Duration::from_secs(5));
        let mut s1 = gpu_snap(None);
        src.sample(&mut s1).unwrap();
        let st = s1.get::<ActivityStats>().unwrap();
        assert_eq!(get(st, "a").gpu_power_watts, Some(75.0));
        assert_eq!(get(st, "b").gpu_power_watts, Some(25.0));
        assert_eq!(st.other_gpu_power_watts, Some(0.0));
        assert_eq!(get(st, "a").gpu_energy_joules, Some(0.0));
        assert_eq!(
            get(st, "a").power_watts,
            None,
            "no package power: no cpu figure"
        );
        assert!(get(st, "a").idle_energy_joules.is_empty());

        // a is used at t = 14 s; b has been idle since the start. Over the
        // 10 s interval to t = 15 s the GPU spent 1000 J.
        clock.advance(Duration::from_secs(9));
        activity.record("a", Kind::Request, 1, Probe::Push).unwrap();
        clock.advance(Duration::from_secs(1));
        let mut s2 = gpu_snap(Some(1000.0));
        src.sample(&mut s2).unwrap();
        let st = s2.get::<ActivityStats>().unwrap();
        assert_eq!(get(st, "a").gpu_energy_joules, Some(750.0));
        assert_eq!(get(st, "b").gpu_energy_joules, Some(250.0));
        assert_eq!(st.other_gpu_energy_joules, Some(0.0));
        assert_eq!(get(st, "a").idle_energy_joules, vec![("gpu", 0.0)]);
        assert_eq!(get(st, "b").idle_energy_joules, vec![("gpu", 250.0)]);

        // a is used again at t = 16 s, so idle from 17 s: 2 of the 4 s to
        // t = 19 s count (half of its 300 J); b all 4 (its 100 J).
        clock.advance(Duration::from_secs(1));
        activity.record("a", Kind::Request, 1, Probe::Push).unwrap();
        clock.advance(Duration::from_secs(3));
        let mut s3 = gpu_snap(Some(400.0));
        src.sample(&mut s3).unwrap();
        let st = s3.get::<ActivityStats>().unwrap();
        assert_eq!(get(st, "a").idle_energy_joules, vec![("gpu", 150.0)]);
        assert_eq!(get(st, "b").idle_energy_joules, vec![("gpu", 350.0)]);
        let pts = s3.points();
        let domain_of = |name: &str, service: &str| -> Vec<String> {
            pts.iter()
                .filter(|p| {
                    p.metric.name == name
                        && p.attrs.iter().any(|(k, v)| {
                            *k == crate::semconv::attr::UNAMENTIS_SERVICE
                                && v.to_string() == service
                        })
                })
                .flat_map(|p| {
                    p.attrs
                        .iter()
                        .filter(|(k, _)| *k == crate::semconv::attr::DOMAIN)
                })
                .map(|(_, v)| v.to_string())
                .collect()
        };
        assert_eq!(
            domain_of("unamentis.server.service.power_watts", "a"),
            vec!["gpu"]
        );
        assert_eq!(
            domain_of("unamentis.server.service.energy.joules", "other"),
            vec!["gpu"]
        );
        assert_eq!(
            domain_of("unamentis.server.service.idle_energy.joules", "b"),
            vec!["gpu"]
        );
    }

    /// A cycle's snapshot with the Apple GPU as the macOS readers write it
    /// (`families::macos`): `watts` from powermetrics, `joules` its energy
    /// since the previous cycle, `tasks` each task's GPU time.
    fn with_apple_gpu(
        mut s: Snapshot,
        watts: f64,
        joules: Option<f64>,
        tasks: Option<Vec<(u32, f64)>>,
    ) -> Snapshot {
        use crate::families::macos::{apply_sample, powermetrics::PowermetricsSample};
        let mut sample = PowermetricsSample {
            apple_gpu: true,
            gpu_tasks: tasks,
            ..Default::default()
        };
        sample.gpu.watts = Some(watts);
        sample.package.watts = s.get::<PowerStats>().and_then(|p| p.package.watts);
        apply_sample(&mut s, &sample, joules);
        s
    }

    #[test]
    fn the_apple_gpu_goes_to_other() {
        let clock = ManualClock::default();
        let mut src = source(&["a"], &clock);
        let apple = |w: f64, j: Option<f64>| {
            with_apple_gpu(snap(10.0, 8, (5.0, 0.0), &[("a", Some(10.0))]), w, j, None)
        };
        clock.advance(Duration::from_secs(1));
        let mut s1 = apple(3.0, None);
        src.sample(&mut s1).unwrap();
        let st = s1.get::<ActivityStats>().unwrap();
        assert_eq!(st.other_gpu_power_watts, Some(3.0));
        assert_eq!(st.other_gpu_energy_joules, Some(0.0));
        assert_eq!(get(st, "a").gpu_power_watts, None);
        clock.advance(Duration::from_secs(2));
        let mut s2 = apple(4.0, Some(7.0));
        src.sample(&mut s2).unwrap();
        let st = s2.get::<ActivityStats>().unwrap();
        assert_eq!(st.other_gpu_energy_joules, Some(7.0));
        assert_eq!(get(st, "a").gpu_energy_joules, None);
    }

    #[test]
    fn the_apple_gpu_splits_by_task_gpu_time_when_powermetrics_lists_tasks() {
        let clock = ManualClock::default();
        let mut src = source(&["a", "b"], &clock);
        let mut s = snap(10.0, 8, (5.0, 0.0), &[("a", Some(10.0)), ("b", Some(1.0))]);
        let svc = s.get_or_default::<ServicesSample>();
        svc.services[0].pids = vec![412];
        svc.services[1].pids = vec![977, 978];
        // 600 + 200 ms/s by the services, 200 by a task no service holds.
        let tasks = vec![(412, 600.0), (978, 200.0), (33, 200.0), (0, 0.0)];
        let mut s = with_apple_gpu(s, 8.0, None, Some(tasks));
        clock.advance(Duration::from_secs(1));
        src.sample(&mut s).unwrap();
        let st = s.get::<ActivityStats>().unwrap();
        assert_eq!(get(st, "a").gpu_power_watts, Some(8.0 * 0.6));
        assert_eq!(get(st, "b").gpu_power_watts, Some(8.0 * 0.2));
        // Other is what the services left (8 − 4.8 − 1.6, to rounding).
        let other = st.other_gpu_power_watts.unwrap();
        assert!((other - 1.6).abs() < 1e-9, "{other}");
    }

    proptest::proptest! {
        /// The services plus other never add up to more than package
        /// power (up to float rounding), and none is negative, whatever
        /// the CPU readings (services can read above the host: their
        /// samples are a few ms apart).
        #[test]
        fn shares_never_exceed_package_power(
            watts in 0.0f64..500.0,
            busy in 0.0f64..=100.0,
            cores in 1u32..256,
            cpus in proptest::collection::vec(proptest::option::of(0.0f64..5000.0), 0..8),
        ) {
            let clock = ManualClock::default();
            let names: Vec<String> = (0..cpus.len()).map(|i| format!("s{i}")).collect();
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let services: Vec<(&str, Option<f64>)> =
                refs.iter().copied().zip(cpus.iter().copied()).collect();
            let mut src = source(&refs, &clock);
            let mut s = snap(busy, cores, (watts, 0.0), &services);
            src.sample(&mut s).unwrap();
            let st = s.get::<ActivityStats>().cloned().unwrap();
            let named: f64 = st.services.iter().filter_map(|a| a.power_watts).sum();
            let other = st.other_power_watts.unwrap();
            proptest::prop_assert!(other >= 0.0);
            proptest::prop_assert!(st.services.iter().filter_map(|a| a.power_watts).all(|w| w >= 0.0));
            proptest::prop_assert!(named + other <= watts * (1.0 + 1e-12) + 1e-12,
                "{named} + {other} > {watts}");
            proptest::prop_assert!((named + other - watts).abs() <= watts * 1e-12 + 1e-12,
                "the shares add up to the package: {named} + {other} vs {watts}");
        }
    }

    #[test]
    fn shares_of_busy_cpu() {
        // 4 cores at 50 % = 200 % of one core busy.
        let (s, other) = cpu_shares(200.0, &[Some(50.0), None, Some(100.0)]);
        assert_eq!(s, vec![Some(0.25), None, Some(0.5)]);
        assert_eq!(other, 0.25);
        // Services measured above the host: they are the whole.
        let (s, other) = cpu_shares(100.0, &[Some(150.0), Some(50.0)]);
        assert_eq!(s, vec![Some(0.75), Some(0.25)]);
        assert_eq!(other, 0.0);
        // Nothing busy: everything to other.
        let (s, other) = cpu_shares(0.0, &[Some(0.0)]);
        assert_eq!((s, other), (vec![Some(0.0)], 1.0));
    }
}
