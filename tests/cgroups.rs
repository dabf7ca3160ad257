//! Services defined by their cgroup: mountinfo parsing on captured layouts,
//! fixture trees in the kernel's cgroup v1 and v2 file formats with exact
//! expected values, and real cgroups created here with a burner, its
//! short-lived workers and a double-forked daemon inside, measured against
//! the cgroup's own counters in the same window.
#![cfg(target_os = "linux")]

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::services::service_source;
use unamentis_agent::config::{Config, ServiceConfig};
use unamentis_agent::families::services::{ServiceSample, ServiceSource, ServicesSample};
use unamentis_agent::host::HostPaths;
use unamentis_agent::snapshot::Snapshot;
use unamentis_agent::sources::Source;
use unamentis_agent::sources::cgroup::{
    CgroupServices, CgroupSpec, Hierarchies, parse_cgroup_mounts, parse_cpu_stat_usage_usec,
    parse_cpuacct_usage, parse_memory_v1, parse_memory_v2,
};
use unamentis_agent::sources::process::page_size;

fn fixture(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/cgroup")
            .join(name),
    )
    .unwrap()
}

fn points(h: &Hierarchies) -> [Option<String>; 4] {
    [&h.v2, &h.cpuacct, &h.memory, &h.systemd]
        .map(|x| x.as_ref().map(|x| x.dir.display().to_string()))
}

#[test]
fn mountinfo_layouts() {
    let host = HostPaths::default();
    let hybrid = parse_cgroup_mounts(&fixture("mountinfo-hybrid"));
    assert_eq!(hybrid.len(), 10, "{hybrid:?}");
    assert_eq!(
        points(&Hierarchies::from_mounts(&hybrid, &host)),
        [
            Some("/sys/fs/cgroup/unified".into()),
            Some("/sys/fs/cgroup/cpuacct".into()),
            Some("/sys/fs/cgroup/memory".into()),
            Some("/sys/fs/cgroup/systemd".into()),
        ]
    );
    let v2 = parse_cgroup_mounts(&fixture("mountinfo-v2"));
    assert_eq!(v2.len(), 1);
    assert!(v2[0].v2 && v2[0].root == "/");
    assert_eq!(
        points(&Hierarchies::from_mounts(&v2, &host)),
        [Some("/sys/fs/cgroup".into()), None, None, None]
    );
    let v1 = parse_cgroup_mounts(&fixture("mountinfo-v1"));
    assert_eq!(v1.len(), 11);
    assert_eq!(
        points(&Hierarchies::from_mounts(&v1, &host)),
        [
            None,
            Some("/sys/fs/cgroup/cpu,cpuacct".into()),
            Some("/sys/fs/cgroup/memory".into()),
            Some("/sys/fs/cgroup/systemd".into()),
        ]
    );
    // A fixture host: /sys/... is taken under its sys directory.
    let under = HostPaths::under("/fx");
    assert_eq!(
        points(&Hierarchies::from_mounts(&v1, &under))[1],
        Some("/fx/sys/fs/cgroup/cpu,cpuacct".into())
    );
    // In a pod: the host's cgroup2 under host.sys, not the pod's own
    // namespaced view at /sys/fs/cgroup.
    let pod = parse_cgroup_mounts(&fixture("mountinfo-container"));
    assert_eq!(pod.len(), 2);
    let host_in_pod = HostPaths {
        proc: "/host/proc".into(),
        sys: "/host/sys".into(),
        root: "/host".into(),
    };
    assert_eq!(
        points(&Hierarchies::from_mounts(&pod, &host_in_pod))[0],
        Some("/host/sys/fs/cgroup".into())
    );
    // Only the pod's own view mounted: mapped through host.sys.
    assert_eq!(
        points(&Hierarchies::from_mounts(&pod[..1], &host_in_pod))[0],
        Some("/host/sys/fs/cgroup".into())
    );
}

#[test]
fn counter_and_memory_formats() {
    // cgroup-v2.rst: flat keyed, microseconds.
    let cpu = "usage_usec 7382104\nuser_usec 5130201\nsystem_usec 2251903\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\n";
    assert_eq!(parse_cpu_stat_usage_usec(cpu), Some(7_382_104));
    assert_eq!(parse_cpu_stat_usage_usec("user_usec 5\n"), None);
    // cgroup-v1/cpuacct.rst: one number, nanoseconds.
    assert_eq!(parse_cpuacct_usage("1997255780\n"), Some(1_997_255_780));
    assert_eq!(parse_cpuacct_usage(""), None);
    assert_eq!(
        parse_memory_v2(V2_MEMORY_STAT),
        Some(104_857_600 + 6_291_456)
    );
    assert_eq!(
        parse_memory_v1(V1_MEMORY_STAT),
        Some(52_428_800 + 3_145_728)
    );
    assert_eq!(parse_memory_v2("anon 5\n"), None);
}

const V2_MEMORY_STAT: &str = "anon 104857600
file 41943040
kernel 3145728
kernel_stack 393216
pagetables 1048576
sec_pagetables 0
percpu 0
sock 0
vmalloc 0
shmem 2097152
zswap 0
zswapped 0
file_mapped 6291456
file_dirty 0
file_writeback 0
swapcached 0
anon_thp 0
file_thp 0
shmem_thp 0
inactive_anon 104857600
active_anon 2097152
inactive_file 20971520
active_file 18874368
unevictable 0
slab_reclaimable 1048576
slab_unreclaimable 524288
slab 1572864
pgfault 120000
pgmajfault 12
";

const V1_MEMORY_STAT: &str = "cache 8388608
rss 41943040
rss_huge 0
shmem 1048576
mapped_file 2097152
dirty 0
writeback 0
swap 0
pgpgin 30000
pgpgout 17000
pgfault 40000
pgmajfault 3
inactive_anon 41943040
active_anon 1048576
inactive_file 4194304
active_file 3145728
unevictable 0
hierarchical_memory_limit 9223372036854771712
hierarchical_memsw_limit 9223372036854771712
total_cache 10485760
total_rss 52428800
total_rss_huge 0
total_shmem 1048576
total_mapped_file 3145728
total_dirty 0
total_writeback 0
total_swap 0
total_pgpgin 31000
total_pgpgout 18000
total_pgfault 41000
total_pgmajfault 3
total_inactive_anon 52428800
total_active_anon 1048576
total_inactive_file 5242880
total_active_file 5242880
total_unevictable 0
";

/// A fixture host: mountinfo, cgroup files and the processes' stat and fds.
struct FixtureHost {
    dir: tempfile::TempDir,
}

impl FixtureHost {
    fn new(mountinfo: &str) -> FixtureHost {
        let f = FixtureHost {
            dir: tempfile::tempdir().unwrap(),
        };
        f.write("proc/self/mountinfo", &fixture(mountinfo));
        f
    }

    fn paths(&self) -> HostPaths {
        HostPaths::under(self.dir.path())
    }

    fn write(&self, rel: &str, text: &str) {
        let p = self.dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    /// A process: `stat` (proc(5) fields; 3 threads, the given resident
    /// pages) and `fds` open files.
    fn process(&self, pid: u32, rss_pages: u64, fds: usize) {
        self.write(
            &format!("proc/{pid}/stat"),
            &format!(
                "{pid} (worker) S 1 {pid} {pid} 0 -1 4194560 100 0 0 0 50 20 0 0 20 0 3 0 {} 10000000 {rss_pages} 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n",
                1000 + pid
            ),
        );
        let fd_dir = self.dir.path().join(format!("proc/{pid}/fd"));
        std::fs::create_dir_all(&fd_dir).unwrap();
        for fd in 0..fds {
            std::os::unix::fs::symlink("/dev/null", fd_dir.join(fd.to_string())).unwrap();
        }
    }

    fn config(&self, svc: ServiceConfig) -> Config {
        let mut cfg = Config::for_host(&self.paths());
        cfg.default_services = false;
        cfg.top_processes = 0;
        cfg.services = vec![svc];
        cfg
    }
}

fn cgroup_service(name: &str, unit: Option<&str>, cgroup: Option<&str>) -> ServiceConfig {
    ServiceConfig {
        name: name.into(),
        process: vec![],
        cmdline: None,
        port: None,
        ports: vec![],
        pid_file: None,
        systemd_unit: unit.map(str::to_owned),
        cgroup: cgroup.map(str::to_owned),
    }
}

fn sample(src: &mut ServiceSource) -> ServiceSample {
    let mut snap = Snapshot::default();
    src.sample(&mut snap).unwrap();
    snap.get::<ServicesSample>()
        .cloned()
        .unwrap()
        .services
        .remove(0)
}

fn cpu_stat(usec: u64) -> String {
    format!(
        "usage_usec {usec}\nuser_usec {}\nsystem_usec {}\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\n",
        usec / 2,
        usec - usec / 2
    )
}

/// A cgroup2-only host: `ollama.service` in system.slice with its runner in
/// a child cgroup; every figure exact, CPU from the counter's delta.
#[test]
fn v2_only_fixture() {
    let f = FixtureHost::new("mountinfo-v2");
    let unit = "sys/fs/cgroup/system.slice/ollama.service";
    f.write(&format!("{unit}/cgroup.procs"), "412\n");
    f.write(&format!("{unit}/cpu.stat"), &cpu_stat(10_000_000));
    f.write(&format!("{unit}/memory.stat"), V2_MEMORY_STAT);
    f.write(&format!("{unit}/runner/cgroup.procs"), "977\n980\n");
    // Another unit that the pattern must not take.
    f.write(
        "sys/fs/cgroup/system.slice/sshd.service/cgroup.procs",
        "5\n",
    );
    f.process(412, 1000, 4);
    f.process(977, 2000, 2);
    f.process(980, 500, 1);
    f.process(5, 100, 1);

    // Library level: exact nanoseconds over the interval.
    let spec = CgroupSpec::systemd_unit("ollama.service");
    let mut cg = CgroupServices::new(&f.paths(), vec![None, Some(spec)]);
    let first = cg.sample(&f.paths());
    assert!(first[0].is_none());
    let s = first[1].as_ref().unwrap();
    assert_eq!(s.cpu_ns, None, "the first sample is the baseline");
    assert_eq!(s.pids, BTreeSet::from([412, 977, 980]));
    f.write(&format!("{unit}/cpu.stat"), &cpu_stat(12_500_000));
    let s = cg.sample(&f.paths()).remove(1).unwrap();
    assert_eq!(s.cpu_ns, Some(2_500_000_000));
    assert_eq!(
        s.memory,
        Some((104_857_600 + 6_291_456, "memory.stat anon + file_mapped"))
    );
    assert!(
        s.explain[0].starts_with("cgroup system.slice/ollama.service (pattern */ollama.service) in cgroup2 at /sys/fs/cgroup"),
        "{:?}",
        s.explain
    );

    // Through the services source: CPU over its own wall time, bounded by
    // the test's measure of that window.
    let before_new = Instant::now();
    let mut src = service_source(&f.config(cgroup_service("ollama", Some("ollama.service"), None)));
    let after_new = Instant::now();
    std::thread::sleep(Duration::from_millis(50));
    f.write(&format!("{unit}/cpu.stat"), &cpu_stat(12_600_000));
    let before = Instant::now();
    let s = sample(&mut src);
    let (w_min, w_max) = (
        before.duration_since(after_new).as_secs_f64(),
        before_new.elapsed().as_secs_f64(),
    );
    let cpu = s.cpu_percent.unwrap();
    assert!(
        cpu <= 0.1 / w_min * 100.0 && cpu >= 0.1 / w_max * 100.0,
        "{cpu}"
    );
    assert_eq!(s.pids, vec![412, 977, 980]);
    assert_eq!(s.rss_bytes, Some(104_857_600 + 6_291_456));
    assert_eq!(s.threads, Some(9));
    assert_eq!(s.open_files, Some(7));

    // A cgroup service owns its processes whatever the order: a service
    // by name listed first gets only the process outside the cgroup, and
    // none of the cgroup's are top processes.
    let mut cfg = f.config(ServiceConfig {
        process: vec!["worker".into()],
        ..cgroup_service("by-name", None, None)
    });
    cfg.services
        .push(cgroup_service("ollama", Some("ollama.service"), None));
    cfg.top_processes = 10;
    let mut both = service_source(&cfg);
    let mut snap = Snapshot::default();
    both.sample(&mut snap).unwrap();
    let got = snap.get::<ServicesSample>().cloned().unwrap();
    assert_eq!(got.services[0].pids, vec![5]);
    assert_eq!(got.services[1].pids, vec![412, 977, 980]);
    assert!(got.top.is_empty(), "{:?}", got.top);

    // No memory controller: the processes' RSS.
    std::fs::remove_file(f.dir.path().join(unit).join("memory.stat")).unwrap();
    let s = sample(&mut src);
    assert_eq!(s.rss_bytes, Some(3500 * page_size()));
    assert!(
        s.matched.iter().any(|m| m.contains("RSS sum")),
        "{:?}",
        s.matched
    );

    // Restarted: the cgroup is gone (down, with a note), then back with a
    // counter from zero, which counts whole, never negative.
    std::fs::remove_dir_all(f.dir.path().join(unit)).unwrap();
    let s = sample(&mut src);
    assert!(!s.up() && s.cpu_percent.is_none() && s.rss_bytes.is_none());
    assert!(
        s.note
            .as_deref()
            .unwrap()
            .starts_with("no cgroup */ollama.service or */*/ollama.service"),
        "{:?}",
        s.note
    );
    f.write(&format!("{unit}/cgroup.procs"), "412\n");
    f.write(&format!("{unit}/cpu.stat"), &cpu_stat(0));
    let mut cg = CgroupServices::new(
        &f.paths(),
        vec![Some(CgroupSpec::path("system.slice/ollama.service"))],
    );
    assert_eq!(cg.sample(&f.paths())[0].as_ref().unwrap().cpu_ns, None);
    f.write(&format!("{unit}/cpu.stat"), &cpu_stat(300_000));
    assert_eq!(
        cg.sample(&f.paths())[0].as_ref().unwrap().cpu_ns,
        Some(300_000_000)
    );
    std::fs::remove_dir_all(f.dir.path().join(unit)).unwrap();
    f.write(&format!("{unit}/cgroup.procs"), "412\n");
    f.write(&format!("{unit}/cpu.stat"), &cpu_stat(40_000));
    assert_eq!(
        cg.sample(&f.paths())[0].as_ref().unwrap().cpu_ns,
        Some(40_000_000),
        "a recreated cgroup counts from its creation"
    );
}

/// A cgroup v1-only host: CPU from `cpu,cpuacct`, memory from the memory
/// hierarchy's `total_*`, processes from the hierarchy the path was found
/// in; a glob matching two scopes adds them up.
#[test]
fn v1_only_fixture() {
    let f = FixtureHost::new("mountinfo-v1");
    for (scope, pids, ns) in [
        ("docker-aa.scope", "100\n", 1_000_000_000u64),
        ("docker-bb.scope", "200\n200\n", 3_000_000_000),
    ] {
        let rel = format!("system.slice/{scope}");
        f.write(
            &format!("sys/fs/cgroup/cpu,cpuacct/{rel}/cgroup.procs"),
            pids,
        );
        f.write(
            &format!("sys/fs/cgroup/cpu,cpuacct/{rel}/cpuacct.usage"),
            &format!("{ns}\n"),
        );
        f.write(&format!("sys/fs/cgroup/memory/{rel}/cgroup.procs"), pids);
        f.write(
            &format!("sys/fs/cgroup/memory/{rel}/memory.stat"),
            V1_MEMORY_STAT,
        );
    }
    f.process(100, 10, 1);
    f.process(200, 20, 2);
    let spec = CgroupSpec::path("/system.slice/docker-*.scope");
    let mut cg = CgroupServices::new(&f.paths(), vec![Some(spec)]);
    let s = cg.sample(&f.paths()).remove(0).unwrap();
    assert_eq!(s.pids, BTreeSet::from([100, 200]));
    assert_eq!(s.cpu_ns, None);
    assert_eq!(
        s.memory,
        Some((
            2 * (52_428_800 + 3_145_728),
            "memory.stat total_rss + total_mapped_file"
        ))
    );
    assert!(
        s.explain[0].contains("cpuacct at /sys/fs/cgroup/cpu,cpuacct"),
        "{:?}",
        s.explain
    );
    assert!(s.explain[1].contains("cpuacct.usage"), "{:?}", s.explain);
    f.write(
        "sys/fs/cgroup/cpu,cpuacct/system.slice/docker-aa.scope/cpuacct.usage",
        "1250000000\n",
    );
    f.write(
        "sys/fs/cgroup/cpu,cpuacct/system.slice/docker-bb.scope/cpuacct.usage",
        "3500000000\n",
    );
    // A third scope started since: all of its time is in the interval.
    f.write(
        "sys/fs/cgroup/cpu,cpuacct/system.slice/docker-cc.scope/cgroup.procs",
        "",
    );
    f.write(
        "sys/fs/cgroup/cpu,cpuacct/system.slice/docker-cc.scope/cpuacct.usage",
        "70000000\n",
    );
    let s = cg.sample(&f.paths()).remove(0).unwrap();
    assert_eq!(s.cpu_ns, Some(250_000_000 + 500_000_000 + 70_000_000));
    // The memory hierarchy has no docker-cc: fall back to RSS.
    assert_eq!(s.memory, None);

    let mut src = service_source(&f.config(cgroup_service(
        "docker",
        None,
        Some("system.slice/docker-*.scope"),
    )));
    let s = sample(&mut src);
    assert_eq!(s.pids, vec![100, 200]);
    assert_eq!(s.rss_bytes, Some(30 * page_size()));
    assert_eq!((s.threads, s.open_files), (Some(6), Some(3)));

    // A unit only in the name=systemd hierarchy (no CPUAccounting on a v1
    // host): its processes, no CPU rather than a wrong one.
    f.write(
        "sys/fs/cgroup/systemd/system.slice/cron.service/cgroup.procs",
        "100\n",
    );
    let mut cg = CgroupServices::new(
        &f.paths(),
        vec![Some(CgroupSpec::systemd_unit("cron.service"))],
    );
    for _ in 0..2 {
        let s = cg.sample(&f.paths()).remove(0).unwrap();
        assert_eq!(s.pids, BTreeSet::from([100]));
        assert_eq!((s.cpu_ns, s.memory), (None, None));
        assert!(
            s.explain[0].contains("in name=systemd at /sys/fs/cgroup/systemd"),
            "{:?}",
            s.explain
        );
        assert!(
            s.explain[1].starts_with("no cpu counter: "),
            "{:?}",
            s.explain
        );
    }

    // No hierarchy at all: down with the reason.
    let bare = FixtureHost::new("mountinfo-v2");
    bare.write(
        "proc/self/mountinfo",
        "22 28 0:21 / /sys rw - sysfs sysfs rw\n",
    );
    let mut src = service_source(&bare.config(cgroup_service("x", Some("x.service"), None)));
    let s = sample(&mut src);
    assert!(!s.up());
    assert!(s.note.unwrap().contains("no cgroup hierarchy is mounted"));
}

// --- Real cgroups ---------------------------------------------------------

/// A cgroup this test made in one or more hierarchies; dropping it kills
/// whatever runs in it and removes the directories it created.
struct RealCgroup {
    /// Directories created, outermost first, per hierarchy.
    created: Vec<PathBuf>,
    leaves: Vec<PathBuf>,
}

impl RealCgroup {
    /// Creates `rel` under each base, or says why it cannot.
    fn create(bases: &[PathBuf], rel: &str) -> Result<RealCgroup, std::io::Error> {
        let mut g = RealCgroup {
            created: Vec::new(),
            leaves: Vec::new(),
        };
        for base in bases {
            let mut p = base.clone();
            for c in rel.split('/') {
                p.push(c);
                if !p.exists() {
                    std::fs::create_dir(&p).map_err(|e| {
                        std::io::Error::new(e.kind(), format!("mkdir {}: {e}", p.display()))
                    })?;
                    g.created.push(p.clone());
                }
            }
            g.leaves.push(p);
        }
        Ok(g)
    }

    fn procs_files(&self) -> String {
        self.leaves
            .iter()
            .map(|l| l.join("cgroup.procs").display().to_string())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl Drop for RealCgroup {
    fn drop(&mut self) {
        for _ in 0..100 {
            let mut any = false;
            for leaf in &self.leaves {
                let _ = std::fs::write(leaf.join("cgroup.kill"), "1");
                let pids = std::fs::read_to_string(leaf.join("cgroup.procs")).unwrap_or_default();
                for pid in pids.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                    any = true;
                    // SAFETY: kill has no memory preconditions.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
            if !any {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Innermost first; a directory another test still uses stays.
        for d in self.created.iter().rev() {
            for _ in 0..50 {
                if std::fs::remove_dir(d).is_ok() || !d.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// A service in the cgroup: a shell that joins it, starts a double-forked
/// daemon (its parent exits at once: reparented, out of any process tree
/// under the shell), a 32 MiB memory holder, and then forks short-lived
/// workers without pause (each gone long before a sample).
struct Workload {
    child: Child,
    dir: tempfile::TempDir,
}

impl Workload {
    fn start(procs_files: &str) -> Workload {
        let dir = tempfile::tempdir().unwrap();
        let script = r#"
for f in $PROCS; do echo $$ > "$f"; done
( sh -c 'while :; do i=0; while [ $i -lt 3000 ]; do i=$((i+1)); done; sleep 0.01; done' &
  echo $! > "$DIR/daemon.pid" )
sh -c 'x=$(head -c 33554432 /dev/zero | tr "\0" x); echo $$ > "$DIR/holder.pid"; while :; do sleep 1; done' &
while :; do sh -c 'i=0; while [ $i -lt 2000 ]; do i=$((i+1)); done'; sleep 0.01; done
"#;
        let child = Command::new("sh")
            .args(["-c", script])
            .env("PROCS", procs_files)
            .env("DIR", dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let w = Workload { child, dir };
        let t0 = Instant::now();
        while !(w.dir.path().join("daemon.pid").exists()
            && w.dir.path().join("holder.pid").exists())
        {
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "the workload did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        w
    }

    fn pid_of(&self, name: &str) -> u32 {
        std::fs::read_to_string(self.dir.path().join(name))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        for f in ["daemon.pid", "holder.pid"] {
            if let Ok(p) = std::fs::read_to_string(self.dir.path().join(f))
                && let Ok(p) = p.trim().parse::<i32>()
            {
                // SAFETY: kill has no memory preconditions.
                unsafe { libc::kill(p, libc::SIGKILL) };
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ppid(pid: u32) -> u32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    stat.rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap()
}

fn rss_anon(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .unwrap()
        .trim()
        .trim_end_matches(" kB")
        .trim()
        .parse()
        .unwrap();
    kb * 1024
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    )
}

/// Samples the service over about a second, with `counter` (nanoseconds)
/// read just before the baseline and just after the sample: the truth.
fn measure(cfg: &Config, counter: &dyn Fn() -> u64) -> (ServiceSample, f64) {
    let (c0, t0) = (counter(), Instant::now());
    let mut src = service_source(cfg);
    std::thread::sleep(Duration::from_secs(1));
    let s = sample(&mut src);
    let (c1, t1) = (counter(), Instant::now());
    let truth = (c1 - c0) as f64 / 1e9 / t1.duration_since(t0).as_secs_f64() * 100.0;
    (s, truth)
}

fn real_config(svc: ServiceConfig) -> Config {
    Config {
        default_services: false,
        top_processes: 0,
        services: vec![svc],
        ..Default::default()
    }
}

/// Why a cgroup test is skipped: a read-only cgroup filesystem (a
/// container's), or not root. Root on a writable one must run them.
fn not_writable(e: &std::io::Error) {
    assert!(
        e.kind() == std::io::ErrorKind::ReadOnlyFilesystem || !support::agent::is_root(),
        "root could not create a cgroup: {e}"
    );
    println!("skipped: cgroups are not writable here: {e}");
}

/// A new cgroup in the cgroup2 hierarchy and its path; `None` (with the
/// reason printed) where there is none or it is not writable, which root
/// never accepts.
fn v2_cgroup(prefix: &str) -> Option<(RealCgroup, String)> {
    let h = Hierarchies::read(&HostPaths::default());
    let Some(v2) = h.v2.clone() else {
        println!("skipped: no cgroup2 hierarchy in /proc/self/mountinfo");
        return None;
    };
    let rel = unique(prefix);
    match RealCgroup::create(std::slice::from_ref(&v2.dir), &rel) {
        Ok(cg) => Some((cg, rel)),
        Err(e) => {
            not_writable(&e);
            None
        }
    }
}

fn v2_counter(leaf: &Path) -> u64 {
    parse_cpu_stat_usage_usec(&std::fs::read_to_string(leaf.join("cpu.stat")).unwrap()).unwrap()
        * 1000
}

/// cgroup2 (at `/sys/fs/cgroup/unified` on a hybrid host, or
/// `/sys/fs/cgroup`): CPU against `cpu.stat` `usage_usec`.
#[test]
fn real_cgroup_v2() {
    let Some((cg, rel)) = v2_cgroup("unamentis-test-v2") else {
        return;
    };
    let w = Workload::start(&cg.procs_files());
    let daemon = w.pid_of("daemon.pid");
    assert_ne!(ppid(daemon), w.child.id(), "the daemon was reparented");
    let leaf = cg.leaves[0].clone();
    let counter = || v2_counter(&leaf);
    let (s, truth) = measure(
        &real_config(cgroup_service("cg", None, Some(&rel))),
        &counter,
    );
    let cpu = s.cpu_percent.unwrap();
    println!(
        "cgroup2 service: {cpu:.1} % of a core, counter {truth:.1} %, pids {:?}",
        s.pids
    );
    assert!(
        (cpu - truth).abs() <= 5.0,
        "service {cpu:.1} % vs cgroup {truth:.1} %"
    );
    assert!(truth > 5.0, "the workload burned {truth:.1} %");
    assert!(
        s.pids.contains(&daemon),
        "daemon {daemon} not in {:?}",
        s.pids
    );
    assert!(s.pids.contains(&w.child.id()));
    assert!(
        s.matched[0].contains(&format!("cgroup {rel} ")),
        "{:?}",
        s.matched
    );
    assert!(s.matched[0].contains("in cgroup2 at "), "{:?}", s.matched);
    // Memory: memory.stat when the cgroup has the controller, else the
    // processes' RSS; the holder's 32 MiB is in it either way.
    let holder = w.pid_of("holder.pid");
    let rss = s.rss_bytes.unwrap();
    assert!(
        rss >= rss_anon(holder),
        "{rss} < holder's {}",
        rss_anon(holder)
    );
    match std::fs::read_to_string(leaf.join("memory.stat")) {
        Ok(t) => {
            let m = parse_memory_v2(&t).unwrap();
            assert!(rss.abs_diff(m) <= 4 << 20, "{rss} vs memory.stat {m}");
        }
        Err(_) => {
            assert!(s.matched[2].contains("RSS sum"), "{:?}", s.matched);
            let sum: u64 = s
                .pids
                .iter()
                .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/statm")).ok())
                .map(|t| t.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * page_size())
                .sum();
            assert!(rss.abs_diff(sum) <= 4 << 20, "{rss} vs RSS sum {sum}");
        }
    }

    // The real binary explains the match.
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        file.path(),
        format!("default_services = false\n[[service]]\nname = \"cg\"\ncgroup = \"{rel}\"\n[[service]]\nname = \"gone\"\nsystemd_unit = \"no-such-unit-{rel}.service\"\n"),
    )
    .unwrap();
    let out = support::agent::command()
        .args(["--config", &file.path().display().to_string(), "services"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(&format!(
            "cg: cgroup {rel}\n  up: cgroup {rel} (pattern {rel}) in cgroup2 at"
        )),
        "{text}"
    );
    assert!(
        text.contains("  cpu from the cgroup's own counter"),
        "{text}"
    );
    assert!(text.contains(&format!(" {daemon}")), "{text}");
    assert!(text.contains(&format!("gone: systemd unit no-such-unit-{rel}.service\n  down: no cgroup */no-such-unit-{rel}.service")), "{text}");
    drop(w);
    drop(cg);
}

/// cgroup v1: the path is made in the `cpuacct` and `memory` hierarchies
/// (below this process's own memory cgroup, so its limits still hold);
/// CPU against `cpuacct.usage`, memory against `memory.stat`.
#[test]
fn real_cgroup_v1() {
    let h = Hierarchies::read(&HostPaths::default());
    let (Some(cpuacct), Some(memory)) = (h.cpuacct.clone(), h.memory.clone()) else {
        println!("skipped: no cgroup v1 cpuacct and memory hierarchies in /proc/self/mountinfo");
        return;
    };
    let own_memory = std::fs::read_to_string("/proc/self/cgroup")
        .unwrap()
        .lines()
        .find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctl, path) = (f.next()?, f.next()?, f.next()?);
            ctl.split(',')
                .any(|c| c == "memory")
                .then(|| path.trim_matches('/').to_owned())
        })
        .unwrap_or_default();
    let leaf_name = unique("unamentis-test-v1");
    let rel = if own_memory.is_empty() {
        leaf_name
    } else {
        format!("{own_memory}/{leaf_name}")
    };
    let cg = match RealCgroup::create(&[cpuacct.dir.clone(), memory.dir.clone()], &rel) {
        Ok(cg) => cg,
        Err(e) => {
            not_writable(&e);
            return;
        }
    };
    let w = Workload::start(&cg.procs_files());
    let daemon = w.pid_of("daemon.pid");
    let (cpu_leaf, mem_leaf) = (cg.leaves[0].clone(), cg.leaves[1].clone());
    let counter = || {
        parse_cpuacct_usage(&std::fs::read_to_string(cpu_leaf.join("cpuacct.usage")).unwrap())
            .unwrap()
    };
    let (s, truth) = measure(
        &real_config(cgroup_service("cg1", None, Some(&rel))),
        &counter,
    );
    let mem_truth =
        parse_memory_v1(&std::fs::read_to_string(mem_leaf.join("memory.stat")).unwrap()).unwrap();
    let cpu = s.cpu_percent.unwrap();
    let rss = s.rss_bytes.unwrap();
    println!(
        "cgroup v1 service: {cpu:.1} % of a core, counter {truth:.1} %; memory {rss} B, memory.stat {mem_truth} B; pids {:?}",
        s.pids
    );
    assert!(
        (cpu - truth).abs() <= 5.0,
        "service {cpu:.1} % vs cpuacct {truth:.1} %"
    );
    assert!(truth > 5.0, "the workload burned {truth:.1} %");
    assert!(
        s.pids.contains(&daemon),
        "daemon {daemon} not in {:?}",
        s.pids
    );
    assert!(s.matched[0].contains("in cpuacct at"), "{:?}", s.matched);
    assert!(
        s.matched[2].contains("total_rss + total_mapped_file"),
        "{:?}",
        s.matched
    );
    // Workers come and go between the two reads: a few MiB at most.
    assert!(
        rss.abs_diff(mem_truth) <= 4 << 20,
        "{rss} vs memory.stat {mem_truth}"
    );
    let holder = w.pid_of("holder.pid");
    assert!(
        rss >= rss_anon(holder),
        "{rss} < holder's {}",
        rss_anon(holder)
    );
    drop(w);
    drop(cg);
}

/// Through the real binary and OTLP: each export's `service.cpu_percent`
/// against the cgroup's counter between the arrivals of that export and
/// the one before; the daemon is one of `service.processes`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_cgroup_through_the_binary_and_otlp() {
    use support::otlp_receiver::{Receiver, find_value};
    let Some((cg, rel)) = v2_cgroup("unamentis-test-otlp") else {
        return;
    };
    let w = Workload::start(&cg.procs_files());
    let leaf = cg.leaves[0].clone();
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        file.path(),
        format!("default_services = false\n[[service]]\nname = \"cg\"\ncgroup = \"{rel}\"\n"),
    )
    .unwrap();
    let rx = Receiver::grpc().await;
    let mut agent = support::agent::Agent::spawn(
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &rx.endpoint()),
            ("UNAMENTIS_AGENT_INTERVAL", "2s"),
        ],
        &["--config", &file.path().display().to_string(), "run"],
    );
    let limit = Duration::from_secs(30);
    let mut marks = Vec::new();
    for n in 1..=3 {
        let got = rx.wait_for(n, limit).await;
        marks.push((got[n - 1].at, v2_counter(&leaf)));
    }
    let got = rx.received();
    let with = Some(("unamentis.service", "cg"));
    for n in 1..3 {
        let ((t0, c0), (t1, c1)) = (marks[n - 1], marks[n]);
        let want = (c1 - c0) as f64 / 1e9 / (t1 - t0).as_secs_f64() * 100.0;
        let value = find_value(&got[n], "unamentis.server.service.cpu_percent", with)
            .expect("service.cpu_percent for the cgroup");
        println!("export {n}: agent {value:.1} %, cgroup counter {want:.1} %");
        assert!(
            (value - want).abs() <= 5.0,
            "export {n}: agent {value:.1} % vs the cgroup's {want:.1} %"
        );
    }
    let last = &got[2];
    assert_eq!(
        find_value(last, "unamentis.server.service.up", with),
        Some(1.0)
    );
    // The shell, the daemon and the memory holder, and maybe a worker.
    let procs = find_value(last, "unamentis.server.service.processes", with).unwrap();
    assert!(procs >= 3.0, "{procs}");
    let mb = find_value(last, "unamentis.server.service.memory_mb", with).unwrap();
    assert!(mb >= 32.0, "the holder's 32 MiB: {mb}");
    agent.signal("TERM");
    assert!(agent.wait(limit).success(), "{}", agent.log_text());
    drop(w);
    drop(cg);
}
