//! The cycle's points in the Prometheus exposition formats (`GET /metrics`):
//! text format 0.0.4, or OpenMetrics 1.0 when the scraper asks for it.
//!
//! Names follow the OpenTelemetry→Prometheus compatibility translation with
//! its defaults (what Prometheus's OTLP receiver does with
//! `UnderscoreEscapingWithSuffixes`, and the Collector's prometheus
//! exporter): characters outside `[a-zA-Z0-9:]` split the name into words
//! joined by one `_`; the unit, spelled out (`By` → `bytes`, `MiBy/h` →
//! `mebibytes_per_hour`, `{…}` annotations dropped), is appended unless a
//! word of the name already is it; monotonic counters end in `_total`,
//! gauges of unit `1` in `_ratio`. So one rule matches the same series
//! however they reach Prometheus. Resource attributes go to `target_info`
//! only; `job` and `instance` are the scraper's.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::semconv::{Instrument, Metric};
use crate::snapshot::{AttrValue, Point};

/// An exposition format and its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text format 0.0.4.
    Text,
    /// OpenMetrics 1.0.0.
    OpenMetrics,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }

    /// OpenMetrics when the `Accept` header ranks `application/openmetrics-text`
    /// (version 1.0.0 or 0.0.1, the ones Prometheus asks for) at least as high
    /// as the text format (`text/plain`, `text/*`, `*/*`); the text format
    /// otherwise. Types neither can answer (Prometheus 3 ranks protobuf
    /// first) do not count.
    pub fn from_accept(accept: Option<&str>) -> Format {
        let Some(accept) = accept else {
            return Format::Text;
        };
        let (mut om, mut other) = (0.0f32, 0.0f32);
        for range in accept.split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or("").to_ascii_lowercase();
            let (mut q, mut version) = (1.0f32, None);
            for param in parts {
                if let Some((k, v)) = param.split_once('=') {
                    match k.trim().to_ascii_lowercase().as_str() {
                        "q" => q = v.trim().parse().unwrap_or(0.0),
                        "version" => version = Some(v.trim().to_owned()),
                        _ => {}
                    }
                }
            }
            match media.as_str() {
                "application/openmetrics-text"
                    if matches!(version.as_deref(), None | Some("1.0.0" | "0.0.1")) =>
                {
                    om = om.max(q);
                }
                "text/plain" | "text/*" | "*/*" => other = other.max(q),
                _ => {}
            }
        }
        if om > 0.0 && om >= other {
            Format::OpenMetrics
        } else {
            Format::Text
        }
    }
}

/// The OTLP unit as a Prometheus unit, main part and `per_` part
/// (`MiBy/h` → `mebibytes`, `per_hour`); empty where the unit gives no
/// suffix (`1`, `{packet}`).
pub fn unit_suffixes(unit: &str) -> (String, String) {
    let (main, per) = match unit.split_once('/') {
        Some((m, p)) => (m, Some(p)),
        None => (unit, None),
    };
    let annotation = |u: &str| u.contains(['{', '}']);
    let main = main.trim();
    let main = if main.is_empty() || annotation(main) {
        ""
    } else {
        unit_word(main)
    };
    let per = match per.map(str::trim) {
        Some(p) if !p.is_empty() && !annotation(p) => format!("per_{}", per_unit_word(p)),
        _ => String::new(),
    };
    (clean_unit(main), clean_unit(&per))
}

/// UCUM abbreviations the translation spells out; others stay as written.
fn unit_word(u: &str) -> &str {
    match u {
        "d" => "days",
        "h" => "hours",
        "min" => "minutes",
        "s" => "seconds",
        "ms" => "milliseconds",
        "us" => "microseconds",
        "ns" => "nanoseconds",
        "By" => "bytes",
        "KiBy" => "kibibytes",
        "MiBy" => "mebibytes",
        "GiBy" => "gibibytes",
        "TiBy" => "tibibytes",
        "KBy" => "kilobytes",
        "MBy" => "megabytes",
        "GBy" => "gigabytes",
        "TBy" => "terabytes",
        "m" => "meters",
        "V" => "volts",
        "A" => "amperes",
        "J" => "joules",
        "W" => "watts",
        "g" => "grams",
        "Cel" => "celsius",
        "Hz" => "hertz",
        "1" => "",
        "%" => "percent",
        other => other,
    }
}

/// The divisor of a rate unit, singular (`s` → `second`).
fn per_unit_word(u: &str) -> &str {
    match u {
        "s" => "second",
        "m" => "minute",
        "h" => "hour",
        "d" => "day",
        "w" => "week",
        "mo" => "month",
        "y" => "year",
        other => other,
    }
}

fn metric_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == ':'
}

/// Invalid characters to `_`, runs of `_` to one, no leading `_`.
fn clean_unit(u: &str) -> String {
    let mut out = String::with_capacity(u.len());
    for c in u.chars() {
        let c = if metric_char(c) { c } else { '_' };
        if !(c == '_' && (out.is_empty() || out.ends_with('_'))) {
            out.push(c);
        }
    }
    out
}

/// The Prometheus name of a metric; `None` when nothing valid is left of
/// it (a name of only invalid characters).
pub fn metric_name(name: &str, unit: &str, instrument: Instrument) -> Option<String> {
    let mut words: Vec<&str> = name
        .split(|c| !metric_char(c))
        .filter(|w| !w.is_empty())
        .collect();
    let (main, per) = unit_suffixes(unit);
    let main = if words.contains(&main.as_str()) {
        ""
    } else {
        main.as_str()
    };
    let per = match per.as_str() {
        "per_" => "",
        p => {
            let p = p.strip_suffix('_').unwrap_or(p);
            if words.contains(&p) { "" } else { p }
        }
    };
    let main = if per.is_empty() {
        main
    } else {
        main.strip_suffix('_').unwrap_or(main)
    };
    words.extend([main, per].into_iter().filter(|w| !w.is_empty()));
    // Counters of objects sometimes carry unit "1": `_ratio` is for gauges.
    let suffix = match instrument {
        Instrument::Counter => Some("total"),
        Instrument::Gauge if unit == "1" => Some("ratio"),
        _ => None,
    };
    if let Some(s) = suffix {
        words.retain(|w| *w != s);
        words.push(s);
    }
    let mut out = words.join("_");
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    (!out.is_empty()).then_some(out)
}

/// The unit metadata of an OpenMetrics family, when its name ends in it
/// (OpenMetrics requires that).
fn unit_metadata(family: &str, unit: &str, instrument: Instrument) -> Option<String> {
    let u = if unit == "1" && instrument == Instrument::Gauge {
        "ratio".to_owned()
    } else {
        let (main, per) = unit_suffixes(unit);
        let u = match (main.is_empty(), per.is_empty()) {
            (false, false) => format!("{main}_{per}"),
            (false, true) => main,
            _ => per,
        };
        u.trim_matches('_').to_owned()
    };
    let ends = family
        .strip_suffix(u.as_str())
        .is_some_and(|head| head.ends_with('_'));
    (!u.is_empty() && ends).then_some(u)
}

/// The Prometheus label name of an attribute key: characters outside
/// `[a-zA-Z0-9]` (`_` included) become one `_` per run, `__x__` keeps its
/// double underscores, a leading digit gets `key_`. `None` for an empty
/// key or one of only underscores.
pub fn label_name(key: &str) -> Option<String> {
    let reserved = key.len() >= 4 && key.starts_with("__") && key.ends_with("__");
    let inner = if reserved {
        &key[2..key.len() - 2]
    } else {
        key
    };
    let mut out = String::with_capacity(key.len() + 4);
    if reserved {
        out.push_str("__");
    }
    let mut prev_underscore = false;
    for c in inner.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c);
            prev_underscore = false;
        } else if !prev_underscore {
            out.push('_');
            prev_underscore = true;
        }
    }
    if reserved {
        out.push_str("__");
    }
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert_str(0, "key_");
    }
    (!out.is_empty() && !out.chars().all(|c| c == '_')).then_some(out)
}

/// Attributes as labels. Keys that become the same label have their values
/// joined with `;` in the order of the original keys, as the translation
/// says; a key with nothing valid in it is dropped.
pub fn labels<'a>(attrs: impl IntoIterator<Item = (&'a str, String)>) -> Vec<(String, String)> {
    let mut attrs: Vec<(&str, String)> = attrs.into_iter().collect();
    attrs.sort_by(|a, b| a.0.cmp(b.0));
    let mut out: Vec<(String, String)> = Vec::with_capacity(attrs.len());
    for (key, value) in attrs {
        let Some(name) = label_name(key) else {
            continue;
        };
        match out.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => {
                v.push(';');
                v.push_str(&value);
            }
            None => out.push((name, value)),
        }
    }
    out
}

fn push_label_value(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn push_help(out: &mut String, help: &str, format: Format) {
    for c in help.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if format == Format::OpenMetrics => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

fn push_value(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else {
        let _ = write!(out, "{v}");
    }
}

fn push_sample(out: &mut String, name: &str, labels: &[(String, String)], value: f64) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(k);
            out.push_str("=\"");
            push_label_value(out, v);
            out.push('"');
        }
        out.push('}');
    }
    out.push(' ');
    push_value(out, value);
    out.push('\n');
}

/// The label every point carries: the meter's instrumentation scope.
pub const SCOPE_LABEL: &str = "otel_scope_name";

/// Renders `points` (one cycle's) and the resource as `target_info`. Points
/// of one metric form one family wherever they sit in `points`; families
/// keep the order of their first point.
pub fn render(
    points: &[Point],
    resource: &BTreeMap<String, String>,
    scope: &str,
    format: Format,
) -> String {
    let mut families: Vec<(&'static Metric, Vec<&Point>)> = Vec::new();
    for p in points {
        match families
            .iter_mut()
            .find(|(m, _)| std::ptr::eq(*m, p.metric))
        {
            Some((_, ps)) => ps.push(p),
            None => families.push((p.metric, vec![p])),
        }
    }
    let mut out = String::with_capacity(256 + points.len() * 160);
    for (metric, ps) in families {
        let Some(name) = metric_name(metric.name, metric.unit, metric.instrument) else {
            continue;
        };
        let (kind, family) = match metric.instrument {
            Instrument::Counter => ("counter", name.strip_suffix("_total").unwrap_or(&name)),
            Instrument::Gauge | Instrument::UpDownCounter => ("gauge", name.as_str()),
        };
        match format {
            Format::Text => {
                let _ = write!(out, "# HELP {name} ");
                push_help(&mut out, metric.brief, format);
                let _ = write!(out, "\n# TYPE {name} {kind}\n");
            }
            Format::OpenMetrics => {
                let _ = writeln!(out, "# TYPE {family} {kind}");
                if let Some(u) = unit_metadata(family, metric.unit, metric.instrument) {
                    let _ = writeln!(out, "# UNIT {family} {u}");
                }
                let _ = write!(out, "# HELP {family} ");
                push_help(&mut out, metric.brief, format);
                out.push('\n');
            }
        }
        for p in ps {
            let mut ls = labels(p.attrs.iter().map(|(k, v)| {
                let v = match v {
                    AttrValue::Str(s) => s.clone(),
                    AttrValue::Int(i) => i.to_string(),
                };
                (*k, v)
            }));
            ls.push((SCOPE_LABEL.to_owned(), scope.to_owned()));
            push_sample(&mut out, &name, &ls, p.value);
        }
    }
    let target = labels(resource.iter().map(|(k, v)| (k.as_str(), v.clone())));
    let help = "Target metadata: the agent's OpenTelemetry resource attributes";
    match format {
        Format::Text => {
            let _ = write!(out, "# HELP target_info {help}\n# TYPE target_info gauge\n");
        }
        Format::OpenMetrics => {
            let _ = write!(out, "# TYPE target info\n# HELP target {help}\n");
        }
    }
    push_sample(&mut out, "target_info", &target, 1.0);
    if format == Format::OpenMetrics {
        out.push_str("# EOF\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::semconv::{self, Instrument::*};

    #[test]
    #[rustfmt::skip]
    fn names_from_the_translation_tests() {
        // Cases of the OpenTelemetry→Prometheus translation's own tests
        // (otlptranslator metric_namer_test, the spec's examples), then this
        // registry's tricky ones.
        let cases = [
            ("requests", "", Counter, "requests_total"),
            ("cpu_usage", "1", Gauge, "cpu_usage_ratio"),
            ("items", "1", Counter, "items_total"),
            ("response_time", "ms", Gauge, "response_time_milliseconds"),
            ("memory_usage", "By", Gauge, "memory_usage_bytes"),
            ("requests", "1/s", Gauge, "requests_per_second"),
            ("throughput", "By/s", Gauge, "throughput_bytes_per_second"),
            ("custom_metric", "custom_unit", Gauge, "custom_metric_custom_unit"),
            ("custom_metric", "{custom}", Gauge, "custom_metric"),
            ("custom_metric", "By/{custom}", Gauge, "custom_metric_bytes"),
            ("cpu_usage_ratio", "1", Gauge, "cpu_usage_ratio"),
            ("response_time_seconds", "s", Gauge, "response_time_seconds"),
            ("cpu_seconds_total", "s", Counter, "cpu_seconds_total"),
            ("metric__with__multiple__underscores", "unit__multiple__underscores", Gauge, "metric_with_multiple_underscores_unit_multiple_underscores"),
            ("custom_metric", "unit@with#special/chars", Gauge, "custom_metric_unit_with_special_per_chars"),
            ("system.filesystem.usage", "By", Gauge, "system_filesystem_usage_bytes"),
            ("active_directory.ds.replication.network.io", "By", Counter, "active_directory_ds_replication_network_io_bytes_total"),
            ("system.network.dropped", "{packets}", Counter, "system_network_dropped_total"),
            ("system.network.io", "By", Counter, "system_network_io_bytes_total"),
            ("system.processes.count", "{processes}", UpDownCounter, "system_processes_count"),
            ("system.cpu.utilization", "1", Gauge, "system_cpu_utilization_ratio"),
            ("system.disk.operation_time", "s", Counter, "system_disk_operation_time_seconds_total"),
            ("http.server.duration", "ms", Counter, "http_server_duration_milliseconds_total"),
            ("foo.bar", "1", Counter, "foo_bar_total"),
            ("requests", "{request}", Counter, "requests_total"),
            ("requests_total", "", Counter, "requests_total"),
            ("total_requests", "", Counter, "requests_total"),
            ("ratio_of_x", "1", Gauge, "of_x_ratio"),
            ("speed", "m/s", Gauge, "speed_meters_per_second"),
            ("throughput", "By/s", Counter, "throughput_bytes_per_second_total"),
            ("x", "1/s", Gauge, "x_per_second"),
            ("x", "/s", Gauge, "x_per_second"),
            ("x", "{req}/s", Gauge, "x_per_second"),
            ("x", "s/{req}", Gauge, "x_seconds"),
            ("x", "foo bar", Gauge, "x_foo_bar"),
            ("x", "%", Gauge, "x_percent"),
            ("x", " s ", Gauge, "x_seconds"),
            ("x_seconds", "s", Gauge, "x_seconds"),
            ("2xx.responses", "", Counter, "_2xx_responses_total"),
            ("a..b__c", "", Gauge, "a_b_c"),
            ("héllo.wörld", "", Gauge, "h_llo_w_rld"),
            ("ns:metric", "", Gauge, "ns:metric"),
            ("unamentis.server.idle.state", "1", Gauge, "unamentis_server_idle_state_ratio"),
            ("unamentis.server.power.package_watts", "W", Gauge, "unamentis_server_power_package_watts"),
            ("unamentis.server.energy.joules", "J", Counter, "unamentis_server_energy_joules_total"),
            ("unamentis.server.memory.used_mb", "MiBy", Gauge, "unamentis_server_memory_used_mb_mebibytes"),
            ("unamentis.server.service.memory_growth_mb_per_hour", "MiBy/h", Gauge, "unamentis_server_service_memory_growth_mb_per_hour_mebibytes_per_hour"),
            ("unamentis.server.thermal.pressure", "{level}", Gauge, "unamentis_server_thermal_pressure"),
            ("unamentis.server.gpu.temperature", "Cel", Gauge, "unamentis_server_gpu_temperature_celsius"),
            ("system.cpu.load_average.1m", "{thread}", Gauge, "system_cpu_load_average_1m"),
            ("system.memory.usage", "By", UpDownCounter, "system_memory_usage_bytes"),
        ];
        for (name, unit, inst, want) in cases {
            assert_eq!(
                metric_name(name, unit, inst).as_deref(),
                Some(want),
                "{name} [{unit}] {inst:?}"
            );
        }
        assert_eq!(metric_name("@#$%", "", Gauge), None);
        assert_eq!(metric_name("...", "", Gauge), None);
        assert_eq!(metric_name("", "", Gauge), None);
    }

    #[test]
    fn units_spelled_out() {
        let cases = [
            ("s", "seconds", ""),
            ("By/s", "bytes", "per_second"),
            ("MiBy/h", "mebibytes", "per_hour"),
            ("{packet}", "", ""),
            ("1", "", ""),
            ("W", "watts", ""),
            ("J", "joules", ""),
            ("Cel", "celsius", ""),
            ("%", "percent", ""),
            ("km", "km", ""),
            ("1/mo", "", "per_month"),
            ("_x__y", "x_y", ""),
        ];
        for (unit, main, per) in cases {
            assert_eq!(
                unit_suffixes(unit),
                (main.to_owned(), per.to_owned()),
                "{unit}"
            );
        }
    }

    #[test]
    #[rustfmt::skip]
    fn label_names_from_the_translation_tests() {
        let cases = [
            ("host.name", Some("host_name")),
            ("service.instance.id", Some("service_instance_id")),
            ("unamentis.service", Some("unamentis_service")),
            ("label:with:colons", Some("label_with_colons")),
            ("LabelWithCapitalLetters", Some("LabelWithCapitalLetters")),
            ("label!with&special$chars)", Some("label_with_special_chars_")),
            ("label_with_foreign_characters_字符", Some("label_with_foreign_characters_")),
            ("label.with.dots", Some("label_with_dots")),
            ("123label", Some("key_123label")),
            ("_label_starting_with_underscore", Some("_label_starting_with_underscore")),
            ("__label_starting_with_2underscores", Some("_label_starting_with_2underscores")),
            ("__reserved__", Some("__reserved__")),
            ("__res..erved__", Some("__res_erved__")),
            ("a__b", Some("a_b")),
            (".foo", Some("_foo")),
            ("ようこそ", None),
            ("label__with__double__underscores", Some("label_with_double_underscores")),
            ("label.name__with&&special##chars", Some("label_name_with_special_chars")),
            ("__reserved__label__name__", Some("__reserved_label_name__")),
            ("trailing_underscores___", Some("trailing_underscores_")),
            ("__", None),
            ("", None),
            ("___", None),
            ("...", None),
        ];
        for (key, want) in cases {
            assert_eq!(label_name(key).as_deref(), want, "{key:?}");
        }
    }

    #[test]
    fn colliding_keys_join_their_values_in_key_order() {
        let got = labels([
            ("a_b", "2".to_owned()),
            ("a.b", "1".to_owned()),
            ("c", "3".to_owned()),
            ("...", "dropped".to_owned()),
        ]);
        assert_eq!(
            got,
            vec![
                ("a_b".to_owned(), "1;2".to_owned()),
                ("c".to_owned(), "3".to_owned())
            ]
        );
    }

    #[test]
    fn every_registry_metric_has_a_distinct_name() {
        let mut seen = std::collections::BTreeMap::new();
        for m in semconv::ALL {
            let n = metric_name(m.name, m.unit, m.instrument).unwrap();
            assert!(
                n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
                "{n}"
            );
            if let Some(other) = seen.insert(n.clone(), m.name) {
                panic!("{} and {other} both become {n}", m.name);
            }
        }
    }

    #[test]
    fn accept_header() {
        let prom2 = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        let prom3 = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.5,application/openmetrics-text;version=1.0.0;escaping=underscores;q=0.4,application/openmetrics-text;version=0.0.1;q=0.3,text/plain;version=1.0.0;escaping=underscores;q=0.2,text/plain;version=0.0.4;q=0.1,*/*;q=0.09";
        let cases = [
            (None, Format::Text),
            (Some("*/*"), Format::Text),
            (Some("text/plain"), Format::Text),
            (Some(prom2), Format::OpenMetrics),
            (Some(prom3), Format::OpenMetrics),
            (Some("application/json"), Format::Text),
            (Some("application/openmetrics-text"), Format::OpenMetrics),
            (
                Some("Application/OpenMetrics-Text; version=1.0.0"),
                Format::OpenMetrics,
            ),
            (
                Some("application/openmetrics-text;version=2.0.0"),
                Format::Text,
            ),
            (Some("application/openmetrics-text;q=0"), Format::Text),
            (
                Some("text/plain;q=1,application/openmetrics-text;q=0.5"),
                Format::Text,
            ),
        ];
        for (accept, want) in cases {
            assert_eq!(Format::from_accept(accept), want, "{accept:?}");
        }
    }

    fn sample_points() -> Vec<Point> {
        vec![
            Point::new(&semconv::SERVICE_CPU_PERCENT, 12.5)
                .with(crate::semconv::attr::UNAMENTIS_SERVICE, "we\"ird\\name\nx"),
            Point::new(&semconv::ENERGY_JOULES, 3.25).with(semconv::attr::DOMAIN, "package"),
            Point::new(&semconv::IDLE_STATE, 1.0),
            Point::new(&semconv::SERVICE_CPU_PERCENT, 0.0)
                .with(crate::semconv::attr::UNAMENTIS_SERVICE, "other"),
            Point::new(&semconv::GPU_TEMPERATURE, f64::NAN)
                .with(semconv::attr::GPU_INDEX, AttrValue::Int(0)),
        ]
    }

    #[test]
    fn text_format() {
        let resource = BTreeMap::from([
            ("host.name".to_owned(), "box".to_owned()),
            ("service.instance.id".to_owned(), "id-1".to_owned()),
        ]);
        let out = render(&sample_points(), &resource, "s", Format::Text);
        let svc = "unamentis_server_service_cpu_percent";
        let want_lines = [
            format!("# TYPE {svc} gauge"),
            format!(
                "{svc}{{unamentis_service=\"we\\\"ird\\\\name\\nx\",otel_scope_name=\"s\"}} 12.5"
            ),
            format!("{svc}{{unamentis_service=\"other\",otel_scope_name=\"s\"}} 0"),
            "# TYPE unamentis_server_energy_joules_total counter".to_owned(),
            "unamentis_server_energy_joules_total{domain=\"package\",otel_scope_name=\"s\"} 3.25"
                .to_owned(),
            "unamentis_server_idle_state_ratio{otel_scope_name=\"s\"} 1".to_owned(),
            "unamentis_server_gpu_temperature_celsius{gpu_index=\"0\",otel_scope_name=\"s\"} NaN"
                .to_owned(),
            "# TYPE target_info gauge".to_owned(),
            "target_info{host_name=\"box\",service_instance_id=\"id-1\"} 1".to_owned(),
        ];
        let lines: Vec<&str> = out.lines().collect();
        for want in &want_lines {
            assert!(lines.contains(&want.as_str()), "no {want:?} in\n{out}");
        }
        // One family per metric, its two points together.
        assert_eq!(out.matches(&format!("# TYPE {svc} ")).count(), 1);
        let first = lines
            .iter()
            .position(|l| l.starts_with(&format!("{svc}{{")))
            .unwrap();
        assert!(lines[first + 1].starts_with(&format!("{svc}{{")), "{out}");
        assert!(!out.contains("# EOF") && !out.contains("# UNIT"));
    }

    #[test]
    fn openmetrics_format() {
        let out = render(&sample_points(), &BTreeMap::new(), "s", Format::OpenMetrics);
        for want in [
            "# TYPE unamentis_server_energy_joules counter",
            "# UNIT unamentis_server_energy_joules joules",
            "# HELP unamentis_server_energy_joules ",
            "unamentis_server_energy_joules_total{domain=\"package\",otel_scope_name=\"s\"} 3.25",
            "# TYPE unamentis_server_idle_state_ratio gauge",
            "# UNIT unamentis_server_idle_state_ratio ratio",
            "# UNIT unamentis_server_service_cpu_percent percent",
            "# TYPE target info",
            "target_info 1",
        ] {
            assert!(
                out.lines().any(|l| l.starts_with(want)),
                "no {want:?} in\n{out}"
            );
        }
        assert!(out.ends_with("\n# EOF\n"), "{out}");
    }

    #[test]
    fn unit_metadata_only_as_a_suffix() {
        assert_eq!(
            unit_metadata("x_seconds", "s", Gauge).as_deref(),
            Some("seconds")
        );
        assert_eq!(
            unit_metadata("g_mebibytes_per_hour", "MiBy/h", Gauge).as_deref(),
            Some("mebibytes_per_hour")
        );
        assert_eq!(unit_metadata("seconds_x", "s", Gauge), None);
        assert_eq!(unit_metadata("xseconds", "s", Gauge), None);
        assert_eq!(unit_metadata("x", "{thing}", Gauge), None);
        assert_eq!(unit_metadata("x", "1", Counter), None);
    }
}
