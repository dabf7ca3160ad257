//! OTLP export with a bounded replay queue.
//!
//! Each cycle's points are encoded into an `ExportMetricsServiceRequest`
//! ([`otlp::Encoder`]) and queued as bytes; a sender task on the agent's
//! runtime delivers the queue oldest first. While the collector is down,
//! slow or refusing, batches wait (capped in bytes and age, the oldest
//! dropped and counted beyond that) and one probe request per interval
//! tests whether it is back; once it answers, the backlog goes out at
//! once, with the timestamps of the cycles that collected it. The cycle
//! thread, which samples and encodes, never waits on the network, so
//! sampling stays on time whatever the collector does.

pub mod client;
mod connect;
pub mod otlp;
pub mod queue;

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

pub use client::{Client, Failure};
use queue::Queue;

use crate::counters::ExportCounters;

/// Largest request the replay sends at once: well under the 4 MiB a gRPC
/// server accepts by default, and a few hundred default batches.
const REQUEST_MAX_BYTES: usize = 1024 * 1024;
/// During an outage, at most one warning a minute.
const REPEAT_WARNING_EVERY: Duration = Duration::from_secs(60);
/// The final delivery at shutdown finishes (or gives up) within this,
/// whatever the delivery timeout: a service manager or a stopping pod
/// gives the agent a few seconds before it kills it.
pub const SHUTDOWN_WAIT_MAX: Duration = Duration::from_millis(4500);

pub struct QueueSettings {
    pub max_bytes: usize,
    pub max_age: Duration,
    /// Bounds each delivery attempt.
    pub timeout: Duration,
}

struct State {
    queue: Queue,
    /// Delivery rounds asked for (one per queued batch or flush) and
    /// finished, so a flush can wait for "a round after my request".
    rounds_requested: u64,
    rounds_done: u64,
    /// Why the latest attempt failed; None once one succeeds. The
    /// shutdown message says from it whether the collector refused the
    /// data or could not be reached.
    last_failure: Option<Failure>,
}

struct Shared {
    state: Mutex<State>,
    /// Wakes the sender task (a stored permit if it is busy).
    wake: Notify,
    /// Signalled when a round finishes.
    round_done: Condvar,
    stats: ExportCounters,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn count_dropped(&self, n: usize) {
        self.stats.add_dropped(n as u64);
    }

    /// Asks for a delivery round and returns its number.
    fn request_round(&self) -> u64 {
        let round = {
            let mut st = self.lock();
            st.rounds_requested += 1;
            st.rounds_requested
        };
        self.wake.notify_one();
        round
    }

    /// Waits until the queue is empty or round `round` is over (delivered
    /// or failed), at most `limit`. True when the queue is empty.
    fn wait_round(&self, round: u64, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let mut st = self.lock();
        while !st.queue.is_empty() && st.rounds_done < round {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            st = self
                .round_done
                .wait_timeout(st, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        st.queue.is_empty()
    }
}

/// The exporter the cycle thread queues into; clones share the queue.
#[derive(Clone)]
pub struct QueueingExporter {
    shared: Arc<Shared>,
}

impl QueueingExporter {
    /// Starts the sender task on the current tokio runtime, which must be
    /// driven for anything to be sent (the agent's main thread awaits).
    /// Dropped batches are counted into `stats`.
    pub fn start(
        client: Client,
        endpoint: String,
        settings: QueueSettings,
        stats: ExportCounters,
    ) -> Self {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                queue: Queue::new(settings.max_bytes, settings.max_age),
                rounds_requested: 0,
                rounds_done: 0,
                last_failure: None,
            }),
            wake: Notify::new(),
            round_done: Condvar::new(),
            stats,
        });
        tokio::spawn(sender(shared.clone(), client, endpoint, settings.timeout));
        QueueingExporter { shared }
    }

    /// Batches and bytes waiting for the collector.
    pub fn queued(&self) -> (usize, usize) {
        let st = self.shared.lock();
        (st.queue.len(), st.queue.bytes())
    }

    /// Queues one encoded request (one cycle's batch) and wakes the
    /// sender.
    pub fn enqueue(&self, encoded: Vec<u8>) {
        let dropped = self.shared.lock().queue.push(encoded, Instant::now());
        self.shared.count_dropped(dropped);
        self.shared.request_round();
    }

    /// Tries to deliver everything queued now; waits at most `limit`.
    /// True when the queue is empty afterwards.
    pub fn flush(&self, limit: Duration) -> bool {
        let round = self.shared.request_round();
        self.shared.wait_round(round, limit)
    }

    /// The final delivery: tries to send everything queued, waiting at
    /// most [`SHUTDOWN_WAIT_MAX`]. When batches are left, logs what was
    /// lost and why, and returns how many.
    pub fn shutdown(&self) -> Result<(), usize> {
        let round = self.shared.request_round();
        if self.shared.wait_round(round, SHUTDOWN_WAIT_MAX) {
            return Ok(());
        }
        let (batches, bytes, end) = {
            let st = self.shared.lock();
            // An attempt still in flight at the deadline got no answer;
            // an earlier failure would be stale.
            let end = if st.rounds_done < round {
                ShutdownEnd::NoAnswer
            } else {
                ShutdownEnd::Finished(st.last_failure.clone())
            };
            (st.queue.len(), st.queue.bytes(), end)
        };
        tracing::warn!(batches, bytes, "{}", shutdown_loss(&end));
        Err(batches)
    }
}

/// An ongoing outage, for rate-limited logging.
struct Outage {
    since: Instant,
    failures: u64,
    last_warned: Instant,
    dropped_at_start: u64,
}

async fn sender(shared: Arc<Shared>, client: Client, endpoint: String, timeout: Duration) {
    let mut outage: Option<Outage> = None;
    loop {
        shared.wake.notified().await;
        let round = shared.lock().rounds_requested;
        let mut delivered = 0usize;
        let mut failure = None;
        loop {
            let head = {
                let mut st = shared.lock();
                let expired = st.queue.expire(Instant::now());
                shared.count_dropped(expired);
                // While the collector is failing, probe with the oldest
                // batch alone instead of resending the whole backlog.
                let max = if outage.is_some() && delivered == 0 {
                    0
                } else {
                    REQUEST_MAX_BYTES
                };
                st.queue.head(max)
            };
            let Some(head) = head else { break };
            match client.send(&head.bytes, timeout).await {
                Ok(()) => {
                    let mut st = shared.lock();
                    st.queue.ack(head.last_seq);
                    st.last_failure = None;
                    delivered += head.batches;
                }
                Err(e) => {
                    shared.lock().last_failure = Some(e.clone());
                    failure = Some(e);
                    break;
                }
            }
        }
        match (failure, &mut outage) {
            (None, Some(o)) if delivered > 0 => {
                let dropped = shared.stats.dropped_batches() - o.dropped_at_start;
                tracing::info!(
                    endpoint = %endpoint,
                    failed_attempts = o.failures,
                    replayed_batches = delivered,
                    dropped_batches = dropped,
                    "export recovered after {}: replayed {delivered} batches, dropped {dropped}",
                    humantime::format_duration(round_secs(o.since.elapsed()))
                );
                outage = None;
            }
            (None, _) => {
                if delivered > 0 {
                    tracing::debug!(endpoint = %endpoint, batches = delivered, "exported");
                }
            }
            (Some(e), None) => {
                warn_failure(&endpoint, &e, None);
                let now = Instant::now();
                outage = Some(Outage {
                    since: now,
                    failures: 1,
                    last_warned: now,
                    dropped_at_start: shared.stats.dropped_batches(),
                });
            }
            (Some(e), Some(o)) => {
                o.failures += 1;
                if o.last_warned.elapsed() >= REPEAT_WARNING_EVERY {
                    warn_failure(&endpoint, &e, Some(o));
                    o.last_warned = Instant::now();
                }
            }
        }
        {
            let mut st = shared.lock();
            st.rounds_done = st.rounds_done.max(round);
        }
        shared.round_done.notify_all();
    }
}

fn warn_failure(endpoint: &str, e: &Failure, ongoing: Option<&Outage>) {
    let (queued_for, failures) = match ongoing {
        Some(o) => (
            format!(
                " (failing for {}, {} attempts)",
                humantime::format_duration(round_secs(o.since.elapsed())),
                o.failures
            ),
            o.failures,
        ),
        None => (String::new(), 1),
    };
    if e.is_unreachable() {
        tracing::warn!(
            endpoint,
            failures,
            "export failed{queued_for}: collector unreachable: {e}; batches are kept and \
             replayed when the collector answers"
        );
    } else if e.is_rejection() {
        tracing::warn!(
            endpoint,
            failures,
            "export failed{queued_for}: the collector refuses the data: {e}. This is a \
             configuration problem (ingestion key, headers, endpoint path); batches are kept \
             and replayed once it is fixed"
        );
    } else {
        tracing::warn!(
            endpoint,
            failures,
            "export failed{queued_for}: the collector cannot take the data now: {e}; batches \
             are kept and replayed once it does"
        );
    }
}

/// How the final delivery round ended, when batches are left.
enum ShutdownEnd {
    /// Still waiting for the collector at the deadline.
    NoAnswer,
    /// Over, with the latest attempt's failure (None: it delivered, and
    /// batches queued meanwhile were left).
    Finished(Option<Failure>),
}

/// What the shutdown warning says when batches are left: "refused" only
/// when the collector answered with a refusal, "unreachable" only when it
/// did not answer.
fn shutdown_loss(end: &ShutdownEnd) -> String {
    let last = match end {
        ShutdownEnd::NoAnswer => {
            return "collector unreachable at shutdown (no answer before the shutdown deadline): \
                    the queued batches are lost"
                .to_owned();
        }
        ShutdownEnd::Finished(last) => last.as_ref(),
    };
    match last {
        Some(e @ Failure::Rejected(_)) => format!(
            "collector refused the queued batches at shutdown ({e}): they are lost; check the \
             ingestion key, headers and endpoint path"
        ),
        Some(e @ Failure::Transient(_)) => {
            format!("collector could not take the queued batches at shutdown ({e}): they are lost")
        }
        Some(e @ Failure::Unreachable(_)) => {
            format!("collector unreachable at shutdown ({e}): the queued batches are lost")
        }
        None => "batches queued during the shutdown were not sent: they are lost".to_owned(),
    }
}

fn round_secs(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs())
}
