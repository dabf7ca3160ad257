//! The local HTTP server, on the agent's current-thread runtime (no thread
//! of its own): `GET /healthz`, `GET /readyz`, `GET /v1/snapshot` and
//! `POST /v1/activity` (the push probe).
//!
//! With `server.token` set, `/v1/snapshot` and `/v1/activity` need
//! `Authorization: Bearer <token>`; the health endpoints stay open for
//! probes. Handlers only take short locks: the snapshot is the one the
//! last cycle stored, never a new sample.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;

use crate::activity::{Activity, Kind, Probe};
use crate::snapshot::{AttrValue, CycleSampler, Point};

/// Larger push bodies are refused with 413: a push is a few dozen bytes.
pub const MAX_BODY: usize = 4096;
/// The most events one push may report.
pub const MAX_COUNT: u64 = 1_000_000;

pub struct ServerState {
    pub cycle: CycleSampler,
    pub activity: Activity,
    pub token: Option<String>,
    /// `[activity] push`: `/v1/activity` answers 404 when off.
    pub push: bool,
    /// The OpenTelemetry resource, shown with the snapshot.
    pub resource: BTreeMap<String, String>,
}

pub fn router(state: Arc<ServerState>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/v1/snapshot", get(snapshot))
        .route("/v1/activity", post(activity))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// Binds `listen` and serves on the current runtime until it stops. A
/// failed bind is logged, not fatal: metrics still flow without the server.
pub async fn spawn(listen: &str, state: Arc<ServerState>) -> Option<SocketAddr> {
    let listener = match tokio::net::TcpListener::bind(listen).await {
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
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router(state)).await {
            tracing::error!("local server stopped: {e}");
        }
    });
    addr
}

fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, axum::Json(json!({ "error": msg.into() }))).into_response()
}

/// `None` when allowed, else the 401 answer.
fn check_token(st: &ServerState, headers: &HeaderMap) -> Option<Response> {
    let want = st.token.as_deref()?;
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
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

async fn snapshot(State(st): State<Arc<ServerState>>, headers: HeaderMap) -> Response {
    if let Some(denied) = check_token(&st, &headers) {
        return denied;
    }
    let Some(snap) = st.cycle.latest() else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "no sample yet");
    };
    let metrics: Vec<_> = snap.points().iter().map(point_json).collect();
    axum::Json(json!({ "resource": st.resource, "metrics": metrics })).into_response()
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
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if let Some(denied) = check_token(&st, &headers) {
        return denied;
    }
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

#[cfg(test)]
mod tests {
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
