//! The deployment artefacts agree with the code: dashboards and alert rules
//! name only registry metrics, the collector configs only contrib
//! components, the Kubernetes manifests mount and configure what the agent
//! reads, and the host service files parse. The external linters
//! (kubernetes-validate, promtool, hadolint, systemd-analyze, the buildah
//! image) run in scripts/validate-deploy.sh.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value as Json;
use serde_norway::Value as Yaml;
use unamentis_agent::semconv::{self, Instrument};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn yaml_docs(text: &str) -> Vec<Yaml> {
    serde_norway::Deserializer::from_str(text)
        .map(|d| Yaml::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

fn yaml_file(rel: &str) -> Yaml {
    let mut docs = yaml_docs(&read(rel));
    assert_eq!(docs.len(), 1, "{rel}: one document");
    docs.remove(0)
}

fn files_in(rel: &str, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join(rel))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    v.sort();
    v
}

fn registry(name: &str) -> &'static semconv::Metric {
    semconv::ALL
        .iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("{name} is not in semconv/registry.yaml"))
}

/// Metrics the dashboard shows before the agent emits them: their families
/// are being added and they are not in semconv/registry.yaml yet. Each
/// entry is what the family will register: instrument and attribute keys
/// (for `system.*`, the Collector hostmetrics receiver's metadata.yaml).
/// The dashboard test holds them to the registry metrics' checks, and
/// fails once one of them is in the registry: then take it out here.
/// Empty since the disk, network and pressure families registered theirs.
const PENDING: &[(&str, Instrument, &[&str])] = &[];

/// Resource attributes the agent always sets (src/telemetry.rs): a panel may
/// filter or group on them whatever its metric.
const RESOURCE_KEYS: &[&str] = &["host.name"];

/// A dashboard metric's instrument and attribute keys: from the registry,
/// else from `PENDING`.
fn dashboard_metric(name: &str) -> (Instrument, &'static [&'static str]) {
    if let Some(m) = semconv::ALL.iter().find(|m| m.name == name) {
        return (m.instrument, m.attributes);
    }
    PENDING
        .iter()
        .find(|p| p.0 == name)
        .map(|p| (p.1, p.2))
        .unwrap_or_else(|| panic!("{name} is not in semconv/registry.yaml (nor PENDING)"))
}

/// Every `aggregateAttribute` of SigNoz builder queries in `v`: (metric, type,
/// time aggregation).
fn builder_metrics(v: &Json, out: &mut Vec<(String, String, String)>) {
    match v {
        Json::Object(o) => {
            if let Some(a) = o.get("aggregateAttribute") {
                out.push((
                    a["key"].as_str().unwrap_or_default().to_owned(),
                    a["type"].as_str().unwrap_or_default().to_owned(),
                    o["timeAggregation"].as_str().unwrap_or_default().to_owned(),
                ));
            }
            o.values().for_each(|v| builder_metrics(v, out));
        }
        Json::Array(a) => a.iter().for_each(|v| builder_metrics(v, out)),
        _ => {}
    }
}

/// A builder query's metric exists, with the type SigNoz stores for its
/// instrument, and counters are read as rates or increases.
fn check_builder_query(file: &str, (name, kind, time_agg): &(String, String, String)) {
    let (instrument, _) = dashboard_metric(name);
    let want = match instrument {
        Instrument::Gauge => "Gauge",
        Instrument::Counter | Instrument::UpDownCounter => "Sum",
    };
    assert_eq!(kind, want, "{file}: {name} is a {instrument:?}");
    if instrument == Instrument::Counter {
        assert!(
            matches!(time_agg.as_str(), "rate" | "increase"),
            "{file}: cumulative counter {name} read with {time_agg}"
        );
    }
}

fn json_file(path: &Path) -> Json {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn dashboard_uses_registry_metrics_and_has_every_panel() {
    let path = root().join("otel-collector/signoz/unamentis-dashboard.json");
    let dash = json_file(&path);
    let mut used = Vec::new();
    builder_metrics(&dash, &mut used);
    for q in &used {
        check_builder_query("dashboard", q);
    }
    let names: BTreeSet<&str> = used.iter().map(|q| q.0.as_str()).collect();
    // PENDING cannot go stale: a name that reached the registry, or that no
    // panel uses any more, comes out of it.
    for (name, _, _) in PENDING {
        assert!(
            !semconv::ALL.iter().any(|m| m.name == *name),
            "{name} is in semconv/registry.yaml now: take it out of PENDING"
        );
        assert!(names.contains(name), "PENDING {name}: no panel uses it");
    }
    // The panels the product asks for, by the metrics they need.
    for needed in [
        &semconv::POWER_PACKAGE_WATTS,
        &semconv::POWER_CPU_WATTS,
        &semconv::POWER_GPU_WATTS,
        &semconv::IDLE_STATE,
        &semconv::SERVICE_CPU_PERCENT,
        &semconv::SERVICE_MEMORY_MB,
        &semconv::THERMAL_TEMPERATURE,
        &semconv::THERMAL_PRESSURE,
        &semconv::GPU_VRAM_USED_MB,
        &semconv::MODEL_VRAM_MB,
        &semconv::MODEL_LOADED,
        &semconv::IDLE_DURATION_SECONDS,
        &semconv::IDLE_ENERGY_JOULES,
        &semconv::SERVICE_IDLE_CPU_SECONDS,
        &semconv::SERVICE_POWER_WATTS,
        &semconv::SERVICE_IDLE_ENERGY_JOULES,
    ] {
        assert!(
            names.contains(needed.name),
            "dashboard lacks {}",
            needed.name
        );
    }
    // Every widget has a place in the layout and vice versa.
    let widgets: BTreeSet<&str> = dash["widgets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["id"].as_str().unwrap())
        .collect();
    let layout: BTreeSet<&str> = dash["layout"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["i"].as_str().unwrap())
        .collect();
    assert_eq!(widgets, layout);
    assert!(widgets.len() >= 5);

    // A metric with a domain attribute is never averaged across domains:
    // each service's cpu and gpu watts are separate series.
    for w in dash["widgets"].as_array().unwrap() {
        for q in w["query"]["builder"]["queryData"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let name = q["aggregateAttribute"]["key"].as_str().unwrap_or("");
            let (_, attributes) = dashboard_metric(name);
            // Every key a query groups or filters on is on its points or
            // on the resource.
            let keys = q["groupBy"]
                .as_array()
                .unwrap()
                .iter()
                .map(|g| &g["key"])
                .chain(
                    q["filters"]["items"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|f| &f["key"]["key"]),
                );
            for k in keys {
                let k = k.as_str().unwrap();
                assert!(
                    attributes.contains(&k) || RESOURCE_KEYS.contains(&k),
                    "{}: {name} has no attribute {k}",
                    w["title"]
                );
            }
            if !attributes.contains(&"domain") {
                continue;
            }
            let grouped = q["groupBy"]
                .as_array()
                .unwrap()
                .iter()
                .any(|g| g["key"] == "domain");
            let filtered = q["filters"]["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["key"]["key"] == "domain");
            assert!(
                grouped || filtered,
                "{}: {name} mixes its domains",
                w["title"]
            );
        }
    }
    let titles: Vec<&str> = dash["widgets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["title"].as_str().unwrap())
        .collect();
    assert!(
        titles.contains(&"GPU watts held by idle services"),
        "{titles:?}"
    );
}

/// `unamentis_server_x_y`-style names in PromQL.
fn promql_metrics(expr: &str) -> Vec<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|t| t.starts_with("unamentis_server_"))
        .map(str::to_owned)
        .collect()
}

/// The name a registry metric has in Prometheus, by every route.
fn prom_name(m: &semconv::Metric) -> String {
    unamentis_agent::prometheus::metric_name(m.name, m.unit, m.instrument).unwrap()
}

#[derive(Debug)]
struct Rule {
    alert: String,
    expr: String,
    severity: String,
}

fn prometheus_rules() -> Vec<Rule> {
    let doc = yaml_file("otel-collector/prometheus/unamentis-alerts.rules.yml");
    let mut out = Vec::new();
    for g in doc["groups"].as_sequence().unwrap() {
        for r in g["rules"].as_sequence().unwrap() {
            out.push(Rule {
                alert: r["alert"].as_str().unwrap().to_owned(),
                expr: r["expr"].as_str().unwrap().to_owned(),
                severity: r["labels"]["severity"].as_str().unwrap().to_owned(),
            });
        }
    }
    out
}

#[test]
fn prometheus_rules_use_registry_metrics_and_the_plan_thresholds() {
    let by_prom: BTreeMap<String, &semconv::Metric> =
        semconv::ALL.iter().map(|m| (prom_name(m), *m)).collect();
    let rules = prometheus_rules();
    for r in &rules {
        let names = promql_metrics(&r.expr);
        assert!(!names.is_empty(), "{}: no metric", r.alert);
        for n in names {
            let m = by_prom
                .get(&n)
                .unwrap_or_else(|| panic!("{}: {n} is not in the registry", r.alert));
            // A counter only makes sense as a rate or an increase.
            match m.instrument {
                Instrument::Gauge => {}
                Instrument::Counter => assert!(
                    r.expr.contains(&format!("rate({n}"))
                        || r.expr.contains(&format!("increase({n}")),
                    "{}: counter {n} read raw",
                    r.alert
                ),
                Instrument::UpDownCounter => panic!("{}: {n}", r.alert),
            }
        }
    }
    // The product plan's thresholds, warning then critical.
    let threshold = |alert: &str| {
        let r = rules.iter().find(|r| r.alert == alert).unwrap();
        (r.severity.clone(), r.expr.clone())
    };
    for (alert, severity, needle) in [
        (
            "UnamentisIdlePackagePowerHigh",
            "warning",
            "package_watts > 5 ",
        ),
        (
            "UnamentisIdlePackagePowerCritical",
            "critical",
            "package_watts > 10 ",
        ),
        ("UnamentisIdleServiceCpuHigh", "warning", "> 5 "),
        ("UnamentisIdleServiceCpuCritical", "critical", "> 20 "),
        ("UnamentisServiceMemoryGrowth", "warning", "> 100"),
        ("UnamentisServiceMemoryGrowthCritical", "critical", "> 500"),
        ("UnamentisThermalPressureFair", "warning", "== 1"),
        ("UnamentisThermalPressureSerious", "critical", "> 1"),
        ("UnamentisServiceIdleGpuPower", "warning", "> 20"),
    ] {
        let (sev, expr) = threshold(alert);
        assert_eq!(sev, severity, "{alert}");
        assert!(expr.contains(needle), "{alert}: {expr}");
        if alert.starts_with("UnamentisIdle") {
            assert!(
                expr.ends_with("and on(job, instance) unamentis_server_idle_state_ratio == 1"),
                "{alert} only while idle: {expr}"
            );
        }
    }
}

#[test]
fn signoz_alerts_match_the_prometheus_rules() {
    let rules = prometheus_rules();
    let files = files_in("otel-collector/signoz/alerts", "json");
    assert_eq!(files.len(), rules.len(), "one SigNoz alert per rule");
    for f in files {
        let a = json_file(&f);
        let name = a["alert"].as_str().unwrap();
        let rule = rules
            .iter()
            .find(|r| r.alert == name)
            .unwrap_or_else(|| panic!("{}: no Prometheus rule {name}", f.display()));
        assert_eq!(
            a["labels"]["severity"].as_str(),
            Some(rule.severity.as_str())
        );
        // The v5 rule's one threshold (tests/signoz.rs checks the rest
        // against SigNoz's types).
        let th = &a["condition"]["thresholds"]["spec"][0];
        let op = match th["op"].as_str().unwrap() {
            "above" => ">",
            "equal" => "==",
            other => panic!("{name}: op {other}"),
        };
        let target = th["target"].as_f64().unwrap();
        let needle = format!("{op} {target}");
        assert!(
            rule.expr.contains(&needle),
            "{name}: SigNoz {needle} vs {}",
            rule.expr
        );
        let queries = a["condition"]["compositeQuery"]["queries"]
            .as_array()
            .unwrap();
        let selected = a["condition"]["selectedQueryName"].as_str().unwrap();
        assert!(
            queries.iter().any(|q| q["spec"]["name"] == selected),
            "{name}: selected query {selected} missing"
        );
        for agg in queries
            .iter()
            .flat_map(|q| q["spec"]["aggregations"].as_array().into_iter().flatten())
        {
            registry(agg["metricName"].as_str().unwrap());
        }
    }
}

/// kind -> types the contrib distribution ships (contrib-components.txt).
fn contrib_components() -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in read("otel-collector/contrib-components.txt").lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut f = line.split_whitespace();
        let (kind, ty) = (f.next().unwrap(), f.next().unwrap());
        assert!(f.next().is_some(), "{line}: no go module");
        out.entry(kind.to_owned())
            .or_default()
            .insert(ty.to_owned());
    }
    out
}

fn keys(v: &Yaml) -> Vec<String> {
    v.as_mapping()
        .map(|m| m.keys().map(|k| k.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

/// Checks one collector config; returns the exporter ids.
fn check_collector(label: &str, cfg: &Yaml) -> Vec<String> {
    let contrib = contrib_components();
    for (section, kind) in [
        ("receivers", "receiver"),
        ("processors", "processor"),
        ("exporters", "exporter"),
        ("extensions", "extension"),
    ] {
        for id in keys(&cfg[section]) {
            let ty = id.split('/').next().unwrap();
            assert!(
                contrib[kind].contains(ty),
                "{label}: {kind} {ty} is not in otelcol-contrib"
            );
        }
    }
    let service = &cfg["service"];
    for ext in service["extensions"].as_sequence().into_iter().flatten() {
        assert!(
            keys(&cfg["extensions"]).contains(&ext.as_str().unwrap().to_owned()),
            "{label}: extension {ext:?} not defined"
        );
    }
    let pipelines = service["pipelines"].as_mapping().unwrap();
    assert!(!pipelines.is_empty());
    for (name, p) in pipelines {
        for (field, section) in [
            ("receivers", "receivers"),
            ("processors", "processors"),
            ("exporters", "exporters"),
        ] {
            for id in p[field].as_sequence().into_iter().flatten() {
                let id = id.as_str().unwrap().to_owned();
                assert!(
                    keys(&cfg[section]).contains(&id),
                    "{label}: pipeline {name:?} uses undefined {id}"
                );
            }
        }
        let procs: Vec<&str> = p["processors"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(procs.first(), Some(&"memory_limiter"), "{label}: first");
        assert_eq!(procs.last(), Some(&"batch"), "{label}: batch last");
    }
    let grpc = cfg["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
        .as_str()
        .unwrap();
    let http = cfg["receivers"]["otlp"]["protocols"]["http"]["endpoint"]
        .as_str()
        .unwrap();
    assert!(
        grpc.ends_with(":4317") && http.ends_with(":4318"),
        "{label}"
    );
    keys(&cfg["exporters"])
}

#[test]
fn collector_configs_name_only_contrib_components() {
    let main = yaml_file("otel-collector/config.yaml");
    let exporters = check_collector("config.yaml", &main);
    assert_eq!(exporters, vec!["otlp/signoz"]);
    let key = &main["exporters"]["otlp/signoz"]["headers"]["signoz-ingestion-key"];
    assert_eq!(key.as_str(), Some("${env:SIGNOZ_INGESTION_KEY}"));

    let debug = yaml_file("otel-collector/config.debug.yaml");
    assert_eq!(check_collector("config.debug.yaml", &debug), vec!["debug"]);

    // The Prometheus route keeps the exporter's defaults: the translated
    // names the rules use (suffixes on), resource attributes on
    // target_info rather than on every series.
    let prom = yaml_file("otel-collector/config.prometheus.yaml");
    assert_eq!(
        check_collector("config.prometheus.yaml", &prom),
        vec!["prometheus"]
    );
    let exporter = &prom["exporters"]["prometheus"];
    assert_eq!(keys(exporter), vec!["endpoint"], "defaults only");

    let cm = yaml_file("otel-collector/k8s/collector-configmap.yaml");
    let k8s: Yaml = serde_norway::from_str(cm["data"]["config.yaml"].as_str().unwrap()).unwrap();
    check_collector("k8s collector-configmap", &k8s);
    let procs: Vec<&str> = k8s["service"]["pipelines"]["metrics"]["processors"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    // A monitored pod's uid leaves the points for a resource of its own
    // before k8sattributes, which reads resources only, names the pod.
    let at = |name: &str| procs.iter().position(|p| *p == name);
    assert!(
        at("groupbyattrs").unwrap() < at("k8sattributes").unwrap(),
        "{procs:?}"
    );
    let keys: Vec<&str> = k8s["processors"]["groupbyattrs"]["keys"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    assert_eq!(keys, ["k8s.pod.uid"]);
    let assoc = &k8s["processors"]["k8sattributes"]["pod_association"][0]["sources"][0];
    assert_eq!(assoc["from"].as_str(), Some("resource_attribute"));
    assert_eq!(assoc["name"].as_str(), Some("k8s.pod.uid"));
    // The agent's resource carries its pod's uid and nothing k8sattributes
    // would then leave on each regrouped copy.
    let docs = k8s_docs();
    let ds = find(&docs, "DaemonSet", "unamentis-agent");
    let env = env_of(&ds["spec"]["template"]["spec"]["containers"][0]);
    let attrs = env["OTEL_RESOURCE_ATTRIBUTES"]["value"].as_str().unwrap();
    assert_eq!(attrs, "k8s.pod.uid=$(POD_UID)");
}

fn k8s_docs() -> Vec<(String, Yaml)> {
    let k = yaml_file("otel-collector/k8s/kustomization.yaml");
    let listed: Vec<String> = k["resources"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    // Every manifest in the directory is applied, except the opt-in patch
    // and the example Secrets (a user's own key and token).
    let present: BTreeSet<String> = files_in("otel-collector/k8s", "yaml")
        .iter()
        .map(|p| p.file_name().unwrap().to_str().unwrap().to_owned())
        .filter(|n| {
            !matches!(
                n.as_str(),
                "kustomization.yaml" | "agent-root-access.patch.yaml"
            ) && !n.ends_with(".example.yaml")
        })
        .collect();
    assert_eq!(listed.iter().cloned().collect::<BTreeSet<_>>(), present);
    listed
        .iter()
        .flat_map(|f| {
            yaml_docs(&read(&format!("otel-collector/k8s/{f}")))
                .into_iter()
                .map(move |d| (f.clone(), d))
        })
        .collect()
}

fn find<'a>(docs: &'a [(String, Yaml)], kind: &str, name: &str) -> &'a Yaml {
    &docs
        .iter()
        .find(|(_, d)| {
            d["kind"].as_str() == Some(kind) && d["metadata"]["name"].as_str() == Some(name)
        })
        .unwrap_or_else(|| panic!("no {kind} {name}"))
        .1
}

fn env_of(container: &Yaml) -> BTreeMap<String, Yaml> {
    container["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap().to_owned(), e.clone()))
        .collect()
}

#[test]
fn agent_daemonset_reads_the_host_and_its_configmap_loads() {
    let docs = k8s_docs();
    let ds = find(&docs, "DaemonSet", "unamentis-agent");
    let spec = &ds["spec"]["template"]["spec"];
    assert_eq!(spec["hostPID"].as_bool(), Some(true));
    assert_eq!(spec["hostNetwork"].as_bool(), Some(true));
    assert_eq!(
        spec["securityContext"]["runAsNonRoot"].as_bool(),
        Some(true)
    );
    let c = &spec["containers"][0];
    assert_eq!(
        c["securityContext"]["allowPrivilegeEscalation"].as_bool(),
        Some(false)
    );
    assert!(c["securityContext"]["privileged"].is_null());

    let env = env_of(c);
    assert_eq!(
        env["K8S_NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"].as_str(),
        Some("spec.nodeName")
    );
    assert_eq!(
        env["HOST_IP"]["valueFrom"]["fieldRef"]["fieldPath"].as_str(),
        Some("status.hostIP")
    );
    assert_eq!(
        env["OTEL_EXPORTER_OTLP_ENDPOINT"]["value"].as_str(),
        Some("http://$(HOST_IP):4317")
    );
    let config_path = env["UNAMENTIS_AGENT_CONFIG"]["value"].as_str().unwrap();

    // Mounts: the host read-only where the TOML points host.*.
    let mounts: BTreeMap<String, &Yaml> = c["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|m| (m["mountPath"].as_str().unwrap().to_owned(), m))
        .collect();
    let volumes: BTreeMap<String, &Yaml> = spec["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| (v["name"].as_str().unwrap().to_owned(), v))
        .collect();
    let host_path_at = |mount: &str| {
        let m = mounts
            .get(mount)
            .unwrap_or_else(|| panic!("no mount at {mount}"));
        assert_eq!(m["readOnly"].as_bool(), Some(true), "{mount} read-only");
        let v = volumes[m["name"].as_str().unwrap()];
        v["hostPath"]["path"].as_str().unwrap().to_owned()
    };

    // The ConfigMap's TOML is a valid agent configuration.
    let cm = find(&docs, "ConfigMap", "unamentis-agent");
    let dir = Path::new(config_path).parent().unwrap().to_str().unwrap();
    let file = Path::new(config_path)
        .file_name()
        .unwrap()
        .to_str()
        .unwrap();
    assert!(mounts.contains_key(dir), "config mounted at {dir}");
    let toml_text = cm["data"][file].as_str().unwrap();
    let tmp = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(tmp.path(), toml_text).unwrap();
    // As the pod starts: the token from the Secret, and without it (the
    // Secret missing or empty) the agent refuses to run open.
    let token = env["UNAMENTIS_AGENT_SERVER_TOKEN"]["valueFrom"]["secretKeyRef"].clone();
    assert_eq!(token["name"].as_str(), Some("unamentis-agent-server"));
    assert_eq!(token["key"].as_str(), Some("token"));
    assert_ne!(
        token["optional"].as_bool(),
        Some(true),
        "a missing Secret must stop the pod"
    );
    let with_token = |k: &str| (k == "UNAMENTIS_AGENT_SERVER_TOKEN").then(|| "t0ken".to_owned());
    let cfg = unamentis_agent::config::load(Some(tmp.path()), &with_token, &Vec::new())
        .unwrap()
        .config;
    assert!(!cfg.server.allow_unauthenticated);
    assert_eq!(cfg.server.token.as_deref(), Some("t0ken"));
    for missing in [None, Some(String::new())] {
        let env = |k: &str| (k == "UNAMENTIS_AGENT_SERVER_TOKEN").then(|| missing.clone())?;
        let err = unamentis_agent::config::load(Some(tmp.path()), &env, &Vec::new())
            .expect_err("a node-wide listen without a token must not load")
            .to_string();
        assert!(err.contains("server.listen"), "{err}");
    }
    assert!(cfg.compat.hostmetrics && cfg.compat.hw, "compat on in k8s");
    assert_eq!(host_path_at(cfg.host.proc.to_str().unwrap()), "/proc");
    assert_eq!(host_path_at(cfg.host.sys.to_str().unwrap()), "/sys");
    assert_eq!(host_path_at(cfg.host.root.to_str().unwrap()), "/");

    // Probes reach server.listen on the node's addresses.
    let listen: std::net::SocketAddr = cfg.server.listen.parse().unwrap();
    assert!(listen.ip().is_unspecified(), "kubelet must reach {listen}");
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        assert_eq!(c[probe]["httpGet"]["path"].as_str(), Some(path));
        assert_eq!(
            c[probe]["httpGet"]["port"].as_u64(),
            Some(u64::from(listen.port()))
        );
    }
    for r in ["requests", "limits"] {
        assert!(c["resources"][r]["memory"].is_string(), "{r}");
        assert!(c["resources"][r]["cpu"].is_string(), "{r}");
    }

    // The collector on the same node listens on the port the agent targets.
    let col = find(&docs, "DaemonSet", "otel-collector");
    let ports = &col["spec"]["template"]["spec"]["containers"][0]["ports"];
    assert!(
        ports
            .as_sequence()
            .unwrap()
            .iter()
            .any(|p| p["hostPort"].as_u64() == Some(4317))
    );
}

/// The example Secret, the DaemonSet's reference and the README's one-line
/// `create secret` agree on the name and key.
#[test]
fn server_token_secret_is_named_alike_everywhere() {
    let example = yaml_file("otel-collector/k8s/agent-server-secret.example.yaml");
    assert_eq!(
        example["metadata"]["name"].as_str(),
        Some("unamentis-agent-server")
    );
    assert_eq!(example["metadata"]["namespace"].as_str(), Some("unamentis"));
    assert!(example["stringData"]["token"].is_string());
    // A service pushing activity sends the same Secret's token to the
    // agent's port on its node.
    let client = yaml_file("otel-collector/k8s/activity-client.example.yaml");
    let env = env_of(&client["spec"]["template"]["spec"]["containers"][0]);
    let token = &env["UNAMENTIS_AGENT_SERVER_TOKEN"]["valueFrom"]["secretKeyRef"];
    assert_eq!(token["name"].as_str(), Some("unamentis-agent-server"));
    assert_eq!(token["key"].as_str(), Some("token"));
    assert_eq!(
        env["UNAMENTIS_AGENT_URL"]["value"].as_str(),
        Some("http://$(HOST_IP):8767")
    );
    let readme = read("README.md");
    assert!(
        readme.lines().any(
            |l| l.contains("create secret generic unamentis-agent-server")
                && l.contains("--from-literal=token=")
        ),
        "README creates the token Secret in one line"
    );
}

/// No shipped configuration opens the local server to the network
/// without a token: not the manifests, the image, the units, the examples.
#[test]
fn nothing_shipped_allows_an_unauthenticated_server() {
    let mut files = vec![root().join("Dockerfile")];
    for dir in ["otel-collector", "deploy", "examples"] {
        let mut stack = vec![root().join(dir)];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    files.push(p);
                }
            }
        }
    }
    assert!(files.len() > 20, "walked {} files", files.len());
    for f in files {
        let Ok(text) = std::fs::read_to_string(&f) else {
            continue;
        };
        for line in text.lines() {
            let squeezed: String = line.chars().filter(|c| !c.is_whitespace()).collect();
            assert!(
                !squeezed
                    .to_lowercase()
                    .contains("allow_unauthenticated=true")
                    && !line.contains("ALLOW_UNAUTHENTICATED"),
                "{}: {line}",
                f.display()
            );
        }
    }
}

#[test]
fn root_access_patch_adds_only_what_rapl_and_fd_links_need() {
    let p = yaml_file("otel-collector/k8s/agent-root-access.patch.yaml");
    let spec = &p["spec"]["template"]["spec"];
    assert_eq!(spec["securityContext"]["runAsUser"].as_u64(), Some(0));
    let caps = &spec["containers"][0]["securityContext"]["capabilities"];
    let add: BTreeSet<&str> = caps["add"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(add, BTreeSet::from(["SYS_PTRACE", "DAC_READ_SEARCH"]));
    assert_eq!(caps["drop"][0].as_str(), Some("ALL"));
    assert!(spec["containers"][0]["securityContext"]["privileged"].is_null());
}

#[test]
fn systemd_unit_is_hardened() {
    let text = read("deploy/systemd/unamentis-agent.service");
    let mut kv: BTreeMap<String, String> = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with('[') || line.is_empty() {
            continue;
        }
        let (k, v) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("bad line {line:?}"));
        kv.insert(k.to_owned(), v.to_owned());
    }
    assert!(kv["ExecStart"].ends_with("unamentis-agent run"));
    for (k, v) in [
        ("ProtectSystem", "strict"),
        ("NoNewPrivileges", "yes"),
        ("DynamicUser", "yes"),
        ("ProcSubset", "all"),
        (
            "CapabilityBoundingSet",
            "CAP_DAC_READ_SEARCH CAP_SYS_PTRACE",
        ),
        ("AmbientCapabilities", "CAP_DAC_READ_SEARCH CAP_SYS_PTRACE"),
    ] {
        assert_eq!(kv.get(k).map(String::as_str), Some(v), "{k}");
    }
    assert_ne!(kv.get("ProtectProc").map(String::as_str), Some("invisible"));
}

#[test]
fn launchd_plist_parses_as_a_root_daemon() {
    let path = root().join("deploy/launchd/com.unamentis.agent.plist");
    let v = plist::Value::from_file(&path).unwrap();
    let d = v.as_dictionary().unwrap();
    assert_eq!(
        d.get("Label").and_then(|l| l.as_string()),
        Some("com.unamentis.agent")
    );
    let args: Vec<&str> = d
        .get("ProgramArguments")
        .and_then(|a| a.as_array())
        .unwrap()
        .iter()
        .map(|a| a.as_string().unwrap())
        .collect();
    assert_eq!(args, ["/usr/local/bin/unamentis-agent", "run"]);
    assert_eq!(d.get("RunAtLoad").and_then(|b| b.as_boolean()), Some(true));
    // A LaunchDaemon without UserName runs as root: powermetrics needs it.
    assert!(d.get("UserName").is_none());
    let env = d
        .get("EnvironmentVariables")
        .and_then(|e| e.as_dictionary())
        .unwrap();
    assert!(env.get("UNAMENTIS_AGENT_CONFIG").is_some());
}

#[test]
fn dockerfile_entrypoint_user_and_pinned_bases() {
    let text = read("Dockerfile");
    assert!(text.contains(r#"ENTRYPOINT ["unamentis-agent", "run"]"#));
    assert!(text.contains("USER 65532:65532"));
    for line in text
        .lines()
        .filter(|l| l.starts_with("ARG ") && l.contains("_IMAGE="))
    {
        let image = line.split_once('=').unwrap().1;
        let tag = image.rsplit_once(':').map(|(_, t)| t).unwrap_or("");
        assert!(!tag.is_empty() && tag != "latest", "{line}: pin a tag");
    }
    for label in ["title", "description", "version", "licenses"] {
        assert!(text.contains(&format!("org.opencontainers.image.{label}=")));
    }
}

#[test]
fn signoz_example_config_loads_with_compat_on() {
    let cfg = unamentis_agent::config::load(
        Some(&root().join("examples/signoz-cloud.toml")),
        &|_| None,
        &Vec::new(),
    )
    .unwrap()
    .config;
    assert!(cfg.compat.hostmetrics && cfg.compat.hw);
    assert!(cfg.export.effective_endpoint().contains("signoz.cloud"));
}
