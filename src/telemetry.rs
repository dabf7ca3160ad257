//! The agent's run: the resource, the OTLP exporter (gRPC or
//! HTTP/protobuf) and the cycle thread that samples every interval and
//! queues each cycle's request. Knows nothing of `/proc`: host facts
//! arrive as a [`HostIdentity`], points from the [`CycleSampler`].

use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crate::config::{Config, ExportConfig};
use crate::counters::ExportCounters;
use crate::export::otlp::Encoder;
use crate::export::{Client, QueueSettings, QueueingExporter};
use crate::host::HostIdentity;
use crate::snapshot::CycleSampler;

pub const AGENT_NAME: &str = "unamentis-agent";

/// Resource attributes in precedence order: detected facts, then the
/// configured attributes (file and `OTEL_RESOURCE_ATTRIBUTES`), then the
/// service name (`OTEL_SERVICE_NAME`). Later entries win.
pub fn resource_attributes(
    cfg: &Config,
    host: &HostIdentity,
    node: Option<String>,
) -> Vec<(String, String)> {
    let mut attrs: Vec<(String, String)> = vec![
        ("service.name".into(), AGENT_NAME.into()),
        ("service.version".into(), env!("CARGO_PKG_VERSION").into()),
        ("os.type".into(), os_type().into()),
    ];
    if let Some(name) = &host.name {
        attrs.push(("host.name".into(), name.clone()));
    }
    if let Some(id) = &host.id {
        attrs.push(("host.id".into(), id.clone()));
    }
    // Stable across restarts, so one host's series continue: a name-based
    // UUID (v5) of the host, as the semantic conventions recommend.
    if let Some(seed) = host.id.as_ref().or(host.name.as_ref()) {
        let id = uuid::Uuid::new_v5(
            &uuid::Uuid::NAMESPACE_OID,
            format!("{AGENT_NAME}:{seed}").as_bytes(),
        );
        attrs.push(("service.instance.id".into(), id.to_string()));
    }
    if let Some(node) = node.filter(|n| !n.is_empty()) {
        attrs.push(("k8s.node.name".into(), node));
    }
    for (k, v) in &cfg.resource.attributes {
        attrs.push((k.clone(), v.clone()));
    }
    if let Some(name) = &cfg.resource.service_name {
        attrs.push(("service.name".into(), name.clone()));
    }
    attrs
}

fn os_type() -> &'static str {
    match std::env::consts::OS {
        "macos" => "darwin",
        other => other,
    }
}

/// Builds the OTLP exporter: the agent's own client behind the bounded
/// replay queue (`crate::export`). Must run inside a tokio runtime, which
/// must then be driven for exports to go out.
pub fn build_exporter(
    cfg: &ExportConfig,
    counters: ExportCounters,
) -> Result<QueueingExporter, String> {
    let client = Client::new(cfg)?;
    Ok(QueueingExporter::start(
        client,
        cfg.effective_endpoint(),
        QueueSettings {
            max_bytes: usize::try_from(cfg.queue_max_bytes).unwrap_or(usize::MAX),
            max_age: cfg.queue_max_age.0,
            timeout: cfg.timeout.0,
        },
        counters,
    ))
}

/// Where each cycle's points go: encoded, into the export queue.
pub struct Push {
    pub exporter: QueueingExporter,
    pub encoder: Encoder,
}

impl Push {
    /// The exporter with an encoder for this run's resource, started now.
    /// `descriptions`: send each metric's registry brief
    /// (`export.descriptions`).
    pub fn new(
        exporter: QueueingExporter,
        resource: Vec<(String, String)>,
        descriptions: bool,
    ) -> Self {
        Push {
            exporter,
            encoder: Encoder::new(resource, AGENT_NAME, descriptions, SystemTime::now()),
        }
    }

    /// Samples one cycle and queues its request.
    fn cycle(&self, cycle: &CycleSampler) {
        let points = cycle.sample_now();
        let encoded = self.encoder.encode(&points, SystemTime::now());
        tracing::trace!(bytes = encoded.len(), "batch queued");
        self.exporter.enqueue(encoded);
    }
}

/// When the cycles run: the first `first` after start (a dashboard sees
/// the host within a second), then on every multiple of `every` since
/// start. A cycle that overruns skips the ticks it missed instead of
/// running them back to back.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    pub first: Duration,
    pub every: Duration,
}

impl Schedule {
    /// The first tick after `now` of a schedule that began at `start`.
    fn next(&self, start: Instant, now: Instant) -> Instant {
        let first = start + self.first;
        if now < first {
            return first;
        }
        let every = self.every.max(Duration::from_millis(1)).as_nanos();
        let ticks = now.duration_since(start).as_nanos() / every + 1;
        // In nanoseconds since start: u64 holds 584 years.
        let since_start = u64::try_from(ticks.saturating_mul(every)).unwrap_or(u64::MAX);
        start
            .checked_add(Duration::from_nanos(since_start))
            .unwrap_or(now + self.every)
    }
}

#[derive(Default)]
struct Stop {
    stopped: Mutex<bool>,
    wake: Condvar,
}

impl Stop {
    fn set(&self) {
        *self.stopped.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.wake.notify_all();
    }

    /// Sleeps until `deadline` or a stop; true when stopped.
    fn wait_until(&self, deadline: Instant) -> bool {
        let mut stopped = self.stopped.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if *stopped {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            stopped = self
                .wake
                .wait_timeout(stopped, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

/// The cycle thread: samples on the [`Schedule`] and, with a [`Push`],
/// queues every cycle's request. Its own thread, off the runtime, so a
/// slow source never holds up the local server or a delivery.
pub struct Cycles {
    stop: Arc<Stop>,
    thread: JoinHandle<Option<Push>>,
}

impl Cycles {
    pub fn start(
        cycle: CycleSampler,
        push: Option<Push>,
        schedule: Schedule,
    ) -> std::io::Result<Cycles> {
        let stop = Arc::new(Stop::default());
        let thread = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("cycle".into())
                .spawn(move || {
                    let start = Instant::now();
                    while !stop.wait_until(schedule.next(start, Instant::now())) {
                        match &push {
                            Some(p) => p.cycle(&cycle),
                            None => {
                                cycle.sample_now();
                            }
                        }
                    }
                    // The last data: one more cycle, as the export ends.
                    if let Some(p) = &push {
                        p.cycle(&cycle);
                    }
                    push
                })?
        };
        Ok(Cycles { stop, thread })
    }

    /// Stops the cycles, takes a last one when pushing, and delivers what
    /// is queued (at most [`crate::export::SHUTDOWN_WAIT_MAX`]). Blocks:
    /// call it off the runtime that drives the exporter. Err: how many
    /// batches were lost (the exporter has logged why).
    pub fn stop(self) -> Result<(), usize> {
        self.stop.set();
        let push = self.thread.join().ok().flatten();
        match push {
            Some(p) => p.exporter.shutdown(),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_first_early_then_on_multiples_of_the_interval() {
        let s = Schedule {
            first: Duration::from_millis(250),
            every: Duration::from_secs(5),
        };
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        assert_eq!(s.next(t0, t0), at(250));
        assert_eq!(s.next(t0, at(249)), at(250));
        assert_eq!(s.next(t0, at(250)), at(5000));
        assert_eq!(s.next(t0, at(4999)), at(5000));
        assert_eq!(s.next(t0, at(5000)), at(10_000));
        // An overrun skips the missed ticks.
        assert_eq!(s.next(t0, at(17_300)), at(20_000));
        // An interval shorter than the first delay.
        let fast = Schedule {
            first: Duration::from_millis(250),
            every: Duration::from_millis(100),
        };
        assert_eq!(fast.next(t0, t0), at(250));
        assert_eq!(fast.next(t0, at(250)), at(300));
        // Years into a run at the shortest interval: still the next tick.
        let years = Duration::from_secs(20 * 365 * 86_400);
        let next = fast.next(t0, t0 + years + Duration::from_millis(50));
        assert_eq!(next, t0 + years + Duration::from_millis(100));
    }
}
