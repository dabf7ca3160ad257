//! Activity probes and the idle clock: when did anybody last use the stack,
//! and what did it burn while nobody did.
//!
//! [`Activity`] is the shared state: each service's last activity and its
//! request/inference counters. Three probes feed it: the local server's
//! `POST /v1/activity` (push, on the runtime thread), and inside the
//! sampling cycle the TCP connections probe ([`connections`]) and the
//! Ollama probe ([`ollama`]). [`idle::IdleSource`] runs last in each cycle:
//! it reads the idle clock and does the idle accounting from the same
//! cycle's power and per-service CPU. Sources stay unaware of
//! OpenTelemetry: everything lands in [`ActivityStats`] on the snapshot.
//!
//! Time is a [`Clock`] (monotonic, a `Duration` since an arbitrary origin),
//! so tests drive idle time exactly with a [`ManualClock`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::config::Config;
pub use stats::{ActivityStats, Probe, ServiceActivity};

pub mod connections;
pub mod gpu_split;
pub mod idle;
pub mod ollama;
pub mod stats;

/// A monotonic clock: time since an arbitrary, fixed origin.
pub trait Clock: Send + Sync {
    fn now(&self) -> Duration;
}

/// The real clock: `Instant` (CLOCK_MONOTONIC on Linux), so suspend and
/// wall-clock changes never make idle time jump backwards.
pub struct MonotonicClock(Instant);

impl MonotonicClock {
    pub fn new() -> Self {
        MonotonicClock(Instant::now())
    }
}

impl Default for MonotonicClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for MonotonicClock {
    fn now(&self) -> Duration {
        self.0.elapsed()
    }
}

/// A clock that moves only when told to (tests).
#[derive(Clone, Default)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    pub fn advance(&self, d: Duration) {
        self.0.fetch_add(d.as_nanos() as u64, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        Duration::from_nanos(self.0.load(Ordering::SeqCst))
    }
}

/// What was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Request,
    Inference,
    /// A new client connection: counted as a request, like the
    /// connections probe counts a newly established connection.
    Connection,
}

impl Probe {
    pub const ALL: [Probe; 3] = [Probe::Push, Probe::Connections, Probe::Ollama];

    pub fn as_str(self) -> &'static str {
        match self {
            Probe::Push => "push",
            Probe::Connections => "connections",
            Probe::Ollama => "ollama",
        }
    }
}

#[derive(Debug, Clone, Default)]
struct ServiceState {
    name: String,
    last: Option<Duration>,
    /// By `Probe as usize`.
    requests: [u64; 3],
    inferences: [u64; 3],
}

struct State {
    started: Duration,
    services: Vec<ServiceState>,
}

/// The shared activity state: cheap to clone, safe to use from the runtime
/// thread and the reader thread at once (one short mutex hold per call).
#[derive(Clone)]
pub struct Activity {
    clock: Arc<dyn Clock>,
    idle_after: Duration,
    state: Arc<Mutex<State>>,
}

/// A push named a service the agent does not watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownService(pub String);

impl ActivityStats {
    pub fn idle_state(&self) -> bool {
        self.idle >= self.idle_after
    }
}

impl Activity {
    pub fn new(services: Vec<String>, idle_after: Duration, clock: Arc<dyn Clock>) -> Self {
        let started = clock.now();
        let services = services
            .into_iter()
            .map(|name| ServiceState {
                name,
                ..Default::default()
            })
            .collect();
        Activity {
            clock,
            idle_after,
            state: Arc::new(Mutex::new(State { started, services })),
        }
    }

    /// For the configured services, on the real monotonic clock.
    pub fn from_config(cfg: &Config) -> Self {
        Self::with_clock(cfg, Arc::new(MonotonicClock::new()))
    }

    pub fn with_clock(cfg: &Config, clock: Arc<dyn Clock>) -> Self {
        let names = cfg.effective_services().into_iter().map(|s| s.name);
        Self::new(names.collect(), cfg.activity.idle_after.0, clock)
    }

    pub fn now(&self) -> Duration {
        self.clock.now()
    }

    pub fn idle_after(&self) -> Duration {
        self.idle_after
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records `count` events of `kind` for `service`, seen by `probe`, now.
    pub fn record(
        &self,
        service: &str,
        kind: Kind,
        count: u64,
        probe: Probe,
    ) -> Result<(), UnknownService> {
        let now = self.clock.now();
        let mut st = self.lock();
        let s = st
            .services
            .iter_mut()
            .find(|s| s.name == service)
            .ok_or_else(|| UnknownService(service.to_owned()))?;
        s.last = Some(now);
        let counter = match kind {
            Kind::Request | Kind::Connection => &mut s.requests,
            Kind::Inference => &mut s.inferences,
        };
        counter[probe as usize] = counter[probe as usize].saturating_add(count);
        Ok(())
    }

    pub fn service_names(&self) -> Vec<String> {
        self.lock()
            .services
            .iter()
            .map(|s| s.name.clone())
            .collect()
    }

    /// The clock read at `now`: idle times and counters, nothing measured.
    pub fn stats_at(&self, now: Duration) -> ActivityStats {
        let st = self.lock();
        let since = |last: Option<Duration>| now.saturating_sub(last.unwrap_or(st.started));
        let counts = |c: &[u64; 3]| -> Vec<(Probe, u64)> {
            Probe::ALL
                .iter()
                .map(|&p| (p, c[p as usize]))
                .filter(|&(_, n)| n > 0)
                .collect()
        };
        let host_last = st.services.iter().filter_map(|s| s.last).max();
        ActivityStats {
            idle_after: self.idle_after,
            idle: since(host_last),
            services: st
                .services
                .iter()
                .map(|s| ServiceActivity {
                    name: s.name.clone(),
                    idle: since(s.last),
                    requests: counts(&s.requests),
                    inferences: counts(&s.inferences),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    /// When the stack became (or will become) idle: the last activity on
    /// any service (the agent's start before any) plus `idle_after`.
    pub fn idle_since(&self) -> Duration {
        let st = self.lock();
        let last = st.services.iter().filter_map(|s| s.last).max();
        last.unwrap_or(st.started) + self.idle_after
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn activity(clock: &ManualClock) -> Activity {
        Activity::new(
            vec!["ollama".into(), "piper".into()],
            Duration::from_secs(60),
            Arc::new(clock.clone()),
        )
    }

    #[test]
    fn idle_counts_from_start_then_from_the_last_activity() {
        let clock = ManualClock::default();
        clock.advance(Duration::from_secs(1000));
        let a = activity(&clock);
        clock.advance(Duration::from_secs(59));
        let s = a.stats_at(clock.now());
        assert_eq!(s.idle, Duration::from_secs(59));
        assert!(!s.idle_state());
        clock.advance(Duration::from_secs(1));
        let s = a.stats_at(clock.now());
        assert!(s.idle_state(), "idle at exactly idle_after");
        a.record("piper", Kind::Request, 3, Probe::Push).unwrap();
        clock.advance(Duration::from_millis(1500));
        let s = a.stats_at(clock.now());
        assert_eq!(s.idle, Duration::from_millis(1500));
        assert_eq!(s.services[0].idle, Duration::from_millis(61_500));
        assert_eq!(s.services[1].idle, Duration::from_millis(1500));
        assert_eq!(s.services[1].requests, vec![(Probe::Push, 3)]);
        assert!(s.services[0].requests.is_empty());
        assert_eq!(a.idle_since(), Duration::from_secs(1060 + 60));
    }

    #[test]
    fn kinds_and_unknown_services() {
        let clock = ManualClock::default();
        let a = activity(&clock);
        a.record("ollama", Kind::Inference, 2, Probe::Ollama)
            .unwrap();
        a.record("ollama", Kind::Connection, 1, Probe::Push)
            .unwrap();
        a.record("ollama", Kind::Request, 1, Probe::Connections)
            .unwrap();
        let s = a.stats_at(clock.now());
        assert_eq!(s.services[0].inferences, vec![(Probe::Ollama, 2)]);
        assert_eq!(
            s.services[0].requests,
            vec![(Probe::Push, 1), (Probe::Connections, 1)]
        );
        assert_eq!(
            a.record("nope", Kind::Request, 1, Probe::Push),
            Err(UnknownService("nope".into()))
        );
    }
}
