//! `GET /metrics` of the real binary, checked by promtool; and the README's
//! "OTLP name → Prometheus name" table, which must equal what the
//! translation gives for every registry metric
//! (`UPDATE_SEMCONV=1 cargo test --test prometheus` rewrites it).
#![cfg(target_os = "linux")]

mod support;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::agent::Agent;
use support::prom::{lint, tool};
use unamentis_agent::prometheus::metric_name;
use unamentis_agent::semconv::{self, Instrument};

/// Guards against hangs only.
const LIMIT: Duration = Duration::from_secs(30);
const TOKEN: &str = "scrape-secret-1";

fn prom_name(m: &semconv::Metric) -> String {
    metric_name(m.name, m.unit, m.instrument).unwrap()
}

fn render_table() -> String {
    let mut s = String::from(
        "| OTLP name | instrument | unit | Prometheus name | promtool lint |\n|---|---|---|---|---|\n",
    );
    for m in semconv::ALL {
        let kind = match m.instrument {
            Instrument::Gauge => "gauge",
            Instrument::Counter => "counter",
            Instrument::UpDownCounter => "updowncounter",
        };
        let name = prom_name(m);
        writeln!(
            s,
            "| `{}` | {kind} | `{}` | `{name}` | {} |",
            m.name,
            m.unit,
            lint(&name).unwrap_or_else(|| "—".to_owned())
        )
        .unwrap();
    }
    s
}

const BEGIN: &str = "<!-- prometheus-names:begin (generated from semconv/registry.yaml) -->\n";
const END: &str = "<!-- prometheus-names:end -->";

#[test]
fn readme_table_is_the_translation_of_every_registry_metric() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let text = std::fs::read_to_string(&path).unwrap();
    let (head, rest) = text
        .split_once(BEGIN)
        .expect("README.md lacks the prometheus-names:begin marker");
    let (_, tail) = rest
        .split_once(END)
        .expect("README.md lacks the prometheus-names:end marker");
    let want = format!("{head}{BEGIN}{}{END}{tail}", render_table());
    if text == want {
        return;
    }
    if std::env::var_os("UPDATE_SEMCONV").is_some() {
        std::fs::write(&path, want).unwrap();
        return;
    }
    panic!(
        "README.md's OTLP name → Prometheus name table is out of date; run `UPDATE_SEMCONV=1 cargo test --test prometheus`"
    );
}

fn get(url: &str, headers: &[(&str, &str)]) -> reqwest::blocking::Response {
    let client = reqwest::blocking::Client::builder()
        .timeout(LIMIT)
        .build()
        .unwrap();
    let mut req = client.get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().unwrap()
}

fn content_type(r: &reqwest::blocking::Response) -> String {
    r.headers()["content-type"].to_str().unwrap().to_owned()
}

/// Metric names of the samples in an exposition.
fn sample_names(body: &str) -> BTreeSet<String> {
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap().to_owned())
        .collect()
}

/// The labels of the one `target_info` sample.
fn target_info(body: &str) -> String {
    body.lines()
        .find(|l| l.starts_with("target_info{"))
        .unwrap_or_else(|| panic!("no target_info in\n{body}"))
        .to_owned()
}

#[test]
fn metrics_endpoint_passes_promtool_and_needs_the_token() {
    let Some(promtool) = tool("promtool") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "interval = \"200ms\"\n\
             [server]\nlisten = \"127.0.0.1:0\"\ntoken = \"{TOKEN}\"\n\
             [export]\nenabled = false\n\
             [ollama]\nenabled = false\n\
             [compat]\nhostmetrics = true\nhw = true\n"
        ),
    )
    .unwrap();
    let agent = Agent::spawn(&[], &["--config", config.to_str().unwrap(), "run"]);
    let base = format!("http://{}", agent.server_addr(LIMIT));
    let url = format!("{base}/metrics");
    let bearer = format!("Bearer {TOKEN}");
    let auth = [("Authorization", bearer.as_str())];

    let start = Instant::now();
    let text = loop {
        let r = get(&url, &auth);
        if r.status() == 200 {
            assert_eq!(content_type(&r), "text/plain; version=0.0.4; charset=utf-8");
            break r.text().unwrap();
        }
        assert_eq!(r.status(), 503, "before the first cycle");
        assert!(start.elapsed() < LIMIT, "no sample: {}", agent.log_text());
        std::thread::sleep(Duration::from_millis(20));
    };

    // The token guards /metrics as it does /v1/snapshot.
    for headers in [&[][..], &[("Authorization", "Bearer wrong")][..]] {
        let r = get(&url, headers);
        assert_eq!(r.status(), 401);
        assert_eq!(r.headers()["www-authenticate"], "Bearer");
    }

    // promtool parses it; its only complaints are the registry's `_mb`
    // names and the hostmetrics `system.processes.count` (listed in the
    // README table, not renamed).
    let mut child = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // 0: clean; 3: lint problems only (1 would be a parse error).
    assert!(
        matches!(out.status.code(), Some(0 | 3)),
        "{:?}\n{report}\n{text}",
        out.status
    );
    for line in report.lines().filter(|l| !l.trim().is_empty()) {
        let (name, problem) = line.split_once(' ').unwrap();
        let listed = lint(name).unwrap_or_default();
        let expected = match problem {
            "metric names should not contain abbreviated units" => "abbreviated unit",
            "non-histogram and non-summary metrics should not have \"_count\" suffix" => {
                "`_count` suffix"
            }
            other => panic!("{line}: unexpected lint {other:?}"),
        };
        assert!(listed.contains(expected), "{line}: not a listed name");
    }

    // Every sample is a registry metric's translated name (or target_info),
    // and the snapshot's metrics are all there.
    let known: BTreeSet<String> = semconv::ALL.iter().map(|m| prom_name(m)).collect();
    let names = sample_names(&text);
    for n in &names {
        assert!(n == "target_info" || known.contains(n), "{n}");
    }
    for compat in ["system_cpu_time_seconds_total", "system_memory_usage_bytes"] {
        assert!(names.contains(compat), "{compat} (compat on)");
    }
    // A metric may come or go between cycles: compare the snapshot with
    // the /metrics answers just before and after it, once those agree.
    let start = Instant::now();
    let (snap, names): (serde_json::Value, _) = loop {
        let before = sample_names(&get(&url, &auth).text().unwrap());
        let snap = get(&format!("{base}/v1/snapshot"), &auth).json().unwrap();
        if sample_names(&get(&url, &auth).text().unwrap()) == before {
            break (snap, before);
        }
        assert!(start.elapsed() < LIMIT, "metric set never stable");
    };
    for m in snap["metrics"].as_array().unwrap() {
        let name = m["name"].as_str().unwrap();
        let metric = semconv::ALL.iter().find(|r| r.name == name).unwrap();
        assert!(names.contains(&prom_name(metric)), "{name} missing");
    }
    // The resource, in target_info only.
    let target = target_info(&text);
    for (key, label) in [
        ("host.name", "host_name"),
        ("service.instance.id", "service_instance_id"),
        ("service.name", "service_name"),
    ] {
        let v = snap["resource"][key].as_str().unwrap();
        assert!(target.contains(&format!("{label}=\"{v}\"")), "{target}");
    }
    assert_eq!(
        text.matches("host_name=\"").count(),
        1,
        "only on target_info"
    );

    // OpenMetrics when asked for.
    let r = get(
        &url,
        &[
            auth[0],
            ("Accept", "application/openmetrics-text;version=1.0.0"),
        ],
    );
    assert_eq!(
        content_type(&r),
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let om = r.text().unwrap();
    assert!(om.ends_with("\n# EOF\n"));
    assert!(
        om.lines()
            .any(|l| l == "# TYPE system_cpu_time_seconds counter"),
        "{om}"
    );
    assert!(
        om.lines()
            .any(|l| l == "# UNIT system_cpu_time_seconds seconds"),
        "{om}"
    );
    assert!(om.lines().any(|l| l == "# TYPE target info"));
}
