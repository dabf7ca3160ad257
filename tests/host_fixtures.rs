//! Sources against fixture host trees (`tests/fixtures/hosts/<name>`):
//! `vm-2cpu` captured from a real VM, the others written to the kernel's
//! documented formats (a hyper-threaded laptop; a pre-3.14 two-socket server
//! without MemAvailable or core_cpus_list; a host with corrupt files).
//! Each tree has `stat.later`, a second `/proc/stat` taken after the first.

use std::path::{Path, PathBuf};

use unamentis_agent::config::Config;
use unamentis_agent::families::services::ServicesSample;
use unamentis_agent::host::HostPaths;
use unamentis_agent::pipeline;
use unamentis_agent::semconv;
use unamentis_agent::snapshot::{AttrValue, Point, Sampler, Snapshot};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/hosts")
        .join(name)
}

fn copy_tree(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
            copy_tree(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), dest).unwrap();
        }
    }
}

/// Samples a copy of the fixture: the sources prime on `proc/stat`, then
/// `stat.later` replaces it and one sample is taken.
fn sample(name: &str) -> (Snapshot, HostPaths, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&fixture(name), dir.path());
    let paths = HostPaths::under(dir.path());
    let mut sampler = Sampler::new(pipeline::readers(&Config::for_host(&paths)));
    let later = dir.path().join("stat.later");
    if later.exists() {
        std::fs::copy(later, dir.path().join("proc/stat")).unwrap();
    }
    (sampler.sample(), paths, dir)
}

fn value(points: &[Point], metric: &semconv::Metric, attr: Option<(&str, &str)>) -> Option<f64> {
    points
        .iter()
        .find(|p| {
            std::ptr::eq(p.metric, metric)
                && attr.is_none_or(|(k, v)| {
                    p.attrs
                        .iter()
                        .any(|(pk, pv)| *pk == k && *pv == AttrValue::from(v))
                })
        })
        .map(|p| p.value)
}

fn approx(a: Option<f64>, b: f64) {
    let a = a.unwrap_or_else(|| panic!("expected {b}, the point is absent"));
    assert!((a - b).abs() < 1e-9, "{a} != {b}");
}

fn source_up(snap: &Snapshot, name: &str) -> bool {
    snap.sources.iter().find(|s| s.name == name).unwrap().up
}

#[test]
fn laptop_with_hyperthreading() {
    let (snap, paths, _dir) = sample("laptop-4c8t");
    let p = snap.points();
    // stat → stat.later: 940 jiffies passed, 690 of them idle or iowait.
    approx(
        value(&p, &semconv::CPU_PERCENT, None),
        250.0 / 940.0 * 100.0,
    );
    approx(
        value(&p, &semconv::CPU_CORES, Some(("kind", "logical"))),
        8.0,
    );
    approx(
        value(&p, &semconv::CPU_CORES, Some(("kind", "physical"))),
        4.0,
    );
    approx(
        value(&p, &semconv::CPU_CORES, Some(("kind", "available"))),
        4.0 - 2.5,
    );
    approx(
        value(&p, &semconv::CPU_LOAD_AVERAGE, Some(("period", "15m"))),
        1.2,
    );
    approx(
        value(&p, &semconv::MEMORY_TOTAL_MB, None),
        16_252_928.0 / 1024.0,
    );
    approx(
        value(&p, &semconv::MEMORY_AVAILABLE_MB, None),
        8_126_464.0 / 1024.0,
    );
    approx(
        value(&p, &semconv::MEMORY_USED_MB, None),
        (16_252_928.0 - 8_126_464.0) / 1024.0,
    );
    approx(value(&p, &semconv::MEMORY_PERCENT, None), 50.0);
    assert!(source_up(&snap, "cpu") && source_up(&snap, "memory"));
    let id = paths.identity();
    assert_eq!(id.name.as_deref(), Some("thinkpad-x1"));
    assert_eq!(id.id.as_deref(), Some("4f1b8e2a9c0d4e6fa1b2c3d4e5f60718"));
}

#[test]
fn old_kernel_two_sockets_without_memavailable() {
    let (snap, paths, _dir) = sample("server-old-kernel");
    let p = snap.points();
    // user +400, system +100, idle +300, iowait +100.
    approx(
        value(&p, &semconv::CPU_PERCENT, None),
        500.0 / 900.0 * 100.0,
    );
    // Only thread_siblings_list (before 5.6): one CPU per core, 2 sockets.
    approx(
        value(&p, &semconv::CPU_CORES, Some(("kind", "physical"))),
        4.0,
    );
    approx(
        value(&p, &semconv::CPU_CORES, Some(("kind", "available"))),
        3.75,
    );
    // MemFree + Buffers + Cached stands in for MemAvailable.
    approx(
        value(&p, &semconv::MEMORY_AVAILABLE_MB, None),
        (2_120_352.0 + 312_680.0 + 3_561_032.0) / 1024.0,
    );
    approx(
        value(&p, &semconv::MEMORY_TOTAL_MB, None),
        8_061_508.0 / 1024.0,
    );
    // machine-id from D-Bus's copy when /etc/machine-id is missing.
    assert_eq!(
        paths.identity().id.as_deref(),
        Some("a1b2c3d4e5f60718293a4b5c6d7e8f90")
    );
}

#[test]
fn captured_vm_matches_its_own_files() {
    let (snap, _, _dir) = sample("vm-2cpu");
    let p = snap.points();
    let meminfo = std::fs::read_to_string(fixture("vm-2cpu/proc/meminfo")).unwrap();
    let mem_total_kib: f64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    approx(
        value(&p, &semconv::MEMORY_TOTAL_MB, None),
        mem_total_kib / 1024.0,
    );
    let cpus = std::fs::read_to_string(fixture("vm-2cpu/proc/stat"))
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("cpu") && !l.starts_with("cpu "))
        .count();
    approx(
        value(&p, &semconv::CPU_CORES, Some(("kind", "logical"))),
        cpus as f64,
    );
    let pct = value(&p, &semconv::CPU_PERCENT, None).expect("two real captures one second apart");
    assert!((0.0..=100.0).contains(&pct), "{pct}");
}

#[test]
fn corrupt_and_missing_files_mark_sources_down_without_values() {
    let (snap, _, _dir) = sample("broken");
    assert!(!source_up(&snap, "cpu"));
    assert!(!source_up(&snap, "memory"));
    let p = snap.points();
    for m in [
        &semconv::CPU_PERCENT,
        &semconv::CPU_LOAD_AVERAGE,
        &semconv::MEMORY_TOTAL_MB,
        &semconv::MEMORY_PERCENT,
    ] {
        assert!(
            value(&p, m, None).is_none(),
            "{} must be absent, not 0",
            m.name
        );
    }
    approx(
        value(&p, &semconv::AGENT_SOURCE_UP, Some(("source", "cpu"))),
        0.0,
    );
    approx(
        value(&p, &semconv::AGENT_SOURCE_UP, Some(("source", "memory"))),
        0.0,
    );
}

#[test]
fn a_missing_host_is_absent_not_zero() {
    let paths = HostPaths::under("/nonexistent/unamentis-host");
    let snap = Sampler::new(pipeline::readers(&Config::for_host(&paths))).sample();
    let p = snap.points();
    assert!(
        p.iter()
            .all(|pt| std::ptr::eq(pt.metric, &semconv::AGENT_SOURCE_UP)
                || std::ptr::eq(pt.metric, &semconv::AGENT_COLLECTION_DURATION))
    );
    assert_eq!(paths.identity(), Default::default());
}

mod support;
use support::services::service_source;

/// The six default services on a synthetic procfs tree (no real process):
/// trees, port owners through `fd/N -> socket:[inode]`, and the CPU delta
/// after the test advances a process's ticks.
#[test]
fn default_services_on_a_synthetic_host() {
    use std::time::Instant;
    use support::synthetic_host::{stat_line, write_host};
    use unamentis_agent::sources::Source;

    let dir = tempfile::tempdir().unwrap();
    write_host(dir.path(), 60);
    let t_pre = Instant::now();
    let mut src = service_source(&Config::for_host(&HostPaths::under(dir.path())));
    let t0 = Instant::now();
    // The ollama runner burns 250 ticks; the management child exits.
    std::fs::write(
        dir.path().join("proc/101/stat"),
        stat_line(101, "ollama", 100, 90_250, 900_000),
    )
    .unwrap();
    std::fs::remove_dir_all(dir.path().join("proc/201")).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let before = Instant::now();
    let mut snap = Snapshot::default();
    src.sample(&mut snap).unwrap();
    let after = Instant::now();
    let svcs = snap.get::<ServicesSample>().cloned().unwrap().services;
    let by = |n: &str| svcs.iter().find(|s| s.name == n).unwrap();

    assert_eq!(
        by("ollama").pids,
        vec![100, 101],
        "server and runner, by name"
    );
    assert_eq!(
        by("management").pids,
        vec![200],
        "python on 8766; its exited child is gone"
    );
    assert_eq!(
        by("nextjs").pids,
        vec![301],
        "next-server holds the 3000 socket"
    );
    for down in ["vibevoice", "whisper", "piper"] {
        assert!(!by(down).up(), "{down}");
        assert!(
            by(down)
                .note
                .as_deref()
                .unwrap()
                .starts_with("nothing listens on port")
        );
    }
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64;
    assert_eq!(by("ollama").rss_bytes, Some((60_000 + 900_000) * page));
    // 250 ticks over the agent's window, which runs from inside new() to
    // inside sample(): longer than before − t0, shorter than after − t_pre.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let cpu = by("ollama").cpu_percent.unwrap();
    let lo = 250.0 / hz / (after - t_pre).as_secs_f64() * 100.0;
    let hi = 250.0 / hz / (before - t0).as_secs_f64() * 100.0;
    assert!(cpu >= lo && cpu <= hi, "{cpu} not in [{lo}, {hi}]");
    assert_eq!(
        by("management").cpu_percent,
        Some(0.0),
        "a vanished child never makes CPU negative"
    );
}

/// Per-service disk I/O on a synthetic procfs tree: the runner's own
/// growth; a child that was measured, then exited and was reaped (its
/// totals in its parent's `io`, its parent's `cminflt` grown) adding only
/// what it wrote after that sample; a worker born inside the window
/// counting whole; then a cycle where the parent's `io` is missing (the
/// value absent, with the reason) and one where it is back (the counter
/// carries on from where it was, nothing lost or counted twice).
#[test]
fn service_disk_io_on_a_synthetic_host() {
    use support::synthetic_host::{FakeProc, io_text, stat_line_reaped, write_host, write_proc};
    use unamentis_agent::families::services::ProcIo;
    use unamentis_agent::sources::Source;

    let dir = tempfile::tempdir().unwrap();
    let proc = dir.path().join("proc");
    write_host(dir.path(), 60);
    let io = |pid: u32, read: u64, write: u64| {
        std::fs::write(proc.join(format!("{pid}/io")), io_text(read, write)).unwrap();
    };
    let mut src = service_source(&Config::for_host(&HostPaths::under(dir.path())));
    let mut step = || {
        let mut snap = Snapshot::default();
        src.sample(&mut snap).unwrap();
        let points = snap.points();
        let svcs = snap.get::<ServicesSample>().cloned().unwrap().services;
        (svcs, points)
    };
    // write_host's io files: read_bytes = pid << 12, write_bytes = ticks << 9.
    let (runner, server, child) = (
        (101u64 << 12, 90_000u64 << 9),
        (200u64 << 12, 700u64 << 9),
        (201u64 << 12, 300u64 << 9),
    );
    // The runner reads 8 KiB and writes 1 MiB. The management child
    // writes 4 KiB more, exits and is reaped: its whole totals land in
    // its parent's; a worker forked since (pid 202) wrote 64 KiB.
    io(101, runner.0 + 8192, runner.1 + (1 << 20));
    std::fs::remove_dir_all(proc.join("201")).unwrap();
    std::fs::write(
        proc.join("200/stat"),
        stat_line_reaped(200, "python3", 1, 700, 20_000, 37),
    )
    .unwrap();
    io(200, server.0 + child.0, server.1 + child.1 + 4096);
    write_proc(
        dir.path(),
        &FakeProc {
            pid: 202,
            ppid: 200,
            comm: "python3",
            cmdline: &["python3", "-c", "worker"],
            ticks: 128,
            rss_pages: 100,
            sockets: &[],
        },
    );
    let worker = (202u64 << 12, 128u64 << 9);
    let (svcs, points) = step();
    let by = |svcs: &[unamentis_agent::families::services::ServiceSample], n: &str| {
        svcs.iter().find(|s| s.name == n).unwrap().clone()
    };
    let io_of = |read_bytes, write_bytes| {
        Some(ProcIo {
            read_bytes,
            write_bytes,
        })
    };
    assert_eq!(by(&svcs, "ollama").disk_io, io_of(8192, 1 << 20));
    let management = io_of(worker.0, 4096 + worker.1);
    assert_eq!(by(&svcs, "management").disk_io, management);
    assert_eq!(by(&svcs, "management").pids, vec![200, 202]);
    let exported = |points: &[unamentis_agent::snapshot::Point], service: &str, direction: &str| {
        points
            .iter()
            .filter(|p| std::ptr::eq(p.metric, &semconv::SERVICE_DISK_IO_BYTES))
            .filter(|p| {
                p.attrs
                    .contains(&("unamentis.service", AttrValue::from(service)))
            })
            .find(|p| p.attrs.contains(&("direction", AttrValue::from(direction))))
            .map(|p| p.value)
    };
    assert_eq!(
        exported(&points, "ollama", "write"),
        Some(f64::from(1 << 20))
    );
    assert_eq!(exported(&points, "ollama", "read"), Some(8192.0));
    assert_eq!(exported(&points, "piper", "read"), None, "down: no point");

    // The parent's io file is missing: absent with the reason, and what
    // the readable worker wrote still counts.
    std::fs::remove_file(proc.join("200/io")).unwrap();
    io(202, worker.0, worker.1 + 100);
    let (svcs, points) = step();
    let m = by(&svcs, "management");
    assert_eq!(m.disk_io, None);
    assert!(
        m.disk_io_note
            .unwrap()
            .starts_with("no /proc/<pid>/io for 1 of its 2 processes")
    );
    assert_eq!(exported(&points, "management", "write"), None);

    // Back, having written 10 bytes meanwhile: counted from its last value.
    io(200, server.0 + child.0, server.1 + child.1 + 4096 + 10);
    let (svcs, _) = step();
    let (read, write) = (
        management.unwrap().read_bytes,
        management.unwrap().write_bytes,
    );
    assert_eq!(
        by(&svcs, "management").disk_io,
        io_of(read, write + 100 + 10)
    );
    assert_eq!(
        by(&svcs, "ollama").disk_io,
        io_of(8192, 1 << 20),
        "nothing moved"
    );
}

/// On a procfs of its own pid namespace the services source lists
/// `/proc` only when `loadavg`'s last pid moved (or at the full rescan
/// every 12 cycles): a synthetic tree whose `self` names this process
/// stands for one, so the test decides when something "forked".
#[test]
fn the_proc_listing_waits_for_a_new_pid() {
    use support::synthetic_host::{FakeProc, write_host, write_proc};
    use unamentis_agent::sources::Source;

    let dir = tempfile::tempdir().unwrap();
    let proc = dir.path().join("proc");
    write_host(dir.path(), 20);
    std::os::unix::fs::symlink(std::process::id().to_string(), proc.join("self")).unwrap();
    let loadavg = |last: u32| {
        std::fs::write(
            proc.join("loadavg"),
            format!("0.10 0.20 0.30 1/90 {last}\n"),
        )
        .unwrap();
    };
    loadavg(5000);
    let mut cfg = Config::for_host(&HostPaths::under(dir.path()));
    cfg.services.push(unamentis_agent::config::ServiceConfig {
        name: "late".into(),
        process: vec!["late-starter".into()],
        cmdline: None,
        port: None,
        ports: vec![],
        pid_file: None,
        systemd_unit: None,
        cgroup: None,
    });
    let mut src = service_source(&cfg);
    let late_pids = |src: &mut unamentis_agent::families::services::ServiceSource| {
        let mut snap = Snapshot::default();
        src.sample(&mut snap).unwrap();
        let svcs = snap.get::<ServicesSample>().cloned().unwrap().services;
        svcs.into_iter().find(|s| s.name == "late").unwrap().pids
    };
    assert_eq!(late_pids(&mut src), Vec::<u32>::new());

    write_proc(
        dir.path(),
        &FakeProc {
            pid: 5001,
            ppid: 1,
            comm: "late-starter",
            cmdline: &["late-starter"],
            ticks: 10,
            rss_pages: 100,
            sockets: &[],
        },
    );
    // The last pid did not move: not listed, so not seen.
    assert_eq!(late_pids(&mut src), Vec::<u32>::new());
    loadavg(5001);
    assert_eq!(late_pids(&mut src), vec![5001]);

    // It exits without a new pid: its failed stat read drops it at once.
    std::fs::remove_dir_all(proc.join("5001")).unwrap();
    assert_eq!(late_pids(&mut src), Vec::<u32>::new());
}

/// Container and pod identity from each process's `cgroup` file on a
/// synthetic tree: a service whose processes share one container carries
/// its id, one whose processes share only a pod carries the pod's UID, one
/// on the host carries neither, and a top process carries its own. The
/// file is read once per process: rewriting it later changes nothing.
#[test]
fn container_identity_on_service_and_top_process_points() {
    use support::synthetic_host::{stat_line, write_host};
    use unamentis_agent::sources::Source;

    const CID: &str = "3f5b7c9d1e2a4b6c8d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e";
    const CID2: &str = "9e8d7c6b5a493827161504f3e2d1c0b9a8978675645342312f1e0d0c0b0a0908";
    const CID3: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const POD: &str = "0c2f4a2e-5b7d-4d0e-9c1a-3f6b2e8d9a10";
    const POD2: &str = "7d1c3b5a-2e4f-4a6b-8c9d-0e1f2a3b4c5d";
    let dir = tempfile::tempdir().unwrap();
    write_host(dir.path(), 60);
    let cgroup = |pid: u32, text: String| {
        std::fs::write(dir.path().join(format!("proc/{pid}/cgroup")), text).unwrap();
    };
    // ollama: server and runner in one Docker container (cgroup v1).
    for pid in [100, 101] {
        cgroup(
            pid,
            format!("4:memory:/docker/{CID}\n1:name=systemd:/docker/{CID}\n0::/\n"),
        );
    }
    // management: two containers of one pod (containerd, systemd driver).
    let pod_ = POD.replace('-', "_");
    for (pid, cid) in [(200, CID2), (201, CID3)] {
        cgroup(
            pid,
            format!(
                "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{pod_}.slice/cri-containerd-{cid}.scope\n"
            ),
        );
    }
    // A busy unclaimed worker in another pod (cgroupfs driver).
    cgroup(1005, format!("0::/kubepods/besteffort/pod{POD2}/{CID}\n"));
    let mut cfg = Config::for_host(&HostPaths::under(dir.path()));
    cfg.top_processes = 1;
    let mut src = service_source(&cfg);
    std::fs::write(
        dir.path().join("proc/1005/stat"),
        stat_line(1005, "worker", 1, 1005 + 500, 100),
    )
    .unwrap();
    // Read once per process: a later rewrite is not seen.
    cgroup(100, "0::/\n".into());
    std::thread::sleep(std::time::Duration::from_millis(50));
    let mut snap = Snapshot::default();
    src.sample(&mut snap).unwrap();
    let points = snap.points();
    let attrs_of =
        |metric: &semconv::Metric, key: &str, value: AttrValue| -> Vec<(String, String)> {
            let p = points
                .iter()
                .find(|p| {
                    std::ptr::eq(p.metric, metric)
                        && p.attrs.iter().any(|(k, v)| *k == key && *v == value)
                })
                .unwrap_or_else(|| panic!("no {} point with {key}={value}", metric.name));
            p.attrs
                .iter()
                .filter(|(k, _)| *k == "container.id" || *k == "k8s.pod.uid")
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
    let service = |name: &str| AttrValue::from(name);
    let pair = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    for metric in [&semconv::SERVICE_CPU_PERCENT, &semconv::SERVICE_MEMORY_MB] {
        assert_eq!(
            attrs_of(metric, "unamentis.service", service("ollama")),
            vec![pair("container.id", CID)]
        );
        assert_eq!(
            attrs_of(metric, "unamentis.service", service("management")),
            vec![pair("k8s.pod.uid", POD)],
            "two containers: the pod only"
        );
        assert_eq!(
            attrs_of(metric, "unamentis.service", service("nextjs")),
            vec![],
            "on the host"
        );
    }
    for metric in [&semconv::PROCESS_CPU_PERCENT, &semconv::PROCESS_MEMORY_MB] {
        assert_eq!(
            attrs_of(metric, "process.pid", AttrValue::Int(1005)),
            vec![pair("container.id", CID), pair("k8s.pod.uid", POD2)]
        );
    }
    let up = points
        .iter()
        .find(|p| std::ptr::eq(p.metric, &semconv::SERVICE_UP))
        .unwrap();
    assert_eq!(up.attrs.len(), 1, "service.up keeps one series per service");
}
