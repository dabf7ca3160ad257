//! `[compat] hostmetrics` and `[compat] hw` through the real binary and the
//! real OTLP receiver: names, instrument kinds, units, value types,
//! attribute keys and attribute values checked against the conventions
//! themselves, not against our registry: every `system.*` metric against the
//! Collector hostmetrics receiver's own metadata.yaml files (copied verbatim
//! under tests/fixtures/hostmetrics/), the `hw.*` ones against the table
//! below (the OpenTelemetry hardware semantic conventions); values against
//! the fixture host tests/fixtures/hosts/compat-2cpu.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::number_data_point;
use serde::Deserialize;
use support::agent::Agent;
use support::fake_nvml;
use support::fixtures::host_env;
use support::otlp_receiver::{
    Received, Receiver, attr, find_value, metrics, points, resource_attrs, value,
};
use unamentis_agent::semconv;

/// Guards against hangs only; nothing asserts on elapsed time.
const LIMIT: Duration = Duration::from_secs(30);
const MIB: f64 = 1024.0 * 1024.0;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Gauge,
    Counter,
    UpDown,
}

/// (name, instrument, unit, attribute keys) of the hw.* conventions.
const HW_CONVENTIONS: &[(&str, Kind, &str, &[&str])] = &[
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

/// The hostmetrics scrapers whose metadata.yaml is copied here.
const SCRAPERS: &[&str] = &[
    "cpu",
    "memory",
    "load",
    "filesystem",
    "disk",
    "network",
    "paging",
    "processes",
];

/// The parts of a receiver metadata.yaml the check reads (mdatagen's
/// format); everything else in the file is ignored.
#[derive(Deserialize)]
struct MetadataFile {
    #[serde(default)]
    attributes: BTreeMap<String, MetadataAttr>,
    #[serde(default)]
    metrics: BTreeMap<String, MetadataMetric>,
}

#[derive(Deserialize)]
struct MetadataAttr {
    /// The key on the wire when it differs from the attribute's id.
    name_override: Option<String>,
    #[serde(rename = "enum")]
    values: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct MetadataMetric {
    /// A string, or a bare number (`unit: 1`) in some versions.
    unit: serde_norway::Value,
    gauge: Option<MetadataValue>,
    sum: Option<MetadataValue>,
    #[serde(default)]
    attributes: Vec<String>,
}

#[derive(Deserialize)]
struct MetadataValue {
    value_type: String,
    /// Sums only.
    monotonic: Option<bool>,
}

/// One metric as the receiver defines it.
#[derive(Debug)]
struct Spec {
    kind: Kind,
    unit: String,
    int: bool,
    /// Wire key, and the values it may take when the spec lists them.
    attrs: BTreeMap<String, Option<Vec<String>>>,
}

fn load_specs() -> BTreeMap<String, Spec> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hostmetrics");
    let mut out = BTreeMap::new();
    for scraper in SCRAPERS {
        let path = dir.join(format!("{scraper}.metadata.yaml"));
        let text = std::fs::read_to_string(&path).unwrap();
        let file: MetadataFile =
            serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for (name, m) in file.metrics {
            let (kind, v) = match (&m.gauge, &m.sum) {
                (Some(g), None) => (Kind::Gauge, g),
                (None, Some(s)) if s.monotonic == Some(true) => (Kind::Counter, s),
                (None, Some(s)) if s.monotonic == Some(false) => (Kind::UpDown, s),
                _ => panic!("{name}: neither a gauge nor a sum with monotonic"),
            };
            let int = match v.value_type.as_str() {
                "int" => true,
                "double" => false,
                other => panic!("{name}: value_type {other}"),
            };
            let unit = match &m.unit {
                serde_norway::Value::String(s) => s.clone(),
                serde_norway::Value::Number(n) => n.to_string(),
                other => panic!("{name}: unit {other:?}"),
            };
            let attrs = m
                .attributes
                .iter()
                .map(|id| {
                    let a = file
                        .attributes
                        .get(id)
                        .unwrap_or_else(|| panic!("{name}: attribute {id} is not defined"));
                    let key = a.name_override.clone().unwrap_or_else(|| id.clone());
                    (key, a.values.clone())
                })
                .collect();
            let spec = Spec {
                kind,
                unit,
                int,
                attrs,
            };
            assert!(out.insert(name.clone(), spec).is_none(), "{name} twice");
        }
    }
    out
}

/// The registry's `system.*` metrics: what `[compat] hostmetrics` emits.
fn registry_system_metrics() -> Vec<&'static semconv::Metric> {
    semconv::ALL
        .iter()
        .copied()
        .filter(|m| m.name.starts_with("system."))
        .collect()
}

#[test]
fn the_receiver_spec_files_load() {
    let specs = load_specs();
    // A loader that read nothing would let every check pass.
    let m = &specs["system.memory.usage"];
    assert_eq!((m.kind, m.unit.as_str(), m.int), (Kind::UpDown, "By", true));
    assert_eq!(
        m.attrs["state"].as_deref().map(<[String]>::len),
        Some(7),
        "{m:?}"
    );
    let t = &specs["system.cpu.time"];
    assert_eq!(
        (t.kind, t.unit.as_str(), t.int),
        (Kind::Counter, "s", false)
    );
    let fs = &specs["system.filesystem.usage"];
    let keys: Vec<_> = fs.attrs.keys().map(String::as_str).collect();
    assert_eq!(keys, ["device", "mode", "mountpoint", "state", "type"]);
    for name in [
        "system.cpu.load_average.1m",
        "system.filesystem.inodes.usage",
        "system.disk.io",
        "system.network.io",
        "system.paging.usage",
        "system.processes.count",
    ] {
        assert!(specs.contains_key(name), "{name}");
    }
}

/// The parts of a semconv/registry.yaml group the check reads.
#[derive(Deserialize)]
struct RegistryGroup {
    #[serde(rename = "type")]
    kind: String,
    metric_name: Option<String>,
    instrument: Option<String>,
    unit: Option<String>,
    value_type: Option<String>,
    #[serde(default)]
    attributes: Vec<RegistryAttr>,
}

#[derive(Deserialize)]
struct RegistryAttr {
    #[serde(rename = "ref")]
    key: Option<String>,
}

/// Every `system.*` metric of semconv/registry.yaml is as the receiver
/// defines it: unit, instrument (gauge; counter = monotonic sum;
/// updowncounter = non-monotonic sum), value type (double unless the
/// registry says int) and attribute keys.
#[test]
fn registry_system_metrics_agree_with_the_receiver_spec() {
    #[derive(Deserialize)]
    struct Registry {
        groups: Vec<RegistryGroup>,
    }
    let specs = load_specs();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("semconv/registry.yaml");
    let registry: Registry =
        serde_norway::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut checked = BTreeSet::new();
    for g in registry.groups.iter().filter(|g| g.kind == "metric") {
        let Some(name) = g
            .metric_name
            .as_deref()
            .filter(|n| n.starts_with("system."))
        else {
            continue;
        };
        let spec = specs
            .get(name)
            .unwrap_or_else(|| panic!("{name} is not a hostmetrics receiver metric"));
        assert_eq!(g.unit.as_deref(), Some(spec.unit.as_str()), "{name} unit");
        let kind = match g.instrument.as_deref() {
            Some("gauge") => Kind::Gauge,
            Some("counter") => Kind::Counter,
            Some("updowncounter") => Kind::UpDown,
            other => panic!("{name}: instrument {other:?}"),
        };
        assert_eq!(kind, spec.kind, "{name} instrument");
        let int = match g.value_type.as_deref() {
            None | Some("double") => false,
            Some("int") => true,
            Some(other) => panic!("{name}: value_type {other}"),
        };
        assert_eq!(int, spec.int, "{name} value_type");
        let keys: BTreeSet<&str> = g
            .attributes
            .iter()
            .filter_map(|a| a.key.as_deref())
            .collect();
        let want: BTreeSet<&str> = spec.attrs.keys().map(String::as_str).collect();
        assert_eq!(keys, want, "{name} attribute keys");
        checked.insert(name.to_owned());
    }
    // The same set the generated catalogue (what the agent emits) holds.
    let generated: BTreeSet<String> = registry_system_metrics()
        .iter()
        .map(|m| m.name.to_owned())
        .collect();
    assert_eq!(checked, generated);
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hosts/compat-2cpu")
}

fn user_hz() -> f64 {
    // SAFETY: sysconf has no preconditions.
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }) as f64
}

fn statvfs(path: &Path) -> libc::statvfs {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: zeroed plain C struct; c is NUL-terminated.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut st) }, 0);
    st
}

/// f_blocks * f_frsize: what used + free + reserved add up to (the block
/// count does not change while the test runs, unlike the free counts).
fn statvfs_total(path: &Path) -> f64 {
    let st = statvfs(path);
    st.f_blocks as f64 * st.f_frsize as f64
}

/// f_files: what the inodes' used + free add up to (fixed at mkfs on ext4).
fn statvfs_files(path: &Path) -> f64 {
    statvfs(path).f_files as f64
}

/// (mountpoint, device, type, mode) of a filesystem point.
type MountKey = (String, String, String, String);

fn dir_of(rel: &str) -> PathBuf {
    fixture().join(rel)
}

/// The sum over states of `name`'s points, per mount.
fn fs_totals(r: &Received, name: &str) -> BTreeMap<MountKey, f64> {
    let mut out = BTreeMap::new();
    for m in metrics(r).into_iter().filter(|m| m.name == name) {
        for p in points(m) {
            let key = (
                attr(p, "mountpoint").unwrap(),
                attr(p, "device").unwrap(),
                attr(p, "type").unwrap(),
                attr(p, "mode").unwrap(),
            );
            *out.entry(key).or_insert(0.0) += value(p);
        }
    }
    out
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

/// Every compat metric present is exactly as the conventions say: the
/// `system.*` ones as the receiver's spec (kind, unit, each point's value
/// type, attribute keys, attribute values within the spec's enums), the
/// `hw.*` ones as [`HW_CONVENTIONS`].
fn check_against_conventions(r: &Received, specs: &BTreeMap<String, Spec>) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for m in metrics(r) {
        let got = match &m.data {
            Some(Data::Gauge(_)) => Kind::Gauge,
            Some(Data::Sum(s)) if s.is_monotonic => Kind::Counter,
            Some(Data::Sum(_)) => Kind::UpDown,
            other => panic!("{}: {other:?}", m.name),
        };
        if m.name.starts_with("system.") {
            let spec = specs
                .get(&m.name)
                .unwrap_or_else(|| panic!("{} is not a hostmetrics receiver metric", m.name));
            assert_eq!(m.unit, spec.unit, "{}", m.name);
            assert_eq!(got, spec.kind, "{}", m.name);
            let want: BTreeSet<&str> = spec.attrs.keys().map(String::as_str).collect();
            for p in points(m) {
                match p.value {
                    Some(number_data_point::Value::AsInt(_)) => {
                        assert!(spec.int, "{}: an int point, the spec says double", m.name)
                    }
                    Some(number_data_point::Value::AsDouble(_)) => {
                        assert!(!spec.int, "{}: a double point, the spec says int", m.name)
                    }
                    None => panic!("{}: a point without a value", m.name),
                }
                let keys: BTreeSet<&str> = p.attributes.iter().map(|kv| kv.key.as_str()).collect();
                assert_eq!(keys, want, "{} attribute keys", m.name);
                for (key, allowed) in &spec.attrs {
                    let v = attr(p, key).unwrap_or_else(|| panic!("{} {key}", m.name));
                    if let Some(allowed) = allowed {
                        assert!(
                            allowed.contains(&v),
                            "{} {key}={v} not in {allowed:?}",
                            m.name
                        );
                    }
                }
            }
        } else if m.name.starts_with("hw.") {
            let (_, kind, unit, keys) = HW_CONVENTIONS
                .iter()
                .find(|c| c.0 == m.name)
                .unwrap_or_else(|| panic!("{} is not a convention name we emit", m.name));
            assert_eq!(m.unit, *unit, "{}", m.name);
            assert_eq!(got, *kind, "{}", m.name);
            for p in points(m) {
                let got: BTreeSet<&str> = p.attributes.iter().map(|kv| kv.key.as_str()).collect();
                let want: BTreeSet<&str> = keys.iter().copied().collect();
                assert_eq!(got, want, "{} attribute keys", m.name);
            }
        } else {
            continue;
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
        ("UNAMENTIS_AGENT_EXPORT_DESCRIPTIONS", "true".into()),
    ]);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    // The TCP state counts are off by default (they dump every socket each
    // cycle): on here, so system.network.connections is checked too.
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(config.path(), "[families.network]\nconnections = true\n").unwrap();
    let agent = Agent::spawn(&env, &["--config", config.path().to_str().unwrap(), "run"]);
    let got = rx.wait_for(2, LIMIT).await;
    let r = &got[1];

    // export.descriptions = true: each metric carries its registry brief.
    for m in metrics(r) {
        let def = semconv::ALL.iter().find(|d| d.name == m.name).unwrap();
        assert_eq!(m.description, def.brief, "{}", m.name);
    }

    let specs = load_specs();
    let seen = check_against_conventions(r, &specs);
    let want: BTreeSet<String> = registry_system_metrics()
        .iter()
        .map(|m| m.name.to_owned())
        .chain(HW_CONVENTIONS.iter().map(|c| c.0.to_owned()))
        .collect();
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

    // system.memory.usage as the receiver computes it from proc/meminfo:
    // cached is Cached + SReclaimable; used, free, buffered and cached
    // partition MemTotal.
    let kib = |k: f64| k * 1024.0;
    let mem = |state| one(r, "system.memory.usage", &[("state", state)]);
    assert_eq!(mem("free"), kib(412340.0));
    assert_eq!(mem("buffered"), kib(120004.0));
    assert_eq!(mem("cached"), kib(2101788.0 + 190112.0));
    assert_eq!(mem("slab_reclaimable"), kib(190112.0));
    assert_eq!(mem("slab_unreclaimable"), kib(70004.0));
    assert_eq!(mem("used"), kib(1191544.0));
    assert_eq!(
        mem("used") + mem("free") + mem("buffered") + mem("cached"),
        kib(4015788.0)
    );
    assert_eq!(values(r, "system.memory.usage", &[]).len(), 6);

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

    for (name, v) in [("1m", 0.31), ("5m", 0.27), ("15m", 0.22)] {
        assert_eq!(one(r, &format!("system.cpu.load_average.{name}"), &[]), v);
    }

    // system.filesystem.usage: the device-backed mounts (types without
    // nodev in proc/filesystems) of proc/1/mountinfo that exist under the
    // fixture root: / (/dev/root, named by sys/dev/block/254:1's target),
    // /data, /home (/dev/mapper/vg0-home, named by its link's target) and
    // /srv/archive (read-only per mount, though its superblock is rw).
    // tmpfs /run exists there too but is virtual; proc, sysfs, cgroup2,
    // overlay and nfs4 are virtual as well; /boot/efi is not under the root.
    let totals = fs_totals(r, "system.filesystem.usage");
    let names: Vec<_> = totals.keys().cloned().collect();
    let mount = |mp: &str, dev: &str, t: &str, mode: &str| -> MountKey {
        (mp.into(), dev.into(), t.into(), mode.into())
    };
    assert_eq!(
        names,
        vec![
            mount("/", "/dev/vda1", "ext4", "rw"),
            mount("/data", "/dev/vdb1", "xfs", "rw"),
            mount("/home", "/dev/dm-1", "ext4", "rw"),
            mount("/srv/archive", "/dev/nvme0n1p2", "ext4", "ro"),
        ]
    );
    let dirs = ["root", "root/data", "root/home", "root/srv/archive"];
    for (key, dir) in names.iter().zip(dirs) {
        // used + free + reserved = f_blocks * f_frsize of the same path.
        assert_eq!(totals[key], statvfs_total(&dir_of(dir)), "{key:?}");
    }
    for state in ["used", "free", "reserved"] {
        assert_eq!(
            values(r, "system.filesystem.usage", &[("state", state)]).len(),
            4
        );
    }
    // system.filesystem.inodes.usage: the same mounts; used + free = f_files.
    let inodes = fs_totals(r, "system.filesystem.inodes.usage");
    assert_eq!(inodes.keys().cloned().collect::<Vec<_>>(), names);
    for (key, dir) in names.iter().zip(dirs) {
        assert_eq!(inodes[key], statvfs_files(&dir_of(dir)), "{key:?}");
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

/// `snapshot --json` over the fixture host, GPU and Ollama off, with
/// `env` on top.
fn fixture_snapshot(env: &[(&str, &str)]) -> serde_json::Value {
    let host = host_env(&fixture());
    support::snapshot_json::run(
        support::agent::command()
            .args(["snapshot", "--json", "--window", "10ms"])
            .envs(host.iter().map(|(k, v)| (*k, v.as_str())))
            .env("UNAMENTIS_AGENT_GPU_ENABLED", "false")
            .env("UNAMENTIS_AGENT_OLLAMA_ENABLED", "false")
            .envs(env.iter().copied()),
    )
}

#[test]
fn off_by_default() {
    let json = fixture_snapshot(&[]);
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
        "system.filesystem.inodes.usage",
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

/// `compat.include_virtual_filesystems`: devtmpfs /dev and tmpfs /run (both
/// under the fixture root) are reported too; nfs4 never is.
#[test]
fn virtual_filesystems_on_request() {
    let json = fixture_snapshot(&[
        ("UNAMENTIS_AGENT_COMPAT_HOSTMETRICS", "true"),
        ("UNAMENTIS_AGENT_COMPAT_INCLUDE_VIRTUAL_FILESYSTEMS", "true"),
    ]);
    let mut mounts = BTreeMap::new();
    for m in support::snapshot_json::metrics(&json)
        .iter()
        .filter(|m| m["name"] == "system.filesystem.usage")
    {
        let a = &m["attributes"];
        let key = (
            a["mountpoint"].as_str().unwrap().to_owned(),
            a["type"].as_str().unwrap().to_owned(),
            a["mode"].as_str().unwrap().to_owned(),
        );
        *mounts.entry(key).or_insert(0.0) += m["value"].as_f64().unwrap();
    }
    let names: Vec<_> = mounts.keys().cloned().collect();
    let m = |mp: &str, t: &str, mode: &str| (mp.to_owned(), t.to_owned(), mode.to_owned());
    assert_eq!(
        names,
        vec![
            m("/", "ext4", "rw"),
            m("/data", "xfs", "rw"),
            m("/dev", "devtmpfs", "rw"),
            m("/home", "ext4", "rw"),
            m("/run", "tmpfs", "rw"),
            m("/srv/archive", "ext4", "ro"),
        ]
    );
    assert_eq!(
        mounts[&names[4]],
        statvfs_total(&fixture().join("root/run"))
    );
}
