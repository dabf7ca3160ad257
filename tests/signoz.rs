//! The SigNoz artefacts against SigNoz's own types: every alert rule in
//! otel-collector/signoz/alerts/ as SigNoz's rules API decodes and
//! validates it, and the dashboard's units and reductions.
//!
//! The tables below are transcribed from github.com/SigNoz/signoz at commit
//! 9997c3da9c906daf4bcea664a3380cab51edd18f (2026-08-21), each under the
//! file it comes from. SigNoz's `PostableRule.UnmarshalJSON` then
//! `Validate()` (pkg/types/ruletypes/api_params.go) is what
//! `POST /api/v2/rules` runs; `validate_rule` follows it step by step. One
//! deliberate difference: SigNoz decodes the rule, its condition and its
//! composite query with plain `encoding/json`, which drops unknown keys
//! silently (a v4 `builderQueries` would simply vanish); here an unknown key
//! is an error at every level. The query envelope, builder query and formula
//! specs are strict in SigNoz too (`binding.WithDisallowUnknownFields`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value as Json};
use unamentis_agent::semconv::{self, Instrument};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn json_file(path: &Path) -> Json {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn rule_files() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join("otel-collector/signoz/alerts"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    v.sort();
    v
}

// ---- pkg/types/ruletypes/api_params.go ----

/// `PostableRule`'s JSON fields.
#[rustfmt::skip]
const RULE_FIELDS: &[&str] = &[
    "alert", "alertType", "description", "ruleType", "evalWindow", "frequency", "condition",
    "labels", "annotations", "disabled", "source", "preferredChannels", "version", "evaluation",
    "schemaVersion", "notificationSettings",
];
/// `AlertType` (a plain string: compared as written).
#[rustfmt::skip]
const ALERT_TYPES: &[&str] = &[
    "METRIC_BASED_ALERT", "TRACES_BASED_ALERT", "LOGS_BASED_ALERT", "EXCEPTIONS_BASED_ALERT",
];
/// `validate()`: "version: only v5 is supported".
const RULE_VERSION: &str = "v5";
/// `DefaultSchemaVersion` (what an absent schemaVersion becomes) and
/// `SchemaVersionV2Alpha1`.
const SCHEMA_V1: &str = "v1";
const SCHEMA_V2ALPHA1: &str = "v2alpha1";
const NOTIFICATION_FIELDS: &[&str] = &["groupBy", "renotify", "usePolicy", "newGroupEvalDelay"];
const RENOTIFY_FIELDS: &[&str] = &["enabled", "interval", "alertStates"];
/// `NotificationSettings.UnmarshalJSON`: renotify states (alert_state.go).
const RENOTIFY_STATES: &[&str] = &["firing", "nodata"];

// ---- pkg/types/ruletypes/alerting.go ----

#[rustfmt::skip]
const CONDITION_FIELDS: &[&str] = &[
    "compositeQuery", "op", "target", "alertOnAbsent", "absentFor", "matchType", "targetUnit",
    "algorithm", "seasonality", "selectedQueryName", "requireMinPoints", "requiredNumPoints",
    "thresholds",
];
const COMPOSITE_FIELDS: &[&str] = &["queries", "panelType", "queryType", "unit"];
const PANEL_TYPES: &[&str] = &["value", "table", "graph"];
const RULE_QUERY_TYPES: &[&str] = &["builder", "clickhouse_sql", "promql"];

// ---- pkg/types/ruletypes/rule_type.go ----

const RULE_TYPES: &[&str] = &["threshold_rule", "promql_rule", "anomaly_rule"];

// ---- pkg/types/ruletypes/compare.go (every form `Validate` accepts) ----

const COMPARE_OPS: &[(&str, &[&str])] = &[
    ("above", &["1", "above", ">"]),
    ("below", &["2", "below", "<"]),
    ("equal", &["3", "equal", "eq", "="]),
    ("not_equal", &["4", "not_equal", "not_eq", "!="]),
    (
        "above_or_equal",
        &["5", "above_or_equal", "above_or_eq", ">="],
    ),
    (
        "below_or_equal",
        &["6", "below_or_equal", "below_or_eq", "<="],
    ),
    ("outside_bounds", &["7", "outside_bounds"]),
];

// ---- pkg/types/ruletypes/match.go ----

const MATCH_TYPES: &[(&str, &[&str])] = &[
    ("at_least_once", &["1", "at_least_once"]),
    ("all_the_times", &["2", "all_the_times"]),
    ("on_average", &["3", "on_average", "avg"]),
    ("in_total", &["4", "in_total", "sum"]),
    ("last", &["5", "last"]),
];

// ---- pkg/types/ruletypes/threshold.go ----

const THRESHOLD_KINDS: &[&str] = &["basic"];
#[rustfmt::skip]
const THRESHOLD_FIELDS: &[&str] = &[
    "name", "target", "targetUnit", "recoveryTarget", "matchType", "op", "channels",
];

// ---- pkg/types/ruletypes/evaluation.go ----

const EVALUATION_KINDS: &[&str] = &["rolling", "cumulative"];
const ROLLING_FIELDS: &[&str] = &["evalWindow", "frequency"];

// ---- pkg/types/querybuildertypes/querybuildertypesv5 ----

/// query_type.go: the envelope types `QueryEnvelope.UnmarshalJSON` decodes.
#[rustfmt::skip]
const ENVELOPE_TYPES: &[&str] = &[
    "builder_query", "builder_ai_query", "builder_formula", "builder_sub_query", "builder_join",
    "builder_trace_operator", "clickhouse_sql", "promql",
];
/// req.go: the envelope is decoded strictly.
const ENVELOPE_FIELDS: &[&str] = &["type", "spec"];
/// builder_query.go: `QueryBuilderQuery`, decoded strictly.
#[rustfmt::skip]
const BUILDER_QUERY_FIELDS: &[&str] = &[
    "name", "stepInterval", "signal", "source", "aggregations", "disabled", "filter", "groupBy",
    "order", "selectFields", "limit", "limitBy", "offset", "cursor", "having",
    "secondaryAggregations", "functions", "legend",
];
/// Fields SigNoz accepts whose deeper checks are not transcribed here; a
/// rule that starts using one must extend this test first.
#[rustfmt::skip]
const BUILDER_QUERY_UNCHECKED: &[&str] = &[
    "order", "selectFields", "limitBy", "cursor", "having", "secondaryAggregations",
    "functions",
];
/// formula.go: `QueryBuilderFormula`, decoded strictly.
#[rustfmt::skip]
const FORMULA_FIELDS: &[&str] = &[
    "name", "expression", "disabled", "order", "limit", "having", "functions", "legend",
];
/// builder_elements.go: `MetricAggregation`'s JSON fields.
#[rustfmt::skip]
const METRIC_AGGREGATION_FIELDS: &[&str] = &[
    "metricName", "temporality", "timeAggregation", "spaceAggregation",
    "comparisonSpaceAggregationParam", "reduceTo",
];
const FILTER_FIELDS: &[&str] = &["expression"];
/// builder_elements.go: `ReduceTo`.
const REDUCE_TO: &[&str] = &["sum", "count", "avg", "min", "max", "last", "median"];
/// validation.go: `MaxQueryLimit`.
const MAX_QUERY_LIMIT: i64 = 10_000;

// ---- pkg/types/metrictypes/metrictypes.go ----

const TEMPORALITIES: &[&str] = &["delta", "cumulative", "unspecified", ""];
/// `TimeAggregation.Enum()` (the empty value is in it).
#[rustfmt::skip]
const TIME_AGGREGATIONS: &[&str] = &[
    "latest", "sum", "avg", "min", "max", "count", "count_distinct", "rate", "increase", "",
];
/// `SpaceAggregation.Enum()`: `IsValid` uses it, so the empty value is
/// refused ("invalid space aggregation").
const SPACE_AGGREGATIONS: &[&str] = &[
    "sum", "avg", "min", "max", "count", "p50", "p75", "p90", "p95", "p99",
];

// ---- pkg/types/telemetrytypes ----

/// signal.go.
const SIGNALS: &[&str] = &["traces", "logs", "metrics", ""];
/// source.go (audit exists but is not offered yet).
const SOURCES: &[&str] = &["meter", "audit", ""];
/// field.go: `TelemetryFieldKey`'s JSON fields (a groupBy entry).
#[rustfmt::skip]
const FIELD_KEY_FIELDS: &[&str] = &[
    "name", "description", "unit", "signal", "fieldContext", "fieldDataType",
];
/// field_context.go: `fieldContexts` (anything else silently becomes
/// "unspecified" in SigNoz; refused here as a typo).
#[rustfmt::skip]
const FIELD_CONTEXTS: &[&str] = &[
    "resource", "scope", "tag", "point", "attribute", "event", "body", "spanfield", "span",
    "logfield", "log", "metric", "tracefield", "trace", "",
];
/// field_datatype.go: the scalar names of `fieldDataTypes`.
const FIELD_DATA_TYPES: &[&str] = &[
    "string", "str", "bool", "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16",
    "uint32", "uint64", "float", "float32", "float64", "double", "decimal", "number", "",
];

// ---- checks ----

struct Errors {
    list: Vec<String>,
}

impl Errors {
    fn add(&mut self, path: &str, msg: impl std::fmt::Display) {
        self.list.push(format!("{path}: {msg}"));
    }
}

/// `valuer.String`: enum values are trimmed and lower-cased on decode.
fn valuer(v: &Json) -> Option<String> {
    v.as_str().map(|s| s.trim().to_lowercase())
}

fn object<'a>(e: &mut Errors, path: &str, v: &'a Json) -> Option<&'a Map<String, Json>> {
    let o = v.as_object();
    if o.is_none() {
        e.add(path, format!("must be an object, got {v}"));
    }
    o
}

fn known_fields(e: &mut Errors, path: &str, o: &Map<String, Json>, fields: &[&str]) {
    for k in o.keys() {
        if !fields.contains(&k.as_str()) {
            e.add(path, format!("unknown field {k:?}"));
        }
    }
}

fn in_enum(e: &mut Errors, path: &str, v: Option<&Json>, allowed: &[&str]) {
    let value = v.and_then(valuer).unwrap_or_default();
    if !allowed.contains(&value.as_str()) {
        e.add(
            path,
            format!("unsupported value {value:?}; one of {allowed:?}"),
        );
    }
}

/// Go's `time.ParseDuration` (what `valuer.TextDuration` and `Step` use),
/// in nanoseconds.
fn go_duration(s: &str) -> Option<f64> {
    let (neg, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Some(0.0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num = &rest[..num_len];
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return None;
        }
        let value: f64 = num.parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += value * scale;
        rest = &rest[unit_len..];
    }
    Some(if neg { -total } else { total })
}

/// A `valuer.TextDuration` field: a Go duration string (or a number of
/// nanoseconds); `positive` where SigNoz requires it.
fn duration(e: &mut Errors, path: &str, v: &Json, positive: bool) {
    let ns = match v {
        Json::String(s) => go_duration(s),
        Json::Number(n) => n.as_f64(),
        _ => None,
    };
    match ns {
        None => e.add(path, format!("invalid duration {v}")),
        Some(ns) if positive && ns <= 0.0 => e.add(path, "must be greater than zero"),
        Some(_) => {}
    }
}

/// `isValidLabelName` (api_params.go).
fn valid_label_name(s: &str) -> bool {
    !s.is_empty()
        && s.char_indices().all(|(i, c)| {
            c.is_ascii_alphabetic() || c == '_' || c == '.' || (c.is_ascii_digit() && i > 0)
        })
}

/// Runs SigNoz's decode and `Validate()` on one rule; returns every error.
fn validate_rule(rule: &Json) -> Vec<String> {
    let mut e = Errors { list: Vec::new() };
    let Some(r) = object(&mut e, "rule", rule) else {
        return e.list;
    };
    known_fields(&mut e, "rule", r, RULE_FIELDS);
    // UnmarshalJSON: processRuleDefaults, then validate().
    let schema = r
        .get("schemaVersion")
        .and_then(Json::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or(SCHEMA_V1);
    match r.get("version").and_then(Json::as_str) {
        Some(RULE_VERSION) => {}
        // An absent or empty version defaults to v5; one written must be v5.
        None | Some("") => {}
        Some(other) => e.add(
            "version",
            format!("only {RULE_VERSION} is supported, got {other:?}"),
        ),
    }
    for (field, check_values) in [("labels", true), ("annotations", false)] {
        if let Some(v) = r.get(field) {
            let Some(m) = object(&mut e, field, v) else {
                continue;
            };
            for (k, v) in m {
                if !valid_label_name(k) {
                    e.add(field, format!("invalid name {k:?}"));
                }
                if check_values && !v.is_string() {
                    e.add(field, format!("{k}: not a string"));
                }
                check_template(&mut e, &format!("{field}.{k}"), v.as_str().unwrap_or(""));
            }
        }
    }
    // Validate().
    if r.get("alert")
        .and_then(Json::as_str)
        .unwrap_or("")
        .is_empty()
    {
        e.add("alert", "field is required");
    }
    if let Some(t) = r.get("alertType") {
        let t = t.as_str().unwrap_or("?");
        if !t.is_empty() && !ALERT_TYPES.contains(&t) {
            e.add("alertType", format!("unsupported value {t:?}"));
        }
    }
    if let Some(t) = r.get("ruleType") {
        in_enum(&mut e, "ruleType", Some(t), RULE_TYPES);
    }
    if let Some(d) = r.get("disabled")
        && !d.is_boolean()
    {
        e.add("disabled", "not a boolean");
    }
    for f in ["evalWindow", "frequency"] {
        if let Some(v) = r.get(f) {
            duration(&mut e, f, v, false);
        }
    }
    let Some(cond) = r.get("condition") else {
        e.add("condition", "field is required");
        return e.list;
    };
    let Some(c) = object(&mut e, "condition", cond) else {
        return e.list;
    };
    known_fields(&mut e, "condition", c, CONDITION_FIELDS);
    let names = match c.get("compositeQuery") {
        None => {
            e.add("condition.compositeQuery", "field is required");
            Vec::new()
        }
        Some(cq) => check_composite(&mut e, cq),
    };
    if let Some(sel) = c.get("selectedQueryName").and_then(Json::as_str)
        && !sel.is_empty()
        && !names.is_empty()
        && !names.iter().any(|n| n == sel)
    {
        e.add(
            "condition.selectedQueryName",
            format!("{sel:?} does not match any query"),
        );
    }
    if c.get("requireMinPoints").and_then(Json::as_bool) == Some(true)
        && c.get("requiredNumPoints")
            .and_then(Json::as_i64)
            .unwrap_or(0)
            <= 0
    {
        e.add("condition.requiredNumPoints", "must be greater than 0");
    }
    match schema {
        SCHEMA_V1 => {
            if c.get("target").and_then(Json::as_f64).is_none() {
                e.add("condition.target", "field is required for schemaVersion v1");
            }
            compare_and_match(&mut e, "condition", c);
        }
        SCHEMA_V2ALPHA1 => {
            match c.get("thresholds") {
                None => e.add("condition.thresholds", "field is required for v2alpha1"),
                Some(t) => check_thresholds(&mut e, t),
            }
            match r.get("evaluation") {
                None => e.add("evaluation", "field is required for v2alpha1"),
                Some(ev) => check_evaluation(&mut e, ev),
            }
            match r.get("notificationSettings") {
                None => e.add("notificationSettings", "field is required for v2alpha1"),
                Some(n) => check_notification(&mut e, n),
            }
        }
        other => e.add(
            "schemaVersion",
            format!("unsupported value {other:?}; one of v1, v2alpha1"),
        ),
    }
    e.list
}

/// `{{ … }}` in labels and annotations: SigNoz parses them as Go templates
/// with $labels, $value and $threshold defined; only those are used here.
fn check_template(e: &mut Errors, path: &str, text: &str) {
    let mut rest = text;
    while let Some(i) = rest.find("{{") {
        let Some(j) = rest[i..].find("}}") else {
            e.add(path, "unclosed {{");
            return;
        };
        let action = rest[i + 2..i + j].trim();
        let ok = matches!(action, "$value" | "$threshold") || action.starts_with("$labels.");
        if !ok {
            e.add(
                path,
                format!("template action {{{{{action}}}}} not checked here"),
            );
        }
        rest = &rest[i + j + 2..];
    }
}

fn compare_and_match(e: &mut Errors, path: &str, o: &Map<String, Json>) {
    let op = o.get("op").and_then(valuer).unwrap_or_default();
    if op.is_empty() {
        e.add(&format!("{path}.op"), "field is required");
    } else if !COMPARE_OPS
        .iter()
        .any(|(_, forms)| forms.contains(&op.as_str()))
    {
        e.add(&format!("{path}.op"), format!("unsupported value {op:?}"));
    }
    let m = o.get("matchType").and_then(valuer).unwrap_or_default();
    if m.is_empty() {
        e.add(&format!("{path}.matchType"), "field is required");
    } else if !MATCH_TYPES
        .iter()
        .any(|(_, forms)| forms.contains(&m.as_str()))
    {
        e.add(
            &format!("{path}.matchType"),
            format!("unsupported value {m:?}"),
        );
    }
}

fn check_thresholds(e: &mut Errors, t: &Json) {
    let path = "condition.thresholds";
    let Some(o) = object(e, path, t) else { return };
    known_fields(e, path, o, &["kind", "spec"]);
    in_enum(e, &format!("{path}.kind"), o.get("kind"), THRESHOLD_KINDS);
    let spec = o.get("spec").and_then(Json::as_array);
    match spec {
        None => e.add(&format!("{path}.spec"), "must be an array"),
        Some(s) if s.is_empty() => e.add(&format!("{path}.spec"), "at least one threshold"),
        Some(s) => {
            for (i, th) in s.iter().enumerate() {
                let p = format!("{path}.spec[{i}]");
                let Some(th) = object(e, &p, th) else {
                    continue;
                };
                known_fields(e, &p, th, THRESHOLD_FIELDS);
                if th
                    .get("name")
                    .and_then(Json::as_str)
                    .unwrap_or("")
                    .is_empty()
                {
                    e.add(&p, "threshold name cannot be empty");
                }
                if th.get("target").and_then(Json::as_f64).is_none() {
                    e.add(&p, "target value cannot be nil");
                }
                compare_and_match(e, &p, th);
            }
        }
    }
}

fn check_evaluation(e: &mut Errors, ev: &Json) {
    let Some(o) = object(e, "evaluation", ev) else {
        return;
    };
    known_fields(e, "evaluation", o, &["kind", "spec"]);
    in_enum(e, "evaluation.kind", o.get("kind"), EVALUATION_KINDS);
    match o.get("kind").and_then(valuer).as_deref() {
        Some("rolling") => {
            let Some(s) = o.get("spec").and_then(|s| object(e, "evaluation.spec", s)) else {
                return;
            };
            known_fields(e, "evaluation.spec", s, ROLLING_FIELDS);
            for f in ROLLING_FIELDS {
                match s.get(*f) {
                    None => e.add(&format!("evaluation.spec.{f}"), "must be greater than zero"),
                    Some(v) => duration(e, &format!("evaluation.spec.{f}"), v, true),
                }
            }
        }
        Some("cumulative") => e.add("evaluation", "cumulative windows are not checked here"),
        _ => {}
    }
}

fn check_notification(e: &mut Errors, n: &Json) {
    let path = "notificationSettings";
    let Some(o) = object(e, path, n) else { return };
    known_fields(e, path, o, NOTIFICATION_FIELDS);
    if let Some(d) = o.get("newGroupEvalDelay") {
        duration(e, &format!("{path}.newGroupEvalDelay"), d, false);
    }
    let Some(r) = o.get("renotify") else { return };
    let Some(r) = object(e, &format!("{path}.renotify"), r) else {
        return;
    };
    known_fields(e, &format!("{path}.renotify"), r, RENOTIFY_FIELDS);
    for s in r
        .get("alertStates")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
    {
        in_enum(
            e,
            &format!("{path}.renotify.alertStates"),
            Some(s),
            RENOTIFY_STATES,
        );
    }
    if r.get("enabled").and_then(Json::as_bool) == Some(true) {
        match r.get("interval") {
            None => e.add(&format!("{path}.renotify.interval"), "must be positive"),
            Some(v) => duration(e, &format!("{path}.renotify.interval"), v, true),
        }
    }
}

/// `AlertCompositeQuery`, then `CompositeQuery.Validate` with the time
/// series options; returns the query names.
fn check_composite(e: &mut Errors, cq: &Json) -> Vec<String> {
    let path = "condition.compositeQuery";
    let Some(o) = object(e, path, cq) else {
        return Vec::new();
    };
    known_fields(e, path, o, COMPOSITE_FIELDS);
    if let Some(p) = o.get("panelType") {
        in_enum(e, &format!("{path}.panelType"), Some(p), PANEL_TYPES);
    }
    if let Some(q) = o.get("queryType") {
        in_enum(e, &format!("{path}.queryType"), Some(q), RULE_QUERY_TYPES);
    }
    let queries = o.get("queries").and_then(Json::as_array);
    let Some(queries) = queries.filter(|q| !q.is_empty()) else {
        e.add(&format!("{path}.queries"), "must have at least one query");
        return Vec::new();
    };
    let mut builder_names = BTreeSet::new();
    let mut names = Vec::new();
    let mut formulas = Vec::new();
    for (i, q) in queries.iter().enumerate() {
        let p = format!("{path}.queries[{i}]");
        let Some(env) = object(e, &p, q) else {
            continue;
        };
        known_fields(e, &p, env, ENVELOPE_FIELDS);
        let ty = env.get("type").and_then(valuer).unwrap_or_default();
        let spec = env.get("spec").unwrap_or(&Json::Null);
        match ty.as_str() {
            "builder_query" => {
                if let Some(name) = check_builder_query(e, &p, spec) {
                    if !name.is_empty() && !builder_names.insert(name.clone()) {
                        e.add(&p, format!("duplicate query name {name:?}"));
                    }
                    names.push(name);
                }
            }
            "builder_formula" => {
                if let Some(name) = check_formula_spec(e, &p, spec) {
                    formulas.push((p.clone(), spec.clone()));
                    names.push(name);
                }
            }
            t if ENVELOPE_TYPES.contains(&t) => {
                e.add(&p, format!("envelope type {t:?} is not checked here"));
            }
            t => e.add(&p, format!("unknown query type {t:?}")),
        }
    }
    // A formula variable naming no query yields no series in SigNoz (the
    // lookup skips it): a silent dead rule, so an error here.
    for (p, spec) in formulas {
        let expr = spec["expression"].as_str().unwrap_or("");
        for var in formula_variables(expr) {
            let query = var.split('.').next().unwrap_or("");
            if !builder_names.contains(query) {
                e.add(
                    &p,
                    format!("formula variable {var:?} names no builder query"),
                );
            }
        }
    }
    names
}

fn check_builder_query(e: &mut Errors, path: &str, spec: &Json) -> Option<String> {
    let p = format!("{path}.spec");
    let o = object(e, &p, spec)?;
    known_fields(e, &p, o, BUILDER_QUERY_FIELDS);
    for f in BUILDER_QUERY_UNCHECKED {
        if o.contains_key(*f) {
            e.add(&p, format!("{f} is valid in SigNoz but not checked here"));
        }
    }
    let signal = o.get("signal").and_then(valuer).unwrap_or_default();
    if !SIGNALS.contains(&signal.as_str()) {
        e.add(&p, format!("invalid signal {signal:?}"));
    }
    if signal != "metrics" {
        // Traces and logs aggregations are expressions, not checked here.
        e.add(&p, "only metrics queries are checked here");
        return o.get("name").and_then(Json::as_str).map(str::to_owned);
    }
    if let Some(s) = o.get("source") {
        in_enum(e, &format!("{p}.source"), Some(s), SOURCES);
    }
    if let Some(step) = o.get("stepInterval") {
        let ok = match step {
            Json::Number(n) => n.as_f64().is_some(),
            Json::String(s) => go_duration(s).is_some(),
            _ => false,
        };
        if !ok {
            e.add(&format!("{p}.stepInterval"), format!("invalid step {step}"));
        }
    }
    for f in ["disabled"] {
        if let Some(v) = o.get(f)
            && !v.is_boolean()
        {
            e.add(&format!("{p}.{f}"), "not a boolean");
        }
    }
    let limit = o.get("limit").and_then(Json::as_i64).unwrap_or(0);
    if !(0..=MAX_QUERY_LIMIT).contains(&limit) {
        e.add(&format!("{p}.limit"), format!("{limit} out of range"));
    }
    if o.get("offset").and_then(Json::as_i64).unwrap_or(0) < 0 {
        e.add(&format!("{p}.offset"), "must be non-negative");
    }
    let aggs = o.get("aggregations").and_then(Json::as_array);
    match aggs {
        None => e.add(&p, "at least one aggregation is required"),
        Some(a) if a.is_empty() => e.add(&p, "at least one aggregation is required"),
        Some(a) => {
            for (i, agg) in a.iter().enumerate() {
                let ap = format!("{p}.aggregations[{i}]");
                let Some(agg) = object(e, &ap, agg) else {
                    continue;
                };
                known_fields(e, &ap, agg, METRIC_AGGREGATION_FIELDS);
                if agg
                    .get("metricName")
                    .and_then(Json::as_str)
                    .unwrap_or("")
                    .is_empty()
                {
                    e.add(&ap, "metric name is required");
                }
                in_enum(
                    e,
                    &format!("{ap}.spaceAggregation"),
                    agg.get("spaceAggregation"),
                    SPACE_AGGREGATIONS,
                );
                in_enum(
                    e,
                    &format!("{ap}.timeAggregation"),
                    agg.get("timeAggregation"),
                    TIME_AGGREGATIONS,
                );
                if let Some(t) = agg.get("temporality") {
                    in_enum(e, &format!("{ap}.temporality"), Some(t), TEMPORALITIES);
                }
                if let Some(r) = agg.get("reduceTo") {
                    in_enum(e, &format!("{ap}.reduceTo"), Some(r), REDUCE_TO);
                }
            }
        }
    }
    for (i, g) in o
        .get("groupBy")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let gp = format!("{p}.groupBy[{i}]");
        let Some(g) = object(e, &gp, g) else { continue };
        known_fields(e, &gp, g, FIELD_KEY_FIELDS);
        match g.get("name").and_then(Json::as_str) {
            None | Some("") => e.add(&gp, "invalid empty key name"),
            Some("timestamp") => e.add(&gp, "group by on timestamp is not allowed"),
            Some(_) => {}
        }
        if let Some(c) = g.get("fieldContext") {
            in_enum(e, &format!("{gp}.fieldContext"), Some(c), FIELD_CONTEXTS);
        }
        if let Some(t) = g.get("fieldDataType") {
            in_enum(e, &format!("{gp}.fieldDataType"), Some(t), FIELD_DATA_TYPES);
        }
        if let Some(s) = g.get("signal") {
            in_enum(e, &format!("{gp}.signal"), Some(s), SIGNALS);
        }
    }
    if let Some(f) = o.get("filter") {
        let fp = format!("{p}.filter");
        if let Some(f) = object(e, &fp, f) {
            known_fields(e, &fp, f, FILTER_FIELDS);
            let expr = f.get("expression").and_then(Json::as_str).unwrap_or("");
            if !expr.trim().is_empty()
                && let Err(msg) = filter_keys(expr)
            {
                e.add(&fp, msg);
            }
        }
    }
    Some(
        o.get("name")
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_owned(),
    )
}

fn check_formula_spec(e: &mut Errors, path: &str, spec: &Json) -> Option<String> {
    let p = format!("{path}.spec");
    let o = object(e, &p, spec)?;
    known_fields(e, &p, o, FORMULA_FIELDS);
    for f in ["order", "having", "functions"] {
        if o.contains_key(f) {
            e.add(&p, format!("{f} is valid in SigNoz but not checked here"));
        }
    }
    let name = o.get("name").and_then(Json::as_str).unwrap_or("");
    if name.trim().is_empty() {
        e.add(&p, "formula name cannot be blank");
    }
    let expr = o.get("expression").and_then(Json::as_str).unwrap_or("");
    if expr.trim().is_empty() {
        e.add(&p, "formula expression cannot be blank");
    } else if let Err(msg) = arithmetic(expr) {
        e.add(&p, format!("failed to parse expression: {msg}"));
    }
    Some(name.to_owned())
}

/// The arithmetic subset of govaluate that the formulas here use:
/// variables (query names, `A.0`), numbers, + - * / %, parentheses.
fn arithmetic(expr: &str) -> Result<(), String> {
    let mut depth = 0i32;
    // true when an operand was just read (an operator or ')' may follow).
    let mut operand = false;
    let mut chars = expr.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => {}
            '(' if !operand => depth += 1,
            ')' if operand && depth > 0 => depth -= 1,
            '+' | '-' | '*' | '/' | '%' if operand => operand = false,
            '-' if !operand => {}
            c if !operand && (c.is_ascii_alphanumeric() || c == '_' || c == '.') => {
                while chars
                    .peek()
                    .is_some_and(|n| n.is_ascii_alphanumeric() || *n == '_' || *n == '.')
                {
                    chars.next();
                }
                if chars.peek() == Some(&'(') {
                    return Err("function calls are not checked here".into());
                }
                operand = true;
            }
            c => return Err(format!("unexpected {c:?}")),
        }
    }
    if depth != 0 || !operand {
        return Err("unbalanced or incomplete".into());
    }
    Ok(())
}

/// The variables of a formula (identifiers not starting with a digit).
fn formula_variables(expr: &str) -> Vec<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
        .filter(|t| {
            t.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        })
        .map(str::to_owned)
        .collect()
}

// ---- the filter grammar: grammar/FilterQuery.g4 ----

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    LParen,
    RParen,
    LBrack,
    RBrack,
    Comma,
    /// = == != <> < <= > >=
    Cmp,
    Quoted,
    Number,
    Bool,
    Key(String),
    /// LIKE ILIKE BETWEEN EXISTS REGEXP CONTAINS IN NOT AND OR HAS…
    Word(&'static str),
}

/// FilterQuery.g4's keywords; the lexer gives them precedence over KEY
/// when the match is as long (they are declared first).
const FILTER_WORDS: &[&str] = &[
    "like", "ilike", "between", "exists", "exist", "regexp", "contains", "contain", "in", "not",
    "and", "or", "hastoken", "has", "hasany", "hasall", "search",
];

fn lex(s: &str) -> Result<Vec<Tok>, String> {
    let b: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    // SEGMENT : [a-zA-Z$_@{#] [a-zA-Z0-9$_@#{}:\-/]*
    let seg_start = |c: char| c.is_ascii_alphabetic() || "$_@{#".contains(c);
    let seg_char = |c: char| c.is_ascii_alphanumeric() || "$_@#{}:-/".contains(c);
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        match c {
            ' ' | '\t' | '\r' | '\n' => i += 1,
            '(' => {
                out.push(Tok::LParen);
                i += 1;
            }
            ')' => {
                out.push(Tok::RParen);
                i += 1;
            }
            '[' => {
                out.push(Tok::LBrack);
                i += 1;
            }
            ']' => {
                out.push(Tok::RBrack);
                i += 1;
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1;
            }
            '=' | '!' | '<' | '>' => {
                let two = matches!(
                    (c, next),
                    ('=', Some('='))
                        | ('!', Some('='))
                        | ('<', Some('>'))
                        | ('<', Some('='))
                        | ('>', Some('='))
                );
                if c == '!' && !two {
                    return Err("lone '!'".into());
                }
                out.push(Tok::Cmp);
                i += if two { 2 } else { 1 };
            }
            '\'' | '"' => {
                let mut j = i + 1;
                loop {
                    match b.get(j) {
                        None => return Err("unterminated quoted text".into()),
                        Some('\\') => j += 2,
                        Some(q) if *q == c => break,
                        Some(_) => j += 1,
                    }
                }
                out.push(Tok::Quoted);
                i = j + 1;
            }
            c if c.is_ascii_digit()
                || ((c == '-' || c == '+' || c == '.')
                    && next.is_some_and(|n| n.is_ascii_digit() || n == '.')) =>
            {
                let mut j = i + 1;
                while j < b.len()
                    && (b[j].is_ascii_digit()
                        || b[j] == '.'
                        || b[j] == 'e'
                        || b[j] == 'E'
                        || ((b[j] == '-' || b[j] == '+') && matches!(b[j - 1], 'e' | 'E')))
                {
                    j += 1;
                }
                let text: String = b[i..j].iter().collect();
                if text.parse::<f64>().is_err() {
                    return Err(format!("bad number {text:?}"));
                }
                out.push(Tok::Number);
                i = j;
            }
            c if seg_start(c) => {
                // KEY : SEGMENT ( '.' SEGMENT | '[]' | '[*]' | '.' DIGIT+ )*
                let mut j = i + 1;
                while j < b.len() && seg_char(b[j]) {
                    j += 1;
                }
                loop {
                    if b.get(j) == Some(&'.')
                        && b.get(j + 1)
                            .is_some_and(|&n| seg_start(n) || n.is_ascii_digit())
                    {
                        j += 2;
                        while j < b.len() && seg_char(b[j]) {
                            j += 1;
                        }
                    } else if b.get(j) == Some(&'[') && b.get(j + 1) == Some(&']') {
                        j += 2;
                    } else if b.get(j) == Some(&'[')
                        && b.get(j + 1) == Some(&'*')
                        && b.get(j + 2) == Some(&']')
                    {
                        j += 3;
                    } else {
                        break;
                    }
                }
                let text: String = b[i..j].iter().collect();
                let lower = text.to_lowercase();
                if let Some(w) = FILTER_WORDS.iter().find(|w| **w == lower) {
                    out.push(Tok::Word(w));
                } else if lower == "true" || lower == "false" {
                    out.push(Tok::Bool);
                } else {
                    out.push(Tok::Key(text));
                }
                i = j;
            }
            c => return Err(format!("unexpected {c:?}")),
        }
    }
    Ok(out)
}

struct FilterParser {
    toks: Vec<Tok>,
    pos: usize,
    keys: Vec<String>,
}

impl FilterParser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    fn bump(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }
    fn word(&mut self, w: &str) -> bool {
        if self.peek() == Some(&Tok::Word(leak(w))) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn or(&mut self) -> Result<(), String> {
        self.and()?;
        while self.word("or") {
            self.and()?;
        }
        Ok(())
    }
    fn and(&mut self) -> Result<(), String> {
        self.unary()?;
        loop {
            if self.word("and") {
                self.unary()?;
            } else if matches!(
                self.peek(),
                Some(Tok::LParen | Tok::Key(_)) | Some(Tok::Word("not"))
            ) {
                // Implicit AND.
                self.unary()?;
            } else {
                return Ok(());
            }
        }
    }
    fn unary(&mut self) -> Result<(), String> {
        self.word("not");
        match self.bump() {
            Some(Tok::LParen) => {
                self.or()?;
                match self.bump() {
                    Some(Tok::RParen) => Ok(()),
                    t => Err(format!("expected ')', got {t:?}")),
                }
            }
            Some(Tok::Key(k)) => {
                self.keys.push(k);
                self.comparison()
            }
            t => Err(format!(
                "expected a comparison `key op value`, got {t:?} (metrics have no full-text search)"
            )),
        }
    }
    fn value(&mut self) -> Result<(), String> {
        match self.bump() {
            Some(Tok::Quoted | Tok::Number | Tok::Bool | Tok::Key(_)) => Ok(()),
            t => Err(format!("expected a value, got {t:?}")),
        }
    }
    fn comparison(&mut self) -> Result<(), String> {
        if self.peek() == Some(&Tok::Cmp) {
            self.pos += 1;
            return self.value();
        }
        let negated = self.word("not");
        match self.bump() {
            Some(Tok::Word("like" | "ilike" | "regexp" | "contains" | "contain")) => self.value(),
            Some(Tok::Word("between")) => {
                self.value()?;
                if !self.word("and") {
                    return Err("BETWEEN needs AND".into());
                }
                self.value()
            }
            Some(Tok::Word("in")) => match self.peek() {
                Some(Tok::LParen) | Some(Tok::LBrack) => {
                    let close = if self.bump() == Some(Tok::LParen) {
                        Tok::RParen
                    } else {
                        Tok::RBrack
                    };
                    self.value()?;
                    while self.peek() == Some(&Tok::Comma) {
                        self.pos += 1;
                        self.value()?;
                    }
                    if self.bump() != Some(close) {
                        return Err("unclosed IN list".into());
                    }
                    Ok(())
                }
                _ => self.value(),
            },
            Some(Tok::Word("exists" | "exist")) => Ok(()),
            t => Err(format!(
                "expected an operator{}, got {t:?}",
                if negated { " after NOT" } else { "" }
            )),
        }
    }
}

fn leak(w: &str) -> &'static str {
    FILTER_WORDS
        .iter()
        .find(|x| **x == w)
        .copied()
        .unwrap_or("")
}

/// Parses a filter expression (the comparison forms of FilterQuery.g4)
/// and returns the keys it names.
fn filter_keys(expr: &str) -> Result<Vec<String>, String> {
    let mut p = FilterParser {
        toks: lex(expr)?,
        pos: 0,
        keys: Vec::new(),
    };
    p.or()?;
    if p.pos != p.toks.len() {
        return Err(format!("trailing input at token {}", p.pos));
    }
    Ok(p.keys)
}

// ---- the published contract: docs/api/openapi.yml ----

/// SigNoz's OpenAPI document, generated from the same Go types, is
/// stricter than the decoder: the `required:"true"` tags (PostableRule:
/// alert, alertType, ruleType, condition; AlertCompositeQuery: queries,
/// panelType, queryType; BasicRuleThreshold: name, target, matchType, op;
/// the evaluation and threshold envelopes: kind, spec; RollingWindow: both
/// durations; a groupBy key: name; a metrics builder query: signal) and
/// only the literal forms of `op` and `matchType` (their `Enum()`, the
/// first column of COMPARE_OPS and MATCH_TYPES). The shipped rules meet
/// that too, so a client generated from the spec can send them unchanged.
fn contract_errors(rule: &Json) -> Vec<String> {
    let mut out = Vec::new();
    let mut need = |v: &Json, path: &str, fields: &[&str]| {
        for f in fields {
            if v.get(*f).is_none() {
                out.push(format!("{path}: {f} is required by the API schema"));
            }
        }
    };
    let c = &rule["condition"];
    need(
        rule,
        "rule",
        &["alert", "alertType", "ruleType", "condition"],
    );
    need(c, "condition", &["compositeQuery"]);
    need(
        &c["compositeQuery"],
        "compositeQuery",
        &["queries", "panelType", "queryType"],
    );
    // The v2alpha1 envelopes, where present (v1 has neither).
    if !c["thresholds"].is_null() {
        need(&c["thresholds"], "thresholds", &["kind", "spec"]);
    }
    if !rule["evaluation"].is_null() {
        need(&rule["evaluation"], "evaluation", &["kind", "spec"]);
        let spec = &rule["evaluation"]["spec"];
        need(spec, "evaluation.spec", &["evalWindow", "frequency"]);
    }
    for th in c["thresholds"]["spec"].as_array().into_iter().flatten() {
        need(th, "threshold", &["name", "target", "matchType", "op"]);
    }
    for q in c["compositeQuery"]["queries"]
        .as_array()
        .into_iter()
        .flatten()
    {
        need(q, "query", &["type"]);
        if q["type"] == "builder_query" {
            need(&q["spec"], "builder query", &["signal"]);
            for g in q["spec"]["groupBy"].as_array().into_iter().flatten() {
                need(g, "groupBy", &["name"]);
            }
        }
    }
    // v1 keeps op and matchType on the condition.
    let v1 = c.get("op").map(|_| c);
    for th in c["thresholds"]["spec"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(v1)
    {
        for (field, forms) in [("op", COMPARE_OPS), ("matchType", MATCH_TYPES)] {
            let v = th[field].as_str().unwrap_or("");
            if !forms.iter().any(|(literal, _)| *literal == v) {
                out.push(format!(
                    "{field} {v:?} is not a literal the API schema lists"
                ));
            }
        }
    }
    out
}

// ---- the project's own requirements ----

fn registry(name: &str) -> Option<&'static semconv::Metric> {
    semconv::ALL.iter().copied().find(|m| m.name == name)
}

/// Resource attributes the agent always sets (src/telemetry.rs).
const RESOURCE_KEYS: &[&str] = &["host.name"];

/// Every builder query names a registry metric, read the way its instrument
/// allows, and filters or groups only on keys its points carry.
fn project_errors(rule: &Json) -> Vec<String> {
    let mut out = Vec::new();
    let queries = rule["condition"]["compositeQuery"]["queries"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for q in queries.iter().filter(|q| q["type"] == "builder_query") {
        let spec = &q["spec"];
        let qname = spec["name"].as_str().unwrap_or("?");
        for agg in spec["aggregations"].as_array().into_iter().flatten() {
            let name = agg["metricName"].as_str().unwrap_or("");
            let Some(m) = registry(name) else {
                out.push(format!("{qname}: {name} is not in semconv/registry.yaml"));
                continue;
            };
            let ta = agg["timeAggregation"].as_str().unwrap_or("");
            let counter_read = matches!(ta, "rate" | "increase");
            match m.instrument {
                Instrument::Counter if !counter_read => {
                    out.push(format!("{qname}: counter {name} read with {ta:?}"))
                }
                Instrument::Gauge if counter_read => {
                    out.push(format!("{qname}: gauge {name} read with {ta:?}"))
                }
                _ => {}
            }
            let carried = |k: &str| m.attributes.contains(&k) || RESOURCE_KEYS.contains(&k);
            for g in spec["groupBy"].as_array().into_iter().flatten() {
                let k = g["name"].as_str().unwrap_or("");
                if !carried(k) {
                    out.push(format!("{qname}: groupBy {k} is not on {name}"));
                }
            }
            if let Some(expr) = spec["filter"]["expression"].as_str() {
                for k in filter_keys(expr).unwrap_or_default() {
                    if !carried(&k) {
                        out.push(format!("{qname}: filter key {k} is not on {name}"));
                    }
                }
            }
        }
    }
    out
}

/// The thresholds of the product plan: alert -> (severity, literal op,
/// target, the metrics the selected query needs).
#[rustfmt::skip]
const PLAN: &[(&str, &str, &str, f64, &[&str])] = &[
    ("UnamentisIdlePackagePowerHigh", "warning", "above", 5.0, &[POWER, IDLE]),
    ("UnamentisIdlePackagePowerCritical", "critical", "above", 10.0, &[POWER, IDLE]),
    ("UnamentisIdleServiceCpuHigh", "warning", "above", 5.0, &[IDLE_CPU]),
    ("UnamentisIdleServiceCpuCritical", "critical", "above", 20.0, &[IDLE_CPU]),
    ("UnamentisServiceMemoryGrowth", "warning", "above", 100.0, &[GROWTH]),
    ("UnamentisServiceMemoryGrowthCritical", "critical", "above", 500.0, &[GROWTH]),
    // Pressure levels: 1 fair; 2 serious and 3 critical are above 1.
    ("UnamentisThermalPressureFair", "warning", "equal", 1.0, &[PRESSURE]),
    ("UnamentisThermalPressureSerious", "critical", "above", 1.0, &[PRESSURE]),
    // A service idle by its own clock holding GPU watts (the threshold is
    // the user's: what their cards draw at rest).
    ("UnamentisServiceIdleGpuPower", "warning", "above", 20.0, &[IDLE_ENERGY]),
];
const POWER: &str = semconv::POWER_PACKAGE_WATTS.name;
const IDLE: &str = semconv::IDLE_STATE.name;
const IDLE_CPU: &str = semconv::SERVICE_IDLE_CPU_SECONDS.name;
const GROWTH: &str = semconv::SERVICE_MEMORY_GROWTH_MB_PER_HOUR.name;
const PRESSURE: &str = semconv::THERMAL_PRESSURE.name;
const IDLE_ENERGY: &str = semconv::SERVICE_IDLE_ENERGY_JOULES.name;

fn literal(forms: &[(&'static str, &[&str])], v: &Json) -> &'static str {
    let v = valuer(v).unwrap_or_default();
    forms
        .iter()
        .find(|(_, f)| f.contains(&v.as_str()))
        .map(|(l, _)| *l)
        .unwrap_or("?")
}

/// The rule does what the plan says: one threshold with the plan's
/// severity, operator and target, the severity label matching it.
fn plan_errors(rule: &Json) -> Vec<String> {
    let mut out = Vec::new();
    let alert = rule["alert"].as_str().unwrap_or("");
    let Some((_, severity, op, target, metrics)) = PLAN.iter().find(|p| p.0 == alert) else {
        return vec![format!("{alert:?} is not in the plan")];
    };
    let spec = rule["condition"]["thresholds"]["spec"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if spec.len() != 1 {
        out.push(format!("{alert}: {} thresholds, want 1", spec.len()));
    }
    for th in &spec {
        if th["name"] != *severity {
            out.push(format!(
                "{alert}: threshold {} is not {severity}",
                th["name"]
            ));
        }
        if literal(COMPARE_OPS, &th["op"]) != *op {
            out.push(format!("{alert}: op {} is not {op}", th["op"]));
        }
        if th["target"].as_f64() != Some(*target) {
            out.push(format!("{alert}: target {} is not {target}", th["target"]));
        }
        let unit = rule["condition"]["compositeQuery"]["unit"]
            .as_str()
            .unwrap_or("");
        let tunit = th["targetUnit"].as_str().unwrap_or("");
        if tunit != unit {
            // SigNoz converts the target from targetUnit to the rule's
            // unit; equal units keep the plan's number as is.
            out.push(format!(
                "{alert}: targetUnit {tunit:?} differs from unit {unit:?}"
            ));
        }
    }
    if rule["labels"]["severity"] != *severity {
        out.push(format!(
            "{alert}: severity label {}",
            rule["labels"]["severity"]
        ));
    }
    let used: BTreeSet<&str> = rule["condition"]["compositeQuery"]["queries"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|q| q["spec"]["aggregations"].as_array().into_iter().flatten())
        .filter_map(|a| a["metricName"].as_str())
        .collect();
    let want: BTreeSet<&str> = metrics.iter().copied().collect();
    if used != want {
        out.push(format!("{alert}: queries {used:?}, want {want:?}"));
    }
    out
}

/// "While idle" on power is a join: SigNoz's filter cannot test another
/// metric, so the rule multiplies the power query by the idle.state query
/// (1 idle, 0 busy). The formula evaluator pairs series whose labels match,
/// so both must group by exactly host.name, or one idle host would gate
/// another host's power.
fn idle_join_errors(rule: &Json) -> Vec<String> {
    let queries = rule["condition"]["compositeQuery"]["queries"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let builder = |metric: &str| {
        queries.iter().find(|q| {
            q["type"] == "builder_query" && q["spec"]["aggregations"][0]["metricName"] == metric
        })
    };
    let (Some(power), Some(idle)) = (
        builder(semconv::POWER_PACKAGE_WATTS.name),
        builder(semconv::IDLE_STATE.name),
    ) else {
        return vec!["power or idle.state query missing".into()];
    };
    let mut out = Vec::new();
    let groups = |q: &Json| -> Vec<String> {
        q["spec"]["groupBy"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|g| g["name"].as_str().unwrap_or("").to_owned())
            .collect()
    };
    for q in [power, idle] {
        if groups(q) != ["host.name"] {
            out.push(format!("{} groups by {:?}", q["spec"]["name"], groups(q)));
        }
        if q["spec"]["disabled"] != true {
            out.push(format!(
                "{} is not disabled (only the product alerts)",
                q["spec"]["name"]
            ));
        }
    }
    let selected = rule["condition"]["selectedQueryName"]
        .as_str()
        .unwrap_or("");
    let formula = queries
        .iter()
        .find(|q| q["type"] == "builder_formula" && q["spec"]["name"] == selected);
    let want = format!(
        "{} * {}",
        power["spec"]["name"].as_str().unwrap_or(""),
        idle["spec"]["name"].as_str().unwrap_or("")
    );
    match formula {
        Some(f) if f["spec"]["expression"] == want.as_str() => {}
        other => out.push(format!(
            "selected {selected:?} is not the formula {want}: {other:?}"
        )),
    }
    out
}

// ---- tests: the shipped rules ----

#[test]
fn every_rule_file_passes_signozs_decode_and_validate() {
    let files = rule_files();
    assert_eq!(files.len(), PLAN.len(), "one file per planned alert");
    let mut alerts = BTreeSet::new();
    for f in &files {
        let rule = json_file(f);
        let errors = validate_rule(&rule);
        assert!(errors.is_empty(), "{}: {errors:#?}", f.display());
        let errors = contract_errors(&rule);
        assert!(errors.is_empty(), "{}: {errors:#?}", f.display());
        // Written out, not left to defaults.
        assert_eq!(rule["version"], RULE_VERSION, "{}", f.display());
        assert_eq!(rule["schemaVersion"], SCHEMA_V2ALPHA1, "{}", f.display());
        assert_eq!(rule["ruleType"], "threshold_rule");
        assert_eq!(rule["alertType"], "METRIC_BASED_ALERT");
        alerts.insert(rule["alert"].as_str().unwrap().to_owned());
    }
    assert_eq!(alerts.len(), PLAN.len(), "alert names are distinct");
}

#[test]
fn every_rule_reads_registry_metrics_and_keeps_the_plan_thresholds() {
    for f in rule_files() {
        let rule = json_file(&f);
        let errors: Vec<String> = project_errors(&rule)
            .into_iter()
            .chain(plan_errors(&rule))
            .collect();
        assert!(errors.is_empty(), "{}: {errors:#?}", f.display());
        if rule["alert"]
            .as_str()
            .unwrap()
            .starts_with("UnamentisIdlePackagePower")
        {
            let errors = idle_join_errors(&rule);
            assert!(errors.is_empty(), "{}: {errors:#?}", f.display());
        }
    }
}

// ---- tests: the checks can fail ----

fn shipped(name: &str) -> Json {
    json_file(&root().join("otel-collector/signoz/alerts").join(name))
}

fn fails(rule: &Json, needle: &str) {
    let errors = validate_rule(rule);
    assert!(
        errors.iter().any(|e| e.contains(needle)),
        "expected an error with {needle:?}, got {errors:#?}"
    );
}

/// The rule layout SigNoz stopped accepting (version v4, builderQueries):
/// what the repository shipped before.
#[test]
fn a_v4_rule_is_rejected() {
    let v4 = json_file(&root().join("tests/fixtures/signoz/v4-rule.json"));
    fails(&v4, "only v5 is supported");
    fails(&v4, "must have at least one query");
    fails(&v4, "unknown field \"builderQueries\"");
}

/// SigNoz's own valid examples (pkg/types/ruletypes/validate_test.go:
/// validV1Builder and validV2Alpha1Builder) pass: the checks here are not
/// stricter than SigNoz where SigNoz is strict.
#[test]
fn signozs_own_valid_examples_pass() {
    for name in ["signoz-valid-v1.json", "signoz-valid-v2alpha1.json"] {
        let rule = json_file(&root().join("tests/fixtures/signoz").join(name));
        let errors = validate_rule(&rule);
        assert!(errors.is_empty(), "{name}: {errors:#?}");
        // They rely on the decoder's leniency (no alertType, no panelType,
        // op "1"), which the published schema does not allow.
        let errors = contract_errors(&rule);
        for needle in ["alertType is required", "panelType is required", "op \"1\""] {
            assert!(
                errors.iter().any(|e| e.contains(needle)),
                "{name}: {needle}: {errors:#?}"
            );
        }
    }
}

/// A copy of `rule` with the value at JSON `pointer` replaced by (or, when
/// absent, set to) the JSON text `value`, or removed when `value` is None.
fn mutated(rule: &Json, pointer: &str, value: Option<&str>) -> Json {
    let mut r = rule.clone();
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let parent = r.pointer_mut(parent).unwrap_or_else(|| panic!("{pointer}"));
    match (value, parent) {
        (Some(v), Json::Array(a)) => {
            a[key.parse::<usize>().unwrap()] = serde_json::from_str(v).unwrap()
        }
        (Some(v), Json::Object(o)) => {
            o.insert(key.to_owned(), serde_json::from_str(v).unwrap());
        }
        (None, Json::Object(o)) => {
            o.remove(key).unwrap_or_else(|| panic!("{pointer}"));
        }
        _ => panic!("{pointer}"),
    }
    r
}

const Q0: &str = "/condition/compositeQuery/queries/0";
const TH: &str = "/condition/thresholds/spec/0";
const Q1: &str = "/condition/compositeQuery/queries/1";

/// One change to a valid rule, and the error SigNoz's checks give for it.
#[rustfmt::skip]
const BREAKS: &[(&str, &str, Option<&str>, &str)] = &[
    ("", "/version", Some(r#""v4""#), "only v5"),
    ("", "/schemaVersion", Some(r#""v2""#), "schemaVersion"),
    ("", "/ruleType", Some(r#""threshold""#), "ruleType"),
    ("", "/alertType", Some(r#""metric_based_alert""#), "alertType"),
    ("", "/alert", Some(r#""""#), "alert: field is required"),
    ("", "/labels/1sev", Some(r#""x""#), "invalid name"),
    ("", "/annotations/summary", Some(r#""{{ .Value }}""#), "template action"),
    ("", "/builderQueries", Some("{}"), r#"unknown field "builderQueries""#),
    ("", "/condition/thresholds", None, "thresholds: field is required"),
    ("", "/evaluation", None, "evaluation: field is required"),
    ("", "/notificationSettings", None, "notificationSettings: field is required"),
    ("", "/evaluation/spec/evalWindow", Some(r#""5 min""#), "invalid duration"),
    ("", "/evaluation/spec/frequency", Some(r#""0s""#), "greater than zero"),
    ("", "/evaluation/kind", Some(r#""sliding""#), "evaluation.kind"),
    ("", "/notificationSettings/renotify/alertStates/0", Some(r#""pending""#), "alertStates"),
    (TH, "/op", Some(r#""greater""#), ".op"),
    (TH, "/matchType", Some(r#""always""#), ".matchType"),
    (TH, "/name", Some(r#""""#), "name cannot be empty"),
    (TH, "/target", None, "target value"),
    ("", "/condition/selectedQueryName", Some(r#""F2""#), "does not match any query"),
    ("", "/condition/compositeQuery/panelType", Some(r#""chart""#), "panelType"),
    ("", "/condition/compositeQuery/queries", Some("[]"), "at least one query"),
    (Q0, "/type", Some(r#""builder""#), "unknown query type"),
    (Q0, "/id", Some(r#""x""#), r#"unknown field "id""#),
    (Q0, "/spec/aggregateOperator", Some(r#""rate""#), r#"unknown field "aggregateOperator""#),
    (Q0, "/spec/signal", Some(r#""metric""#), "invalid signal"),
    (Q0, "/spec/aggregations", Some("[]"), "at least one aggregation"),
    (Q0, "/spec/aggregations/0/spaceAggregation", Some(r#""""#), "spaceAggregation"),
    (Q0, "/spec/aggregations/0/timeAggregation", Some(r#""rate_1m""#), "timeAggregation"),
    (Q0, "/spec/aggregations/0/metricName", Some(r#""""#), "metric name is required"),
    (Q0, "/spec/groupBy/0/key", Some(r#""host.name""#), r#"unknown field "key""#),
    (Q0, "/spec/groupBy/0/name", Some(r#""timestamp""#), "timestamp"),
    (Q0, "/spec/filter/expression", Some(r#""unamentis.service != ""#), "expected a value"),
    (Q0, "/spec/filter/expression", Some(r#""unamentis.service !! 'x'""#), "lone '!'"),
    (Q0, "/spec/filter/expression", Some(r#""'ollama'""#), "full-text"),
    (Q0, "/spec/filter/items", Some("[]"), r#"unknown field "items""#),
    (Q0, "/spec/stepInterval", Some(r#""1 minute""#), "invalid step"),
    (Q0, "/spec/limit", Some("10001"), "out of range"),
    (Q0, "/spec/functions", Some("[]"), "not checked here"),
    (Q1, "/spec/expression", Some(r#""A * C""#), "names no builder query"),
    (Q1, "/spec/expression", Some(r#""A * (100""#), "failed to parse expression"),
    (Q1, "/spec/legnd", Some(r#""""#), r#"unknown field "legnd""#),
];

#[test]
fn each_signoz_rule_breaks_the_validator() {
    let good = shipped("unamentis-idle-service-cpu-high.json");
    assert!(validate_rule(&good).is_empty());
    for (base, pointer, value, needle) in BREAKS {
        let rule = mutated(&good, &format!("{base}{pointer}"), *value);
        let errors = validate_rule(&rule);
        assert!(
            errors.iter().any(|e| e.contains(needle)),
            "{base}{pointer} = {value:?}: expected {needle:?}, got {errors:#?}"
        );
    }
    // What the decoder takes but the API schema does not.
    for (pointer, value) in [
        (format!("{TH}/op"), Some(r#""1""#)),
        (format!("{TH}/matchType"), Some(r#""2""#)),
        ("/alertType".to_owned(), None),
        ("/condition/compositeQuery/panelType".to_owned(), None),
    ] {
        let rule = mutated(&good, &pointer, value);
        assert!(validate_rule(&rule).is_empty(), "{pointer}");
        assert!(!contract_errors(&rule).is_empty(), "{pointer}");
    }
}

/// Changes the registry, the plan or the per-host join refuse.
#[rustfmt::skip]
const PROJECT_BREAKS: &[(&str, &str, &str)] = &[
    ("/spec/aggregations/0/metricName", r#""unamentis.server.service.idle_cpu_seconds_total""#, "not in semconv/registry.yaml"),
    ("/spec/aggregations/0/timeAggregation", r#""avg""#, "counter"),
    ("/spec/groupBy/1/name", r#""service.name""#, "groupBy service.name"),
    ("/spec/filter/expression", r#""service != 'other'""#, "filter key service"),
];
#[rustfmt::skip]
const PLAN_BREAKS: &[(&str, &str, &str)] = &[
    ("/condition/thresholds/spec/0/target", "6", "target"),
    ("/condition/thresholds/spec/0/name", r#""critical""#, "threshold"),
    ("/condition/thresholds/spec/0/op", r#""below""#, "op"),
    ("/condition/thresholds/spec/0/targetUnit", r#""percentunit""#, "targetUnit"),
    ("/labels/severity", r#""info""#, "severity label"),
];

#[test]
fn the_project_checks_catch_wrong_metrics_keys_and_thresholds() {
    let good = shipped("unamentis-idle-service-cpu-high.json");
    assert!(project_errors(&good).is_empty() && plan_errors(&good).is_empty());
    let q0 = |p: &str| format!("{Q0}{p}");
    let changes = PROJECT_BREAKS
        .iter()
        .map(|(p, v, n)| (q0(p), *v, *n))
        .chain(PLAN_BREAKS.iter().map(|(p, v, n)| (p.to_string(), *v, *n)));
    for (pointer, value, needle) in changes {
        let r = mutated(&good, &pointer, Some(value));
        let errors: Vec<String> = project_errors(&r)
            .into_iter()
            .chain(plan_errors(&r))
            .collect();
        assert!(
            errors.iter().any(|e| e.contains(needle)),
            "{pointer} = {value}: expected {needle:?}, got {errors:#?}"
        );
    }

    let power = shipped("unamentis-idle-package-power-high.json");
    assert!(idle_join_errors(&power).is_empty());
    for (pointer, value, what) in [
        (
            "/condition/compositeQuery/queries/1/spec/groupBy",
            "[]",
            "an unjoined idle.state",
        ),
        (
            "/condition/compositeQuery/queries/2/spec/expression",
            r#""A""#,
            "power without the idle gate",
        ),
        (
            "/condition/compositeQuery/queries/0/spec/disabled",
            "false",
            "the raw power alerting too",
        ),
    ] {
        let r = mutated(&power, pointer, Some(value));
        assert!(!idle_join_errors(&r).is_empty(), "{what}");
    }
}

#[test]
fn filter_grammar_accepts_the_comparison_forms() {
    for (expr, keys) in [
        ("unamentis.service != 'other'", vec!["unamentis.service"]),
        (
            "a = 1 AND b IN ('x', \"y\") OR NOT c EXISTS",
            vec!["a", "b", "c"],
        ),
        (
            "(a >= 1.5e3 b <> true) and d not like 'x%'",
            vec!["a", "b", "d"],
        ),
        (
            "k8s.pod.name = 'x' and x between 1 and 2",
            vec!["k8s.pod.name", "x"],
        ),
        ("a NOT IN [1, 2]", vec!["a"]),
    ] {
        assert_eq!(filter_keys(expr).unwrap(), keys, "{expr}");
    }
    for bad in [
        "a =",
        "(a = 1",
        "a = 1)",
        "a 'x'",
        "= 1",
        "a between 1",
        "a in (1,",
        "a = 'x",
    ] {
        assert!(filter_keys(bad).is_err(), "{bad}");
    }
}

#[test]
fn go_durations_parse_as_time_parse_duration_does() {
    for (s, ns) in [
        ("5m", 300e9),
        ("1m0s", 60e9),
        ("1h30m", 5400e9),
        ("1.5h", 5400e9),
        ("250ms", 250e6),
        ("0", 0.0),
        ("-1s", -1e9),
    ] {
        assert_eq!(go_duration(s), Some(ns), "{s}");
    }
    for bad in ["", "5", "5 m", "5min", "m", "1.2.3s", "1d"] {
        assert_eq!(go_duration(bad), None, "{bad}");
    }
}

// ---- the dashboard ----

/// frontend/src/container/NewWidget/RightContainer/types.ts at the same
/// commit, one id a line (tests/fixtures/signoz/unit-ids.txt).
fn signoz_unit_ids() -> BTreeSet<String> {
    std::fs::read_to_string(root().join("tests/fixtures/signoz/unit-ids.txt"))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(str::to_owned)
        .collect()
}

fn dashboard() -> Json {
    json_file(&root().join("otel-collector/signoz/unamentis-dashboard.json"))
}

#[test]
fn dashboard_units_are_signoz_unit_ids() {
    let ids = signoz_unit_ids();
    assert!(ids.len() > 200 && ids.contains("watt") && ids.contains("joule"));
    assert!(
        !ids.contains("J") && !ids.contains("W"),
        "OTel units are not ids"
    );
    let dash = dashboard();
    let mut seen = 0;
    for w in dash["widgets"].as_array().unwrap() {
        if let Some(u) = w.get("yAxisUnit").and_then(Json::as_str) {
            assert!(ids.contains(u), "{}: yAxisUnit {u:?}", w["title"]);
            seen += 1;
        }
        for (col, u) in w["columnUnits"].as_object().into_iter().flatten() {
            let u = u.as_str().unwrap_or("");
            assert!(ids.contains(u), "{}: column {col} unit {u:?}", w["title"]);
        }
    }
    assert!(seen >= 4, "{seen} units checked");
}

/// The tables that promise a total over the range reduce each series with
/// `sum`: the frontend passes reduceTo to the v5 metric aggregation for
/// table panels, and SigNoz's `FunctionReduceTo` (builder_elements.go)
/// sums the per-step increases into the range's increase; `avg` would show
/// the mean increase per step.
#[test]
fn idle_total_tables_sum_the_increases_over_the_range() {
    let dash = dashboard();
    for title in ["Energy spent while idle", "Per-service CPU while idle"] {
        let w = dash["widgets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["title"] == title)
            .unwrap_or_else(|| panic!("no panel {title:?}"));
        assert_eq!(w["panelTypes"], "table", "{title}");
        for q in w["query"]["builder"]["queryData"].as_array().unwrap() {
            assert_eq!(q["timeAggregation"], "increase", "{title}");
            assert_eq!(q["reduceTo"], "sum", "{title}: a total, not a mean");
            let r = valuer(&q["reduceTo"]).unwrap();
            assert!(REDUCE_TO.contains(&r.as_str()));
        }
    }
    let energy = dash["widgets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["title"] == "Energy spent while idle")
        .unwrap();
    assert_eq!(energy["yAxisUnit"], "joule");
}
