//! SigNoz's Hosts list and host detail page as consumers of the agent's
//! `[compat] hostmetrics` output. What they query (metric, aggregation, the
//! attributes each query filters and groups on, the resource attributes)
//! is tests/fixtures/signoz/hosts.json, extracted from SigNoz's source at
//! the commit named in its `provenance`. The agent runs for real on the
//! fixture host tests/fixtures/hosts/compat-2cpu and exports to the
//! in-process OTLP receiver; every query of every column and chart must
//! find its metric and attributes there, except the metrics in `PENDING`.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use opentelemetry_proto::tonic::metrics::v1::Metric;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use serde::Deserialize;
use support::agent::Agent;
use support::fixtures::host_env;
use support::otlp_receiver::{Received, Receiver, attr, metrics, points, resource_attrs};

/// Guards against hangs only; nothing asserts on elapsed time.
const LIMIT: Duration = Duration::from_secs(30);

/// Metrics SigNoz's host pages query that the agent does not emit yet. The
/// test fails when one of them is emitted: take it out of this list then,
/// and its attribute checks apply. Empty since the host families (disk,
/// network) emit every metric the pages query.
const PENDING: &[&str] = &[];

/// The agent's config for the run: `system.network.connections` (the
/// "Network connections" chart) needs `[families.network] connections`,
/// off by default because counting TCP states dumps every socket of the
/// host each cycle. The fixture host's sockets are its `proc/net/tcp{,6}`.
const CONFIG: &str = "[families.network]\nconnections = true\n";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Fixture {
    provenance: Provenance,
    hosts_list: HostsList,
    host_detail: HostDetail,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Provenance {
    repo: String,
    commit: String,
    #[allow(dead_code)]
    commit_date: String,
    files: std::collections::BTreeMap<String, String>,
    #[allow(dead_code)]
    notes: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HostsList {
    resource_attributes: std::collections::BTreeMap<String, String>,
    status: Status,
    columns: Vec<Panel>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Status {
    title: String,
    metrics: Vec<String>,
    needs: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HostDetail {
    resource_attributes: std::collections::BTreeMap<String, String>,
    charts: Vec<Panel>,
}

/// A Hosts list column or a detail chart.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Panel {
    title: String,
    #[allow(dead_code)]
    order_by: Option<String>,
    #[allow(dead_code)]
    y_axis_unit: Option<String>,
    formula: Option<String>,
    queries: Vec<Query>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Query {
    name: String,
    metric: String,
    #[allow(dead_code)]
    declared_type: Option<String>,
    time_aggregation: String,
    #[allow(dead_code)]
    space_aggregation: String,
    #[allow(dead_code)]
    reduce_to: Option<String>,
    filters: Vec<Filter>,
    group_by: Vec<Key>,
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Context {
    Resource,
    Point,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Key {
    key: String,
    context: Context,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Filter {
    key: String,
    context: Context,
    op: String,
    /// `$host`: the host being looked at (the resource's own host.name).
    value: String,
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn fixture() -> Fixture {
    let path = root().join("tests/fixtures/signoz/hosts.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn host_dir() -> PathBuf {
    root().join("tests/fixtures/hosts/compat-2cpu")
}

/// Every (where, query) of the fixture: the list's columns, then the
/// detail page's charts.
fn queries(f: &Fixture) -> Vec<(String, &Query)> {
    let list = f.hosts_list.columns.iter().map(|p| ("Hosts list", p));
    let detail = f.host_detail.charts.iter().map(|p| ("host detail", p));
    list.chain(detail)
        .flat_map(|(page, p)| {
            p.queries
                .iter()
                .map(move |q| (format!("{page} / {} / {}", p.title, q.name), q))
        })
        .collect()
}

fn matches(op: &str, got: &str, want: &str) -> bool {
    match op {
        "=" => got == want,
        "!=" => got != want,
        other => panic!("filter op {other:?}: extend the test"),
    }
}

/// Everything wrong with one query against one export.
fn query_errors(
    r: &Received,
    host: &str,
    pending: &BTreeSet<&str>,
    at: &str,
    q: &Query,
) -> Vec<String> {
    let mut out = Vec::new();
    let ms: Vec<&Metric> = metrics(r)
        .into_iter()
        .filter(|m| m.name == q.metric)
        .collect();
    let pts: Vec<_> = ms.iter().flat_map(|m| points(m).iter()).collect();
    if pending.contains(q.metric.as_str()) {
        if !pts.is_empty() {
            out.push(format!(
                "{at}: {} is emitted now; take it out of PENDING",
                q.metric
            ));
        }
        return out;
    }
    if pts.is_empty() {
        out.push(format!("{at}: absent {}", q.metric));
        return out;
    }
    // A rate over a gauge or an up-down sum is meaningless in SigNoz.
    if matches!(q.time_aggregation.as_str(), "rate" | "increase") {
        for m in &ms {
            if !matches!(&m.data, Some(Data::Sum(s)) if s.is_monotonic) {
                out.push(format!(
                    "{at}: {} read with {} but not a monotonic sum",
                    q.metric, q.time_aggregation
                ));
            }
        }
    }
    let res = resource_attrs(r);
    for g in &q.group_by {
        match g.context {
            Context::Resource => {
                if res.get(&g.key).is_none_or(|v| v.is_empty()) {
                    out.push(format!("{at}: group-by {} not on the resource", g.key));
                }
            }
            Context::Point => {
                let missing = pts.iter().filter(|p| attr(p, &g.key).is_none()).count();
                if missing > 0 {
                    out.push(format!(
                        "{at}: group-by {}: {missing} of {} points lack it",
                        g.key,
                        pts.len()
                    ));
                }
            }
        }
    }
    for f in &q.filters {
        let want = if f.value == "$host" { host } else { &f.value };
        match f.context {
            Context::Resource => match res.get(&f.key) {
                Some(v) if matches(&f.op, v, want) => {}
                other => out.push(format!(
                    "{at}: resource {} {} {want:?}: resource has {other:?}",
                    f.key, f.op
                )),
            },
            Context::Point => {
                let missing = pts.iter().filter(|p| attr(p, &f.key).is_none()).count();
                if missing > 0 {
                    out.push(format!(
                        "{at}: filter key {}: {missing} of {} points lack it",
                        f.key,
                        pts.len()
                    ));
                }
                let hit = pts
                    .iter()
                    .any(|p| attr(p, &f.key).is_some_and(|v| matches(&f.op, &v, want)));
                if !hit {
                    out.push(format!(
                        "{at}: no point of {} with {} {} {want:?}",
                        q.metric, f.key, f.op
                    ));
                }
            }
        }
    }
    out
}

/// Everything wrong with the whole fixture against one export.
fn errors(f: &Fixture, r: &Received, host: &str, pending: &[&str]) -> Vec<String> {
    let pending: BTreeSet<&str> = pending.iter().copied().collect();
    let mut out = Vec::new();
    let res = resource_attrs(r);
    let resource_keys = f
        .hosts_list
        .resource_attributes
        .keys()
        .chain(f.host_detail.resource_attributes.keys());
    for k in resource_keys {
        if res.get(k).is_none_or(|v| v.is_empty()) {
            out.push(format!("resource attribute {k} missing: {res:?}"));
        }
    }
    // Status: active when one of these metrics carried the host's name.
    let status = &f.hosts_list.status;
    if res.get(&status.needs).is_none_or(|v| v.is_empty()) {
        out.push(format!(
            "{}: no {} on the resource",
            status.title, status.needs
        ));
    }
    for name in &status.metrics {
        if !metrics(r).iter().any(|m| &m.name == name) {
            out.push(format!("{}: no {name}", status.title));
        }
    }
    for (at, q) in queries(f) {
        out.extend(query_errors(r, host, &pending, &at, q));
    }
    out
}

/// The fixture is whole: provenance, formulas over its own queries, and a
/// PENDING list naming only metrics some page queries.
#[test]
fn fixture_is_consistent() {
    let f = fixture();
    assert_eq!(f.provenance.repo, "https://github.com/SigNoz/signoz");
    assert_eq!(f.provenance.commit.len(), 40);
    assert!(f.provenance.files.len() >= 2);
    assert_eq!(f.hosts_list.columns.len(), 5);
    assert_eq!(f.host_detail.charts.len(), 13);
    for p in f.hosts_list.columns.iter().chain(&f.host_detail.charts) {
        let names: BTreeSet<&str> = p.queries.iter().map(|q| q.name.as_str()).collect();
        assert_eq!(names.len(), p.queries.len(), "{}: query names", p.title);
        if let Some(formula) = &p.formula {
            for v in formula.split(|c: char| !c.is_ascii_alphanumeric()) {
                assert!(
                    v.is_empty() || names.contains(v),
                    "{}: {formula} names {v}",
                    p.title
                );
            }
        }
        for q in &p.queries {
            for fl in &q.filters {
                assert!(matches!(fl.op.as_str(), "=" | "!="), "{}", p.title);
            }
        }
    }
    let queried: BTreeSet<&str> = queries(&f).iter().map(|(_, q)| q.metric.as_str()).collect();
    for name in PENDING {
        assert!(queried.contains(name), "PENDING {name} is queried nowhere");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_list_and_host_detail_find_what_they_query() {
    let f = fixture();
    let dir = host_dir();
    // Ground truth for `$host`: the fixture host's own hostname file.
    let host = std::fs::read_to_string(dir.join("proc/sys/kernel/hostname")).unwrap();
    let host = host.trim();
    let rx = Receiver::grpc().await;
    let mut env = host_env(&dir);
    env.extend([
        ("OTEL_EXPORTER_OTLP_ENDPOINT", rx.endpoint()),
        ("UNAMENTIS_AGENT_INTERVAL", "1s".into()),
        ("UNAMENTIS_AGENT_COMPAT_HOSTMETRICS", "true".into()),
        ("UNAMENTIS_AGENT_GPU_ENABLED", "false".into()),
        ("UNAMENTIS_AGENT_OLLAMA_ENABLED", "false".into()),
    ]);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(config.path(), CONFIG).unwrap();
    let agent = Agent::spawn(&env, &["--config", config.path().to_str().unwrap(), "run"]);
    let got = rx.wait_for(2, LIMIT).await;
    let r = &got[1];

    assert_eq!(
        resource_attrs(r).get("os.type").map(String::as_str),
        Some(std::env::consts::OS)
    );
    let errs = errors(&f, r, host, PENDING);
    assert!(errs.is_empty(), "{errs:#?}\nlog:\n{}", agent.log_text());

    // The checks can fail: with nothing pending, exactly the pending
    // metrics are reported missing; a wrong host and a wrong filter value
    // are caught.
    let missing: BTreeSet<String> = errors(&f, r, host, &[])
        .iter()
        .filter_map(|e| e.split_once(": absent ").map(|(_, m)| m.to_owned()))
        .collect();
    let pending: BTreeSet<String> = PENDING.iter().map(|s| s.to_string()).collect();
    assert_eq!(missing, pending);
    // A metric the agent did not send is reported absent.
    let mut without = r.clone();
    for sm in without
        .request
        .resource_metrics
        .iter_mut()
        .flat_map(|rm| rm.scope_metrics.iter_mut())
    {
        sm.metrics
            .retain(|m| m.name != "system.network.connections");
    }
    assert!(
        errors(&f, &without, host, PENDING)
            .iter()
            .any(|e| e.ends_with(": absent system.network.connections"))
    );
    assert!(
        errors(&f, r, "other-host", PENDING)
            .iter()
            .any(|e| e.contains("resource host.name"))
    );
    let mut wrong = fixture();
    wrong.hosts_list.columns[0].queries[0].filters[0].value = "no-such-state".into();
    wrong.hosts_list.columns[0].queries[0].filters[0].op = "=".into();
    assert!(
        errors(&wrong, r, host, PENDING)
            .iter()
            .any(|e| e.contains("no point of system.cpu.time with state"))
    );
}
