//! The real binary against real OTLP receivers.

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::number_data_point;
use support::agent::Agent;
use support::otlp_receiver::{Receiver, find_value, metrics, points, resource_attrs};
use unamentis_agent::semconv;

/// Guards against hangs only; nothing asserts on elapsed time.
const LIMIT: Duration = Duration::from_secs(30);

fn mem_total_mib() -> f64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kib: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib / 1024.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_export_is_early_complete_and_sigterm_flushes_the_last() {
    let rx = Receiver::grpc().await;
    // A 60 s interval: the first export can only come from the early flush,
    // and the second only from the shutdown flush.
    let mut agent = Agent::spawn(
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &rx.endpoint()),
            ("UNAMENTIS_AGENT_INTERVAL", "60s"),
        ],
        &["run"],
    );
    let first = rx.wait_for(1, LIMIT).await.remove(0);

    let res = resource_attrs(&first);
    assert_eq!(
        res.get("service.name").map(String::as_str),
        Some("unamentis-agent")
    );
    assert_eq!(
        res.get("service.version").map(String::as_str),
        Some(env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(res.get("os.type").map(String::as_str), Some("linux"));
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(
        res.get("host.name").map(String::as_str),
        Some(hostname.trim())
    );
    assert!(res.contains_key("service.instance.id"), "{res:?}");
    assert_eq!(
        first.headers.get("grpc-encoding").map(String::as_str),
        Some("gzip"),
        "gzip by default"
    );

    for m in metrics(&first) {
        let def = semconv::ALL
            .iter()
            .find(|d| d.name == m.name)
            .unwrap_or_else(|| panic!("{} is not in the registry", m.name));
        assert_eq!(m.unit, def.unit, "{}", m.name);
        // Off the wire by default (export.descriptions).
        assert_eq!(m.description, "", "{}", m.name);
        match (&m.data, def.instrument) {
            (Some(Data::Gauge(_)), semconv::Instrument::Gauge) => {}
            (Some(Data::Sum(s)), semconv::Instrument::Counter) => {
                assert!(s.is_monotonic, "{}", m.name)
            }
            (Some(Data::Sum(s)), semconv::Instrument::UpDownCounter) => {
                assert!(!s.is_monotonic, "{}", m.name)
            }
            (data, kind) => panic!(
                "{} is a {kind:?} in the registry but arrived as {data:?}",
                m.name
            ),
        }
        for p in points(m) {
            let int = matches!(p.value, Some(number_data_point::Value::AsInt(_)));
            assert_eq!(
                int,
                def.value_type == semconv::ValueType::Int,
                "{}: value type on the wire",
                m.name
            );
        }
    }
    let pct = find_value(&first, "unamentis.server.cpu.percent", None).expect("cpu.percent");
    assert!((0.0..=100.0).contains(&pct), "{pct}");
    let total = find_value(&first, "unamentis.server.memory.total_mb", None).unwrap();
    assert!(
        (total - mem_total_mib()).abs() < 1e-6,
        "{total} vs /proc/meminfo {}",
        mem_total_mib()
    );
    let used = find_value(&first, "unamentis.server.memory.used_mb", None).unwrap();
    assert!(used > 0.0 && used < total);
    for period in ["1m", "5m", "15m"] {
        assert!(
            find_value(
                &first,
                "unamentis.server.cpu.load_average",
                Some(("period", period))
            )
            .is_some()
        );
    }
    assert_eq!(
        find_value(
            &first,
            "unamentis.server.agent.source.up",
            Some(("source", "cpu"))
        ),
        Some(1.0)
    );

    agent.signal("TERM");
    let got = rx.wait_for(2, LIMIT).await;
    assert!(
        agent.wait(LIMIT).success(),
        "exit status; log:\n{}",
        agent.log_text()
    );
    assert_eq!(got.len(), 2, "exactly the early and the final export");
    assert!(find_value(&got[1], "unamentis.server.memory.total_mb", None).is_some());

    // Cumulative from one start: every point of both exports carries the
    // same start time, before its own collection time, and the final
    // export was collected after the first.
    let times = |r: &support::otlp_receiver::Received| -> Vec<(u64, u64)> {
        metrics(r)
            .into_iter()
            .flat_map(points)
            .map(|p| (p.start_time_unix_nano, p.time_unix_nano))
            .collect()
    };
    let (first_times, last_times) = (times(&got[0]), times(&got[1]));
    let start = first_times[0].0;
    assert!(start > 0);
    for (s, t) in first_times.iter().chain(&last_times) {
        assert_eq!(*s, start, "one start time for every point");
        assert!(*t > start, "collected after the start: {t} vs {start}");
    }
    let first_at = first_times.iter().map(|p| p.1).max().unwrap();
    assert!(last_times.iter().all(|p| p.1 > first_at));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_flushes_too() {
    let rx = Receiver::grpc().await;
    let mut agent = Agent::spawn(
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &rx.endpoint()),
            ("UNAMENTIS_AGENT_INTERVAL", "60s"),
        ],
        &["run"],
    );
    rx.wait_for(1, LIMIT).await;
    agent.signal("INT");
    rx.wait_for(2, LIMIT).await;
    assert!(agent.wait(LIMIT).success(), "{}", agent.log_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keeps_running_and_delivers_when_the_receiver_starts_late() {
    // Reserve a port, free it, and point the agent at it before anything
    // listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let interval = Duration::from_secs(1);
    let mut agent = Agent::spawn(
        &[
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                &format!("http://127.0.0.1:{port}"),
            ),
            ("UNAMENTIS_AGENT_INTERVAL", "1s"),
        ],
        &["run"],
    );
    // Let the early export and at least one periodic export fail.
    tokio::time::sleep(2 * interval + Duration::from_millis(500)).await;
    assert!(
        agent.child.try_wait().unwrap().is_none(),
        "agent died: {}",
        agent.log_text()
    );
    assert!(
        agent.log_text().contains("export failed"),
        "log:\n{}",
        agent.log_text()
    );

    let started = SystemTime::now();
    let rx = Receiver::grpc_on(format!("127.0.0.1:{port}").parse().unwrap()).await;
    let first = rx.wait_for(1, LIMIT).await.remove(0);
    // The batch's own collection time, not the arrival time, is compared:
    // it was collected within two intervals of the receiver coming up.
    let collected = metrics(&first)
        .iter()
        .flat_map(|m| support::otlp_receiver::points(m))
        .map(|p| p.time_unix_nano)
        .max()
        .unwrap();
    let started_ns = started.duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64;
    assert!(
        collected <= started_ns + 2 * interval.as_nanos() as u64,
        "first delivered batch was collected {} ms after the receiver started",
        (collected.saturating_sub(started_ns)) / 1_000_000
    );
    agent.signal("TERM");
    assert!(agent.wait(LIMIT).success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_protobuf_posts_to_v1_metrics() {
    let rx = Receiver::http().await;
    let mut agent = Agent::spawn(
        &[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &rx.endpoint()),
            ("UNAMENTIS_AGENT_INTERVAL", "60s"),
        ],
        &["run"],
    );
    let first = rx.wait_for(1, LIMIT).await.remove(0);
    assert_eq!(first.path, "/v1/metrics");
    assert_eq!(
        first.headers.get("content-type").map(String::as_str),
        Some("application/x-protobuf")
    );
    assert_eq!(
        first.headers.get("content-encoding").map(String::as_str),
        Some("gzip")
    );
    let total = find_value(&first, "unamentis.server.memory.total_mb", None).unwrap();
    assert!((total - mem_total_mib()).abs() < 1e-6);
    agent.signal("TERM");
    rx.wait_for(2, LIMIT).await;
    assert!(agent.wait(LIMIT).success(), "{}", agent.log_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signal_specific_metrics_endpoint_is_used_as_is() {
    let rx = Receiver::http().await;
    let mut agent = Agent::spawn(
        &[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            // The generic endpoint leads nowhere; the metrics one wins.
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9"),
            (
                "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
                &format!("{}/custom/ingest", rx.endpoint()),
            ),
            ("UNAMENTIS_AGENT_INTERVAL", "60s"),
        ],
        &["run"],
    );
    let first = rx.wait_for(1, LIMIT).await.remove(0);
    assert_eq!(first.path, "/custom/ingest");
    agent.signal("TERM");
    assert!(agent.wait(LIMIT).success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otel_environment_shapes_resource_headers_and_compression() {
    let rx = Receiver::grpc().await;
    let mut agent = Agent::spawn(
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &rx.endpoint()),
            ("OTEL_SERVICE_NAME", "edge-agent"),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "deployment.environment=lab,team=ml%20ops,service.name=ignored",
            ),
            ("OTEL_EXPORTER_OTLP_HEADERS", "signoz-ingestion-key=s3cr3t"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "none"),
            ("K8S_NODE_NAME", "node-7"),
            ("UNAMENTIS_AGENT_INTERVAL", "60s"),
        ],
        &["run"],
    );
    let first = rx.wait_for(1, LIMIT).await.remove(0);
    let res = resource_attrs(&first);
    assert_eq!(
        res.get("service.name").map(String::as_str),
        Some("edge-agent"),
        "OTEL_SERVICE_NAME wins"
    );
    assert_eq!(
        res.get("deployment.environment").map(String::as_str),
        Some("lab")
    );
    assert_eq!(
        res.get("team").map(String::as_str),
        Some("ml ops"),
        "percent-decoded"
    );
    assert_eq!(res.get("k8s.node.name").map(String::as_str), Some("node-7"));
    assert_eq!(
        first
            .headers
            .get("signoz-ingestion-key")
            .map(String::as_str),
        Some("s3cr3t")
    );
    assert_eq!(first.headers.get("grpc-encoding"), None, "compression none");
    agent.signal("TERM");
    assert!(agent.wait(LIMIT).success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otel_sdk_disabled_sends_nothing() {
    let rx = Receiver::grpc().await;
    let mut agent = Agent::spawn(
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &rx.endpoint()),
            ("OTEL_SDK_DISABLED", "true"),
            ("UNAMENTIS_AGENT_INTERVAL", "200ms"),
        ],
        &["run"],
    );
    // Wait until the agent has said it is disabled, then several intervals.
    agent
        .wait_for_log("export disabled", Duration::from_secs(5))
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    agent.signal("TERM");
    assert!(agent.wait(LIMIT).success());
    assert!(
        rx.received().is_empty(),
        "OTEL_SDK_DISABLED=true must send nothing"
    );
}

/// A CA and a `localhost` server certificate it signed, as PEM.
fn test_pki() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "unamentis test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    (ca.pem(), cert.pem(), key.serialize_pem())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_collector_is_trusted_through_otel_exporter_otlp_certificate() {
    let (ca_pem, cert_pem, key_pem) = test_pki();
    let rx = Receiver::grpc_tls(&cert_pem, &key_pem).await;
    let ca = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(ca.path(), ca_pem).unwrap();
    let endpoint = format!("https://localhost:{}", rx.addr.port());

    // Without the CA the server's certificate is not trusted: nothing lands.
    let mut untrusted = Agent::spawn(
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("UNAMENTIS_AGENT_INTERVAL", "60s"),
        ],
        &["run"],
    );
    untrusted
        .wait_for_log("export failed", Duration::from_secs(10))
        .await;
    untrusted.signal("TERM");
    untrusted.wait(LIMIT);
    assert!(rx.received().is_empty());

    let mut agent = Agent::spawn(
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            (
                "OTEL_EXPORTER_OTLP_CERTIFICATE",
                &ca.path().display().to_string(),
            ),
            ("UNAMENTIS_AGENT_INTERVAL", "60s"),
        ],
        &["run"],
    );
    let first = rx.wait_for(1, LIMIT).await.remove(0);
    assert!(find_value(&first, "unamentis.server.memory.total_mb", None).is_some());
    agent.signal("TERM");
    assert!(agent.wait(LIMIT).success(), "{}", agent.log_text());
}

#[test]
fn snapshot_json_prints_real_host_values_without_a_collector() {
    let v = support::snapshot_json::run(support::agent::command().args(["snapshot", "--json"]));
    let metrics = support::snapshot_json::metrics(&v);
    let get = |name: &str| {
        support::snapshot_json::values(&v, name, &[])
            .first()
            .copied()
    };
    assert!((get("unamentis.server.memory.total_mb").unwrap() - mem_total_mib()).abs() < 1e-6);
    let pct = get("unamentis.server.cpu.percent").unwrap();
    assert!((0.0..=100.0).contains(&pct));
    for m in metrics {
        let def = semconv::ALL
            .iter()
            .find(|d| d.name == m["name"])
            .expect("registered");
        assert_eq!(m["unit"], def.unit);
    }
    assert_eq!(v["resource"]["service.name"], "unamentis-agent");
    // The human table has the same metrics.
    let out = support::agent::command().arg("snapshot").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.lines()
            .any(|l| l.starts_with("unamentis.server.memory.total_mb")),
        "{text}"
    );
}
