//! The local server's access rule on a bind beyond loopback, through the
//! real binary: the health endpoints answer anyone (the kubelet's probes
//! carry no secret), every other request — known route, wrong method or
//! unknown path — needs `Authorization: Bearer <token>` and nothing else
//! (no query-string token, no other scheme).

mod support;

use std::net::SocketAddr;

use base64::Engine as _;
use std::time::{Duration, Instant};

use support::agent::{Agent, command};
use support::http::{Reply, request};

const TOKEN: &str = "n0de-t0ken-7f3a";
const LIMIT: Duration = Duration::from_secs(30);

/// Every request the server routes, as (method, path, body), with the
/// status it gives a client holding the token.
const ROUTES: &[(&str, &str, &str, u16)] = &[
    ("GET", "/v1/snapshot", "", 200),
    ("GET", "/metrics", "", 200),
    ("POST", "/v1/activity", r#"{"service":"ollama"}"#, 202),
    // A wrong method and an unknown path: without the token they must not
    // tell a prober which routes exist.
    ("GET", "/v1/activity", "", 405),
    ("GET", "/v1/nothing-here", "", 404),
    ("GET", "/", "", 404),
];

/// The agent listening on every IPv4 address (a node's, with hostNetwork),
/// reached here through loopback.
fn start(dir: &tempfile::TempDir) -> (Agent, SocketAddr) {
    let file = dir.path().join("agent.toml");
    std::fs::write(
        &file,
        "interval = \"100ms\"\n\
         [export]\nenabled = false\n\
         [server]\nlisten = \"0.0.0.0:0\"\n\
         [activity]\nconnections = false\nollama = false\n\
         [ollama]\nenabled = false\n[gpu]\nenabled = false\n",
    )
    .unwrap();
    let mut cmd = command();
    // The token comes from the environment, as the DaemonSet's Secret gives it.
    cmd.args(["--config", file.to_str().unwrap(), "run"])
        .env("UNAMENTIS_AGENT_SERVER_TOKEN", TOKEN);
    let agent = Agent::start(cmd);
    let addr = agent.server_addr(LIMIT);
    (agent, addr)
}

async fn call(addr: SocketAddr, method: &str, path: &str, body: &str, auth: &[&str]) -> Reply {
    let mut headers = vec!["Content-Type: application/json"];
    headers.extend_from_slice(auth);
    request(addr, method, path, &headers, body.as_bytes()).await
}

async fn wait_ready(addr: SocketAddr) {
    let start = Instant::now();
    while request(addr, "GET", "/readyz", &[], b"").await.status != 200 {
        assert!(start.elapsed() < LIMIT, "never ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn assert_denied(r: &Reply, what: &str) {
    assert_eq!(r.status, 401, "{what}: {} {}", r.head, r.body);
    assert!(
        r.head.to_lowercase().contains("www-authenticate: bearer"),
        "{what}: {}",
        r.head
    );
    assert!(
        !r.body.contains("ollama") && !r.body.contains("unamentis."),
        "{what}: a denied answer leaks {}",
        r.body
    );
}

#[tokio::test]
async fn beyond_loopback_only_health_is_open_and_only_a_bearer_header_opens_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let (agent, addr) = start(&dir);
    assert!(
        agent.log_text().contains("0.0.0.0:"),
        "not a wildcard bind:\n{}",
        agent.log_text()
    );
    wait_ready(addr).await;

    // Health: open, whatever the Authorization header says.
    for path in ["/healthz", "/readyz"] {
        for auth in [&[][..], &["Authorization: Bearer wrong"][..]] {
            let r = call(addr, "GET", path, "", auth).await;
            assert_eq!(r.status, 200, "{path} {auth:?}: {}", r.body);
            assert!(
                r.body.len() < 16,
                "{path} says more than its state: {}",
                r.body
            );
        }
    }

    let good = format!("Authorization: Bearer {TOKEN}");
    let lower = format!("Authorization: bearer {TOKEN}");
    let basic_user = format!(
        "Authorization: Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("agent:{TOKEN}"))
    );
    let basic_raw = format!("Authorization: Basic {TOKEN}");
    let token_scheme = format!("Authorization: Token {TOKEN}");
    let bare = format!("Authorization: {TOKEN}");
    let longer = format!("Authorization: Bearer {TOKEN}x");
    let shorter = format!("Authorization: Bearer {}", &TOKEN[..TOKEN.len() - 1]);
    let other_header = format!("X-Auth-Token: {TOKEN}");
    let denied: [(&str, Vec<&str>); 9] = [
        ("no header", vec![]),
        ("Basic with user:token", vec![&basic_user]),
        ("Basic with the token", vec![&basic_raw]),
        ("Token scheme", vec![&token_scheme]),
        ("no scheme", vec![&bare]),
        ("longer token", vec![&longer]),
        ("shorter token", vec![&shorter]),
        ("another header", vec![&other_header]),
        ("empty bearer", vec!["Authorization: Bearer "]),
    ];

    for &(method, path, body, with_token) in ROUTES {
        for (what, auth) in &denied {
            let r = call(addr, method, path, body, auth).await;
            assert_denied(&r, &format!("{method} {path} ({what})"));
        }
        for query in ["token", "access_token", "bearer"] {
            let sep = if path.contains('?') { '&' } else { '?' };
            let with_query = format!("{path}{sep}{query}={TOKEN}");
            let r = call(addr, method, &with_query, body, &[]).await;
            assert_denied(&r, &format!("{method} {with_query}"));
        }
        for auth in [&good, &lower] {
            let r = call(addr, method, path, body, &[auth]).await;
            assert_eq!(
                r.status, with_token,
                "{method} {path} with {auth}: {} {}",
                r.head, r.body
            );
        }
    }

    // The pushes that were let in, and only those, reached the agent: two
    // (Bearer and bearer) out of every POST sent. The counter shows them
    // after the next cycle.
    let start = Instant::now();
    let mut seen = ollama_requests(addr, &good).await;
    while seen != Some(2.0) && start.elapsed() < LIMIT {
        tokio::time::sleep(Duration::from_millis(50)).await;
        seen = ollama_requests(addr, &good).await;
    }
    assert_eq!(seen, Some(2.0), "only the two authorised pushes count");
}

async fn ollama_requests(addr: SocketAddr, auth: &str) -> Option<f64> {
    let r = call(addr, "GET", "/v1/snapshot", "", &[auth]).await;
    let snap: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    snap["metrics"]
        .as_array()?
        .iter()
        .find(|m| {
            m["name"] == "unamentis.server.activity.requests"
                && m["attributes"]["unamentis.service"] == "ollama"
        })
        .and_then(|m| m["value"].as_f64())
}

#[test]
fn beyond_loopback_without_a_token_the_agent_refuses_to_start() {
    // An empty Secret value arrives as an empty variable: as bad as none.
    for token in [None, Some("")] {
        let mut cmd = command();
        cmd.args(["run"])
            .env("UNAMENTIS_AGENT_SERVER_LISTEN", "0.0.0.0:8767")
            .env("UNAMENTIS_AGENT_EXPORT_ENABLED", "false");
        if let Some(t) = token {
            cmd.env("UNAMENTIS_AGENT_SERVER_TOKEN", t);
        }
        let out = cmd.output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "token {token:?}: {err}");
        assert!(
            err.contains("server.listen") && err.contains("UNAMENTIS_AGENT_SERVER_TOKEN"),
            "the error names the key and the variable to set: {err}"
        );
    }
}
