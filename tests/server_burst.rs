//! The real binary's local server under load, through a real OTLP/gRPC
//! receiver: a burst of concurrent clients mixing good and bad requests;
//! idle, slowloris and never-reading clients; an exhausted descriptor
//! table. Every answer, the exported activity counts, the spacing of the
//! collection cycles and the agent's descriptors are compared with what
//! the test itself sent and saw.
#![cfg(target_os = "linux")]

mod support;

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use support::agent::{Agent, command};
use support::http::{Reply, exchange, post_json, request};
use support::otlp_receiver::{Received, Receiver, attr, metrics, points, value};
use tokio::io::AsyncWriteExt;
use unamentis_agent::semconv;
use unamentis_agent::server::{LIMITS, MAX_BODY};

/// Guards against hangs only; nothing asserts on elapsed time.
const LIMIT: Duration = Duration::from_secs(30);
const INTERVAL_MS: u64 = 100;
const TOKEN: &str = "burst-token";
/// Collection cycles must stay an interval apart; a loose bound (ten
/// intervals, as in e2e_outage) for a noisy machine: a sampler that waited
/// on the server would show a gap as long as the load (seconds).
const MAX_GAP_MS: u64 = 1000;

/// The tests measure timing and CPU shares: one agent at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Running {
    agent: Agent,
    rx: Receiver,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

/// The agent at a 100 ms interval with a token, its server on a free port,
/// exporting to a fresh receiver; `max_files` is its descriptor limit.
async fn start(max_files: Option<u64>) -> Running {
    let rx = Receiver::grpc().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("agent.toml");
    std::fs::write(
        &file,
        format!(
            "interval = \"{INTERVAL_MS}ms\"\n\
             [server]\nlisten = \"127.0.0.1:0\"\ntoken = \"{TOKEN}\"\n\
             [activity]\nconnections = false\nollama = false\n\
             [ollama]\nenabled = false\n[gpu]\nenabled = false\n"
        ),
    )
    .unwrap();
    let mut cmd = command();
    cmd.args(["--config", file.to_str().unwrap(), "run"])
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", rx.endpoint());
    if let Some(n) = max_files {
        // SAFETY: setrlimit is async-signal-safe; nothing else runs
        // between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                let mut lim = libc::rlimit {
                    rlim_cur: 0,
                    rlim_max: 0,
                };
                if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                lim.rlim_cur = n.min(lim.rlim_max);
                if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let agent = Agent::start(cmd);
    let addr = agent.server_addr(LIMIT);
    rx.wait_for(1, LIMIT).await;
    Running {
        agent,
        rx,
        addr,
        _dir: dir,
    }
}

fn nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64
}

/// `memory.total_mb` collection timestamps, one per cycle: present only
/// when the cycle could read /proc/meminfo.
fn cycle_times(reqs: &[Received]) -> Vec<u64> {
    let mut t: Vec<u64> = reqs
        .iter()
        .flat_map(|r| metrics(r).into_iter())
        .filter(|m| m.name == semconv::MEMORY_TOTAL_MB.name)
        .flat_map(|m| points(m).iter().map(|p| p.time_unix_nano))
        .collect();
    t.sort_unstable();
    t
}

/// Cycles collected in `[from, to]`, with the one before and the one after
/// (a stop at either edge shows as a gap), and the largest gap between
/// them in ms.
async fn cycles_over(rx: &Receiver, from: u64, to: u64) -> (usize, u64) {
    let start = Instant::now();
    let times = loop {
        let times = cycle_times(&rx.received());
        if times.last().is_some_and(|&t| t > to) {
            break times;
        }
        assert!(start.elapsed() < LIMIT, "no cycle after the window");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let first = times.iter().rposition(|&t| t < from).unwrap_or(0);
    let last = times.iter().position(|&t| t > to).unwrap();
    let span = &times[first..=last];
    let gap = span
        .windows(2)
        .map(|w| (w[1] - w[0]) / 1_000_000)
        .max()
        .unwrap_or(u64::MAX);
    let inside = span.iter().filter(|&&t| t >= from && t <= to).count();
    (inside, gap)
}

/// Every export once `n` cycles collected after `t` arrived, oldest first.
async fn wait_cycles_after(rx: &Receiver, t: u64, n: usize) -> Vec<Received> {
    let start = Instant::now();
    loop {
        let mut got = rx.received();
        if cycle_times(&got).iter().filter(|&&c| c > t).count() >= n {
            got.sort_by_key(|r| cycle_times(std::slice::from_ref(r)));
            return got;
        }
        assert!(start.elapsed() < LIMIT, "{n} cycles after {t} never came");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The push-probe counter of `service` in the export `r`.
fn pushed(r: &Received, metric: &semconv::Metric, service: &str) -> f64 {
    metrics(r)
        .into_iter()
        .filter(|m| m.name == metric.name)
        .flat_map(|m| points(m).iter())
        .filter(|p| attr(p, "unamentis.service").as_deref() == Some(service))
        .filter(|p| attr(p, "probe").as_deref() == Some("push"))
        .map(value)
        .sum()
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

fn threads(pid: u32) -> u32 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap()
}

/// User + system CPU ticks of one thread, from its `stat`.
fn cpu_ticks(stat: &Path) -> u64 {
    let text = std::fs::read_to_string(stat).unwrap();
    let f: Vec<&str> = text
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

/// Whether the peer has closed `s` (EOF or reset), without blocking.
fn closed_by_peer(s: &TcpStream) -> bool {
    s.set_nonblocking(true).unwrap();
    match s.peek(&mut [0u8; 1]) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != ErrorKind::WouldBlock,
    }
}

async fn get(addr: SocketAddr, path: &str) -> Reply {
    request(addr, "GET", path, &[], b"").await
}

// ---------------------------------------------------------------- burst

const CLIENTS: usize = 32;
const PER_CLIENT: usize = 200;
const SERVICES: [&str; 3] = ["ollama", "whisper", "piper"];

#[derive(Clone, Copy, Debug)]
enum Case {
    /// (service, kind, count)
    Push(&'static str, &'static str, u64),
    BadJson,
    UnknownService,
    NoToken,
    WrongToken,
    /// A truthful Content-Length over the limit.
    TooLong,
    /// Chunked, growing past the limit.
    ChunkedTooLong,
    Snapshot,
    SnapshotNoToken,
    Health,
}

/// The n-th request of the burst: every case in turn, pushes of every
/// kind to every service with counts 1..=5.
fn case(n: usize) -> Case {
    let push = |k| {
        Case::Push(
            SERVICES[n / 12 % SERVICES.len()],
            k,
            (n / 36 % 5) as u64 + 1,
        )
    };
    match n % 12 {
        0 | 1 => push("request"),
        2 => push("inference"),
        3 => push("connection"),
        4 => Case::BadJson,
        5 => Case::UnknownService,
        6 => Case::NoToken,
        7 => Case::WrongToken,
        8 => Case::TooLong,
        9 => Case::ChunkedTooLong,
        10 => [Case::Snapshot, Case::SnapshotNoToken][n / 12 % 2],
        _ => Case::Health,
    }
}

async fn send(addr: SocketAddr, case: Case) -> Reply {
    let token = Some(TOKEN);
    match case {
        Case::Push(service, kind, count) => {
            let body = format!(r#"{{"service":"{service}","kind":"{kind}","count":{count}}}"#);
            post_json(addr, "/v1/activity", token, &body).await
        }
        Case::BadJson => post_json(addr, "/v1/activity", token, r#"{"service":"#).await,
        Case::UnknownService => {
            post_json(addr, "/v1/activity", token, r#"{"service":"nginx"}"#).await
        }
        Case::NoToken => post_json(addr, "/v1/activity", None, r#"{"service":"piper"}"#).await,
        Case::WrongToken => {
            post_json(
                addr,
                "/v1/activity",
                Some("burst-tokeN"),
                r#"{"service":"piper"}"#,
            )
            .await
        }
        Case::TooLong => {
            let body = format!(
                r#"{{"service":"piper","pad":"{}"}}"#,
                "x".repeat(MAX_BODY + 100)
            );
            post_json(addr, "/v1/activity", token, &body).await
        }
        Case::ChunkedTooLong => {
            let head = format!(
                "POST /v1/activity HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
                 Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n\
                 Transfer-Encoding: chunked\r\n\r\n"
            );
            let chunk = format!("400\r\n{}\r\n", "x".repeat(0x400));
            let mut parts = vec![head.as_bytes()];
            parts.extend(std::iter::repeat_n(chunk.as_bytes(), 2 * MAX_BODY / 0x400));
            parts.push(b"0\r\n\r\n");
            exchange(addr, &parts).await
        }
        Case::Snapshot => {
            let auth = format!("Authorization: Bearer {TOKEN}");
            request(addr, "GET", "/v1/snapshot", &[&auth], b"").await
        }
        Case::SnapshotNoToken => get(addr, "/v1/snapshot").await,
        Case::Health => get(addr, "/healthz").await,
    }
}

/// Why `r` is the wrong answer to `case`, if it is.
fn wrong(case: Case, r: &Reply) -> Option<String> {
    let ok = match case {
        Case::Push(_, _, n) => r.status == 202 && r.body == format!(r#"{{"accepted":{n}}}"#),
        Case::BadJson => r.status == 400 && r.body.contains("expected JSON like"),
        Case::UnknownService => r.status == 400 && r.body.contains("unknown service"),
        Case::NoToken | Case::WrongToken | Case::SnapshotNoToken => r.status == 401,
        Case::TooLong | Case::ChunkedTooLong => r.status == 413,
        Case::Snapshot => {
            r.status == 200
                && serde_json::from_str::<serde_json::Value>(&r.body)
                    .is_ok_and(|j| j["metrics"].as_array().is_some_and(|m| !m.is_empty()))
        }
        Case::Health => r.status == 200 && r.body == "ok\n",
    };
    (!ok).then(|| format!("{case:?}: {} {:?}", r.status, r.body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_burst_is_answered_right_counted_exactly_and_never_delays_sampling() {
    let _one = SERIAL.lock().await;
    let mut run = start(None).await;
    let addr = run.addr;
    let pid = run.agent.pid();

    let t0 = SystemTime::now();
    let clock = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            tokio::spawn(async move {
                let mut out = Vec::new();
                for i in 0..PER_CLIENT {
                    let case = case(c * PER_CLIENT + i);
                    out.push((case, send(addr, case).await));
                }
                out
            })
        })
        .collect();
    let mut answers = Vec::new();
    for c in clients {
        answers.extend(c.await.unwrap());
    }
    let took = clock.elapsed();
    let t1 = SystemTime::now();
    let threads_after = threads(pid);

    let mut statuses = BTreeMap::<u16, usize>::new();
    let mut want = BTreeMap::<(&str, &str), u64>::new();
    let mut bad = Vec::new();
    for (case, r) in &answers {
        *statuses.entry(r.status).or_default() += 1;
        bad.extend(wrong(*case, r));
        if let (Case::Push(service, kind, n), 202) = (case, r.status) {
            let metric = if *kind == "inference" {
                semconv::ACTIVITY_INFERENCES.name
            } else {
                semconv::ACTIVITY_REQUESTS.name
            };
            *want.entry((service, metric)).or_default() += n;
        }
    }
    eprintln!(
        "burst: {} requests from {CLIENTS} clients in {took:?}, statuses {statuses:?}",
        answers.len()
    );
    assert_eq!(answers.len(), CLIENTS * PER_CLIENT);
    assert!(
        bad.is_empty(),
        "{} wrong answers: {:?}",
        bad.len(),
        &bad[..bad.len().min(10)]
    );

    // Cycles kept their spacing while the burst ran.
    let (inside, gap) = cycles_over(&run.rx, nanos(t0), nanos(t1)).await;
    eprintln!("burst: {inside} cycles during it, largest gap {gap} ms");
    assert!(gap < MAX_GAP_MS, "gap of {gap} ms during the burst");

    // The second cycle after the last answer began after it: its export
    // counts every accepted push, and nothing else.
    let got = wait_cycles_after(&run.rx, nanos(t1), 2).await;
    let last = got.last().unwrap();
    for service in SERVICES {
        for metric in [&semconv::ACTIVITY_REQUESTS, &semconv::ACTIVITY_INFERENCES] {
            let want = want.get(&(service, metric.name)).copied().unwrap_or(0);
            assert!(want > 0, "the burst pushes every kind to {service}");
            assert_eq!(
                pushed(last, metric, service),
                want as f64,
                "{} of {service}",
                metric.name
            );
        }
    }

    assert_eq!(get(addr, "/healthz").await.status, 200);
    assert_eq!(get(addr, "/readyz").await.status, 200);
    assert!(threads_after <= 4, "{threads_after} threads");
    run.agent.signal("TERM");
    assert!(run.agent.wait(LIMIT).success(), "{}", run.agent.log_text());
}

// ---------------------------------------------------------------- slow clients

const IDLE: usize = 300;
const SLOW: usize = 16;
/// A tight but real descriptor limit: the server's cap and what sampling
/// needs fit in it, a few hundred idle sockets do not.
const MAX_FILES: u64 = 128;

/// A slowloris: a head one byte every 50 ms, never finished. Returns when
/// the agent closes the connection, with how long it was open (at least:
/// timed from before the connection exists).
async fn slowloris(addr: SocketAddr) -> Duration {
    let opened = Instant::now();
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = b"GET /healthz HTTP/1.1\r\n"
        .iter()
        .chain(b"X-Slow: 1\r\n".iter().cycle());
    for b in head {
        if s.write_all(&[*b]).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    opened.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_slow_and_stuck_clients_starve_neither_others_nor_sampling() {
    let _one = SERIAL.lock().await;
    let mut run = start(Some(MAX_FILES)).await;
    let (addr, pid) = (run.addr, run.agent.pid());
    // Sampling keeps the kernel files it reads at every cycle open from the
    // second cycle on: they belong to the baseline.
    run.rx.wait_for(3, LIMIT).await;
    let baseline = open_fds(pid);
    let most_fds = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(baseline));
    let watch = {
        let most = most_fds.clone();
        tokio::spawn(async move {
            loop {
                most.fetch_max(open_fds(pid), std::sync::atomic::Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let t0 = SystemTime::now();

    let idle: Vec<TcpStream> = (0..IDLE)
        .map(|i| {
            TcpStream::connect_timeout(&addr, LIMIT)
                .unwrap_or_else(|e| panic!("idle socket {i}: {e}: the agent stopped accepting"))
        })
        .collect();
    let slow: Vec<_> = (0..SLOW).map(|_| tokio::spawn(slowloris(addr))).collect();
    // Pipelines snapshot requests and never reads an answer.
    let mut stuck = tokio::net::TcpStream::connect(addr).await.unwrap();
    let pipelined = format!(
        "GET /v1/snapshot HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
    )
    .repeat(64);
    let stuck =
        tokio::spawn(async move { while stuck.write_all(pipelined.as_bytes()).await.is_ok() {} });

    // Others are answered while all of them hold on.
    let health = tokio::time::timeout(LIMIT, get(addr, "/healthz"))
        .await
        .expect("/healthz not answered while idle clients held on");
    assert_eq!(health.status, 200);
    let push = post_json(addr, "/v1/activity", Some(TOKEN), r#"{"service":"piper"}"#).await;
    assert_eq!(push.status, 202, "{}", push.body);

    // The agent holds at most its cap: the oldest idle sockets went first.
    let start = Instant::now();
    let closed = loop {
        let closed: Vec<bool> = idle.iter().map(closed_by_peer).collect();
        let held = closed.iter().filter(|c| !**c).count() + SLOW + 1;
        if held <= LIMITS.max_connections {
            break closed;
        }
        assert!(
            start.elapsed() < LIMIT,
            "the agent holds {held} connections"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let first_open = closed.iter().position(|c| !c).unwrap_or(IDLE);
    assert!(
        closed[first_open..].iter().all(|c| !c),
        "closed out of order: {closed:?}"
    );

    // Slowloris heads time out although bytes keep coming.
    let mut slow_open = Vec::new();
    for s in slow {
        slow_open.push(tokio::time::timeout(LIMIT, s).await.unwrap().unwrap());
    }
    let t1 = SystemTime::now();
    let start = Instant::now();
    while !idle.iter().all(closed_by_peer) {
        assert!(start.elapsed() < LIMIT, "idle sockets never closed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    watch.abort();
    let most_fds = most_fds.load(std::sync::atomic::Ordering::SeqCst);
    eprintln!(
        "flood: {IDLE} idle, {SLOW} slowloris ({:?}..{:?} open), 1 not reading; \
         agent descriptors {baseline} before, {most_fds} at most",
        slow_open.iter().min().unwrap(),
        slow_open.iter().max().unwrap(),
    );
    // The slack: a connection accepted while the one it pushes out closes,
    // and the files a cycle has open.
    assert!(
        most_fds <= baseline + LIMITS.max_connections + 4,
        "{most_fds} descriptors open ({baseline} before the flood)"
    );
    // Let go by the head timeout, not pushed out by newer connections.
    assert!(slow_open.iter().all(|&d| d >= LIMITS.header_read));

    // Sampling read /proc on time all along.
    let (inside, gap) = cycles_over(&run.rx, nanos(t0), nanos(t1)).await;
    eprintln!("flood: {inside} cycles during it, largest gap {gap} ms");
    assert!(gap < MAX_GAP_MS, "gap of {gap} ms during the flood");

    assert_eq!(get(addr, "/healthz").await.status, 200);
    assert_eq!(get(addr, "/readyz").await.status, 200);
    assert!(threads(pid) <= 4, "{} threads", threads(pid));
    let log = run.agent.log_text();
    assert!(!log.contains("cannot accept"), "{log}");
    assert!(log.contains("closing the oldest"), "{log}");
    stuck.abort();
    run.agent.signal("TERM");
    assert!(run.agent.wait(LIMIT).success(), "{}", run.agent.log_text());
}

// ---------------------------------------------------------------- EMFILE

/// So few descriptors that idle sockets take the last one before the
/// server's cap.
const FEW_FILES: u64 = 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_descriptors_the_server_waits_without_spinning_and_recovers() {
    let _one = SERIAL.lock().await;
    let mut run = start(Some(FEW_FILES)).await;
    let (addr, pid) = (run.addr, run.agent.pid());
    let idle: Vec<TcpStream> = (0..FEW_FILES)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    run.agent
        .wait_for_log("cannot accept a connection", LIMIT)
        .await;
    assert!(
        run.agent.log_text().contains("Too many open files"),
        "{}",
        run.agent.log_text()
    );

    // The agent's runtime thread against a thread that spins, in the same
    // window: a loop retrying accept at once would get as much CPU.
    let runtime = format!("/proc/{pid}/task/{pid}/stat");
    let before = cpu_ticks(Path::new(&runtime));
    let spun = std::thread::spawn(|| {
        let me = Path::new("/proc/thread-self/stat");
        let (c0, start) = (cpu_ticks(me), Instant::now());
        while start.elapsed() < Duration::from_secs(1) {
            std::hint::spin_loop();
        }
        cpu_ticks(me) - c0
    })
    .join()
    .unwrap();
    let agent = cpu_ticks(Path::new(&runtime)) - before;
    eprintln!("out of descriptors: agent runtime thread {agent} ticks, a spinning thread {spun}");
    assert!(
        agent * 4 <= spun,
        "agent {agent} ticks, spinning thread {spun}"
    );

    // Descriptors come back: the server accepts again.
    drop(idle);
    let health = tokio::time::timeout(LIMIT, get(addr, "/healthz"))
        .await
        .expect("no answer after the descriptors came back");
    assert_eq!(health.status, 200);
    run.agent
        .wait_for_log("accepting connections again", LIMIT)
        .await;
    // One warning per streak of failed accepts, not one per retry: a
    // warning is only ever followed by the recovery line (a cycle that
    // closes its files can let one accept through and start a new streak).
    let log = run.agent.log_text();
    let events: Vec<&str> = log
        .lines()
        .filter_map(|l| {
            if l.contains("cannot accept a connection") {
                Some("fail")
            } else if l.contains("accepting connections again") {
                Some("again")
            } else {
                None
            }
        })
        .collect();
    assert!(events.len() >= 2, "{log}");
    assert!(
        events
            .iter()
            .enumerate()
            .all(|(i, e)| *e == ["fail", "again"][i % 2]),
        "{events:?}\n{log}"
    );
    run.agent.signal("TERM");
    assert!(run.agent.wait(LIMIT).success(), "{log}");
}
