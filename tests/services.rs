//! Per-service measurement against real processes spawned by the test. The
//! processes are this test binary re-run as a "role" (burner, hog, parent,
//! listener) with a unique tag in its command line; ground truth is each
//! process's own `/proc/<pid>` figures read in the same window.

mod support;

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::services::service_source;
use unamentis_agent::config::{Config, ServiceConfig};
use unamentis_agent::families::services::{ServiceSample, ServiceSource, ServicesSample};
use unamentis_agent::snapshot::Snapshot;
use unamentis_agent::sources::Source;

/// Guards against hangs only; nothing asserts on elapsed time.
const LIMIT: Duration = Duration::from_secs(30);

const ROLE_ENV: &str = "UNAMENTIS_TEST_ROLE";

/// Not a test: the body of the spawned helper processes. Run as a test
/// without the role variable it returns at once.
#[test]
fn role() {
    let Ok(role) = std::env::var(ROLE_ENV) else {
        return;
    };
    match role.as_str() {
        "burner" => burn(),
        "hog" => hog(),
        "parent" => parent(),
        "listener" => listener(),
        "churner" => churn(),
        "forker" => fork_workers(),
        "io-writer" => io_writer(),
        "io-parent" => io_parent(),
        other => panic!("unknown role {other}"),
    }
}

/// Busy half of every 20 ms until killed.
fn burn() {
    println!("READY");
    loop {
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(10) {
            std::hint::black_box(0u64.wrapping_add(1));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn hog() {
    let mut v = vec![0u8; 200 << 20];
    for i in (0..v.len()).step_by(4096) {
        v[i] = 1;
    }
    std::hint::black_box(&v);
    println!("READY");
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn parent() {
    let tag = std::env::var("CHILD_TAG").unwrap();
    let mut kids: Vec<Child> = (0..2)
        .map(|_| spawn(role_command("burner", &tag), "burner").0)
        .collect();
    println!("READY");
    for k in &mut kids {
        let _ = k.wait();
    }
}

fn listener() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    println!("READY {}", l.local_addr().unwrap().port());
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Starts and reaps short-lived children without pause, so a sample keeps
/// finding children in the listing that are gone when their files are read.
fn churn() {
    println!("READY");
    loop {
        let _ = Command::new("true").status();
    }
}

/// A service made of short-lived workers: every 100 ms it forks a worker
/// that burns 40 ms of CPU and exits, and waits for it, like a server
/// running a CLI per request.
fn fork_workers() {
    println!("READY");
    loop {
        let started = Instant::now();
        // SAFETY: the child only reads its CPU clock and _exits: nothing
        // that needs another thread or a lock the fork may have copied held.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let end = cpu_time() + Duration::from_millis(40);
            while cpu_time() < end {
                std::hint::black_box(0u64.wrapping_add(1));
            }
            // SAFETY: ends the child without running the parent's atexit
            // handlers or flushing its copied buffers.
            unsafe { libc::_exit(0) };
        }
        assert!(pid > 0, "fork failed");
        if let Some(rest) = Duration::from_millis(100).checked_sub(started.elapsed()) {
            std::thread::sleep(rest);
        }
        let mut status = 0;
        // SAFETY: waits for the child forked above.
        unsafe { libc::waitpid(pid, &mut status, 0) };
    }
}

/// At each `go` line on stdin, writes `IO_MIB` MiB to `IO_FILE` and
/// fsyncs it, then answers `WROTE`; exits at the end of its input.
fn io_writer() {
    use std::io::Write;
    let path = std::env::var("IO_FILE").unwrap();
    let mib: usize = std::env::var("IO_MIB").unwrap().parse().unwrap();
    let chunk = vec![0x5au8; 1 << 20];
    println!("READY");
    for line in std::io::stdin().lock().lines() {
        if line.unwrap().trim() != "go" {
            continue;
        }
        let mut f = std::fs::File::create(&path).unwrap();
        for _ in 0..mib {
            f.write_all(&chunk).unwrap();
        }
        f.sync_all().unwrap();
        println!("WROTE");
    }
}

/// A service that forks writers: at `go` it starts `IO_KIDS` io-writers
/// (files under `IO_DIR`), has each write and answers `WROTE <pids>` with
/// the writers alive; at `release` it closes their input and waits for
/// them (the reap that adds their I/O to its own), then answers `REAPED`.
fn io_parent() {
    let dir = std::path::PathBuf::from(std::env::var("IO_DIR").unwrap());
    let kids: usize = std::env::var("IO_KIDS").unwrap().parse().unwrap();
    let mut alive: Vec<IoRole> = Vec::new();
    let mut round = 0;
    println!("READY");
    for line in std::io::stdin().lock().lines() {
        match line.unwrap().trim() {
            "go" => {
                round += 1;
                for k in 0..kids {
                    let mut cmd = role_command("io-writer", "io-child");
                    cmd.env("IO_FILE", dir.join(format!("kid-{round}-{k}")));
                    let mut w = IoRole::start(cmd, false);
                    w.say("go");
                    w.expect("WROTE");
                    alive.push(w);
                }
                let pids: Vec<String> = alive.iter().map(|w| w.child.id().to_string()).collect();
                println!("WROTE {}", pids.join(" "));
            }
            "release" => {
                for mut w in alive.drain(..) {
                    drop(w.stdin.take());
                    assert!(w.child.wait().unwrap().success());
                }
                println!("REAPED");
            }
            _ => {}
        }
    }
}

/// A role driven line by line through its stdin and stdout.
struct IoRole {
    own_group: bool,
    child: Child,
    stdin: Option<std::process::ChildStdin>,
    stdout: std::io::BufReader<std::process::ChildStdout>,
}

impl IoRole {
    /// `own_group`: in a process group of its own, so dropping it kills
    /// whatever it started too.
    fn start(mut cmd: Command, own_group: bool) -> IoRole {
        use std::os::unix::process::CommandExt;
        if own_group {
            cmd.process_group(0);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut role = IoRole {
            own_group,
            stdin: child.stdin.take(),
            stdout: std::io::BufReader::new(child.stdout.take().unwrap()),
            child,
        };
        role.expect("READY");
        role
    }

    fn say(&mut self, line: &str) {
        use std::io::Write;
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// Reads up to the line holding `word`; returns what follows it.
    fn expect(&mut self, word: &str) -> String {
        let mut line = String::new();
        while !line.contains(word) {
            line.clear();
            assert!(
                self.stdout.read_line(&mut line).unwrap() > 0,
                "role exited before {word}"
            );
        }
        line.split(word).nth(1).unwrap_or("").trim().to_owned()
    }
}

impl Drop for IoRole {
    fn drop(&mut self) {
        drop(self.stdin.take());
        // Only while unreaped: a reaped pid may belong to another process.
        if self.own_group && matches!(self.child.try_wait(), Ok(None)) {
            let _ = Command::new("kill")
                .args(["-s", "KILL", "--", &format!("-{}", self.child.id())])
                .status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU time this process has used (CLOCK_PROCESS_CPUTIME_ID).
fn cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec to write.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        // A parent's children die with their process group.
        // "--": procps kill reads a bare "-<pgid>" as the option "-1" and
        // signals every process.
        let _ = Command::new("kill")
            .args(["-s", "KILL", "--", &format!("-{}", self.0.id())])
            .status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Spawns a role with `tag` in its command line (a second libtest filter
/// that matches no test) and returns it with its first output line.
/// The role runs in its own process group, so dropping it kills whatever
/// it spawned too.
fn spawn_role(role: &str, tag: &str) -> (Child, String) {
    use std::os::unix::process::CommandExt;
    let mut cmd = role_command(role, tag);
    cmd.process_group(0);
    spawn(cmd, role)
}

fn role_command(role: &str, tag: &str) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "role", tag, "--nocapture", "--test-threads=1"])
        .env(ROLE_ENV, role);
    cmd
}

fn spawn(mut cmd: Command, role: &str) -> (Child, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // libtest prints its own words first (`test role ... READY`).
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("READY") {
        line.clear();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "role {role} exited before it was ready"
        );
    }
    let line = line.split("READY").nth(1).unwrap_or("").to_owned();
    // Keep draining so the child never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    (child, line.trim().to_owned())
}

fn tag() -> String {
    format!(
        "tag-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

fn service(name: &str, cmdline: Option<&str>, port: Option<u16>) -> ServiceConfig {
    ServiceConfig {
        name: name.into(),
        process: vec![],
        cmdline: cmdline.map(regex_escape),
        port,
        ports: vec![],
        pid_file: None,
        systemd_unit: None,
        cgroup: None,
    }
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c.to_string()
            } else {
                format!("\\{c}")
            }
        })
        .collect()
}

fn source(services: Vec<ServiceConfig>) -> ServiceSource {
    service_source(&Config {
        default_services: false,
        services,
        ..Default::default()
    })
}

fn sample(src: &mut ServiceSource, name: &str) -> ServiceSample {
    let mut snap = Snapshot::default();
    src.sample(&mut snap).unwrap();
    snap.take::<ServicesSample>()
        .unwrap()
        .services
        .into_iter()
        .find(|s| s.name == name)
        .unwrap()
}

fn ticks(pid: u32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &text[text.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

/// utime + stime + cutime + cstime: the process's own CPU ticks and those
/// of the children it has waited for.
fn ticks_with_reaped(pid: u32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &text[text.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    f[11..15].iter().map(|v| v.parse::<u64>().unwrap()).sum()
}

fn clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions.
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }) as f64
}

/// % of one core the pids used between two tick readings.
fn truth(before: u64, after: u64, elapsed: Duration) -> f64 {
    (after - before) as f64 / clk_tck() / elapsed.as_secs_f64() * 100.0
}

/// Children of every thread of `pid` (libtest spawns from a test thread,
/// and `children` lists a thread's own).
fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let text =
            std::fs::read_to_string(task.unwrap().path().join("children")).unwrap_or_default();
        out.extend(
            text.split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok()),
        );
    }
    out
}

#[test]
fn burner_cpu_matches_its_own_proc_figures() {
    let tag = tag();
    let (b, _) = spawn_role("burner", &tag);
    let b = Proc(b);
    let pid = b.0.id();
    let mut src = source(vec![service("burner", Some(&tag), None)]);
    let (t0, g0) = (Instant::now(), ticks(pid));
    std::thread::sleep(Duration::from_secs(2));
    let s = sample(&mut src, "burner");
    let (t1, g1) = (Instant::now(), ticks(pid));
    let want = truth(g0, g1, t1 - t0);
    let got = s.cpu_percent.expect("cpu point");
    assert!(
        (got - want).abs() <= 5.0,
        "agent {got:.1} % vs the burner's own {want:.1} %"
    );
    assert_eq!(s.pids, vec![pid]);
    assert!(s.threads.unwrap() >= 1);
    assert!(s.open_files.unwrap() >= 3, "stdin, stdout, stderr at least");
}

/// Workers that start and exit between two samples count through their
/// parent's reaped-children counters, and one that was measured at a sample
/// before being reaped is not counted twice: sampled every 125 ms (most
/// samples see a worker alive, and counting its time again at its reap
/// would add about 20 points), the time-weighted mean over the window
/// matches the service's own utime + stime + cutime + cstime.
#[test]
fn a_forking_service_counts_its_reaped_workers() {
    let tag = tag();
    let (f, _) = spawn_role("forker", &tag);
    let f = Proc(f);
    let pid = f.0.id();
    let mut src = source(vec![service("forker", Some(&tag), None)]);
    const SAMPLES: usize = 20;
    let (t0, g0) = (Instant::now(), ticks_with_reaped(pid));
    let (mut last, mut weighted, mut with_worker) = (t0, 0.0, 0);
    for _ in 0..SAMPLES {
        std::thread::sleep(Duration::from_millis(125));
        let s = sample(&mut src, "forker");
        let t = Instant::now();
        let cpu = s.cpu_percent.expect("cpu point");
        assert!(cpu >= 0.0, "{s:?}");
        assert!(s.pids.contains(&pid), "{s:?}");
        with_worker += usize::from(s.pids.len() > 1);
        weighted += cpu * (t - last).as_secs_f64();
        last = t;
    }
    let (t1, g1) = (Instant::now(), ticks_with_reaped(pid));
    let want = truth(g0, g1, t1 - t0);
    let got = weighted / (last - t0).as_secs_f64();
    let seen = format!("{with_worker} of {SAMPLES} samples saw a worker");
    eprintln!("forker: agent {got:.1} % vs its own {want:.1} %, {seen}");
    assert!(
        (got - want).abs() <= 5.0,
        "agent {got:.1} % vs the forker's own {want:.1} % ({seen})"
    );
    assert!(want > 5.0, "the workers ran: {want:.1} %");
}

#[test]
fn memory_hog_rss_matches_its_vmrss() {
    let tag = tag();
    let (h, _) = spawn_role("hog", &tag);
    let h = Proc(h);
    let mut src = source(vec![service("hog", Some(&tag), None)]);
    let s = sample(&mut src, "hog");
    let status = std::fs::read_to_string(format!("/proc/{}/status", h.0.id())).unwrap();
    let vmrss_kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    let got = s.rss_bytes.unwrap() as f64 / 1024.0;
    assert!(
        vmrss_kib > 200.0 * 1024.0,
        "the hog touched 200 MiB: {vmrss_kib} KiB"
    );
    assert!(
        (got - vmrss_kib).abs() <= vmrss_kib * 0.05,
        "agent {got} KiB vs VmRSS {vmrss_kib} KiB"
    );
}

#[test]
fn a_parents_children_are_aggregated() {
    let (tag, child_tag) = (tag(), format!("{}-child", tag()));
    // SAFETY: tests in this file do not read CHILD_TAG concurrently; the
    // variable only reaches the spawned parent.
    unsafe { std::env::set_var("CHILD_TAG", &child_tag) };
    let (p, _) = spawn_role("parent", &tag);
    let p = Proc(p);
    let parent = p.0.id();
    let kids = children_of(parent);
    assert_eq!(kids.len(), 2, "parent spawned two burners");
    let all: Vec<u32> = std::iter::once(parent)
        .chain(kids.iter().copied())
        .collect();
    // Only the parent matches; its children come in as its tree.
    let mut src = source(vec![service("parent", Some(&format!("{tag} ")), None)]);
    let sum = || all.iter().map(|&p| ticks(p)).sum::<u64>();
    let (t0, g0) = (Instant::now(), sum());
    std::thread::sleep(Duration::from_secs(2));
    let s = sample(&mut src, "parent");
    let (t1, g1) = (Instant::now(), sum());
    let mut want_pids = all.clone();
    want_pids.sort_unstable();
    assert_eq!(s.pids, want_pids);
    let (got, want) = (s.cpu_percent.unwrap(), truth(g0, g1, t1 - t0));
    assert!(
        (got - want).abs() <= 5.0,
        "agent {got:.1} % vs the tree's own {want:.1} %"
    );
    // The burners ran, so the comparison above is not 0 against 0. How
    // much they got depends on the machine's load (two 50 % burners get
    // ~100 % on an idle host, far less on a busy shared one).
    assert!(want > 5.0, "the two burners ran: {want:.1} %");
}

#[test]
fn found_only_by_its_listening_socket() {
    let (l, port) = spawn_role("listener", &tag());
    let l = Proc(l);
    let port: u16 = port.parse().unwrap();
    let mut src = source(vec![service("listener", None, Some(port))]);
    let s = sample(&mut src, "listener");
    assert_eq!(s.pids, vec![l.0.id()]);
    assert_eq!(s.matched.len(), 1);
    // Another port nobody listens on is down, with the reason.
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut src = source(vec![service("nobody", None, Some(free))]);
    let s = sample(&mut src, "nobody");
    assert!(!s.up());
    assert_eq!(s.note.unwrap(), format!("nothing listens on port {free}"));
}

#[test]
fn a_restarted_service_is_picked_up_at_the_next_sample() {
    let tag = tag();
    let (a, _) = spawn_role("burner", &tag);
    let a = Proc(a);
    let mut src = source(vec![service("svc", Some(&tag), None)]);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(sample(&mut src, "svc").pids, vec![a.0.id()]);
    drop(a);
    let (b, _) = spawn_role("burner", &tag);
    let b = Proc(b);
    let (t0, g0) = (Instant::now(), ticks(b.0.id()));
    std::thread::sleep(Duration::from_millis(500));
    let s = sample(&mut src, "svc");
    let (t1, g1) = (Instant::now(), ticks(b.0.id()));
    assert_eq!(s.pids, vec![b.0.id()], "the new pid, within one sample");
    let got = s.cpu_percent.unwrap();
    // The new process's whole life is inside the window: its CPU counts,
    // the dead one's does not, and nothing goes negative or spikes.
    let upper = truth(0, g1, t1 - t0) + 5.0;
    assert!(
        got >= 0.0 && got <= upper,
        "{got:.1} % (bound {upper:.1} %, window truth {:.1} %)",
        truth(g0, g1, t1 - t0)
    );
}

#[test]
fn a_service_that_never_existed_is_down_without_values() {
    let mut src = source(vec![service("ghost", Some(&tag()), None)]);
    let mut snap = Snapshot::default();
    src.sample(&mut snap).unwrap();
    let s = &snap.get::<ServicesSample>().unwrap().services[0];
    assert!(!s.up());
    assert_eq!((s.cpu_percent, s.rss_bytes, s.threads), (None, None, None));
    let points = snap.points();
    let ghost: Vec<_> = points
        .iter()
        .filter(|p| p.attrs.iter().any(|(_, v)| v.to_string() == "ghost"))
        .map(|p| (p.metric.name, p.value))
        .collect();
    assert_eq!(ghost, vec![("unamentis.server.service.up", 0.0)]);
}

#[test]
fn a_process_two_services_match_goes_to_the_first() {
    let tag = tag();
    let (b, _) = spawn_role("burner", &tag);
    let b = Proc(b);
    let mut src = source(vec![
        service("first", Some(&tag), None),
        service("second", Some(&tag), None),
    ]);
    let mut snap = Snapshot::default();
    src.sample(&mut snap).unwrap();
    let svcs = snap.get::<ServicesSample>().cloned().unwrap().services;
    assert_eq!(svcs[0].pids, vec![b.0.id()]);
    assert!(svcs[1].pids.is_empty());
}

/// `role` (found by its tag) watched by the real binary at a 2 s interval,
/// exporting over OTLP: each periodic export's service.cpu_percent against
/// `ticks_of` the role's process between the arrivals of that export and
/// the one before. Returns the three exports, with the agent and the role
/// still running.
async fn cpu_through_the_binary(
    role: &str,
    ticks_of: fn(u32) -> u64,
) -> (
    Vec<support::otlp_receiver::Received>,
    support::agent::Agent,
    Proc,
) {
    use support::otlp_receiver::{Receiver, find_value};
    let tag = tag();
    let (p, _) = spawn_role(role, &tag);
    let p = Proc(p);
    let pid = p.0.id();
    let cfg = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        cfg.path(),
        format!(
            "default_services = false\n[[service]]\nname = \"{role}\"\ncmdline = \"{}\"\n",
            regex_escape(&tag)
        ),
    )
    .unwrap();
    let rx = Receiver::grpc().await;
    let agent = support::agent::Agent::spawn(
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &rx.endpoint()),
            ("UNAMENTIS_AGENT_INTERVAL", "2s"),
        ],
        &["--config", &cfg.path().display().to_string(), "run"],
    );
    // Ground truth at each arrival: the early export, then two periodic ones.
    let mut marks = Vec::new();
    for n in 1..=3 {
        let got = rx.wait_for(n, LIMIT).await;
        marks.push((got[n - 1].at, ticks_of(pid)));
    }
    let got = rx.received();
    for n in 1..3 {
        let (t0, g0) = marks[n - 1];
        let (t1, g1) = marks[n];
        let want = truth(g0, g1, t1 - t0);
        let value = find_value(
            &got[n],
            "unamentis.server.service.cpu_percent",
            Some(("unamentis.service", role)),
        )
        .unwrap_or_else(|| panic!("service.cpu_percent for the {role}"));
        assert!(
            (value - want).abs() <= 5.0,
            "export {n}: agent {value:.1} % vs the {role}'s own {want:.1} %"
        );
        assert!(want > 5.0, "the {role} ran: {want:.1} %");
    }
    (got, agent, p)
}

/// The burner through the real binary and OTLP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burner_through_the_binary_and_otlp() {
    use support::otlp_receiver::find_value;
    let (got, mut agent, _burner) = cpu_through_the_binary("burner", ticks).await;
    let last = &got[2];
    let of =
        |name: &str, service: &str| find_value(last, name, Some(("unamentis.service", service)));
    assert_eq!(of("unamentis.server.service.up", "burner"), Some(1.0));
    assert_eq!(
        of("unamentis.server.service.processes", "burner"),
        Some(1.0)
    );
    assert!(of("unamentis.server.service.memory_mb", "burner").unwrap() > 0.0);
    assert!(of("unamentis.server.service.cpu_percent", "other").is_some());
    agent.signal("TERM");
    assert!(agent.wait(LIMIT).success(), "{}", agent.log_text());
}

/// The forking service through the real binary and OTLP, against the
/// forker's own utime + stime + cutime + cstime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forking_service_through_the_binary_and_otlp() {
    let (_, mut agent, _forker) = cpu_through_the_binary("forker", ticks_with_reaped).await;
    agent.signal("TERM");
    assert!(agent.wait(LIMIT).success(), "{}", agent.log_text());
}

#[test]
fn services_command_explains_matches() {
    let tag = tag();
    let (b, _) = spawn_role("burner", &tag);
    let b = Proc(b);
    let cfg = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        cfg.path(),
        format!(
            "default_services = false\n[[service]]\nname = \"burner\"\ncmdline = \"{}\"\n[[service]]\nname = \"ghost\"\nprocess = \"no-such-process\"\n",
            regex_escape(&tag)
        ),
    )
    .unwrap();
    let out = support::agent::command()
        .args(["--config", &cfg.path().display().to_string(), "services"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains(&format!("processes: 1 ({})", b.0.id())),
        "{text}"
    );
    assert!(text.contains("ghost: process no-such-process"), "{text}");
    assert!(text.contains("  disk read: "), "{text}");
    assert!(
        text.contains("down: no process named no-such-process"),
        "{text}"
    );
}

/// Children that exit between the /proc listing and the read of their
/// files: every sample still succeeds with the service up, and the CPU
/// figure stays a share of the machine (a vanished process counts nothing;
/// a recycled pid is a new process).
#[test]
fn processes_vanishing_mid_sample_never_break_the_service() {
    let tag = tag();
    let (c, _) = spawn_role("churner", &tag);
    let c = Proc(c);
    let mut src = source(vec![service("churner", Some(&regex_escape(&tag)), None)]);
    let cores = std::thread::available_parallelism().unwrap().get() as f64;
    let (mut with_children, mut samples) = (0, 0);
    let start = Instant::now();
    while samples < 100 || (with_children == 0 && start.elapsed() < Duration::from_secs(30)) {
        std::thread::sleep(Duration::from_millis(20));
        let s = sample(&mut src, "churner");
        samples += 1;
        assert!(s.up(), "sample {samples}: {s:?}");
        assert!(s.pids.contains(&c.0.id()), "{s:?}");
        if s.pids.len() > 1 {
            with_children += 1;
        }
        if let Some(cpu) = s.cpu_percent {
            // 20 ms samples quantize to 10 ms ticks: a process can show
            // a tick more than it ran, hence the slack over all cores.
            let bound = 100.0 * cores + 100.0 * s.pids.len() as f64;
            assert!(
                cpu.is_finite() && (0.0..=bound).contains(&cpu),
                "{cpu} {s:?}"
            );
        }
    }
    assert!(with_children > 0, "no sample saw a child in {samples}");
}

/// Run as an unprivileged user, like an agent without root: other users'
/// /proc/<pid>/stat is readable but their fd/ is not. A service of another
/// user found by command line has CPU and memory and no open-file count (not
/// 0); one only found by its listening port is down with the reason and the
/// fix, and nothing stops the other service or the host sources.
#[test]
fn another_users_processes_give_what_is_readable_and_say_what_is_not() {
    use std::os::unix::fs::PermissionsExt;
    if !support::agent::is_root() {
        eprintln!("skipped: not root, so the test's own processes are not another user's");
        return;
    }
    let (Some(mut services_cmd), Some(mut snapshot_cmd), Some(mut doctor_cmd)) = (
        support::agent::unprivileged_command(),
        support::agent::unprivileged_command(),
        support::agent::unprivileged_command(),
    ) else {
        eprintln!("skipped: running as root without setpriv to drop privileges");
        return;
    };
    let tag = tag();
    let (b, _) = spawn_role("burner", &format!("{tag}-b"));
    let b = Proc(b);
    let (l, port) = spawn_role("listener", &format!("{tag}-l"));
    let _l = Proc(l);
    let cfg = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        cfg.path(),
        format!(
            "default_services = false\n[[service]]\nname = \"burner\"\ncmdline = \"{}-b\"\n[[service]]\nname = \"listener\"\nport = {port}\n",
            regex_escape(&tag)
        ),
    )
    .unwrap();
    std::fs::set_permissions(cfg.path(), std::fs::Permissions::from_mode(0o644)).unwrap();
    let config = cfg.path().display().to_string();

    let out = services_cmd
        .args(["--config", &config, "services"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(&format!("processes: 1 ({})", b.0.id())),
        "{text}"
    );
    assert!(text.contains("open files: - (not readable)"), "{text}");
    assert!(
        text.contains(&format!(
            "down: port {port} is listening but its owner could not be read"
        )),
        "{text}"
    );
    assert!(text.contains("run the agent as root"), "{text}");
    // Its disk I/O needs ptrace-read access to /proc/<pid>/io: absent,
    // with the reason and the fix.
    assert!(
        text.contains("disk I/O: - (/proc/<pid>/io of 1 of its 1 processes denied"),
        "{text}"
    );
    assert!(text.contains("CAP_SYS_PTRACE"), "{text}");

    let json = support::snapshot_json::run(snapshot_cmd.args([
        "--config", &config, "snapshot", "--json", "--window", "300ms",
    ]));
    let find = |name: &str, service: &str| -> Vec<f64> {
        let name = format!("unamentis.server.service.{name}");
        support::snapshot_json::values(&json, &name, &[("unamentis.service", service)])
    };
    assert_eq!(find("up", "burner"), vec![1.0]);
    assert_eq!(find("processes", "burner"), vec![1.0]);
    assert_eq!(find("cpu_percent", "burner").len(), 1);
    assert!(find("memory_mb", "burner")[0] > 0.0);
    assert_eq!(find("open_files", "burner"), Vec::<f64>::new());
    assert_eq!(find("disk_io_bytes", "burner"), Vec::<f64>::new());
    assert_eq!(find("up", "listener"), vec![0.0]);
    assert_eq!(find("memory_mb", "listener"), Vec::<f64>::new());
    let host = support::snapshot_json::names(&json).contains(&"unamentis.server.memory.total_mb");
    assert!(host, "host sources go on");

    let out = doctor_cmd
        .args(["--config", &config, "doctor", "--json", "--window", "50ms"])
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let row = report["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["source"] == "services")
        .unwrap();
    assert_eq!(row["status"], "available", "{row}");
    let reason = row["reason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("disk I/O of burner: /proc/<pid>/io"),
        "{row}"
    );
    assert!(
        row["fix"].as_str().unwrap().contains("CAP_SYS_PTRACE"),
        "{row}"
    );
}

/// `/proc/<pid>/io`'s (read_bytes, write_bytes), read by the test itself.
fn proc_io(pid: u32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap();
    let field = |k: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(k)?.strip_prefix(':'))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    (field("read_bytes"), field("write_bytes"))
}

/// A directory for the writers' files on a filesystem where writes reach a
/// block device (tmpfs and overlay upper dirs on tmpfs leave write_bytes
/// at 0), or `None` after saying why the test is skipped.
fn block_backed_dir() -> Option<tempfile::TempDir> {
    block_backed()
        .inspect_err(|why| eprintln!("skipped: {why}"))
        .ok()
}

fn block_backed() -> Result<tempfile::TempDir, String> {
    const TMPFS_MAGIC: i64 = 0x0102_1994;
    const RAMFS_MAGIC: i64 = 0x8584_58f6;
    const OVERLAYFS_SUPER_MAGIC: i64 = 0x794c_7630;
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let path = std::ffi::CString::new(dir.path().as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid path and a statfs to write.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(path.as_ptr(), &mut st) } != 0 {
        return Err(format!("statfs {}", dir.path().display()));
    }
    #[allow(clippy::unnecessary_cast)]
    let magic = st.f_type as i64;
    if [TMPFS_MAGIC, RAMFS_MAGIC, OVERLAYFS_SUPER_MAGIC].contains(&magic) {
        return Err(format!(
            "{} is on tmpfs, ramfs or overlay (f_type {magic:#x}), where write_bytes may stay 0",
            dir.path().display()
        ));
    }
    Ok(dir)
}

/// A service's (read, write) disk I/O total, which must be there.
fn disk_io(s: &ServiceSample) -> (u64, u64) {
    let io = s.disk_io.unwrap_or_else(|| panic!("disk I/O of {s:?}"));
    (io.read_bytes, io.write_bytes)
}

/// Writers that a forking service starts, that write and are reaped: the
/// service's disk I/O grows by exactly what its root's own /proc/<pid>/io
/// grew once it has reaped them (their bytes included), whether a sample
/// saw the writers alive with their bytes (they must not count again
/// through the parent at the reap) or never saw them at all.
#[test]
fn a_forking_service_counts_its_reaped_writers_once() {
    const KIDS: usize = 3;
    const MIB: u64 = 2;
    let Some(dir) = block_backed_dir() else {
        return;
    };
    let tag = tag();
    let mut cmd = role_command("io-parent", &tag);
    cmd.env("IO_DIR", dir.path())
        .env("IO_KIDS", KIDS.to_string())
        .env("IO_MIB", MIB.to_string());
    let mut parent = IoRole::start(cmd, true);
    let pid = parent.child.id();
    let mut src = source(vec![service("io", Some(&tag), None)]);
    let sub = |a: (u64, u64), b: (u64, u64)| (a.0 - b.0, a.1 - b.1);

    // Seen alive, then reaped.
    let (truth0, agent0) = (proc_io(pid), disk_io(&sample(&mut src, "io")));
    parent.say("go");
    let kids: Vec<u32> = parent
        .expect("WROTE")
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    let alive = sample(&mut src, "io");
    for k in &kids {
        assert!(alive.pids.contains(k), "writer {k} in {alive:?}");
    }
    let kids_wrote: u64 = kids.iter().map(|&k| proc_io(k).1).sum();
    assert!(
        kids_wrote >= (KIDS as u64 * MIB) << 20,
        "the writers' own write_bytes: {kids_wrote}"
    );
    let seen_alive = sub(disk_io(&alive), agent0);
    assert!(seen_alive.1 >= kids_wrote, "{seen_alive:?} vs {kids_wrote}");
    parent.say("release");
    parent.expect("REAPED");
    let reaped = sample(&mut src, "io");
    assert_eq!(reaped.pids, vec![pid]);
    let (truth1, agent1) = (proc_io(pid), disk_io(&reaped));
    let want = sub(truth1, truth0);
    assert!(want.1 >= kids_wrote, "the reap added the writers' bytes");
    assert_eq!(sub(agent1, agent0), want, "agent vs the parent's own io");

    // Started, written and reaped between two samples.
    parent.say("go");
    parent.expect("WROTE");
    parent.say("release");
    parent.expect("REAPED");
    let (truth2, agent2) = (proc_io(pid), disk_io(&sample(&mut src, "io")));
    let want = sub(truth2, truth1);
    assert!(want.1 >= (KIDS as u64 * MIB) << 20, "{want:?}");
    assert_eq!(sub(agent2, agent1), want, "agent vs the parent's own io");
}

/// A writer found by its command line, watched by the real binary at a 1 s
/// interval: the exported service.disk_io_bytes grows, between an export
/// before the write and one after it, by exactly what the writer's own
/// /proc/<pid>/io grew (it does nothing else in between).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_through_the_binary_and_otlp() {
    use support::otlp_receiver::{Receiver, attr, metrics, points, value};
    const MIB: u64 = 8;
    let Some(dir) = block_backed_dir() else {
        return;
    };
    let tag = tag();
    let mut cmd = role_command("io-writer", &tag);
    cmd.env("IO_FILE", dir.path().join("written"))
        .env("IO_MIB", MIB.to_string());
    let mut writer = IoRole::start(cmd, true);
    let pid = writer.child.id();
    let cfg = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        cfg.path(),
        format!(
            "default_services = false\n[[service]]\nname = \"writer\"\ncmdline = \"{}\"\n",
            regex_escape(&tag)
        ),
    )
    .unwrap();
    let rx = Receiver::grpc().await;
    let mut agent = support::agent::Agent::spawn(
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &rx.endpoint()),
            ("UNAMENTIS_AGENT_INTERVAL", "1s"),
        ],
        &["--config", &cfg.path().display().to_string(), "run"],
    );
    let exported = |r: &support::otlp_receiver::Received, direction: &str| -> Option<f64> {
        metrics(r)
            .into_iter()
            .filter(|m| m.name == "unamentis.server.service.disk_io_bytes")
            .flat_map(|m| points(m).iter())
            .find(|p| {
                attr(p, "unamentis.service").as_deref() == Some("writer")
                    && attr(p, "direction").as_deref() == Some(direction)
            })
            .map(value)
    };
    let before = rx.wait_for(1, LIMIT).await[0].clone();
    let truth0 = proc_io(pid);
    writer.say("go");
    writer.expect("WROTE");
    let truth1 = proc_io(pid);
    // The export after the next one holds a sample taken after the write.
    let n = rx.received().len();
    let after = rx.wait_for(n + 2, LIMIT).await[n + 1].clone();
    let delta = |d: &str| exported(&after, d).unwrap() - exported(&before, d).unwrap();
    let want_write = (truth1.1 - truth0.1) as f64;
    assert!(
        want_write >= (MIB << 20) as f64,
        "the writer's own write_bytes: {want_write}"
    );
    assert_eq!(
        delta("write"),
        want_write,
        "exported vs the writer's own io"
    );
    assert_eq!(delta("read"), (truth1.0 - truth0.0) as f64);
    agent.signal("TERM");
    assert!(agent.wait(LIMIT).success(), "{}", agent.log_text());
}
