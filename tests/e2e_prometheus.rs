//! A real Prometheus (Debian's) scrapes the real agent's `/metrics` every
//! second, with the token, and evaluates the shipped alert rules
//! (`otel-collector/prometheus/unamentis-alerts.rules.yml`, loaded as they
//! are: a rule's `for` only delays firing, and pending is reported at once).
//!
//! The host is a fixture sysfs (intel-laptop: RAPL, thermal zones) whose
//! package `energy_uj` the test advances at 7.5 W in real time, with the
//! host's real /proc and a real `sleep` process as the one watched service,
//! and nothing active (`activity.idle_after` shortened to 1 s). Prometheus's
//! own API must then show the idle package power warning pending or firing
//! within a minute and the critical one never, and every selector of every
//! rule must match a series.
#![cfg(target_os = "linux")]

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::agent::{Agent, command};
use support::fake_nvml;
use support::fixtures::{host_copy, set};
use support::prom::tool;
use support::tcp::free_port;

/// Guards against hangs only.
const LIMIT: Duration = Duration::from_secs(30);
/// The memory growth series needs a minute of samples (the agent's
/// shortest slope); this bounds the whole wait for every selector.
const SELECTORS_LIMIT: Duration = Duration::from_secs(120);
const PKG: &str = "sys/class/powercap/intel-rapl:0/energy_uj";
const PKG0: u64 = 65_997_277_274;
const WATTS: f64 = 7.5;
const TOKEN: &str = "scrape-secret-2";
const SLEEP_ARG: &str = "987654";

/// Kills and reaps a child at the end of the test, pass or fail.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(LIMIT)
        .build()
        .unwrap()
}

/// `data` of a Prometheus API answer.
fn api(base: &str, path: &str, query: &[(&str, &str)]) -> Value {
    let mut url = format!("{base}{path}");
    for (i, (k, v)) in query.iter().enumerate() {
        let v = percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC);
        url.push_str(&format!("{}{k}={v}", if i == 0 { '?' } else { '&' }));
    }
    let v: Value = client().get(url).send().unwrap().json().unwrap();
    assert_eq!(v["status"], "success", "{path} {query:?}: {v}");
    v["data"].clone()
}

/// The metric selectors of a PromQL expression: each `unamentis_server_…`
/// name with its `{…}` matchers.
fn selectors(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("unamentis_server_") {
        let s = &rest[i..];
        let end = s
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(s.len());
        let end = if s[end..].starts_with('{') {
            end + s[end..].find('}').unwrap() + 1
        } else {
            end
        };
        out.push(s[..end].to_owned());
        rest = &s[end..];
    }
    out
}

fn rule_selectors(rules: &Path) -> Vec<(String, String)> {
    let doc: serde_norway::Value =
        serde_norway::from_str(&std::fs::read_to_string(rules).unwrap()).unwrap();
    let mut out = Vec::new();
    for g in doc["groups"].as_sequence().unwrap() {
        for r in g["rules"].as_sequence().unwrap() {
            let alert = r["alert"].as_str().unwrap();
            let sels = selectors(r["expr"].as_str().unwrap());
            assert!(!sels.is_empty(), "{alert}: no selector");
            out.extend(sels.into_iter().map(|s| (alert.to_owned(), s)));
        }
    }
    out
}

/// Alerts named `name` in Prometheus's `/api/v1/alerts`, with their states.
fn alert_states(alerts: &Value, name: &str) -> Vec<String> {
    alerts["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["labels"]["alertname"] == name)
        .map(|a| a["state"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn prometheus_scrapes_the_agent_and_the_idle_power_warning_fires() {
    let Some(prometheus) = tool("prometheus") else {
        return;
    };
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let rules = repo.join("otel-collector/prometheus/unamentis-alerts.rules.yml");
    let host = host_copy("intel-laptop");
    let root = host.path().to_path_buf();
    let dir = tempfile::tempdir().unwrap();

    // The one watched service: a real process, idle.
    let sleeper = Reaped(
        Command::new("sleep")
            .arg(SLEEP_ARG)
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // It holds 1 GiB on a (fake NVML) 40 W GPU, so its idle GPU energy
    // grows and the GPU rule's selector has a series.
    let lib = fake_nvml::build(dir.path(), &[]);
    let scenario = dir.path().join("nvml-scenario");
    std::fs::write(
        &scenario,
        format!(
            "power 0 40000\nnoenergy 0\nproc 0 {} 1024 0\n",
            sleeper.0.id()
        ),
    )
    .unwrap();

    // The package draws 7.5 W: energy_uj follows the wall clock.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, root) = (stop.clone(), root.clone());
        std::thread::spawn(move || {
            let start = Instant::now();
            while !stop.load(Ordering::SeqCst) {
                let uj = PKG0 + (WATTS * 1e6 * start.elapsed().as_secs_f64()) as u64;
                set(&root, PKG, uj);
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    struct Stop(Arc<AtomicBool>);
    impl Drop for Stop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let _stop = Stop(stop.clone());

    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "interval = \"1s\"\ndefault_services = false\n\
             [server]\nlisten = \"127.0.0.1:0\"\ntoken = \"{TOKEN}\"\n\
             [export]\nenabled = false\n\
             [gpu]\nnvml_library = {lib:?}\nnvidia_smi = \"/nonexistent/nvidia-smi\"\n\
             [ollama]\nenabled = false\n\
             [activity]\nidle_after = \"1s\"\n\
             [[service]]\nname = \"sleeper\"\nprocess = \"sleep\"\ncmdline = \"^sleep {SLEEP_ARG}$\"\n"
        ),
    )
    .unwrap();
    let sys = root.join("sys");
    let mut cmd = command();
    cmd.args([
        "--config",
        config.to_str().unwrap(),
        "--host-sys",
        sys.to_str().unwrap(),
        "run",
    ])
    .env("FAKE_NVML_SCENARIO", &scenario);
    let agent = Agent::start(cmd);
    let target = agent.server_addr(LIMIT);

    let port = free_port();
    let prom_yml = dir.path().join("prometheus.yml");
    std::fs::write(
        &prom_yml,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {rules}\n\
             scrape_configs:\n\
             \x20 - job_name: unamentis\n    authorization:\n      credentials: {TOKEN}\n\
             \x20   static_configs:\n      - targets: [\"{target}\"]\n\
             \x20 - job_name: unamentis-no-token\n\
             \x20   static_configs:\n      - targets: [\"{target}\"]\n",
            rules = rules.display()
        ),
    )
    .unwrap();
    let log = dir.path().join("prometheus.log");
    let _prometheus = Reaped(
        Command::new(&prometheus)
            .arg(format!("--config.file={}", prom_yml.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    let prom_log = || std::fs::read_to_string(&log).unwrap_or_default();
    let start = Instant::now();
    while client()
        .get(format!("{base}/-/ready"))
        .send()
        .map_or(true, |r| r.status() != 200)
    {
        assert!(
            start.elapsed() < LIMIT,
            "Prometheus not ready:\n{}",
            prom_log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let mut pending: Vec<(String, String)> = rule_selectors(&rules);
    let mut idle_since: Option<Instant> = None;
    let mut warned = false;
    let start = Instant::now();
    while !(warned && pending.is_empty()) {
        assert!(
            start.elapsed() < SELECTORS_LIMIT,
            "warning seen: {warned}; selectors without a series: {pending:?}\nagent:\n{}\nprometheus:\n{}",
            agent.log_text(),
            prom_log()
        );
        std::thread::sleep(Duration::from_millis(500));

        let alerts = api(&base, "/api/v1/alerts", &[]);
        let critical = alert_states(&alerts, "UnamentisIdlePackagePowerCritical");
        assert!(critical.is_empty(), "critical at {WATTS} W: {alerts}");
        if idle_since.is_none() {
            let idle = api(
                &base,
                "/api/v1/query",
                &[("query", "unamentis_server_idle_state_ratio == 1")],
            );
            if !idle["result"].as_array().unwrap().is_empty() {
                idle_since = Some(Instant::now());
            }
        }
        let warning = alert_states(&alerts, "UnamentisIdlePackagePowerHigh");
        if !warned && let Some(since) = idle_since {
            if warning.iter().any(|s| s == "pending" || s == "firing") {
                eprintln!(
                    "idle power warning {warning:?} {:.1} s after Prometheus saw the agent idle",
                    since.elapsed().as_secs_f64()
                );
                warned = true;
            } else {
                assert!(
                    since.elapsed() < Duration::from_secs(60),
                    "no idle power warning a minute after idle: {alerts}"
                );
            }
        }
        pending.retain(|(_, sel)| {
            let series = api(&base, "/api/v1/series", &[("match[]", sel.as_str())]);
            series.as_array().unwrap().is_empty()
        });
    }

    eprintln!(
        "every rule selector matched a series {:.1} s after Prometheus was ready",
        start.elapsed().as_secs_f64()
    );
    // The package power Prometheus stored is the fixture's: above the
    // warning threshold, below the critical one.
    let watts = api(
        &base,
        "/api/v1/query",
        &[("query", "unamentis_server_power_package_watts")],
    );
    let w: f64 = watts["result"][0]["value"][1]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(w > 5.0 && w < 10.0, "{w} W");

    // Scraped with the token (OpenMetrics, which Prometheus asks for, parsed
    // without error), refused without it.
    let targets = api(&base, "/api/v1/targets", &[]);
    let health = |job: &str| {
        targets["activeTargets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["labels"]["job"] == job)
            .map(|t| (t["health"].clone(), t["lastError"].clone()))
            .unwrap()
    };
    let (h, err) = health("unamentis");
    assert_eq!(h, "up", "{err}");
    let (h, err) = health("unamentis-no-token");
    assert_eq!(h, "down");
    assert!(err.as_str().unwrap().contains("401"), "{err}");
    // The resource is on target_info, joined per target.
    let host = api(
        &base,
        "/api/v1/query",
        &[(
            "query",
            "unamentis_server_power_package_watts * on(job, instance) group_left(host_name) target_info",
        )],
    );
    assert!(
        host["result"][0]["metric"]["host_name"].is_string(),
        "{host}"
    );

    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();
}
