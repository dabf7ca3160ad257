//! What the exporter puts on the wire: the queued request bytes reach the
//! collector unchanged, over gRPC and OTLP/HTTP, gzip or not. The ground
//! truth is the encoded requests the test queues itself; the receivers are
//! real ones (tonic's gRPC server with its gzip, an HTTP server that
//! gunzips with flate2), so a codec or framing mistake fails to decode or
//! decodes to something else.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use support::otlp_receiver::Receiver;
use unamentis_agent::config::{Compression, ExportConfig, Protocol};
use unamentis_agent::families::agent::ExportCounters;
use unamentis_agent::telemetry;

const LIMIT: Duration = Duration::from_secs(30);

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

/// One encoded request of `points` gauge points with distinct values and
/// attributes; large enough that gzip output spans several buffers.
fn request(host: &str, points: u64) -> Vec<u8> {
    let data_points = (0..points)
        .map(|i| NumberDataPoint {
            attributes: vec![kv("process.pid", &i.to_string()), kv("service", host)],
            time_unix_nano: 1_700_000_000_000_000_000 + i,
            value: Some(number_data_point::Value::AsDouble(i as f64 * 0.37)),
            ..Default::default()
        })
        .collect();
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![kv("host.name", host)],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: "wire.test".into(),
                    unit: "1".into(),
                    data: Some(metric::Data::Gauge(Gauge { data_points })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

/// Queues two requests, flushes, and returns what the receiver decoded
/// (one request or two, as the sender task happened to find the queue)
/// together with the bytes queued.
async fn send_two(
    rx: &Receiver,
    protocol: Protocol,
    compression: Compression,
) -> (Vec<support::otlp_receiver::Received>, Vec<u8>) {
    let cfg = ExportConfig {
        endpoint: Some(rx.endpoint()),
        protocol,
        compression,
        headers: BTreeMap::from([("x-wire-test".to_owned(), "yes".to_owned())]),
        timeout: unamentis_agent::config::Dur(Duration::from_secs(10)),
        ..ExportConfig::default()
    };
    let exporter = telemetry::build_exporter(&cfg, ExportCounters::default()).unwrap();
    // ~100 KB and ~1 KB; sent together, the request is the concatenation
    // of the two encodings.
    let (a, b) = (request("a", 2000), request("b", 20));
    let queued = [a.clone(), b.clone()].concat();
    let e = exporter.clone();
    let delivered = tokio::task::spawn_blocking(move || {
        e.enqueue(a);
        e.enqueue(b);
        e.flush(LIMIT)
    })
    .await
    .unwrap();
    assert!(delivered, "{protocol:?} {compression:?}: the queue emptied");
    // The receiver records a request before answering it: once the queue
    // is empty, every request is recorded.
    (rx.received(), queued)
}

/// What the receiver got, as bytes queued: prost's encoding is canonical,
/// so re-encoding the decoded request gives back exactly what was sent.
fn arrived(got: &[support::otlp_receiver::Received]) -> Vec<u8> {
    got.iter().flat_map(|r| r.request.encode_to_vec()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_delivers_the_queued_bytes_unchanged_gzip_or_not() {
    for compression in [Compression::Gzip, Compression::None] {
        let rx = Receiver::grpc().await;
        let (got, queued) = send_two(&rx, Protocol::Grpc, compression).await;
        assert_eq!(arrived(&got).len(), queued.len(), "{compression:?}");
        assert!(arrived(&got) == queued, "{compression:?}: content differs");
        let h = &got[0].headers;
        assert_eq!(h.get("x-wire-test").map(String::as_str), Some("yes"));
        let gzip = (compression == Compression::Gzip).then_some("gzip");
        assert_eq!(
            h.get("grpc-encoding").map(String::as_str),
            gzip,
            "{compression:?}: {h:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_delivers_the_queued_bytes_unchanged_gzip_or_not() {
    for compression in [Compression::Gzip, Compression::None] {
        let rx = Receiver::http().await;
        let (got, queued) = send_two(&rx, Protocol::HttpProtobuf, compression).await;
        assert_eq!(arrived(&got).len(), queued.len(), "{compression:?}");
        assert!(arrived(&got) == queued, "{compression:?}: content differs");
        let h = &got[0].headers;
        assert_eq!(h.get("x-wire-test").map(String::as_str), Some("yes"));
        let gzip = (compression == Compression::Gzip).then_some("gzip");
        assert_eq!(h.get("content-encoding").map(String::as_str), gzip);
    }
}
