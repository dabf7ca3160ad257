//! `semconv/registry.yaml` is the single source of metric names. This test
//! renders `src/semconv.rs` and the README metric table from it and fails
//! when either drifts; `UPDATE_SEMCONV=1 cargo test --test semconv` rewrites
//! them.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;

use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Registry {
    groups: Vec<Group>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Group {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    brief: String,
    #[serde(default)]
    note: Option<String>,
    #[serde(default)]
    metric_name: Option<String>,
    #[serde(default)]
    instrument: Option<String>,
    #[serde(default)]
    unit: Option<String>,
    /// `int` or `double` (the default): the point's value type on the wire.
    #[serde(default)]
    value_type: Option<String>,
    #[serde(default)]
    stability: Option<String>,
    #[serde(default)]
    attributes: Vec<AttrEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AttrEntry {
    #[serde(default)]
    id: Option<String>,
    #[serde(default, rename = "ref")]
    reference: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    stability: Option<String>,
    #[serde(default)]
    brief: Option<String>,
    #[serde(default)]
    examples: Option<serde_norway::Value>,
    #[serde(default)]
    requirement_level: Option<String>,
    #[serde(default)]
    note: Option<String>,
}

struct Attr {
    id: String,
    brief: String,
}

struct MetricDef {
    name: String,
    instrument: String,
    unit: String,
    value_type: String,
    brief: String,
    attributes: Vec<(String, String)>,
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn load() -> (Vec<Attr>, Vec<MetricDef>) {
    let text = std::fs::read_to_string(root().join("semconv/registry.yaml")).unwrap();
    let reg: Registry =
        serde_norway::from_str(&text).expect("registry.yaml does not match the schema");
    let mut attrs = Vec::new();
    let mut metrics = Vec::new();
    for g in reg.groups {
        match g.kind.as_str() {
            "attribute_group" => {
                for a in g.attributes {
                    let id = a.id.expect("attribute without id");
                    let kind = a.kind.as_deref().unwrap_or("");
                    assert!(matches!(kind, "string" | "int"), "{id}: type {kind:?}");
                    assert!(a.examples.is_some(), "{id}: no examples");
                    attrs.push(Attr {
                        brief: a.brief.unwrap_or_else(|| panic!("{id}: no brief")),
                        id,
                    });
                }
            }
            "metric" => {
                let name = g
                    .metric_name
                    .unwrap_or_else(|| panic!("{}: no metric_name", g.id));
                assert_eq!(
                    g.id,
                    format!("metric.{name}"),
                    "group id must be metric.<metric_name>"
                );
                // system.* and hw.* are the standard names of the [compat]
                // groups (hostmetrics receiver, hw.* conventions).
                assert!(
                    ["unamentis.server.", "system.", "hw."]
                        .iter()
                        .any(|p| name.starts_with(p)),
                    "{name}: outside unamentis.server. and the compat groups"
                );
                let instrument = g.instrument.unwrap_or_default();
                assert!(
                    matches!(instrument.as_str(), "gauge" | "counter" | "updowncounter"),
                    "{name}: instrument {instrument:?}"
                );
                assert!(g.stability.is_some(), "{name}: no stability");
                let value_type = g.value_type.unwrap_or_else(|| "double".into());
                assert!(
                    matches!(value_type.as_str(), "int" | "double"),
                    "{name}: value_type {value_type:?}"
                );
                let _ = g.note;
                let attributes = g
                    .attributes
                    .into_iter()
                    .map(|a| {
                        let r = a
                            .reference
                            .unwrap_or_else(|| panic!("{name}: attribute without ref"));
                        let level = a.requirement_level.unwrap_or_default();
                        assert!(
                            matches!(level.as_str(), "required" | "recommended" | "opt_in"),
                            "{name}.{r}: requirement_level {level:?}"
                        );
                        assert!(
                            a.id.is_none()
                                && a.kind.is_none()
                                && a.stability.is_none()
                                && a.brief.is_none()
                                && a.note.is_none()
                        );
                        (r, level)
                    })
                    .collect();
                metrics.push(MetricDef {
                    name,
                    instrument,
                    unit: g.unit.unwrap_or_else(|| panic!("{}: no unit", g.id)),
                    value_type,
                    brief: g.brief,
                    attributes,
                });
            }
            other => panic!("{}: unknown group type {other:?}", g.id),
        }
    }
    (attrs, metrics)
}

fn ident(name: &str) -> String {
    name.trim_start_matches("unamentis.server.")
        .replace('.', "_")
        .to_uppercase()
}

fn render_rust(attrs: &[Attr], metrics: &[MetricDef]) -> String {
    let mut s = String::new();
    s.push_str(
        "// @generated from semconv/registry.yaml by `UPDATE_SEMCONV=1 cargo test --test semconv`.\n\
         // Do not edit: change the registry and regenerate.\n\n\
         //! Names, units and descriptions of every metric and attribute the agent\n\
         //! emits (the public catalogue).\n\n\
         /// Every instrument is observable: gauges are sampled values, counters\n\
         /// are cumulative totals that never go backwards.\n\
         #[derive(Debug, Clone, Copy, PartialEq, Eq)]\n\
         pub enum Instrument {\n    Gauge,\n    Counter,\n    /// A non-monotonic cumulative sum (a level that can go down).\n    UpDownCounter,\n}\n\n\
         /// The value type of a metric's points on the wire. Values are\n\
         /// computed as `f64`; an `Int` metric's are whole numbers, sent as\n\
         /// integers (the hostmetrics receiver's byte and count sums are).\n\
         #[derive(Debug, Clone, Copy, PartialEq, Eq)]\n\
         pub enum ValueType {\n    Double,\n    Int,\n}\n\n\
         #[derive(Debug)]\n\
         pub struct Metric {\n    pub name: &'static str,\n    pub instrument: Instrument,\n    pub unit: &'static str,\n    pub value_type: ValueType,\n    pub brief: &'static str,\n    /// Attribute keys a point of this metric may carry.\n    pub attributes: &'static [&'static str],\n}\n\n",
    );
    s.push_str("/// Attribute keys.\npub mod attr {\n");
    for a in attrs {
        writeln!(s, "    /// {}", a.brief).unwrap();
        writeln!(s, "    pub const {}: &str = {:?};", ident(&a.id), a.id).unwrap();
    }
    s.push_str("}\n");
    for m in metrics {
        let inst = match m.instrument.as_str() {
            "gauge" => "Gauge",
            "counter" => "Counter",
            _ => "UpDownCounter",
        };
        let vt = if m.value_type == "int" {
            "Int"
        } else {
            "Double"
        };
        let keys: Vec<String> = m
            .attributes
            .iter()
            .map(|(r, _)| format!("attr::{}", ident(r)))
            .collect();
        write!(
            s,
            "\npub static {}: Metric = Metric {{\n    name: {:?},\n    instrument: Instrument::{inst},\n    unit: {:?},\n    value_type: ValueType::{vt},\n    brief: {:?},\n    attributes: &[{}],\n}};\n",
            ident(&m.name),
            m.name,
            m.unit,
            m.brief,
            keys.join(", ")
        )
        .unwrap();
    }
    s.push_str(
        "\n/// Every metric of the registry, in registry order.\npub static ALL: &[&Metric] = &[\n",
    );
    for m in metrics {
        writeln!(s, "    &{},", ident(&m.name)).unwrap();
    }
    s.push_str("];\n");
    s
}

fn render_table(metrics: &[MetricDef]) -> String {
    let mut s = String::from(
        "| metric | instrument | unit | attributes | description |\n|---|---|---|---|---|\n",
    );
    for m in metrics {
        let attrs: Vec<String> = m
            .attributes
            .iter()
            .map(|(r, level)| {
                if level == "required" {
                    format!("`{r}`")
                } else {
                    format!("`{r}`?")
                }
            })
            .collect();
        writeln!(
            s,
            "| `{}` | {} | `{}` | {} | {} |",
            m.name,
            if m.value_type == "int" {
                format!("{} (int)", m.instrument)
            } else {
                m.instrument.clone()
            },
            m.unit,
            if attrs.is_empty() {
                "—".to_owned()
            } else {
                attrs.join(", ")
            },
            m.brief.replace('|', "\\|")
        )
        .unwrap();
    }
    s
}

const BEGIN: &str = "<!-- metrics:begin (generated from semconv/registry.yaml) -->\n";
const END: &str = "<!-- metrics:end -->";

/// Compares `path` with `want`, or rewrites it under UPDATE_SEMCONV=1.
fn check_or_update(path: &Path, current: &str, want: &str) {
    if current == want {
        return;
    }
    if std::env::var_os("UPDATE_SEMCONV").is_some() {
        std::fs::write(path, want).unwrap();
        return;
    }
    panic!(
        "{} is out of date with semconv/registry.yaml; run `UPDATE_SEMCONV=1 cargo test --test semconv`",
        path.display()
    );
}

#[test]
fn generated_code_and_readme_match_the_registry() {
    let (attrs, metrics) = load();
    let rs = root().join("src/semconv.rs");
    let current = std::fs::read_to_string(&rs).unwrap_or_default();
    check_or_update(&rs, &current, &render_rust(&attrs, &metrics));

    let readme = root().join("README.md");
    let text = std::fs::read_to_string(&readme).unwrap();
    let (head, rest) = text
        .split_once(BEGIN)
        .expect("README.md lacks the metrics:begin marker");
    let (_, tail) = rest
        .split_once(END)
        .expect("README.md lacks the metrics:end marker");
    let want = format!("{head}{BEGIN}{}{END}{tail}", render_table(&metrics));
    check_or_update(&readme, &text, &want);
}

#[test]
fn registry_is_consistent() {
    let (attrs, metrics) = load();
    let ids: BTreeSet<&str> = attrs.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids.len(), attrs.len(), "duplicate attribute id");
    let names: BTreeSet<&str> = metrics.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names.len(), metrics.len(), "duplicate metric name");
    let mut used = BTreeSet::new();
    for m in &metrics {
        for (r, _) in &m.attributes {
            assert!(
                ids.contains(r.as_str()),
                "{}: unknown attribute {r}",
                m.name
            );
            used.insert(r.as_str());
        }
        // service.name is the agent's own resource attribute.
        assert!(
            !m.attributes.iter().any(|(r, _)| r == "service.name"),
            "{}",
            m.name
        );
    }
    assert_eq!(used, ids, "attributes defined but never used");
}

#[test]
fn the_eight_fixed_names_are_there_verbatim() {
    use unamentis_agent::semconv;
    let fixed = [
        (
            &semconv::POWER_CPU_WATTS,
            "unamentis.server.power.cpu_watts",
        ),
        (
            &semconv::POWER_GPU_WATTS,
            "unamentis.server.power.gpu_watts",
        ),
        (
            &semconv::POWER_PACKAGE_WATTS,
            "unamentis.server.power.package_watts",
        ),
        (
            &semconv::THERMAL_TEMPERATURE,
            "unamentis.server.thermal.temperature",
        ),
        (
            &semconv::THERMAL_PRESSURE,
            "unamentis.server.thermal.pressure",
        ),
        (
            &semconv::SERVICE_CPU_PERCENT,
            "unamentis.server.service.cpu_percent",
        ),
        (
            &semconv::SERVICE_MEMORY_MB,
            "unamentis.server.service.memory_mb",
        ),
        (
            &semconv::IDLE_DURATION_SECONDS,
            "unamentis.server.idle.duration_seconds",
        ),
    ];
    let (_, metrics) = load();
    for (m, name) in fixed {
        assert_eq!(m.name, name);
        assert!(
            metrics.iter().any(|d| d.name == name),
            "{name} missing from registry.yaml"
        );
        assert!(semconv::ALL.iter().any(|a| std::ptr::eq(*a, m)));
    }
}
