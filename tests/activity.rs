//! Activity probes, the idle clock and the idle accounting, in process: the
//! real local server over real HTTP, real TCP connections to real listening
//! sockets, a fake Ollama on a real socket, RAPL fixture files advanced by
//! the test, and an injected clock so idle time is exact.
#![cfg(target_os = "linux")]

mod support;

use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use support::fake_ollama::{Answer, FakeOllama};
use support::http::{post_json, request};
use support::tcp::holding_listener;
use unamentis_agent::activity::idle::IdleSource;
use unamentis_agent::activity::{Activity, Kind, ManualClock, Probe};
use unamentis_agent::config::{Config, ServiceConfig};
use unamentis_agent::host::HostPaths;
use unamentis_agent::pipeline::Pipeline;
use unamentis_agent::semconv::{self, Metric};
use unamentis_agent::server::{self, ServerState};
use unamentis_agent::snapshot::{CycleSampler, Sampler, Snapshot};
use unamentis_agent::sources::Source;

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// The value of the one point of `metric` whose attributes include `with`
/// (`None`: the point without attributes).
fn value(snap: &Snapshot, metric: &Metric, with: Option<(&str, &str)>) -> Option<f64> {
    let pts: Vec<f64> = snap
        .points()
        .into_iter()
        .filter(|p| std::ptr::eq(p.metric, metric))
        .filter(|p| match with {
            None => p.attrs.is_empty(),
            Some((k, v)) => p
                .attrs
                .iter()
                .any(|(pk, pv)| *pk == k && pv.to_string() == v),
        })
        .map(|p| p.value)
        .collect();
    assert!(pts.len() <= 1, "{} {with:?}: {pts:?}", metric.name);
    pts.first().copied()
}

fn svc(name: &str) -> Option<(&'static str, &str)> {
    Some(("unamentis.service", name))
}

fn idle(snap: &Snapshot, service: Option<&str>) -> f64 {
    value(snap, &semconv::IDLE_DURATION_SECONDS, service.and_then(svc)).unwrap()
}

fn service(name: &str, port: u16) -> ServiceConfig {
    ServiceConfig {
        name: name.into(),
        process: vec![],
        cmdline: None,
        port: Some(port),
        ports: vec![],
        pid_file: None,
        systemd_unit: None,
        cgroup: None,
    }
}

/// The probes that read the machine are off unless a test turns them on:
/// the shared machine's own connections must not reset the clocks.
fn config(idle_after: f64) -> Config {
    let mut cfg = Config::default();
    cfg.activity.idle_after.0 = secs(idle_after);
    cfg.activity.connections = false;
    cfg.activity.ollama = false;
    cfg
}

fn sampler(cfg: &Config, clock: &ManualClock, first: Vec<Box<dyn Source>>) -> (Sampler, Activity) {
    let activity = Activity::with_clock(cfg, Arc::new(clock.clone()));
    let srcs = Pipeline::new(cfg)
        .with_readers(first)
        .with_activity(&activity)
        .build();
    (Sampler::new(srcs), activity)
}

// ---------------------------------------------------------------- push

async fn start_server(push: bool) -> (SocketAddr, CycleSampler, Activity) {
    let cfg = config(60.0);
    let clock = ManualClock::default();
    let activity = Activity::with_clock(&cfg, Arc::new(clock));
    let cycle = CycleSampler::new(Sampler::new(vec![Box::new(IdleSource::new(
        activity.clone(),
        None,
    ))]));
    let state = ServerState {
        cycle: cycle.clone(),
        activity: activity.clone(),
        token: Some("s3cret".into()),
        push,
        resource: Default::default(),
    };
    let addr = server::spawn("127.0.0.1:0", Arc::new(state))
        .await
        .expect("listening");
    (addr, cycle, activity)
}

#[tokio::test]
async fn push_endpoint_over_real_http() {
    let (addr, cycle, activity) = start_server(true).await;
    let token = Some("s3cret");

    let r = request(addr, "GET", "/healthz", &[], b"").await;
    assert_eq!(r.status, 200);
    let r = request(addr, "GET", "/readyz", &[], b"").await;
    assert_eq!(r.status, 503, "not ready before the first sample");
    cycle.sample_now();
    let r = request(addr, "GET", "/readyz", &[], b"").await;
    assert_eq!(r.status, 200);

    let valid = r#"{"service": "piper", "kind": "inference", "count": 3}"#;
    let r = post_json(addr, "/v1/activity", None, valid).await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(r.head.to_lowercase().contains("www-authenticate: bearer"));
    let r = post_json(addr, "/v1/activity", Some("s3cret-not"), valid).await;
    assert_eq!(r.status, 401);
    assert!(
        activity.stats_at(activity.now()).services[5]
            .inferences
            .is_empty()
    );

    let r = post_json(addr, "/v1/activity", token, valid).await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.body, r#"{"accepted":3}"#);
    // kind and count default to one request.
    let r = post_json(addr, "/v1/activity", token, r#"{"service":"ollama"}"#).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let s = activity.stats_at(activity.now());
    let piper = s.services.iter().find(|s| s.name == "piper").unwrap();
    assert_eq!(piper.inferences, vec![(Probe::Push, 3)]);
    let ollama = s.services.iter().find(|s| s.name == "ollama").unwrap();
    assert_eq!(ollama.requests, vec![(Probe::Push, 1)]);

    // (body, words of the 400 message)
    let bad: &[(&str, &str)] = &[
        (r#"{"service": "piper""#, "expected JSON like"),
        ("service=piper", "expected JSON like"),
        (r#"{"service": "piper", "kind": "nap"}"#, "unknown variant"),
        (r#"{"service": "piper", "count": 0}"#, "count must be"),
        (r#"{"service": "piper", "count": -2}"#, "expected JSON like"),
        (r#"{"servce": "piper"}"#, "unknown field"),
        (r#"{"service": "pipr"}"#, "unknown service \\\"pipr\\\""),
    ];
    for (body, words) in bad {
        let r = post_json(addr, "/v1/activity", token, body).await;
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        assert!(r.body.contains(words), "{body}: {}", r.body);
        assert!(r.body.starts_with(r#"{"error":"#), "{}", r.body);
    }
    let big = format!(r#"{{"service": "piper", "pad": "{}"}}"#, "x".repeat(5000));
    let r = post_json(addr, "/v1/activity", token, &big).await;
    assert_eq!(r.status, 413, "{}", r.body);
    let unchanged = activity.stats_at(activity.now());
    assert_eq!(unchanged.services, s.services, "no bad push counted");

    let r = request(addr, "GET", "/v1/snapshot", &[], b"").await;
    assert_eq!(r.status, 401);
    let r = request(
        addr,
        "GET",
        "/v1/snapshot",
        &["Authorization: Bearer s3cret"],
        b"",
    )
    .await;
    assert_eq!(r.status, 200);
    let json: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    let names = support::snapshot_json::names(&json);
    assert!(names.contains(&semconv::IDLE_STATE.name), "{names:?}");
}

#[tokio::test]
async fn push_off_answers_404() {
    let (addr, _, _) = start_server(false).await;
    let r = post_json(
        addr,
        "/v1/activity",
        Some("s3cret"),
        r#"{"service":"piper"}"#,
    )
    .await;
    assert_eq!(r.status, 404);
    assert!(r.body.contains("push = false"), "{}", r.body);
}

// ---------------------------------------------------------------- clock

#[test]
fn injected_clock_idle_rises_exactly_and_resets() {
    let cfg = config(10.0);
    let clock = ManualClock::default();
    let (mut s, activity) = sampler(&cfg, &clock, vec![]);
    let snap = s.sample();
    assert_eq!(idle(&snap, None), 0.0, "at start: time since start");
    assert_eq!(value(&snap, &semconv::IDLE_STATE, None), Some(0.0));

    clock.advance(secs(7.25));
    let snap = s.sample();
    assert_eq!(idle(&snap, None), 7.25);
    assert_eq!(idle(&snap, Some("piper")), 7.25);
    assert_eq!(value(&snap, &semconv::IDLE_STATE, None), Some(0.0));

    clock.advance(secs(2.75));
    let snap = s.sample();
    assert_eq!(idle(&snap, None), 10.0);
    assert_eq!(
        value(&snap, &semconv::IDLE_STATE, None),
        Some(1.0),
        "idle at idle_after"
    );

    activity
        .record("ollama", Kind::Request, 1, Probe::Push)
        .unwrap();
    let snap = s.sample();
    assert_eq!(idle(&snap, None), 0.0);
    assert_eq!(idle(&snap, Some("ollama")), 0.0);
    assert_eq!(
        idle(&snap, Some("piper")),
        10.0,
        "other services keep their clock"
    );
    assert_eq!(value(&snap, &semconv::IDLE_STATE, None), Some(0.0));

    clock.advance(secs(4.0));
    let snap = s.sample();
    assert_eq!(idle(&snap, None), 4.0);
    assert_eq!(idle(&snap, Some("piper")), 14.0);
    assert_eq!(
        value(&snap, &semconv::ACTIVITY_REQUESTS, Some(("probe", "push"))),
        Some(1.0)
    );
}

// ---------------------------------------------------------------- connections

/// A procfs whose `net` is the real one but with no `self`: the probe
/// reads the kernel's real `net/tcp{,6}` and cannot tell the test process's
/// own sockets (the client and the listener both live here) from others'.
fn net_only_proc() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("proc")).unwrap();
    std::os::unix::fs::symlink("/proc/self/net", dir.path().join("proc/net")).unwrap();
    dir
}

fn connections_config(ports: (u16, u16), proc_dir: Option<&std::path::Path>) -> Config {
    let mut cfg = config(60.0);
    cfg.default_services = false;
    cfg.services = vec![service("web", ports.0), service("tts", ports.1)];
    cfg.activity.connections = true;
    if let Some(p) = proc_dir {
        cfg.host.proc = p.join("proc");
    }
    cfg
}

#[test]
fn a_real_connection_resets_that_services_clock_only() {
    let (web, tts) = (holding_listener(), holding_listener());
    let proc_dir = net_only_proc();
    let cfg = connections_config((web, tts), Some(proc_dir.path()));
    let clock = ManualClock::default();
    let (mut s, _) = sampler(&cfg, &clock, vec![]);
    let snap = s.sample();
    assert_eq!(
        value(&snap, &semconv::ACTIVITY_CONNECTIONS, svc("web")),
        Some(0.0)
    );
    assert_eq!(
        snap.sources
            .iter()
            .find(|s| s.name == "connections")
            .map(|s| s.up),
        Some(true)
    );

    clock.advance(secs(30.0));
    let _c1 = TcpStream::connect(("127.0.0.1", web)).unwrap();
    let snap = s.sample();
    assert_eq!(idle(&snap, Some("web")), 0.0);
    assert_eq!(idle(&snap, Some("tts")), 30.0);
    assert_eq!(idle(&snap, None), 0.0);
    assert_eq!(
        value(&snap, &semconv::ACTIVITY_CONNECTIONS, svc("web")),
        Some(1.0)
    );
    assert_eq!(
        value(&snap, &semconv::ACTIVITY_CONNECTIONS, svc("tts")),
        Some(0.0)
    );
    let requests = |snap: &Snapshot| {
        snap.points()
            .into_iter()
            .filter(|p| std::ptr::eq(p.metric, &semconv::ACTIVITY_REQUESTS))
            .map(|p| {
                (
                    p.attrs
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>(),
                    p.value,
                )
            })
            .collect::<Vec<_>>()
    };
    let web_conn = vec![
        "unamentis.service=web".to_owned(),
        "probe=connections".to_owned(),
    ];
    assert_eq!(requests(&snap), vec![(web_conn.clone(), 1.0)]);

    // The same connection still open is not new activity.
    clock.advance(secs(5.0));
    let snap = s.sample();
    assert_eq!(idle(&snap, Some("web")), 5.0);
    assert_eq!(requests(&snap), vec![(web_conn.clone(), 1.0)]);

    // A second one is.
    let _c2 = TcpStream::connect(("127.0.0.1", web)).unwrap();
    let snap = s.sample();
    assert_eq!(idle(&snap, Some("web")), 0.0);
    assert_eq!(idle(&snap, Some("tts")), 35.0);
    assert_eq!(requests(&snap), vec![(web_conn, 2.0)]);
    assert_eq!(
        value(&snap, &semconv::ACTIVITY_CONNECTIONS, svc("web")),
        Some(2.0)
    );
}

#[test]
fn the_agents_own_connections_and_ignored_sources_are_not_activity() {
    // The real procfs: this test process is the agent, so its connection
    // to the service (both ends are its sockets) is its own.
    let (web, tts) = (holding_listener(), holding_listener());
    let cfg = connections_config((web, tts), None);
    let clock = ManualClock::default();
    let (mut s, _) = sampler(&cfg, &clock, vec![]);
    s.sample();
    clock.advance(secs(3.0));
    let _own = TcpStream::connect(("127.0.0.1", web)).unwrap();
    let snap = s.sample();
    assert_eq!(idle(&snap, Some("web")), 3.0);
    assert_eq!(
        value(&snap, &semconv::ACTIVITY_CONNECTIONS, svc("web")),
        Some(0.0)
    );

    // A health checker's address, through the real net/tcp.
    let proc_dir = net_only_proc();
    let mut cfg = connections_config((web, tts), Some(proc_dir.path()));
    cfg.activity.ignore_sources = vec!["127.0.0.1".into()];
    let (mut s, _) = sampler(&cfg, &clock, vec![]);
    s.sample();
    clock.advance(secs(3.0));
    let _checker = TcpStream::connect(("127.0.0.1", tts)).unwrap();
    let snap = s.sample();
    assert_eq!(idle(&snap, Some("tts")), 3.0);
    assert_eq!(
        value(&snap, &semconv::ACTIVITY_CONNECTIONS, svc("tts")),
        Some(0.0)
    );
}

/// On the live procfs: while nothing listens on a watched port, the probe
/// lists no established socket (a walk of the kernel's whole connections
/// table); a listener and a client in another process bring it back, and
/// it stops again once both are gone.
#[test]
fn no_listener_on_a_watched_port_no_walk_of_the_connections_table() {
    use unamentis_agent::sources::sock_diag::established_table_walks;
    let (web, tts) = (support::tcp::free_port(), support::tcp::free_port());
    let cfg = connections_config((web, tts), None);
    let clock = ManualClock::default();
    let (mut s, _) = sampler(&cfg, &clock, vec![]);
    let walks = established_table_walks();
    for _ in 0..3 {
        let snap = s.sample();
        assert_eq!(
            value(&snap, &semconv::ACTIVITY_CONNECTIONS, svc("web")),
            Some(0.0)
        );
    }
    assert_eq!(established_table_walks(), walks, "nothing listens: no walk");

    // The service comes up; a client in another process connects. The
    // connection waits in the accept queue, so no fd of this process
    // (the agent here) holds either end.
    let listener = std::net::TcpListener::bind(("127.0.0.1", web)).unwrap();
    let mut client = std::process::Command::new("bash")
        .args([
            "-c",
            &format!("exec 3<>/dev/tcp/127.0.0.1/{web}; echo up; read -r _"),
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut up = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(client.stdout.as_mut().unwrap()),
        &mut up,
    )
    .unwrap();
    assert_eq!(up, "up\n");
    clock.advance(secs(4.0));
    let snap = s.sample();
    assert_eq!(
        value(&snap, &semconv::ACTIVITY_CONNECTIONS, svc("web")),
        Some(1.0)
    );
    assert_eq!(idle(&snap, Some("web")), 0.0, "the connection is activity");
    assert!(established_table_walks() > walks);

    // Both gone: one more look finds nothing, then no walk again.
    drop(client.stdin.take());
    client.wait().unwrap();
    drop(listener);
    let snap = s.sample();
    assert_eq!(
        value(&snap, &semconv::ACTIVITY_CONNECTIONS, svc("web")),
        Some(0.0)
    );
    let walks = established_table_walks();
    for _ in 0..3 {
        s.sample();
    }
    assert_eq!(established_table_walks(), walks, "down again: no walk");
}

// ---------------------------------------------------------------- ollama

fn ps(expires_at: &str) -> Answer {
    Answer::Json(format!(
        r#"{{"models":[{{"name":"llama3:8b","model":"llama3:8b","size":5137025024,"size_vram":5137025024,"expires_at":"{expires_at}"}}]}}"#
    ))
}

#[test]
fn ollama_expires_at_advance_counts_one_inference() {
    let fake = FakeOllama::start(ps("2026-11-23T16:40:00.5+01:00"));
    let mut cfg = config(60.0);
    cfg.ollama.url = fake.url();
    cfg.activity.ollama = true;
    let clock = ManualClock::default();
    let ollama = unamentis_agent::families::models::OllamaSource::new(&cfg.ollama);
    let (mut s, _) = sampler(&cfg, &clock, vec![Box::new(ollama)]);
    let inferences = |snap: &Snapshot| {
        value(
            snap,
            &semconv::ACTIVITY_INFERENCES,
            Some(("probe", "ollama")),
        )
    };
    let snap = s.sample();
    assert_eq!(
        value(&snap, &semconv::MODEL_LOADED, Some(("model", "llama3:8b"))),
        Some(1.0)
    );
    assert_eq!(
        inferences(&snap),
        None,
        "a model loaded before start is no inference"
    );

    clock.advance(secs(10.0));
    let snap = s.sample();
    assert_eq!(inferences(&snap), None);
    assert_eq!(idle(&snap, Some("ollama")), 10.0);

    fake.set_answer(ps("2026-11-23T16:45:12.25+01:00"));
    let snap = s.sample();
    assert_eq!(inferences(&snap), Some(1.0));
    assert_eq!(idle(&snap, Some("ollama")), 0.0);
    assert_eq!(idle(&snap, Some("piper")), 10.0);

    clock.advance(secs(2.0));
    let snap = s.sample();
    assert_eq!(
        inferences(&snap),
        Some(1.0),
        "the same expiry again is nothing new"
    );
    assert_eq!(idle(&snap, Some("ollama")), 2.0);
}

// ---------------------------------------------------------------- idle energy

const PKG: &str = "sys/class/powercap/intel-rapl:0/energy_uj";
const PKG0: u64 = 65_997_277_274;

#[test]
fn idle_energy_accumulates_only_while_idle() {
    let host = support::fixtures::host_copy("intel-laptop");
    let root = host.path();
    let paths = HostPaths::under(root);
    let mut cfg = config(10.0);
    cfg.default_services = false;
    cfg.services = vec![service("web", 1)];
    let clock = ManualClock::default();
    let rapl = unamentis_agent::families::power::rapl::RaplSource::new(paths);
    let (mut s, activity) = sampler(&cfg, &clock, vec![Box::new(rapl)]);
    let idle_j = |snap: &Snapshot| {
        value(
            snap,
            &semconv::IDLE_ENERGY_JOULES,
            Some(("domain", "package")),
        )
        .unwrap()
    };
    let mut uj = PKG0;
    let mut step = |s: &mut Sampler, advance_s: f64, joules: u64| {
        clock.advance(secs(advance_s));
        uj += joules * 1_000_000;
        support::fixtures::set(root, PKG, uj);
        s.sample()
    };
    assert_eq!(idle_j(&s.sample()), 0.0);
    // t = 5: busy (idle from t = 10).
    assert_eq!(idle_j(&step(&mut s, 5.0, 5)), 0.0);
    // t = 15: (5, 15] is idle from 10 on: half of 20 J.
    assert_eq!(idle_j(&step(&mut s, 10.0, 20)), 10.0);
    // t = 20: all idle.
    assert_eq!(idle_j(&step(&mut s, 5.0, 7)), 17.0);
    activity
        .record("web", Kind::Request, 1, Probe::Push)
        .unwrap();
    // t = 25: activity at 20, idle again from 30.
    let snap = step(&mut s, 5.0, 3);
    assert_eq!(idle_j(&snap), 17.0);
    assert_eq!(value(&snap, &semconv::IDLE_STATE, None), Some(0.0));
    // t = 35: (25, 35] idle from 30: half of 4 J.
    let snap = step(&mut s, 10.0, 4);
    assert_eq!(idle_j(&snap), 19.0);
    assert_eq!(value(&snap, &semconv::IDLE_STATE, None), Some(1.0));
    // Total package energy went on counting the whole time.
    assert_eq!(
        value(&snap, &semconv::ENERGY_JOULES, Some(("domain", "package"))),
        Some(39.0)
    );
}

/// A loopback client of the agent's own server (a service pushing, a
/// health probe) is one of the agent's own connections: a request leaves
/// the connections probe's gate shut, so it does not dump every socket.
#[tokio::test]
async fn requests_to_the_agents_own_server_leave_the_gate_shut() {
    use unamentis_agent::activity::connections::{Gate, own_connects, parse_snmp_tcp};
    let (addr, _, _) = start_server(true).await;
    let counters = || parse_snmp_tcp(&std::fs::read_to_string("/proc/net/snmp").unwrap()).unwrap();
    // Other processes on the machine move the counters too: find one
    // window in which only the request happened.
    for _ in 0..30 {
        let gate = Gate {
            counters: counters(),
            own: own_connects(),
            sockets: vec![],
        };
        assert_eq!(request(addr, "GET", "/healthz", &[], b"").await.status, 200);
        // Until both ends have closed (CurrEstab back), within a bound.
        for _ in 0..100 {
            if counters().curr_estab == gate.counters.curr_estab {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if gate.unchanged(&counters(), own_connects()) {
            return;
        }
    }
    panic!("every request to the agent's own server opened the gate");
}

/// The exporter's connection to a loopback collector stays open between
/// exports: its opens and its two established ends are the agent's own, so
/// the gate stays shut after the first export (else the first export, and
/// every reconnect, cost a walk of every socket).
#[tokio::test]
async fn the_exporters_connection_leaves_the_gate_shut() {
    use support::otlp_receiver::Receiver;
    use unamentis_agent::activity::connections::{Gate, own_connects, parse_snmp_tcp};
    use unamentis_agent::config::{ExportConfig, Protocol};
    use unamentis_agent::export::client::Client;
    let rx = Receiver::grpc().await;
    let cfg = ExportConfig {
        endpoint: Some(rx.endpoint()),
        protocol: Protocol::Grpc,
        ..ExportConfig::default()
    };
    let counters = || parse_snmp_tcp(&std::fs::read_to_string("/proc/net/snmp").unwrap()).unwrap();
    // Other processes on the machine move the counters too: find one
    // window in which only the exporter connected.
    for _ in 0..30 {
        let gate = Gate {
            counters: counters(),
            own: own_connects(),
            sockets: vec![],
        };
        let client = Client::new(&cfg).unwrap();
        client.send(&[], Duration::from_secs(10)).await.unwrap();
        let connected = gate.unchanged(&counters(), own_connects());
        drop(client);
        if connected {
            return;
        }
        // The channel closes its connection in the background: wait for
        // both ends to leave CurrEstab, within a bound, so the next try's
        // baseline holds no closing connection of this one.
        for _ in 0..100 {
            if counters().curr_estab <= gate.counters.curr_estab {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    panic!("every export connection opened the gate");
}
