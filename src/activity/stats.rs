//! What the activity probes and the idle accounting give one cycle, and
//! its mapping to points: the idle clock, requests and inferences by probe,
//! connections, and each service's idle CPU, power and energy.

use std::time::Duration;

use crate::families::services::OTHER;
use crate::point::Point;
use crate::semconv::{self, attr};
use crate::sources::snapshot::{FamilySample, Snapshot};

/// Who saw it (the `probe` attribute).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Probe {
    Push,
    Connections,
    Ollama,
}

/// One service's activity, read at one instant.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServiceActivity {
    pub name: String,
    /// Since this service's last activity (since the agent's start before any).
    pub idle: Duration,
    /// Cumulative counts by probe; only probes that counted something.
    pub requests: Vec<(Probe, u64)>,
    pub inferences: Vec<(Probe, u64)>,
    /// Established connections on the service's ports (connections probe).
    pub connections: Option<u64>,
    /// CPU seconds spent while the stack was idle (needs the service's CPU).
    pub idle_cpu_seconds: Option<f64>,
    /// Estimate: package power × the service's share of busy CPU.
    pub power_watts: Option<f64>,
    pub energy_joules: Option<f64>,
    /// Estimate: the GPUs' power × the service's share of their processes
    /// (SM time, else memory held); see `activity::gpu_split`.
    pub gpu_power_watts: Option<f64>,
    pub gpu_energy_joules: Option<f64>,
    /// Energy attributed to the service (domains `cpu`, `gpu`) while it was
    /// idle by its own clock.
    pub idle_energy_joules: Vec<(&'static str, f64)>,
}

/// Everything the activity probes and the idle accounting give one cycle.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ActivityStats {
    pub idle_after: Duration,
    /// Since the last activity on any service (since start before any).
    pub idle: Duration,
    pub services: Vec<ServiceActivity>,
    /// Energy by domain (`package`, `cpu`, …) spent while idle.
    pub idle_energy_joules: Vec<(&'static str, f64)>,
    /// The `other` pseudo-service's share of package power and energy.
    pub other_power_watts: Option<f64>,
    pub other_energy_joules: Option<f64>,
    /// And of the GPUs' power and energy.
    pub other_gpu_power_watts: Option<f64>,
    pub other_gpu_energy_joules: Option<f64>,
}

impl FamilySample for ActivityStats {
    fn points(&self, _snap: &Snapshot, out: &mut Vec<Point>) {
        let a = self;
        out.push(Point::new(
            &semconv::IDLE_DURATION_SECONDS,
            a.idle.as_secs_f64(),
        ));
        out.push(Point::new(
            &semconv::IDLE_STATE,
            if a.idle_state() { 1.0 } else { 0.0 },
        ));
        for (domain, j) in &a.idle_energy_joules {
            out.push(Point::new(&semconv::IDLE_ENERGY_JOULES, *j).with(attr::DOMAIN, *domain));
        }
        for s in &a.services {
            let svc = |m, v| Point::new(m, v).with(attr::UNAMENTIS_SERVICE, s.name.as_str());
            out.push(svc(&semconv::IDLE_DURATION_SECONDS, s.idle.as_secs_f64()));
            for (probe, n) in &s.requests {
                out.push(
                    svc(&semconv::ACTIVITY_REQUESTS, *n as f64).with(attr::PROBE, probe.as_str()),
                );
            }
            for (probe, n) in &s.inferences {
                out.push(
                    svc(&semconv::ACTIVITY_INFERENCES, *n as f64).with(attr::PROBE, probe.as_str()),
                );
            }
            let values = [
                (
                    &semconv::ACTIVITY_CONNECTIONS,
                    s.connections.map(|n| n as f64),
                ),
                (&semconv::SERVICE_IDLE_CPU_SECONDS, s.idle_cpu_seconds),
            ];
            for (metric, v) in values {
                if let Some(v) = v {
                    out.push(svc(metric, v));
                }
            }
            let by_domain = [
                (&semconv::SERVICE_POWER_WATTS, "cpu", s.power_watts),
                (&semconv::SERVICE_ENERGY_JOULES, "cpu", s.energy_joules),
                (&semconv::SERVICE_POWER_WATTS, "gpu", s.gpu_power_watts),
                (&semconv::SERVICE_ENERGY_JOULES, "gpu", s.gpu_energy_joules),
            ];
            for (metric, domain, v) in by_domain {
                if let Some(v) = v {
                    out.push(svc(metric, v).with(attr::DOMAIN, domain));
                }
            }
            for (domain, j) in &s.idle_energy_joules {
                out.push(svc(&semconv::SERVICE_IDLE_ENERGY_JOULES, *j).with(attr::DOMAIN, *domain));
            }
        }
        let other = [
            (&semconv::SERVICE_POWER_WATTS, "cpu", a.other_power_watts),
            (
                &semconv::SERVICE_ENERGY_JOULES,
                "cpu",
                a.other_energy_joules,
            ),
            (
                &semconv::SERVICE_POWER_WATTS,
                "gpu",
                a.other_gpu_power_watts,
            ),
            (
                &semconv::SERVICE_ENERGY_JOULES,
                "gpu",
                a.other_gpu_energy_joules,
            ),
        ];
        for (metric, domain, v) in other {
            if let Some(v) = v {
                out.push(
                    Point::new(metric, v)
                        .with(attr::UNAMENTIS_SERVICE, OTHER)
                        .with(attr::DOMAIN, domain),
                );
            }
        }
    }
}
