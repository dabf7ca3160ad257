//! The local HTTP server, on the agent's current-thread runtime (no thread
//! of its own): `GET /healthz`, `GET /readyz`, `GET /v1/snapshot`,
//! `GET /metrics` (Prometheus) and `POST /v1/activity` (the push probe).
//!
//! With `server.token` set, every request except `GET /healthz` and
//! `GET /readyz` needs `Authorization: Bearer <token>`, unknown paths
//! included (a 404 would tell a prober which routes exist); the health
//! endpoints answer nothing about the host, so the kubelet's probes need no
//! secret. The token is read from the header only, never from the query
//! string (URLs end up in proxy and shell logs). Handlers only take short
//! locks: the snapshot is the one the last cycle stored, never a new
//! sample, and `/metrics` renders the points the export read from it, once
//! per scrape.
//!
//! The accept loop is the server's own (see [`Limits`]): idle, slow or
//! stuck clients can neither take all of the agent's file descriptors nor
//! keep a health probe from being answered.

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hyper::server::conn::http1;
use hyper::service::{Service as _, service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use serde::Deserialize;
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

use crate::activity::{Activity, Kind, Probe};
use crate::prometheus::{self, Format};
use crate::snapshot::{AttrValue, CycleSampler, Point};

/// Larger push bodies are refused with 413: a push is a few dozen bytes.
pub const MAX_BODY: usize = 4096;
/// The most events one push may report.
pub const MAX_COUNT: u64 = 1_000_000;

/// What one client may hold of the server. The clients are a few local
/// services, dashboards and probes; these bounds only bite on a client that
/// misbehaves.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Open connections at most. A new connection beyond it closes the
    /// oldest one: the oldest is the likeliest idle or stuck, the newest
    /// the likeliest live (a health probe), and the descriptors the agent
    /// needs to read /proc stay free.
    pub max_connections: usize,
    /// Time to send a whole request head, from the connection's start or
    /// from the previous answer on a kept-alive one (idle sockets,
    /// slowloris).
    pub header_read: Duration,
    /// Time from the head to the answer: reading the body and handling it
    /// (a body sent slowly or never gets 408).
    pub request: Duration,
    /// Age at which a connection is closed after its current request; one
    /// whose client never reads its answer is dropped `request` later.
    pub max_age: Duration,
}

pub const LIMITS: Limits = Limits {
    max_connections: 64,
    header_read: Duration::from_secs(5),
    request: Duration::from_secs(10),
    max_age: Duration::from_secs(60),
};

/// Pause after an accept error such as EMFILE: the connection stays queued,
/// so accepting again at once would spin.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);
/// Read buffer per connection (hyper's smallest): heads and bodies are small.
const MAX_BUF: usize = 8192;

pub struct ServerState {
    pub cycle: CycleSampler,
    pub activity: Activity,
    pub token: Option<String>,
    /// `[activity] push`: `/v1/activity` answers 404 when off.
    pub push: bool,
    /// The OpenTelemetry resource, shown with the snapshot.
    pub resource: BTreeMap<String, String>,
}

/// Paths served without the token: they say only "the process runs" and
/// "a sample succeeded".
const OPEN_PATHS: [&str; 2] = ["/healthz", "/readyz"];

pub fn router(state: Arc<ServerState>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/v1/snapshot", get(snapshot))
        .route("/metrics", get(metrics))
        .route("/v1/activity", post(activity))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such endpoint") })
        // Added after the routes and the fallback so that it wraps them all,
        // and before the body is read: an unauthenticated client learns
        // nothing from 413 or 400.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_token,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

async fn require_token(
    State(st): State<Arc<ServerState>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if !OPEN_PATHS.contains(&req.uri().path())
        && let Some(denied) = check_token(&st, req.headers())
    {
        return denied;
    }
    next.run(req).await
}

/// Binds `listen` and serves on the current runtime until it stops. A
/// failed bind is logged, not fatal: metrics still flow without the server.
pub async fn spawn(listen: &str, state: Arc<ServerState>) -> Option<SocketAddr> {
    spawn_with(listen, state, LIMITS).await
}

/// [`spawn`] with other limits (tests use short ones).
pub async fn spawn_with(
    listen: &str,
    state: Arc<ServerState>,
    limits: Limits,
) -> Option<SocketAddr> {
    let listener = match TcpListener::bind(listen).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(
                "local server: cannot listen on {listen}: {e}; /v1/activity and the health endpoints are off"
            );
            return None;
        }
    };
    let addr = listener.local_addr().ok();
    if let Some(addr) = addr {
        tracing::info!(%addr, "local server listening");
    }
    tokio::spawn(serve(listener, router(state), limits));
    addr
}

async fn serve(listener: TcpListener, app: Router, limits: Limits) {
    // One sender per open connection, oldest first; dropping it closes the
    // connection, and a closed one means its connection is over.
    let mut open: VecDeque<oneshot::Sender<()>> = VecDeque::new();
    let (mut failing, mut warned_cap) = (false, false);
    loop {
        let stream = match listener.accept().await {
            Ok((stream, peer)) => {
                if crate::activity::connections::canonical(peer.ip()).is_loopback() {
                    crate::counters::LOOPBACK_ACCEPTED
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                stream
            }
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                if !failing {
                    tracing::warn!(
                        "local server: cannot accept a connection: {e}; retrying every {ACCEPT_RETRY:?}"
                    );
                    failing = true;
                }
                tokio::time::sleep(ACCEPT_RETRY).await;
                continue;
            }
        };
        if std::mem::take(&mut failing) {
            tracing::info!("local server: accepting connections again");
        }
        open.retain(|c| !c.is_closed());
        if open.len() >= limits.max_connections {
            if !std::mem::replace(&mut warned_cap, true) {
                tracing::warn!(
                    "local server: {} connections open, closing the oldest for each new one (logged once)",
                    limits.max_connections
                );
            }
            open.pop_front();
        }
        let (close, closed) = oneshot::channel();
        open.push_back(close);
        tokio::spawn(connection(stream, app.clone(), limits, closed));
        // The new connection reads its request before more accepts can
        // push it out.
        tokio::task::yield_now().await;
    }
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

async fn connection(
    stream: TcpStream,
    app: Router,
    limits: Limits,
    mut closed: oneshot::Receiver<()>,
) {
    let app = TowerToHyperService::new(app);
    let svc = service_fn(move |req| {
        let answer = app.call(req);
        async move {
            Ok::<_, Infallible>(match tokio::time::timeout(limits.request, answer).await {
                Ok(Ok(resp)) => resp,
                Ok(Err(never)) => match never {},
                Err(_) => {
                    let mut resp = error(
                        StatusCode::REQUEST_TIMEOUT,
                        format!("request not complete within {:?}", limits.request),
                    );
                    // The rest of the body may still come: do not read it.
                    resp.headers_mut().insert(
                        header::CONNECTION,
                        header::HeaderValue::from_static("close"),
                    );
                    resp
                }
            })
        }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read)
        .max_buf_size(MAX_BUF)
        .serve_connection(TokioIo::new(stream), svc);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => return,
        _ = &mut closed => return,
        _ = tokio::time::sleep(limits.max_age) => conn.as_mut().graceful_shutdown(),
    }
    tokio::select! {
        _ = conn => {}
        _ = closed => {}
        _ = tokio::time::sleep(limits.request) => {}
    }
}

fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, axum::Json(json!({ "error": msg.into() }))).into_response()
}

/// The credentials of an `Authorization: Bearer <token>` value. The scheme
/// is case-insensitive (RFC 9110 §11.1); any other scheme (Basic, Token)
/// gives none.
fn bearer_credentials(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim_start_matches(' '))
}

/// `None` when allowed, else the 401 answer.
fn check_token(st: &ServerState, headers: &HeaderMap) -> Option<Response> {
    let want = st.token.as_deref()?;
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_credentials)
        .unwrap_or("");
    // Compares every byte whatever the first difference.
    let same = given.len() == want.len()
        && given
            .bytes()
            .zip(want.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if same {
        return None;
    }
    let mut resp = error(
        StatusCode::UNAUTHORIZED,
        "missing or wrong bearer token (server.token)",
    );
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    Some(resp)
}

async fn readyz(State(st): State<Arc<ServerState>>) -> Response {
    let ready = st
        .cycle
        .latest()
        .is_some_and(|s| s.sources.iter().any(|s| s.up));
    if ready {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "no successful sample yet\n",
        )
            .into_response()
    }
}

async fn snapshot(State(st): State<Arc<ServerState>>) -> Response {
    // The points the export read, `[compat]` names included: the same
    // as `snapshot --json` and `/metrics`.
    let Some(points) = st.cycle.latest_points() else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "no sample yet");
    };
    let metrics: Vec<_> = points.iter().map(point_json).collect();
    axum::Json(json!({ "resource": st.resource, "metrics": metrics })).into_response()
}

async fn metrics(State(st): State<Arc<ServerState>>, headers: HeaderMap) -> Response {
    let Some(points) = st.cycle.latest_points() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "no sample yet\n").into_response();
    };
    let format = Format::from_accept(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    let body = prometheus::render(&points, &st.resource, crate::telemetry::AGENT_NAME, format);
    ([(header::CONTENT_TYPE, format.content_type())], body).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Push {
    service: String,
    #[serde(default = "default_kind")]
    kind: PushKind,
    #[serde(default = "default_count")]
    count: u64,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum PushKind {
    Request,
    Inference,
    Connection,
}

fn default_kind() -> PushKind {
    PushKind::Request
}

fn default_count() -> u64 {
    1
}

/// One accepted push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushEvent {
    pub service: String,
    pub kind: Kind,
    pub count: u64,
}

/// A `POST /v1/activity` body; the error is the 400 answer's message. The
/// service name is checked against the watched services by the caller.
pub fn parse_push(body: &[u8]) -> Result<PushEvent, String> {
    let push: Push = serde_json::from_slice(body).map_err(|e| {
        format!(
            "expected JSON like {{\"service\": \"ollama\", \"kind\": \"request\", \"count\": 1}}: {e}"
        )
    })?;
    if push.count == 0 || push.count > MAX_COUNT {
        return Err(format!("count must be 1..={MAX_COUNT}, got {}", push.count));
    }
    let kind = match push.kind {
        PushKind::Request => Kind::Request,
        PushKind::Inference => Kind::Inference,
        PushKind::Connection => Kind::Connection,
    };
    Ok(PushEvent {
        service: push.service,
        kind,
        count: push.count,
    })
}

async fn activity(
    State(st): State<Arc<ServerState>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if !st.push {
        return error(
            StatusCode::NOT_FOUND,
            "the push probe is off ([activity] push = false)",
        );
    }
    let body = match body {
        Ok(b) => b,
        Err(e) => return error(e.status(), format!("body: {e} (at most {MAX_BODY} bytes)")),
    };
    let push = match parse_push(&body) {
        Ok(p) => p,
        Err(msg) => return error(StatusCode::BAD_REQUEST, msg),
    };
    match st
        .activity
        .record(&push.service, push.kind, push.count, Probe::Push)
    {
        Ok(()) => (
            StatusCode::ACCEPTED,
            axum::Json(json!({ "accepted": push.count })),
        )
            .into_response(),
        Err(unknown) => error(
            StatusCode::BAD_REQUEST,
            format!(
                "unknown service {:?}; the agent watches: {}",
                unknown.0,
                st.activity.service_names().join(", ")
            ),
        ),
    }
}

/// One point as JSON (`snapshot --json` and `/v1/snapshot`).
pub fn point_json(p: &Point) -> serde_json::Value {
    let attrs: serde_json::Map<String, serde_json::Value> = p
        .attrs
        .iter()
        .map(|(k, v)| {
            let v = match v {
                AttrValue::Str(s) => serde_json::Value::from(s.clone()),
                AttrValue::Int(i) => serde_json::Value::from(*i),
            };
            ((*k).to_owned(), v)
        })
        .collect();
    json!({
        "name": p.metric.name,
        "instrument": format!("{:?}", p.metric.instrument).to_lowercase(),
        "unit": p.metric.unit,
        "attributes": attrs,
        "value": p.value,
    })
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::time::Instant;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::config::Config;
    use crate::host::HostPaths;
    use crate::snapshot::Sampler;
    use crate::sources::net_tcp::{TCP_ESTABLISHED, tcp_sockets};

    /// Guards against hangs only; nothing asserts on elapsed time.
    const GUARD: Duration = Duration::from_secs(20);

    /// A server whose snapshot answer carries `pad` bytes in the resource.
    async fn start(limits: Limits, pad: usize) -> SocketAddr {
        let cycle = CycleSampler::new(Sampler::new(vec![]));
        cycle.sample_now();
        let state = ServerState {
            cycle,
            activity: Activity::from_config(&Config::default()),
            token: None,
            push: true,
            resource: BTreeMap::from([("pad".to_owned(), "x".repeat(pad))]),
        };
        spawn_with("127.0.0.1:0", Arc::new(state), limits)
            .await
            .unwrap()
    }

    /// Whether the server still holds its end of `client`'s connection,
    /// from the kernel's socket table.
    fn held(server: SocketAddr, client: SocketAddr) -> bool {
        tcp_sockets(&HostPaths::default(), true, 1 << TCP_ESTABLISHED)
            .iter()
            .any(|s| s.local == server && s.remote == client)
    }

    async fn wait_released(server: SocketAddr, client: SocketAddr, what: &str) {
        let start = Instant::now();
        while held(server, client) {
            assert!(start.elapsed() < GUARD, "{what}: still open");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn connect(addr: SocketAddr) -> (TcpStream, SocketAddr) {
        let c = TcpStream::connect(addr).await.unwrap();
        let local = c.local_addr().unwrap();
        (c, local)
    }

    async fn healthz(addr: SocketAddr) -> String {
        let (mut c, _) = connect(addr).await;
        c.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut out = String::new();
        guard(c.read_to_string(&mut out)).await.unwrap();
        out
    }

    async fn guard<F: std::future::Future>(f: F) -> F::Output {
        tokio::time::timeout(GUARD, f).await.expect("no answer")
    }

    #[tokio::test]
    async fn at_the_cap_a_new_connection_closes_the_oldest() {
        let limits = Limits {
            max_connections: 3,
            header_read: Duration::from_secs(60),
            ..LIMITS
        };
        let addr = start(limits, 0).await;
        let mut idle = Vec::new();
        for _ in 0..3 {
            idle.push(connect(addr).await);
        }
        for (_, local) in &idle {
            while !held(addr, *local) {
                tokio::task::yield_now().await;
            }
        }
        assert!(healthz(addr).await.starts_with("HTTP/1.1 200"));
        wait_released(addr, idle[0].1, "the oldest").await;
        assert!(held(addr, idle[1].1) && held(addr, idle[2].1));
        // A finished connection frees its place: nothing else is closed.
        assert!(healthz(addr).await.starts_with("HTTP/1.1 200"));
        assert!(held(addr, idle[1].1) && held(addr, idle[2].1));
    }

    #[tokio::test]
    async fn idle_and_slow_clients_are_let_go() {
        let limits = Limits {
            header_read: Duration::from_millis(200),
            request: Duration::from_millis(300),
            ..LIMITS
        };
        let addr = start(limits, 0).await;

        // Connected, never a byte.
        let (_idle, idle) = connect(addr).await;
        // A head one byte at a time, never finished.
        let (mut slow, slow_addr) = connect(addr).await;
        let dribble = tokio::spawn(async move {
            for b in b"GET /healthz HTTP/1.1\r\n".iter().cycle() {
                if slow.write_all(&[*b]).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        // Kept alive after an answer, then nothing.
        let (mut kept, kept_addr) = connect(addr).await;
        kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 512];
        let n = guard(kept.read(&mut buf)).await.unwrap();
        assert!(buf[..n].ends_with(b"\r\n\r\nok\n"), "{:?}", &buf[..n]);
        // A body announced and never sent in full.
        let (mut body, _) = connect(addr).await;
        body.write_all(
            b"POST /v1/activity HTTP/1.1\r\nHost: t\r\nContent-Length: 40\r\n\r\n{\"service\":",
        )
        .await
        .unwrap();
        let mut answer = String::new();
        guard(body.read_to_string(&mut answer)).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("connection: close"), "{answer}");

        wait_released(addr, idle, "idle").await;
        wait_released(addr, slow_addr, "slowloris").await;
        wait_released(addr, kept_addr, "kept alive").await;
        guard(dribble).await.unwrap();
        assert!(healthz(addr).await.starts_with("HTTP/1.1 200"));
    }

    #[tokio::test]
    async fn a_client_that_never_reads_is_let_go() {
        let limits = Limits {
            max_age: Duration::from_millis(500),
            request: Duration::from_millis(300),
            ..LIMITS
        };
        // Far more than the kernel buffers of one connection hold.
        let addr = start(limits, 16 << 20).await;
        let stuck = tokio::net::TcpSocket::new_v4().unwrap();
        stuck.set_recv_buffer_size(4096).unwrap();
        let mut stuck = stuck.connect(addr).await.unwrap();
        let stuck_addr = stuck.local_addr().unwrap();
        stuck
            .write_all(b"GET /v1/snapshot HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .unwrap();
        wait_released(addr, stuck_addr, "not reading").await;
        // It was let go mid-answer.
        let mut got = Vec::new();
        let _ = guard(stuck.read_to_end(&mut got)).await;
        assert!(got.len() < 16 << 20, "{} bytes", got.len());
        assert!(healthz(addr).await.starts_with("HTTP/1.1 200"));
    }
}

#[cfg(test)]
mod push_tests {
    use super::*;

    #[test]
    fn push_bodies() {
        let p = parse_push(br#"{"service":"ollama","kind":"inference","count":3}"#).unwrap();
        assert_eq!(
            p,
            PushEvent {
                service: "ollama".into(),
                kind: Kind::Inference,
                count: 3
            }
        );
        let p = parse_push(br#"{"service":"web"}"#).unwrap();
        assert_eq!((p.kind, p.count), (Kind::Request, 1));
        for (body, why) in [
            (&br#"{"service":"web","count":0}"#[..], "count must be"),
            (br#"{"service":"web","count":1000001}"#, "count must be"),
            (br#"{"service":"web","count":-1}"#, "expected JSON"),
            (br#"{"service":"web","kind":"click"}"#, "unknown variant"),
            (br#"{"service":"web","extra":1}"#, "unknown field"),
            (br#"{"kind":"request"}"#, "missing field"),
            (b"", "expected JSON"),
        ] {
            let e = parse_push(body).unwrap_err();
            assert!(e.contains(why), "{}: {e}", String::from_utf8_lossy(body));
        }
    }
}
