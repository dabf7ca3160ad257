//! In-process OTLP receivers that record every export request.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::metrics::v1::{Metric, NumberDataPoint, metric, number_data_point};
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{Notify, oneshot};
use tonic::codec::CompressionEncoding;

#[derive(Clone, Debug)]
pub struct Received {
    pub at: Instant,
    pub at_wall: SystemTime,
    pub request: ExportMetricsServiceRequest,
    /// gRPC metadata or HTTP headers, lower-case keys.
    pub headers: BTreeMap<String, String>,
    /// HTTP path (empty for gRPC).
    pub path: String,
}

/// How the receiver answers, to test the agent against a collector that
/// misbehaves. Requests it does not accept are recorded apart.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Behaviour {
    #[default]
    Accept,
    /// Answer with this gRPC status (OTLP/HTTP: its HTTP equivalent,
    /// UNAVAILABLE 503, RESOURCE_EXHAUSTED 429, UNAUTHENTICATED 401,
    /// PERMISSION_DENIED 403, anything else 400).
    Fail(tonic::Code),
    /// Read the request and never answer.
    Hang,
}

fn http_status(code: tonic::Code) -> u16 {
    match code {
        tonic::Code::Unavailable => 503,
        tonic::Code::ResourceExhausted => 429,
        tonic::Code::Unauthenticated => 401,
        tonic::Code::PermissionDenied => 403,
        _ => 400,
    }
}

#[derive(Default)]
struct Store {
    received: Mutex<Vec<Received>>,
    /// Requests answered with an error or never answered.
    refused: Mutex<Vec<Received>>,
    behaviour: Mutex<Behaviour>,
    notify: Notify,
}

impl Store {
    /// Records a request as the current behaviour says and returns it.
    fn take(&self, r: Received) -> Behaviour {
        let b = *self.behaviour.lock().unwrap();
        if b == Behaviour::Accept {
            self.received.lock().unwrap().push(r);
        } else {
            self.refused.lock().unwrap().push(r);
        }
        self.notify.notify_waiters();
        b
    }
}

/// A running receiver; stops when dropped.
pub struct Receiver {
    pub addr: SocketAddr,
    store: Arc<Store>,
    _stop: oneshot::Sender<()>,
}

struct Service(Arc<Store>);

#[tonic::async_trait]
impl MetricsService for Service {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        let headers = request
            .metadata()
            .clone()
            .into_headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        let b = self.0.take(Received {
            at: Instant::now(),
            at_wall: SystemTime::now(),
            request: request.into_inner(),
            headers,
            path: String::new(),
        });
        match b {
            Behaviour::Accept => Ok(tonic::Response::new(ExportMetricsServiceResponse {
                partial_success: None,
            })),
            Behaviour::Fail(code) => Err(tonic::Status::new(code, "test receiver refuses")),
            Behaviour::Hang => std::future::pending().await,
        }
    }
}

impl Receiver {
    /// An OTLP/gRPC receiver on a free loopback port.
    pub async fn grpc() -> Self {
        Self::grpc_on("127.0.0.1:0".parse().unwrap()).await
    }

    pub async fn grpc_on(addr: SocketAddr) -> Self {
        Self::grpc_with(addr, None).await
    }

    /// An OTLP/gRPC receiver over TLS with the given PEM certificate chain
    /// and key.
    pub async fn grpc_tls(cert_pem: &str, key_pem: &str) -> Self {
        let identity = tonic::transport::Identity::from_pem(cert_pem, key_pem);
        Self::grpc_with("127.0.0.1:0".parse().unwrap(), Some(identity)).await
    }

    async fn grpc_with(addr: SocketAddr, tls: Option<tonic::transport::Identity>) -> Self {
        let listener = TcpListener::bind(addr).await.expect("bind receiver");
        let addr = listener.local_addr().unwrap();
        let store = Arc::new(Store::default());
        let (stop, stopped) = oneshot::channel::<()>();
        let svc = MetricsServiceServer::new(Service(store.clone()))
            // Without this, gzip requests are rejected.
            .accept_compressed(CompressionEncoding::Gzip);
        let mut builder = tonic::transport::Server::builder();
        if let Some(identity) = tls {
            builder = builder
                .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))
                .expect("server TLS config");
        }
        tokio::spawn(async move {
            builder
                .add_service(svc)
                .serve_with_incoming_shutdown(
                    tokio_stream::wrappers::TcpListenerStream::new(listener),
                    async {
                        let _ = stopped.await;
                    },
                )
                .await
                .expect("receiver server");
        });
        Receiver {
            addr,
            store,
            _stop: stop,
        }
    }

    /// An OTLP/HTTP (protobuf) receiver: a minimal HTTP/1.1 server that
    /// decodes POST bodies (gzip or not) and answers 200.
    pub async fn http() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind receiver");
        let addr = listener.local_addr().unwrap();
        let store = Arc::new(Store::default());
        let (stop, mut stopped) = oneshot::channel::<()>();
        let st = store.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = &mut stopped => return,
                    conn = listener.accept() => {
                        let Ok((sock, _)) = conn else { return };
                        tokio::spawn(serve_http(sock, st.clone()));
                    }
                }
            }
        });
        Receiver {
            addr,
            store,
            _stop: stop,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn received(&self) -> Vec<Received> {
        self.store.received.lock().unwrap().clone()
    }

    /// Requests answered with an error or left hanging.
    pub fn refused(&self) -> Vec<Received> {
        self.store.refused.lock().unwrap().clone()
    }

    pub fn set_behaviour(&self, b: Behaviour) {
        *self.store.behaviour.lock().unwrap() = b;
    }

    /// Waits until at least `n` requests were refused (safety limit only).
    pub async fn wait_refused(&self, n: usize, limit: Duration) -> Vec<Received> {
        self.wait_until(n, limit, Self::refused, "refused").await
    }

    /// Waits until at least `n` requests arrived, or `limit` passed (a
    /// safety net against hanging, not a performance assertion).
    pub async fn wait_for(&self, n: usize, limit: Duration) -> Vec<Received> {
        self.wait_until(n, limit, Self::received, "export(s)").await
    }

    async fn wait_until(
        &self,
        n: usize,
        limit: Duration,
        list: fn(&Self) -> Vec<Received>,
        what: &str,
    ) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.store.notify.notified();
            let got = list(self);
            if got.len() >= n || tokio::time::timeout_at(deadline, notified).await.is_err() {
                let got = list(self);
                assert!(
                    got.len() >= n,
                    "waited {limit:?} for {n} {what}, got {}",
                    got.len()
                );
                return got;
            }
        }
    }
}

async fn serve_http(mut sock: tokio::net::TcpStream, store: Arc<Store>) {
    let mut buf = Vec::new();
    loop {
        // Read until the end of the headers.
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            match sock.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let mut lines = head.lines();
        let request_line = lines.next().unwrap_or("");
        let path = request_line.split(' ').nth(1).unwrap_or("").to_owned();
        let headers: BTreeMap<String, String> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let len: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + len {
            let mut chunk = [0u8; 8192];
            match sock.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body: Vec<u8> = buf[head_end..head_end + len].to_vec();
        buf.drain(..head_end + len);
        let body = if headers.get("content-encoding").map(String::as_str) == Some("gzip") {
            let mut out = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&body[..]), &mut out)
                .expect("gunzip body");
            out
        } else {
            body
        };
        let request = ExportMetricsServiceRequest::decode(&body[..]).expect("protobuf body");
        let b = store.take(Received {
            at: Instant::now(),
            at_wall: SystemTime::now(),
            request,
            headers,
            path,
        });
        let status = match b {
            Behaviour::Accept => "200 OK".to_owned(),
            Behaviour::Fail(code) => format!("{} Refused", http_status(code)),
            Behaviour::Hang => return std::future::pending().await,
        };
        let reply = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n"
        );
        if sock.write_all(reply.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// Helpers to read a request.
pub fn resource_attrs(r: &Received) -> BTreeMap<String, String> {
    r.request
        .resource_metrics
        .iter()
        .filter_map(|rm| rm.resource.as_ref())
        .flat_map(|res| res.attributes.iter())
        .map(|kv| {
            let v = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(AnyValue::StringValue(s)) => s.clone(),
                Some(AnyValue::IntValue(i)) => i.to_string(),
                Some(AnyValue::BoolValue(b)) => b.to_string(),
                Some(AnyValue::DoubleValue(d)) => d.to_string(),
                other => format!("{other:?}"),
            };
            (kv.key.clone(), v)
        })
        .collect()
}

pub fn metrics(r: &Received) -> Vec<&Metric> {
    r.request
        .resource_metrics
        .iter()
        .flat_map(|rm| rm.scope_metrics.iter())
        .flat_map(|sm| sm.metrics.iter())
        .collect()
}

pub fn points(m: &Metric) -> &[NumberDataPoint] {
    match &m.data {
        Some(metric::Data::Gauge(g)) => &g.data_points,
        Some(metric::Data::Sum(s)) => &s.data_points,
        _ => &[],
    }
}

pub fn value(p: &NumberDataPoint) -> f64 {
    match p.value {
        Some(number_data_point::Value::AsDouble(d)) => d,
        Some(number_data_point::Value::AsInt(i)) => i as f64,
        None => f64::NAN,
    }
}

pub fn attr(p: &NumberDataPoint, key: &str) -> Option<String> {
    p.attributes.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            AnyValue::StringValue(s) => Some(s.clone()),
            AnyValue::IntValue(i) => Some(i.to_string()),
            _ => None,
        }
    })
}

/// The single point of `name` (optionally with attribute key=value).
pub fn find_value(r: &Received, name: &str, with: Option<(&str, &str)>) -> Option<f64> {
    metrics(r)
        .into_iter()
        .filter(|m| m.name == name)
        .flat_map(|m| points(m).iter())
        .find(|p| with.is_none_or(|(k, v)| attr(p, k).as_deref() == Some(v)))
        .map(value)
}
