//! Collector outages: down at start, down mid-run, refusing (UNAVAILABLE,
//! RESOURCE_EXHAUSTED, UNAUTHENTICATED, HTTP 503/401), slow (never
//! answers), and longer than the queue holds.
//!
//! Two levels: the library's export pipeline driven cycle by cycle (a
//! gauge whose value is the cycle number makes "nothing missing, oldest
//! first" an exact comparison), and the real binary at a short interval
//! (timestamps, logs, the dropped-batches self-metric).

mod support;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use support::agent::Agent;
use support::otlp_receiver::{Behaviour, Received, Receiver, metrics, points, value};
use support::tcp::free_port;
use tonic::Code;
use unamentis_agent::config::{ExportConfig, Protocol};
use unamentis_agent::export::QueueingExporter;
use unamentis_agent::export::otlp::Encoder;
use unamentis_agent::families::agent::ExportCounters;
use unamentis_agent::semconv::{self, Instrument, Metric, ValueType};
use unamentis_agent::snapshot::Point;
use unamentis_agent::telemetry;

/// Guards against hangs only; nothing asserts on elapsed time.
const LIMIT: Duration = Duration::from_secs(30);

/// A gauge whose value is the cycle number.
static CYCLE: Metric = Metric {
    name: "cycle",
    instrument: Instrument::Gauge,
    unit: "1",
    value_type: ValueType::Int,
    brief: "",
    attributes: &[],
};

/// The library pipeline: the agent's exporter and encoder, without the
/// cycle thread; each `cycle()` is one collection whose `cycle` gauge
/// reads 1, 2, 3...
struct Pipeline {
    exporter: QueueingExporter,
    encoder: Encoder,
    counters: ExportCounters,
    n: AtomicU64,
}

impl Pipeline {
    fn new(cfg: &ExportConfig) -> Pipeline {
        let counters = ExportCounters::default();
        let exporter = telemetry::build_exporter(cfg, counters.clone()).unwrap();
        let encoder = Encoder::new(
            [("service.name".to_owned(), "outage-test".to_owned())],
            "test",
            false,
            SystemTime::now(),
        );
        Pipeline {
            exporter,
            encoder,
            counters,
            n: AtomicU64::new(0),
        }
    }

    /// One collection; its batch is queued (the call does not wait for
    /// the collector).
    async fn cycle(&self) {
        let n = self.n.fetch_add(1, Ordering::SeqCst) + 1;
        let points = [Point {
            metric: &CYCLE,
            attrs: Vec::new(),
            value: n as f64,
        }];
        self.exporter
            .enqueue(self.encoder.encode(&points, SystemTime::now()));
    }

    /// Waits until a delivery attempt after now is over.
    async fn settle(&self) -> bool {
        let e = self.exporter.clone();
        tokio::task::spawn_blocking(move || e.flush(LIMIT))
            .await
            .unwrap()
    }
}

fn config(endpoint: String) -> ExportConfig {
    ExportConfig {
        endpoint: Some(endpoint),
        timeout: unamentis_agent::config::Dur(Duration::from_secs(5)),
        ..ExportConfig::default()
    }
}

/// The `cycle` values of every request, in arrival order.
fn cycles(reqs: &[Received]) -> Vec<u64> {
    reqs.iter()
        .flat_map(|r| metrics(r).into_iter().filter(|m| m.name == "cycle"))
        .flat_map(|m| points(m).iter().map(|p| value(p) as u64))
        .collect()
}

/// Collection timestamps of the `cycle` points, in arrival order.
fn cycle_times(reqs: &[Received]) -> Vec<u64> {
    reqs.iter()
        .flat_map(|r| metrics(r).into_iter().filter(|m| m.name == "cycle"))
        .flat_map(|m| points(m).iter().map(|p| p.time_unix_nano))
        .collect()
}

async fn wait_cycles(rx: &Receiver, last: u64) -> Vec<u64> {
    for _ in 0..3000 {
        let got = cycles(&rx.received());
        if got.last().is_some_and(|&c| c >= last) {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("cycle {last} never arrived: {:?}", cycles(&rx.received()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collector_down_at_start_gets_every_batch_oldest_first() {
    let port = free_port();
    let p = Pipeline::new(&config(format!("http://127.0.0.1:{port}")));
    for _ in 0..5 {
        p.cycle().await;
        assert!(!p.settle().await, "nothing listens: the batch stays queued");
    }
    assert_eq!(p.exporter.queued().0, 5);

    let rx = Receiver::grpc_on(format!("127.0.0.1:{port}").parse().unwrap()).await;
    p.cycle().await;
    assert_eq!(wait_cycles(&rx, 6).await, (1..=6).collect::<Vec<_>>());
    let times = cycle_times(&rx.received());
    assert!(
        times.windows(2).all(|w| w[0] < w[1]),
        "original timestamps, in order: {times:?}"
    );
    // The receiver records a request before it answers, so the ack may
    // still be on its way: wait for a round to end.
    assert!(p.settle().await);
    assert_eq!(p.exporter.queued(), (0, 0));
    assert_eq!(p.counters.dropped_batches(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_mid_run_lose_nothing_and_probe_with_the_oldest_batch_only() {
    let rx = Receiver::grpc().await;
    let p = Pipeline::new(&config(rx.endpoint()));
    for _ in 0..3 {
        p.cycle().await;
    }
    assert!(p.settle().await);
    assert_eq!(cycles(&rx.received()), [1, 2, 3]);

    // Overloaded, then down, then a bad ingestion key: all kept.
    for code in [
        Code::Unavailable,
        Code::ResourceExhausted,
        Code::Unauthenticated,
        Code::PermissionDenied,
    ] {
        rx.set_behaviour(Behaviour::Fail(code));
        for _ in 0..2 {
            p.cycle().await;
            assert!(!p.settle().await, "{code:?}");
        }
    }
    let refused = rx.refused();
    assert!(
        refused.len() >= 8,
        "one attempt per cycle: {}",
        refused.len()
    );
    assert!(
        cycles(&refused).iter().all(|&c| c == 4),
        "every attempt during the outage carries the oldest batch alone: {:?}",
        cycles(&refused)
    );
    assert_eq!(p.exporter.queued().0, 8);

    rx.set_behaviour(Behaviour::Accept);
    p.cycle().await;
    // The recovery cycle's own attempt delivers the backlog and itself.
    assert!(p.settle().await);
    assert_eq!(cycles(&rx.received()), (1..=12).collect::<Vec<_>>());
    let times = cycle_times(&rx.received());
    assert!(times.windows(2).all(|w| w[0] < w[1]), "{times:?}");
    // The set of collection timestamps seen while refusing is delivered.
    let delivered: BTreeSet<u64> = times.into_iter().collect();
    assert!(cycle_times(&refused).iter().all(|t| delivered.contains(t)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_protobuf_replays_after_503_and_401() {
    let rx = Receiver::http().await;
    let mut cfg = config(rx.endpoint());
    cfg.protocol = Protocol::HttpProtobuf;
    let p = Pipeline::new(&cfg);
    p.cycle().await;
    assert!(p.settle().await);
    for code in [Code::Unavailable, Code::Unauthenticated] {
        rx.set_behaviour(Behaviour::Fail(code));
        p.cycle().await;
        assert!(!p.settle().await, "{code:?}");
    }
    rx.set_behaviour(Behaviour::Accept);
    p.cycle().await;
    assert_eq!(wait_cycles(&rx, 4).await, [1, 2, 3, 4]);
    let last = rx.received().pop().unwrap();
    assert_eq!(last.path, "/v1/metrics");
    assert_eq!(
        last.headers.get("content-encoding").map(String::as_str),
        Some("gzip")
    );
}

/// A compressed long outage: more batches than the queue holds. Exactly
/// the oldest are dropped and counted, and the queue's own byte count
/// never exceeds the cap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_beyond_the_cap_drops_exactly_the_oldest_and_counts_them() {
    let port = free_port();
    // Measure one batch with a generous cap first, against a port no test
    // listens on: a probe queued for `port` would be delivered, too, when
    // the collector comes up there.
    let probe = Pipeline::new(&config("http://127.0.0.1:1".to_owned()));
    probe.cycle().await;
    let batch = probe.exporter.queued().1;
    assert!(batch > 0);

    const KEEP: usize = 12;
    const OUTAGE: u64 = 60;
    let mut cfg = config(format!("http://127.0.0.1:{port}"));
    // Room for KEEP batches and a bit, not KEEP + 1.
    cfg.queue_max_bytes = (KEEP * batch + batch / 2) as u64;
    let p = Pipeline::new(&cfg);
    for i in 1..=OUTAGE {
        p.cycle().await;
        let (n, bytes) = p.exporter.queued();
        assert!(bytes as u64 <= cfg.queue_max_bytes, "{bytes} bytes queued");
        assert_eq!(n, (i as usize).min(KEEP));
    }
    assert!(!p.settle().await);
    assert_eq!(p.counters.dropped_batches(), OUTAGE - KEEP as u64);

    // One more cycle while still down pushes one more of the oldest out.
    // It is queued before the collector comes back: a wake-up left over
    // from the outage may start a delivery as soon as the port answers,
    // and the queue must not change under it.
    p.cycle().await;
    let rx = Receiver::grpc_on(format!("127.0.0.1:{port}").parse().unwrap()).await;
    assert!(p.settle().await);
    let got = wait_cycles(&rx, OUTAGE + 1).await;
    let first_kept = OUTAGE + 1 - KEEP as u64 + 1;
    assert_eq!(got, (first_kept..=OUTAGE + 1).collect::<Vec<_>>());
    assert_eq!(p.counters.dropped_batches(), first_kept - 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_that_never_answers_neither_blocks_collection_nor_loses_data() {
    let rx = Receiver::grpc().await;
    let mut cfg = config(rx.endpoint());
    cfg.timeout = unamentis_agent::config::Dur(Duration::from_millis(300));
    let p = Pipeline::new(&cfg);
    rx.set_behaviour(Behaviour::Hang);
    // Each collection returns at once, although the attempt in flight
    // waits for its timeout.
    for _ in 0..4 {
        p.cycle().await;
    }
    rx.wait_refused(1, LIMIT).await;
    assert!(!p.settle().await);
    rx.set_behaviour(Behaviour::Accept);
    p.cycle().await;
    assert_eq!(wait_cycles(&rx, 5).await, [1, 2, 3, 4, 5]);
}

// ---- the real binary ----

/// `memory.total_mb` collection timestamps, one per batch, arrival order.
fn batch_times(reqs: &[Received]) -> Vec<u64> {
    reqs.iter()
        .flat_map(|r| metrics(r).into_iter())
        .filter(|m| m.name == semconv::MEMORY_TOTAL_MB.name)
        .flat_map(|m| points(m).iter().map(|p| p.time_unix_nano))
        .collect()
}

fn max_gap_ms(times: &[u64]) -> u64 {
    times
        .windows(2)
        .map(|w| w[1].saturating_sub(w[0]) / 1_000_000)
        .max()
        .unwrap_or(0)
}

async fn wait_received(rx: &Receiver, pred: impl Fn(&[Received]) -> bool) -> Vec<Received> {
    for _ in 0..3000 {
        let got = rx.received();
        if pred(&got) {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition never met after {} requests", rx.received().len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_replays_an_outage_logs_once_and_recovers() {
    let rx = Receiver::grpc().await;
    let mut agent = Agent::spawn(
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &rx.endpoint()),
            ("UNAMENTIS_AGENT_INTERVAL", "100ms"),
        ],
        &["run"],
    );
    rx.wait_for(3, LIMIT).await;
    rx.set_behaviour(Behaviour::Fail(Code::Unavailable));
    let refused = rx.wait_refused(15, LIMIT).await;
    let outage_started = batch_times(&refused)[0];
    rx.set_behaviour(Behaviour::Accept);
    let last_refused = *batch_times(&rx.refused()).iter().max().unwrap();
    let got = wait_received(&rx, |g| {
        batch_times(g)
            .iter()
            .any(|&t| t > last_refused + 300_000_000)
    })
    .await;
    agent.signal("TERM");
    assert!(agent.wait(LIMIT).success(), "{}", agent.log_text());

    let times = batch_times(&got);
    assert!(
        times.windows(2).all(|w| w[0] < w[1]),
        "oldest first, no repeat"
    );
    let delivered: BTreeSet<u64> = times.iter().copied().collect();
    assert!(delivered.contains(&outage_started));
    assert!(
        batch_times(&rx.refused())
            .iter()
            .all(|t| delivered.contains(t))
    );
    // 15 refused probes took well over a second; a lost stretch of the
    // outage would show as a gap of that size.
    assert!(
        max_gap_ms(&times) < 1000,
        "gap of {} ms",
        max_gap_ms(&times)
    );
    let log = agent.log_text();
    assert_eq!(log.matches("export failed").count(), 1, "{log}");
    assert_eq!(log.matches("export recovered").count(), 1, "{log}");
    assert!(log.contains("replayed"), "{log}");
    // Nothing was dropped, and the counter says so.
    let last = got.last().unwrap();
    assert_eq!(
        support::otlp_receiver::find_value(last, semconv::AGENT_EXPORT_DROPPED_BATCHES.name, None),
        Some(0.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_keeps_sampling_on_time_while_the_collector_hangs() {
    let rx = Receiver::grpc().await;
    rx.set_behaviour(Behaviour::Hang);
    let mut agent = Agent::spawn(
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &rx.endpoint()),
            ("UNAMENTIS_AGENT_INTERVAL", "200ms"),
            // Each attempt waits 1.5 s: a reader that waited on it would
            // collect every 1.5 s instead of every 200 ms.
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "1500"),
        ],
        &["run"],
    );
    rx.wait_refused(2, LIMIT).await;
    rx.set_behaviour(Behaviour::Accept);
    let hung = *batch_times(&rx.refused()).iter().max().unwrap();
    let got = wait_received(&rx, |g| {
        batch_times(g).iter().any(|&t| t > hung + 1_000_000_000)
    })
    .await;
    agent.signal("TERM");
    assert!(agent.wait(LIMIT).success(), "{}", agent.log_text());
    let times = batch_times(&got);
    assert!(times.len() >= 10, "{}", times.len());
    assert!(times.windows(2).all(|w| w[0] < w[1]));
    // Collection times stay an interval apart (a loose bound against a
    // noisy machine; a blocked reader gives 1500 ms).
    assert!(
        max_gap_ms(&times) < 1000,
        "gap of {} ms",
        max_gap_ms(&times)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_reports_dropped_batches_beyond_the_cap() {
    let rx = Receiver::grpc().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("agent.toml");
    // A few batches' worth (one is about 4 KB here).
    std::fs::write(&file, "[export]\nqueue_max_bytes = 20000\n").unwrap();
    let mut agent = Agent::spawn(
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &rx.endpoint()),
            ("UNAMENTIS_AGENT_INTERVAL", "100ms"),
            ("UNAMENTIS_AGENT_CONFIG", &file.display().to_string()),
        ],
        &["run"],
    );
    rx.set_behaviour(Behaviour::Fail(Code::Unavailable));
    let refused = rx.wait_refused(20, LIMIT).await;
    rx.set_behaviour(Behaviour::Accept);
    let got = rx.wait_for(1, LIMIT).await;
    let got = wait_received(&rx, |g| g.len() > got.len() + 3).await;
    agent.signal("TERM");
    assert!(agent.wait(LIMIT).success(), "{}", agent.log_text());

    let dropped: Vec<f64> = got
        .iter()
        .filter_map(|r| {
            support::otlp_receiver::find_value(r, semconv::AGENT_EXPORT_DROPPED_BATCHES.name, None)
        })
        .collect();
    assert!(
        dropped.windows(2).all(|w| w[0] <= w[1]),
        "a counter: {dropped:?}"
    );
    assert!(*dropped.last().unwrap() > 0.0, "{dropped:?}");
    // The oldest went: the first batch of the outage (the first probe)
    // never arrives.
    let first_probe = batch_times(&refused)[0];
    assert!(!batch_times(&got).contains(&first_probe));
    assert!(agent.log_text().contains("dropped"), "{}", agent.log_text());
}

/// Runs the binary against `endpoint` until a delivery attempt has failed,
/// stops it, and returns its log (the shutdown flush fails the same way).
async fn shutdown_log(env: &[(&str, &str)]) -> String {
    let mut agent = Agent::spawn(env, &["run"]);
    agent.wait_for_log("export failed", LIMIT).await;
    agent.signal("TERM");
    assert!(agent.wait(LIMIT).success(), "{}", agent.log_text());
    agent.log_text()
}

fn shutdown_line(log: &str) -> &str {
    log.lines()
        .find(|l| l.contains("at shutdown"))
        .unwrap_or_else(|| panic!("no shutdown warning: {log}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_says_refused_at_shutdown_when_the_collector_refuses() {
    // gRPC INVALID_ARGUMENT, then OTLP/HTTP 401: both are answers.
    let rx = Receiver::grpc().await;
    rx.set_behaviour(Behaviour::Fail(Code::InvalidArgument));
    let log = shutdown_log(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &rx.endpoint()),
        ("UNAMENTIS_AGENT_INTERVAL", "100ms"),
    ])
    .await;
    let line = shutdown_line(&log);
    assert!(line.contains("collector refused"), "{line}");
    assert!(line.contains("InvalidArgument"), "the reason: {line}");
    assert!(!log.contains("unreachable"), "{log}");
    assert!(!rx.refused().is_empty());

    let rx = Receiver::http().await;
    rx.set_behaviour(Behaviour::Fail(Code::Unauthenticated));
    let log = shutdown_log(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &rx.endpoint()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ("UNAMENTIS_AGENT_INTERVAL", "100ms"),
    ])
    .await;
    let line = shutdown_line(&log);
    assert!(line.contains("collector refused"), "{line}");
    assert!(line.contains("HTTP 401"), "the reason: {line}");
    assert!(!log.contains("unreachable"), "{log}");
}

/// UNAVAILABLE sent by the collector is an answer: neither a refusal nor
/// "unreachable" (tonic gives a failed connection the same code).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_says_neither_when_the_collector_answers_unavailable() {
    let rx = Receiver::grpc().await;
    rx.set_behaviour(Behaviour::Fail(Code::Unavailable));
    let log = shutdown_log(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &rx.endpoint()),
        ("UNAMENTIS_AGENT_INTERVAL", "100ms"),
    ])
    .await;
    let line = shutdown_line(&log);
    assert!(line.contains("could not take"), "{line}");
    assert!(line.contains("Unavailable"), "the reason: {line}");
    assert!(!log.contains("unreachable"), "{log}");
    assert!(!line.contains("collector refused"), "{line}");
    assert!(!log.contains("refuses the data"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_says_unreachable_at_shutdown_only_when_nothing_answers() {
    let endpoint = format!("http://127.0.0.1:{}", free_port());
    let log = shutdown_log(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
        ("UNAMENTIS_AGENT_INTERVAL", "100ms"),
    ])
    .await;
    let line = shutdown_line(&log);
    assert!(line.contains("collector unreachable"), "{line}");
    assert!(
        line.to_lowercase().contains("connection refused"),
        "the reason: {line}"
    );
    assert!(!log.contains("refuse the data"), "{log}");
    assert!(!line.contains("collector refused"), "{line}");
}

/// A collector that takes the request and never answers: the final
/// attempt is still waiting at the shutdown deadline, which is no answer
/// ("unreachable"), whatever an earlier attempt got.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_says_unreachable_at_shutdown_when_the_collector_never_answers() {
    let rx = Receiver::grpc().await;
    rx.set_behaviour(Behaviour::Hang);
    let mut agent = Agent::spawn(
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &rx.endpoint()),
            ("UNAMENTIS_AGENT_INTERVAL", "100ms"),
            // Longer than the shutdown's wait: the attempt is in flight.
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "30000"),
        ],
        &["run"],
    );
    rx.wait_refused(1, LIMIT).await;
    agent.signal("TERM");
    assert!(agent.wait(LIMIT).success(), "{}", agent.log_text());
    let log = agent.log_text();
    let line = shutdown_line(&log);
    assert!(line.contains("collector unreachable"), "{line}");
    assert!(line.contains("no answer"), "{line}");
}
