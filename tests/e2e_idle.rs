//! The real binary, through a real OTLP/gRPC receiver: idle.duration_seconds
//! rises, drops after a push to the agent's local server and after a real
//! TCP connection to a watched port, and idle energy (from RAPL fixture
//! files the test advances) grows only while the stack is idle.
#![cfg(target_os = "linux")]

mod support;

use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use support::agent::Agent;
use support::fixtures::{host_copy, set};
use support::otlp_receiver::{Received, Receiver, attr, find_value, metrics, points, value};
use support::tcp::holding_listener;
use unamentis_agent::semconv;

/// Guards against hangs only; nothing asserts on elapsed time.
const LIMIT: Duration = Duration::from_secs(30);
const PKG: &str = "sys/class/powercap/intel-rapl:0/energy_uj";
const PKG0: u64 = 65_997_277_274;

/// The host-wide point (no attributes) of `name`.
fn host_value(r: &Received, name: &str) -> Option<f64> {
    metrics(r)
        .into_iter()
        .filter(|m| m.name == name)
        .flat_map(|m| points(m).iter())
        .find(|p| p.attributes.is_empty())
        .map(value)
}

fn idle(r: &Received) -> f64 {
    host_value(r, semconv::IDLE_DURATION_SECONDS.name).expect("host idle.duration_seconds")
}

fn idle_of(r: &Received, service: &str) -> f64 {
    find_value(
        r,
        semconv::IDLE_DURATION_SECONDS.name,
        Some(("unamentis.service", service)),
    )
    .expect("service idle.duration_seconds")
}

fn state(r: &Received) -> f64 {
    host_value(r, semconv::IDLE_STATE.name).expect("idle.state")
}

fn joules(r: &Received, metric: &semconv::Metric) -> f64 {
    find_value(r, metric.name, Some(("domain", "package"))).expect("package joules")
}

/// Waits for the first export after the first `skip` that satisfies `ok`.
async fn wait_until(rx: &Receiver, skip: usize, ok: impl Fn(&Received) -> bool) -> usize {
    let mut n = skip;
    loop {
        let got = rx.wait_for(n + 1, LIMIT).await;
        if let Some(i) = (n..got.len()).find(|&i| ok(&got[i])) {
            return i;
        }
        n = got.len();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_clock_and_idle_energy_through_otlp() {
    let host = host_copy("intel-laptop");
    let root = host.path().to_path_buf();
    let (web, tts) = (holding_listener(), holding_listener());
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "interval = \"250ms\"\ndefault_services = false\n\
             [[service]]\nname = \"web\"\nport = {web}\n\
             [[service]]\nname = \"tts\"\nport = {tts}\n\
             [activity]\nidle_after = \"2s\"\n\
             [server]\nlisten = \"127.0.0.1:0\"\n\
             [ollama]\nenabled = false\n[gpu]\nenabled = false\n"
        ),
    )
    .unwrap();
    let rx = Receiver::grpc().await;
    let sys = root.join("sys").to_string_lossy().into_owned();
    let mut agent = Agent::spawn(
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", &rx.endpoint())],
        &[
            "run",
            "--config",
            config.to_str().unwrap(),
            "--host-sys",
            &sys,
        ],
    );
    let addr = agent.server_addr(LIMIT);

    // The package burns 1 J every 100 ms, busy or idle.
    let stop = Arc::new(AtomicBool::new(false));
    let burner = {
        let (stop, root) = (stop.clone(), root.clone());
        std::thread::spawn(move || {
            let mut uj = PKG0;
            while !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(100));
                uj += 1_000_000;
                set(&root, PKG, uj);
            }
        })
    };

    // 1. Nobody uses the stack: the clock rises from start until idle,
    // and stays idle a few cycles.
    let i = wait_until(&rx, 0, |r| idle(r) >= 3.0).await;
    let got = rx.received();
    for w in got[..=i].windows(2) {
        assert!(idle(&w[1]) >= idle(&w[0]), "rising");
    }
    assert_eq!(state(&got[i]), 1.0);

    // 2. A push resets the host's and web's clocks, not tts's.
    let before = rx.received().len();
    let pushed =
        support::http::post_json(addr, "/v1/activity", None, r#"{"service": "web"}"#).await;
    assert_eq!(pushed.status, 202, "{}", pushed.body);
    let last = idle(&rx.received()[before - 1]);
    let j = wait_until(&rx, before, |r| idle(r) < last).await;
    let r = &rx.received()[j];
    assert_eq!(state(r), 0.0);
    assert_eq!(idle_of(r, "web"), idle(r));
    assert!(idle_of(r, "tts") > last, "tts is still idle since start");
    assert_eq!(
        find_value(r, semconv::ACTIVITY_REQUESTS.name, Some(("probe", "push"))),
        Some(1.0)
    );

    // 3. Idle again for a few cycles, then a real TCP client of web.
    let k = wait_until(&rx, j, |r| idle(r) >= 3.0).await;
    let _client = TcpStream::connect(("127.0.0.1", web)).unwrap();
    let last = idle(&rx.received()[k]);
    let m = wait_until(&rx, k + 1, |r| {
        find_value(
            r,
            semconv::ACTIVITY_CONNECTIONS.name,
            Some(("unamentis.service", "web")),
        ) == Some(1.0)
    })
    .await;
    let r = &rx.received()[m];
    assert!(idle_of(r, "web") < last, "web's clock reset");
    assert!(idle(r) < last, "the host's too");
    assert!(idle_of(r, "tts") > last, "tts's did not");
    let conn_requests = metrics(r)
        .into_iter()
        .filter(|m| m.name == semconv::ACTIVITY_REQUESTS.name)
        .flat_map(|m| points(m).iter())
        .find(|p| attr(p, "probe").as_deref() == Some("connections"))
        .map(|p| (attr(p, "unamentis.service"), value(p)));
    assert_eq!(conn_requests, Some((Some("web".into()), 1.0)));

    stop.store(true, Ordering::SeqCst);
    burner.join().unwrap();
    agent.signal("TERM");
    assert!(agent.wait(LIMIT).success(), "{}", agent.log_text());

    // 4. Idle energy grew only while idle: an export not idle adds
    // nothing; between two idle exports (no activity can fall between,
    // idle_after is 8 intervals) it adds exactly the package's energy.
    let got = rx.received();
    let mut grew = false;
    for w in got.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        let d_idle =
            joules(b, &semconv::IDLE_ENERGY_JOULES) - joules(a, &semconv::IDLE_ENERGY_JOULES);
        let d_pkg = joules(b, &semconv::ENERGY_JOULES) - joules(a, &semconv::ENERGY_JOULES);
        assert!(d_idle >= 0.0, "never backwards");
        if state(b) == 0.0 {
            assert_eq!(d_idle, 0.0, "busy interval added idle energy");
        }
        if state(a) == 1.0 && state(b) == 1.0 {
            assert!((d_idle - d_pkg).abs() < 1e-6, "{d_idle} vs {d_pkg}");
            grew |= d_idle > 0.0;
        }
        assert!(d_idle <= d_pkg + 1e-6);
    }
    assert!(grew, "the package burned energy while idle");
    let last = got.last().unwrap();
    assert!(
        joules(last, &semconv::IDLE_ENERGY_JOULES) < joules(last, &semconv::ENERGY_JOULES),
        "busy periods are not idle energy"
    );
}
