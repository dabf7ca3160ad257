//! The Ollama source against a fake Ollama on a real loopback socket.

mod support;

use std::path::Path;
use std::time::Duration;

use support::fake_ollama::{Answer, FakeOllama, ps_body};
use unamentis_agent::config::{Config, Dur, OllamaConfig};
use unamentis_agent::families::memory::MemoryStats;
use unamentis_agent::families::models::{
    LoadedModel, OllamaSource, OllamaStats, RETRY_WHILE_REFUSED,
};
use unamentis_agent::host::HostPaths;
use unamentis_agent::pipeline;
use unamentis_agent::snapshot::{Sampler, Snapshot};
use unamentis_agent::sources::{Source, SourceError};

const MIB: u64 = 1024 * 1024;

fn source(url: &str, timeout: Duration) -> OllamaSource {
    OllamaSource::new(&OllamaConfig {
        url: url.into(),
        timeout: Dur(timeout),
        ..OllamaConfig::default()
    })
}

fn sample(url: &str) -> (Result<(), SourceError>, Option<OllamaStats>) {
    let mut snap = Snapshot::default();
    let r = source(url, Duration::from_secs(2)).sample(&mut snap);
    (r, snap.take::<OllamaStats>())
}

fn two_models() -> String {
    ps_body(&[
        ("mistral:latest", 5_137_025_024, 5_137_025_024),
        ("llama3.1:8b", 6_000 * MIB, 2_880 * MIB),
    ])
}

fn expect_two(stats: Option<OllamaStats>) {
    let s = stats.expect("stats");
    assert_eq!(
        s.models,
        vec![
            LoadedModel {
                name: "mistral:latest".into(),
                size_bytes: 5_137_025_024,
                size_vram_bytes: 5_137_025_024,
                expires_at: Some("2024-06-04T14:38:31.83753-07:00".into()),
            },
            LoadedModel {
                name: "llama3.1:8b".into(),
                size_bytes: 6_000 * MIB,
                size_vram_bytes: 2_880 * MIB,
                expires_at: Some("2024-06-04T14:38:31.83753-07:00".into()),
            },
        ]
    );
    assert_eq!(s.vram_bytes(), 5_137_025_024 + 2_880 * MIB);
}

#[test]
fn normal_answer_with_content_length() {
    let fake = FakeOllama::start(Answer::Json(two_models()));
    let (r, stats) = sample(&fake.url());
    r.unwrap();
    expect_two(stats);
    let heads = fake.heads();
    assert_eq!(heads.len(), 1);
    assert!(
        heads[0].starts_with("GET /api/ps HTTP/1.1\r\n"),
        "{}",
        heads[0]
    );
    let host = fake.url().trim_start_matches("http://").to_owned();
    assert!(
        heads[0].contains(&format!("\r\nHost: {host}\r\n")),
        "{}",
        heads[0]
    );
}

#[test]
fn chunked_answer_as_go_sends_large_bodies() {
    let fake = FakeOllama::start(Answer::Chunked(two_models(), 100));
    let (r, stats) = sample(&fake.url());
    r.unwrap();
    expect_two(stats);
}

#[test]
fn a_base_path_is_kept() {
    let fake = FakeOllama::start(Answer::Json(two_models()));
    let (r, _) = sample(&format!("{}/proxy/ollama/", fake.url()));
    r.unwrap();
    assert!(fake.heads()[0].starts_with("GET /proxy/ollama/api/ps "));
}

#[test]
fn nothing_loaded() {
    let fake = FakeOllama::start(Answer::Json(r#"{"models":[]}"#.into()));
    let (r, stats) = sample(&fake.url());
    r.unwrap();
    let stats = stats.unwrap();
    assert!(stats.models.is_empty());
    let snap = Snapshot::default().with(stats);
    assert!(snap.points().is_empty(), "no model, no estimate");
}

#[test]
fn slow_ollama_times_out() {
    let fake = FakeOllama::start(Answer::Silent(Duration::from_secs(10)));
    let mut snap = Snapshot::default();
    let r = source(&fake.url(), Duration::from_millis(200)).sample(&mut snap);
    let Err(SourceError::Unavailable(why)) = r else {
        panic!("{r:?}")
    };
    assert!(why.contains("no complete answer"), "{why}");
    assert!(snap.get::<OllamaStats>().is_none());
}

/// A refused connection (nothing listens) is not retried every cycle, but
/// after `RETRY_WHILE_REFUSED`; an Ollama that started meanwhile is seen
/// then. Times are given, not waited for.
#[test]
fn refused_is_retried_after_a_while_not_every_cycle() {
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut src = source(&format!("http://{addr}"), Duration::from_secs(2));
    let t0 = std::time::Instant::now();
    let mut snap = Snapshot::default();
    let first = src.sample_at(&mut snap, t0);
    let Err(SourceError::Unavailable(why)) = &first else {
        panic!("{first:?}")
    };
    assert!(why.contains("refused"), "{why}");

    let fake = FakeOllama::start_on(addr, Answer::Json(two_models()));
    let just_before = t0 + RETRY_WHILE_REFUSED - Duration::from_millis(1);
    assert_eq!(
        src.sample_at(&mut snap, just_before),
        first,
        "the same answer"
    );
    assert!(fake.heads().is_empty(), "no request before the retry time");
    assert!(snap.get::<OllamaStats>().is_none());

    src.sample_at(&mut snap, t0 + RETRY_WHILE_REFUSED).unwrap();
    assert_eq!(fake.heads().len(), 1);
    expect_two(snap.take::<OllamaStats>());
}

/// An Ollama that is there but does not answer in time is asked again
/// every cycle: only a refused connection backs off.
#[test]
fn a_slow_ollama_is_asked_every_cycle() {
    let fake = FakeOllama::start(Answer::Silent(Duration::from_secs(10)));
    let mut src = source(&fake.url(), Duration::from_millis(100));
    let t0 = std::time::Instant::now();
    for i in 0..2 {
        let mut snap = Snapshot::default();
        let at = t0 + Duration::from_millis(i);
        assert!(src.sample_at(&mut snap, at).is_err());
    }
    assert_eq!(fake.heads().len(), 2);
}

#[test]
fn garbage_and_errors_are_unavailable() {
    for (answer, expect) in [
        (
            Answer::Json("{\"models\": [".into()),
            "not the expected JSON",
        ),
        (
            Answer::Json("<html>Ollama is running</html>".into()),
            "not the expected JSON",
        ),
        (
            Answer::Json(r#"{"models":"many"}"#.into()),
            "not the expected JSON",
        ),
        (
            Answer::Status(500, "{\"error\":\"boom\"}".into()),
            "HTTP 500",
        ),
        (
            Answer::Raw(b"SSH-2.0-OpenSSH_9.6\r\n\r\n".to_vec()),
            "not an HTTP",
        ),
        (
            Answer::Raw(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{}".to_vec()),
            "before the response was complete",
        ),
    ] {
        let fake = FakeOllama::start(answer.clone());
        let (r, stats) = sample(&fake.url());
        let Err(SourceError::Unavailable(why)) = &r else {
            panic!("{answer:?}: {r:?}")
        };
        assert!(why.contains(expect), "{answer:?}: {why}");
        assert!(stats.is_none());
    }
}

#[test]
fn ollama_down_touches_nothing_else() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hosts/laptop-4c8t");
    let mut cfg = Config::for_host(&HostPaths::under(&fixture));
    cfg.gpu.enabled = false;
    cfg.ollama.url = format!("http://127.0.0.1:{port}");
    let snap = Sampler::new(pipeline::readers(&cfg)).sample();
    let up = |name: &str| snap.sources.iter().find(|s| s.name == name).map(|s| s.up);
    assert_eq!(up("ollama"), Some(false));
    assert_eq!(up("memory"), Some(true));
    assert_eq!(up("gpu"), None, "disabled sources are not built");
    assert!(snap.get::<MemoryStats>().is_some() && snap.get::<OllamaStats>().is_none());
}
