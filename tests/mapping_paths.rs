//! One mapping from a cycle to points serves every output: `snapshot
//! --json`, the local server's `/v1/snapshot` and `/metrics` (and the OTLP
//! export, which `/metrics` renders the same stored points of). On one
//! fixture host with `[compat]` on, the three give the same series: the
//! same metric names with the same attribute sets.
#![cfg(target_os = "linux")]

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::agent::{Agent, command};
use support::fixtures::{host_copy, toml_string};
use support::http::request;

const LIMIT: Duration = Duration::from_secs(30);

fn config(root: &Path) -> String {
    let q = |sub: &str| toml_string(&root.join(sub));
    format!(
        "interval = \"200ms\"\n\
         [host]\nproc = {}\nsys = {}\nroot = {}\n\
         [export]\nenabled = false\n\
         [server]\nlisten = \"127.0.0.1:0\"\n\
         [gpu]\nenabled = false\n[ollama]\nenabled = false\n\
         [activity]\nconnections = false\nollama = false\n\
         [compat]\nhostmetrics = true\nhw = true\n",
        q("proc"),
        q("sys"),
        q("root"),
    )
}

/// (name, sorted attribute keys and values) of every point of a JSON
/// `metrics` array.
fn series(metrics: &Value) -> BTreeSet<String> {
    metrics
        .as_array()
        .expect("a metrics array")
        .iter()
        .map(|m| {
            let attrs: BTreeSet<String> = m["attributes"]
                .as_object()
                .map(|o| o.iter().map(|(k, v)| format!("{k}={v}")).collect())
                .unwrap_or_default();
            format!("{} {attrs:?}", m["name"].as_str().unwrap())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_json_v1_snapshot_and_metrics_give_the_same_series() {
    let host = host_copy("compat-2cpu");
    let cfg = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(cfg.path(), config(host.path())).unwrap();

    let json = support::snapshot_json::run(
        command()
            .arg("--config")
            .arg(cfg.path())
            .args(["snapshot", "--json", "--window", "0s"]),
    );
    let from_command = series(&json["metrics"]);
    assert!(
        from_command.iter().any(|s| s.starts_with("system.")),
        "compat names are part of the output"
    );

    let mut cmd = command();
    cmd.arg("--config").arg(cfg.path()).arg("run");
    let agent = Agent::start(cmd);
    let addr = agent.server_addr(LIMIT);
    // The second cycle onwards: every source has its baseline.
    let start = Instant::now();
    let served = loop {
        let r = request(addr, "GET", "/v1/snapshot", &[], b"").await;
        if r.status == 200 {
            let v: Value = serde_json::from_str(&r.body).unwrap();
            let s = series(&v["metrics"]);
            if s.len() >= from_command.len() || start.elapsed() > LIMIT {
                break s;
            }
        }
        assert!(
            start.elapsed() < LIMIT,
            "no snapshot:\n{}",
            agent.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let only_command: Vec<_> = from_command.difference(&served).collect();
    let only_served: Vec<_> = served.difference(&from_command).collect();
    assert!(
        only_command.is_empty() && only_served.is_empty(),
        "snapshot --json only: {only_command:#?}\n/v1/snapshot only: {only_served:#?}"
    );

    // /metrics renders the same stored points: each series' metric is a
    // family there, by its translated name.
    let r = request(addr, "GET", "/metrics", &[], b"").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let families: BTreeSet<&str> = r
        .body
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    for s in &served {
        let name = s.split_whitespace().next().unwrap();
        let m = unamentis_agent::semconv::ALL
            .iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("{name} is not in the registry"));
        let prom = unamentis_agent::prometheus::metric_name(m.name, m.unit, m.instrument).unwrap();
        assert!(
            families.contains(prom.as_str()),
            "/metrics lacks {prom} ({name})"
        );
    }
}
