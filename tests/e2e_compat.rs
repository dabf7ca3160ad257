//! `[compat] hostmetrics` and `[compat] hw` through the real binary and the
//! real OTLP receiver: names, instrument kinds, units and attribute keys
//! checked against the conventions themselves (the table below is written
//! from the Collector hostmetrics receiver's metadata.yaml and the
//! OpenTelemetry hardware semantic conventions, not from our registry), and
//! values against the fixture host tests/fixtures/hosts/compat-2cpu.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use support::agent::Agent;
use support::fake_nvml;
use support::otlp_receiver::{
    Received, Receiver, attr, find_value, metrics, points, resource_attrs, value,
};

/// Guards against hangs only; nothing asserts on elapsed time.
const LIMIT: Duration = Duration::from_secs(30);
const MIB: f64 = 1024.0 * 1024.0;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Gauge,
    Counter,
    UpDown,
}

/// (name, instrument, unit, attribute keys) as the conventions define them.
const CONVENTIONS: &[(&str, Kind, &str, &[&str])] = &[
    ("system.cpu.time", Kind::Counter, "s", &["cpu", "state"]),
    ("system.memory.usage", Kind::UpDown, "By", &["state"]),
    ("system.cpu.load_average.1m", Kind::Gauge, "{thread}", &[]),
    ("system.cpu.load_average.5m", Kind::Gauge, "{thread}", &[]),
    ("system.cpu.load_average.15m", Kind::Gauge, "{thread}", &[]),
    (
        "system.filesystem.usage",
        Kind::UpDown,
        "By",
        &["device", "mountpoint", "type", "state"],
    ),
    // The host families (src/families/), from the receiver's disk, network,
    // paging, processes and cpu scrapers' metadata.yaml.
    (
        "system.disk.io",
        Kind::Counter,
        "By",
        &["device", "direction"],
    ),
    (
        "system.disk.operations",
        Kind::Counter,
        "{operations}",
        &["device", "direction"],
    ),
    (
        "system.disk.merged",
        Kind::Counter,
        "{operations}",
        &["device", "direction"],
    ),
    ("system.disk.io_time", Kind::Counter, "s", &["device"]),
    (
        "system.disk.operation_time",
        Kind::Counter,
        "s",
        &["device", "direction"],
    ),
    (
        "system.disk.weighted_io_time",
        Kind::Counter,
        "s",
        &["device"],
    ),
    (
        "system.disk.pending_operations",
        Kind::UpDown,
        "{operations}",
        &["device"],
    ),
    (
        "system.network.io",
        Kind::Counter,
        "By",
        &["device", "direction"],
    ),
    (
        "system.network.packets",
        Kind::Counter,
        "{packets}",
        &["device", "direction"],
    ),
    (
        "system.network.errors",
        Kind::Counter,
        "{errors}",
        &["device", "direction"],
    ),
    (
        "system.network.dropped",
        Kind::Counter,
        "{packets}",
        &["device", "direction"],
    ),
    (
        "system.network.connections",
        Kind::UpDown,
        "{connections}",
        &["protocol", "state"],
    ),
    (
        "system.paging.usage",
        Kind::UpDown,
        "By",
        &["device", "state"],
    ),
    (
        "system.paging.operations",
        Kind::Counter,
        "{operations}",
        &["direction", "type"],
    ),
    ("system.paging.faults", Kind::Counter, "{faults}", &["type"]),
    (
        "system.processes.created",
        Kind::Counter,
        "{processes}",
        &[],
    ),
    (
        "system.processes.count",
        Kind::UpDown,
        "{processes}",
        &["status"],
    ),
    ("system.cpu.frequency", Kind::Gauge, "Hz", &["cpu"]),
    ("hw.power", Kind::Gauge, "W", &["hw.id", "hw.type"]),
    ("hw.energy", Kind::Counter, "J", &["hw.id", "hw.type"]),
    ("hw.temperature", Kind::Gauge, "Cel", &["hw.id", "hw.type"]),
    (
        "hw.gpu.memory.usage",
        Kind::UpDown,
        "By",
        &["hw.id", "hw.type"],
    ),
    (
        "hw.gpu.memory.limit",
        Kind::UpDown,
        "By",
        &["hw.id", "hw.type"],
    ),
    (
        "hw.gpu.utilization",
        Kind::Gauge,
        "1",
        &["hw.id", "hw.type"],
    ),
];

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hosts/compat-2cpu")
}

fn host_env(dir: &Path) -> Vec<(&'static str, String)> {
    vec![
        (
            "UNAMENTIS_AGENT_HOST_PROC",
            dir.join("proc").display().to_string(),
        ),
        (
            "UNAMENTIS_AGENT_HOST_SYS",
            dir.join("sys").display().to_string(),
        ),
        (
            "UNAMENTIS_AGENT_HOST_ROOT",
            dir.join("root").display().to_string(),
        ),
    ]
}

fn user_hz() -> f64 {
    // SAFETY: sysconf has no preconditions.
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }) as f64
}

fn statvfs_total(path: &Path) -> f64 {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: zeroed plain C struct; c is NUL-terminated.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut st) }, 0);
    st.f_blocks as f64 * st.f_frsize as f64
}

/// Every point of `name` whose attributes include all of `with`.
fn values(r: &Received, name: &str, with: &[(&str, &str)]) -> Vec<f64> {
    metrics(r)
        .into_iter()
        .filter(|m| m.name == name)
        .flat_map(|m| points(m).iter())
        .filter(|p| with.iter().all(|(k, v)| attr(p, k).as_deref() == Some(*v)))
        .map(value)
        .collect()
}

fn one(r: &Received, name: &str, with: &[(&str, &str)]) -> f64 {
    let v = values(r, name, with);
    assert_eq!(v.len(), 1, "{name} {with:?}: {v:?}");
    v[0]
}

/// Every compat metric present is exactly as the conventions say.
fn check_against_conventions(r: &Received) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for m in metrics(r) {
        if !(m.name.starts_with("system.") || m.name.starts_with("hw.")) {
            continue;
        }
        let (_, kind, unit, keys) = CONVENTIONS
            .iter()
            .find(|c| c.0 == m.name)
            .unwrap_or_else(|| panic!("{} is not a convention name we emit", m.name));
        assert_eq!(m.unit, *unit, "{}", m.name);
        let got = match &m.data {
            Some(Data::Gauge(_)) => Kind::Gauge,
            Some(Data::Sum(s)) if s.is_monotonic => Kind::Counter,
            Some(Data::Sum(_)) => Kind::UpDown,
            other => panic!("{}: {other:?}", m.name),
        };
        assert_eq!(got, *kind, "{}", m.name);
        for p in points(m) {
            let got: BTreeSet<&str> = p.attributes.iter().map(|kv| kv.key.as_str()).collect();
            let want: BTreeSet<&str> = keys.iter().copied().collect();
            assert_eq!(got, want, "{} attribute keys", m.name);
        }
        seen.insert(m.name.clone());
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostmetrics_and_hw_names_from_the_same_snapshot() {
    let gpu_dir = tempfile::tempdir().unwrap();
    let lib = fake_nvml::build(gpu_dir.path(), &[]);
    let rx = Receiver::grpc().await;
    let dir = fixture();
    let mut env = host_env(&dir);
    env.extend([
        ("OTEL_EXPORTER_OTLP_ENDPOINT", rx.endpoint()),
        ("UNAMENTIS_AGENT_INTERVAL", "1s".into()),
        ("UNAMENTIS_AGENT_COMPAT_HOSTMETRICS", "true".into()),
        ("UNAMENTIS_AGENT_COMPAT_HW", "true".into()),
        (
            "UNAMENTIS_AGENT_GPU_NVML_LIBRARY",
            lib.display().to_string(),
        ),
        (
            "UNAMENTIS_AGENT_GPU_NVIDIA_SMI",
            "/nonexistent/nvidia-smi".into(),
        ),
        ("UNAMENTIS_AGENT_OLLAMA_ENABLED", "false".into()),
    ]);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    // The TCP state counts are off by default (they dump every socket each
    // cycle): on here, so system.network.connections is checked too.
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(config.path(), "[families.network]\nconnections = true\n").unwrap();
    let agent = Agent::spawn(&env, &["--config", config.path().to_str().unwrap(), "run"]);
    let got = rx.wait_for(2, LIMIT).await;
    let r = &got[1];

    let seen = check_against_conventions(r);
    let want: BTreeSet<String> = CONVENTIONS.iter().map(|c| c.0.to_owned()).collect();
    assert_eq!(seen, want, "log:\n{}", agent.log_text());

    // SigNoz's Hosts list groups by the resource's host.name.
    assert_eq!(
        resource_attrs(r).get("host.name").map(String::as_str),
        Some("compat-node")
    );

    // system.cpu.time: the cpuN lines of proc/stat over USER_HZ.
    let hz = user_hz();
    let t = |cpu, state| one(r, "system.cpu.time", &[("cpu", cpu), ("state", state)]);
    assert_eq!(t("cpu0", "user"), 11200.0 / hz);
    assert_eq!(t("cpu0", "wait"), 700.0 / hz);
    assert_eq!(t("cpu1", "softirq"), 155.0 / hz);
    assert_eq!(t("cpu1", "steal"), 17.0 / hz);
    assert_eq!(t("cpu1", "interrupt"), 0.0);
    assert_eq!(values(r, "system.cpu.time", &[]).len(), 2 * 8);

    // system.memory.usage: the states partition MemTotal.
    let kib = |k: f64| k * 1024.0;
    let mem = |state| one(r, "system.memory.usage", &[("state", state)]);
    assert_eq!(mem("free"), kib(412340.0));
    assert_eq!(mem("buffered"), kib(120004.0));
    assert_eq!(mem("cached"), kib(2101788.0));
    assert_eq!(mem("slab_reclaimable"), kib(190112.0));
    assert_eq!(mem("used"), kib(1191544.0));
    let sum: f64 = values(r, "system.memory.usage", &[]).iter().sum();
    assert_eq!(sum, kib(4015788.0));

    for (name, v) in [("1m", 0.31), ("5m", 0.27), ("15m", 0.22)] {
        assert_eq!(one(r, &format!("system.cpu.load_average.{name}"), &[]), v);
    }

    // The host families, against the fixture's files (its README works
    // them out): diskstats sectors × 512 and ms / 1000, loop0 and ram0
    // skipped; net/dev as read; swaps KiB × 1024; vmstat counts; the
    // states of net/tcp and net/tcp6; cpuinfo MHz × 1e6.
    let vda = |name: &str, dir: Option<&str>| {
        let mut with = vec![("device", "vda")];
        with.extend(dir.map(|d| ("direction", d)));
        one(r, name, &with)
    };
    assert_eq!(vda("system.disk.io", Some("read")), 9853716.0 * 512.0);
    assert_eq!(vda("system.disk.io", Some("write")), 61858376.0 * 512.0);
    assert_eq!(vda("system.disk.operations", Some("write")), 1995318.0);
    assert_eq!(vda("system.disk.io_time", None), 1465.956);
    assert_eq!(vda("system.disk.pending_operations", None), 1.0);
    for skipped in ["loop0", "ram0"] {
        assert!(values(r, "system.disk.io", &[("device", skipped)]).is_empty());
    }
    let eth0 = |name: &str, dir| one(r, name, &[("device", "eth0"), ("direction", dir)]);
    assert_eq!(eth0("system.network.io", "receive"), 4281936518.0);
    assert_eq!(eth0("system.network.errors", "receive"), 3.0);
    assert_eq!(eth0("system.network.dropped", "transmit"), 2.0);
    let swap = |state| {
        one(
            r,
            "system.paging.usage",
            &[("device", "/dev/nvme0n1p1"), ("state", state)],
        )
    };
    assert_eq!(swap("used"), kib(180224.0));
    assert_eq!(swap("free"), kib(4194300.0 - 180224.0));
    assert_eq!(
        one(r, "system.paging.faults", &[("type", "minor")]),
        213440871.0 - 41127.0
    );
    let tcp = |state| one(r, "system.network.connections", &[("state", state)]);
    assert_eq!(
        [
            tcp("ESTABLISHED"),
            tcp("LISTEN"),
            tcp("TIME_WAIT"),
            tcp("FIN_WAIT2")
        ],
        [3.0, 4.0, 2.0, 1.0]
    );
    assert_eq!(one(r, "system.cpu.frequency", &[("cpu", "cpu1")]), 2.6e9);
    assert_eq!(one(r, "system.processes.created", &[]), 40211.0);

    // system.filesystem.usage: / and /data exist under the fixture root;
    // pseudo, nfs, overlay and invisible mounts are not there.
    let mut mounts = BTreeMap::new();
    for m in metrics(r)
        .into_iter()
        .filter(|m| m.name == "system.filesystem.usage")
    {
        for p in points(m) {
            let key = (
                attr(p, "mountpoint").unwrap(),
                attr(p, "device").unwrap(),
                attr(p, "type").unwrap(),
            );
            *mounts.entry(key).or_insert(0.0) += value(p);
        }
    }
    let names: Vec<_> = mounts.keys().cloned().collect();
    assert_eq!(
        names,
        vec![
            ("/".into(), "/dev/vda1".into(), "ext4".into()),
            ("/data".into(), "/dev/vdb1".into(), "xfs".into()),
        ]
    );
    // used + free + reserved = f_blocks * f_frsize (blocks do not change).
    assert_eq!(mounts[&names[0]], statvfs_total(&dir.join("root")));
    assert_eq!(mounts[&names[1]], statvfs_total(&dir.join("root/data")));
    for state in ["used", "free", "reserved"] {
        assert_eq!(
            values(r, "system.filesystem.usage", &[("state", state)]).len(),
            2
        );
    }

    // hw.*: the same cycle's GPU points, converted (fake NVML: GPU 0 has
    // 752 MiB of 24564 used, 19 % busy, 44 C, 14.53 W).
    let gpu0 = [("hw.id", "gpu0"), ("hw.type", "gpu")];
    assert_eq!(one(r, "hw.gpu.memory.usage", &gpu0), 752.0 * MIB);
    assert_eq!(one(r, "hw.gpu.memory.limit", &gpu0), 24564.0 * MIB);
    assert_eq!(one(r, "hw.gpu.utilization", &gpu0), 0.19);
    let own_watts = find_value(
        r,
        "unamentis.server.power.gpu_watts",
        Some(("gpu.index", "0")),
    );
    assert_eq!(Some(one(r, "hw.power", &gpu0)), own_watts);
    assert_eq!(
        one(
            r,
            "hw.temperature",
            &[("hw.id", "gpu0"), ("hw.type", "temperature")]
        ),
        44.0
    );
    let own_energy = find_value(r, "unamentis.server.energy.joules", Some(("domain", "gpu")));
    assert_eq!(
        Some(one(r, "hw.energy", &[("hw.id", "gpu"), ("hw.type", "gpu")])),
        own_energy
    );
}

#[test]
fn off_by_default() {
    let dir = fixture();
    let env = host_env(&dir);
    let json = support::snapshot_json::run(
        support::agent::command()
            .args(["snapshot", "--json", "--window", "10ms"])
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("UNAMENTIS_AGENT_GPU_ENABLED", "false")
            .env("UNAMENTIS_AGENT_OLLAMA_ENABLED", "false"),
    );
    let names = support::snapshot_json::names(&json);
    assert!(
        names.contains(&"unamentis.server.memory.total_mb"),
        "{names:?}"
    );
    // What `[compat]` adds (src/compat.rs) is absent; the host families'
    // system.* names are their only names and stay on by default.
    const COMPAT_ONLY: &[&str] = &[
        "system.cpu.time",
        "system.memory.usage",
        "system.cpu.load_average.1m",
        "system.cpu.load_average.5m",
        "system.cpu.load_average.15m",
        "system.filesystem.usage",
    ];
    assert!(
        !names
            .iter()
            .any(|n| COMPAT_ONLY.contains(n) || n.starts_with("hw.")),
        "{names:?}"
    );
    assert!(names.contains(&"system.disk.io"), "{names:?}");
    assert!(
        !support::snapshot_json::metrics(&json)
            .iter()
            .any(|m| m["attributes"]["source"] == "filesystem"),
        "no filesystem source without [compat] hostmetrics"
    );
}
