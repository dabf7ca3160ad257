//! One cycle's points as an OTLP `ExportMetricsServiceRequest`, encoded
//! straight from the points.
//!
//! Every registry metric is what OpenTelemetry calls an asynchronous
//! instrument: the agent reads a value (a counter's total, a gauge's
//! level) once a cycle instead of adding up measurements, so there is
//! nothing to aggregate between cycles. What the metrics SDK would add on
//! top (one series map per instrument, a reader thread) is left out; the
//! wire format is the same as its cumulative output:
//! - one `ResourceMetrics` with one scope, named after the agent;
//! - one `Metric` per registry metric that has points this cycle, in the
//!   order the points first name it; a metric without points is left out;
//! - gauges as `Gauge`, counters as a monotonic cumulative `Sum`,
//!   up-down counters as a non-monotonic cumulative `Sum`;
//! - every point stamped with the agent's start (`start_time_unix_nano`)
//!   and the cycle's time (`time_unix_nano`);
//! - attributes sorted by key; two points of one metric with the same
//!   attributes are one series, the later value wins (as the SDK's
//!   asynchronous instruments do).
//!
//! The format: opentelemetry-proto's `metrics.proto`,
//! <https://opentelemetry.io/docs/specs/otel/metrics/data-model/>.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Metric as ProtoMetric, NumberDataPoint, ResourceMetrics,
    ScopeMetrics, Sum, metric::Data, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;

use crate::point::{AttrValue, Point};
use crate::semconv::{Instrument, Metric, ValueType};

/// Encodes cycles of one agent run: the resource, the scope and the start
/// time stay; the points and the time change every cycle.
#[derive(Debug, Clone)]
pub struct Encoder {
    resource: Resource,
    scope: InstrumentationScope,
    start_unix_nano: u64,
    descriptions: bool,
}

impl Encoder {
    /// `resource`: the resource attributes in precedence order (a later
    /// entry of a key wins). `scope`: the instrumentation scope's name.
    /// `descriptions`: send each metric's registry brief.
    pub fn new(
        resource: impl IntoIterator<Item = (String, String)>,
        scope: &str,
        descriptions: bool,
        start: SystemTime,
    ) -> Self {
        let attrs: BTreeMap<String, String> = resource.into_iter().collect();
        Encoder {
            resource: Resource {
                attributes: attrs
                    .into_iter()
                    .map(|(k, v)| key_value(k, any_value::Value::StringValue(v)))
                    .collect(),
                ..Resource::default()
            },
            scope: InstrumentationScope {
                name: scope.to_owned(),
                ..InstrumentationScope::default()
            },
            start_unix_nano: unix_nanos(start),
            descriptions,
        }
    }

    /// The encoded request for the points of one cycle collected at `at`.
    pub fn encode(&self, points: &[Point], at: SystemTime) -> Vec<u8> {
        self.request(points, at).encode_to_vec()
    }

    /// The request itself (what [`Encoder::encode`] encodes).
    pub fn request(&self, points: &[Point], at: SystemTime) -> ExportMetricsServiceRequest {
        let time = unix_nanos(at);
        let metrics = group(points)
            .into_iter()
            .map(|(metric, points)| self.metric(metric, &points, time))
            .collect();
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(self.resource.clone()),
                scope_metrics: vec![ScopeMetrics {
                    scope: Some(self.scope.clone()),
                    metrics,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        }
    }

    fn metric(&self, metric: &Metric, points: &[&Point], time: u64) -> ProtoMetric {
        let data_points = series(points)
            .into_iter()
            .map(|(attributes, v)| NumberDataPoint {
                attributes,
                start_time_unix_nano: self.start_unix_nano,
                time_unix_nano: time,
                value: Some(value(metric, v)),
                ..NumberDataPoint::default()
            })
            .collect();
        let data = match metric.instrument {
            Instrument::Gauge => Data::Gauge(Gauge { data_points }),
            Instrument::Counter | Instrument::UpDownCounter => Data::Sum(Sum {
                data_points,
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                is_monotonic: metric.instrument == Instrument::Counter,
            }),
        };
        ProtoMetric {
            name: metric.name.to_owned(),
            description: if self.descriptions {
                metric.brief.to_owned()
            } else {
                String::new()
            },
            unit: metric.unit.to_owned(),
            data: Some(data),
            ..ProtoMetric::default()
        }
    }
}

/// The points by metric, metrics in the order the points first name them.
fn group(points: &[Point]) -> Vec<(&'static Metric, Vec<&Point>)> {
    let mut out: Vec<(&'static Metric, Vec<&Point>)> = Vec::new();
    for p in points {
        // A family writes a metric's points together, so the metric is
        // most often the last one seen; a metric is one static of the
        // registry, compared by address.
        let i = match out.iter().rposition(|(m, _)| std::ptr::eq(*m, p.metric)) {
            Some(i) => i,
            None => {
                out.push((p.metric, Vec::new()));
                out.len() - 1
            }
        };
        out[i].1.push(p);
    }
    out
}

/// A point's attributes sorted by key, a key's last value kept (as the
/// SDK would).
type AttrSet<'a> = Vec<(&'static str, &'a AttrValue)>;

fn attr_set(p: &Point) -> AttrSet<'_> {
    let mut attrs: AttrSet<'_> = p.attrs.iter().map(|(k, v)| (*k, v)).collect();
    // Stable sort, then the last of a run of one key.
    attrs.sort_by_key(|(k, _)| *k);
    attrs.reverse();
    attrs.dedup_by_key(|(k, _)| *k);
    attrs.reverse();
    attrs
}

/// One metric's series: its points' attribute sets, each with the last
/// value given for it, in first-seen order.
fn series(points: &[&Point]) -> Vec<(Vec<KeyValue>, f64)> {
    let mut sets: Vec<(AttrSet<'_>, f64)> = points.iter().map(|p| (attr_set(p), p.value)).collect();
    merge_duplicates(&mut sets);
    sets.into_iter()
        .map(|(attrs, v)| {
            let kvs = attrs
                .into_iter()
                .map(|(k, v)| key_value(k.to_owned(), attr_value(v)))
                .collect();
            (kvs, v)
        })
        .collect()
}

/// Points with equal attribute sets are one series: the first one's
/// place, the last one's value. Found by sorting indices, not hashing:
/// a cycle has a few hundred points and duplicates are rare.
fn merge_duplicates(sets: &mut Vec<(AttrSet<'_>, f64)>) {
    if sets.len() < 2 {
        return;
    }
    let mut order: Vec<usize> = (0..sets.len()).collect();
    order.sort_by(|&a, &b| sets[a].0.cmp(&sets[b].0).then(a.cmp(&b)));
    let mut keep = vec![true; sets.len()];
    let mut last_values = Vec::new();
    for run in order.chunk_by(|&a, &b| sets[a].0 == sets[b].0) {
        // Equal sets, in point order.
        if let [first, .., last] = run {
            last_values.push((*first, sets[*last].1));
            for &i in &run[1..] {
                keep[i] = false;
            }
        }
    }
    for (i, v) in last_values {
        sets[i].1 = v;
    }
    let mut i = 0;
    sets.retain(|_| {
        i += 1;
        keep[i - 1]
    });
}

fn key_value(key: String, value: any_value::Value) -> KeyValue {
    KeyValue {
        key,
        value: Some(AnyValue { value: Some(value) }),
        ..KeyValue::default()
    }
}

fn attr_value(v: &AttrValue) -> any_value::Value {
    match v {
        AttrValue::Str(s) => any_value::Value::StringValue(s.clone()),
        AttrValue::Int(i) => any_value::Value::IntValue(*i),
    }
}

/// A point's value in the metric's type. An `Int` metric's values are
/// whole numbers (bytes, counts): rounding drops nothing, and the cast
/// saturates at the type's range; a counter never goes below zero.
fn value(metric: &Metric, v: f64) -> number_data_point::Value {
    match (metric.value_type, metric.instrument) {
        (ValueType::Double, _) => number_data_point::Value::AsDouble(v),
        (ValueType::Int, Instrument::Counter) => {
            number_data_point::Value::AsInt(v.round().max(0.0) as i64)
        }
        (ValueType::Int, _) => number_data_point::Value::AsInt(v.round() as i64),
    }
}

fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::semconv::{self, attr};
    use std::time::Duration;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn encoder(descriptions: bool) -> Encoder {
        Encoder::new(
            [
                ("service.name".to_owned(), "first".to_owned()),
                ("host.name".to_owned(), "h".to_owned()),
                ("service.name".to_owned(), "second".to_owned()),
            ],
            "scope-name",
            descriptions,
            at(100),
        )
    }

    fn one(req: &ExportMetricsServiceRequest) -> (&Resource, &ScopeMetrics) {
        assert_eq!(req.resource_metrics.len(), 1);
        let rm = &req.resource_metrics[0];
        assert_eq!(rm.scope_metrics.len(), 1);
        (rm.resource.as_ref().unwrap(), &rm.scope_metrics[0])
    }

    fn find<'a>(sm: &'a ScopeMetrics, name: &str) -> &'a ProtoMetric {
        sm.metrics.iter().find(|m| m.name == name).unwrap()
    }

    fn points_of(m: &ProtoMetric) -> &[NumberDataPoint] {
        match m.data.as_ref().unwrap() {
            Data::Gauge(g) => &g.data_points,
            Data::Sum(s) => &s.data_points,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn resource_scope_and_times() {
        let pts = [Point::new(&semconv::MEMORY_TOTAL_MB, 1024.0)];
        let req = encoder(false).request(&pts, at(160));
        let (res, sm) = one(&req);
        let res: Vec<(&str, &str)> = res
            .attributes
            .iter()
            .map(
                |kv| match kv.value.as_ref().unwrap().value.as_ref().unwrap() {
                    any_value::Value::StringValue(s) => (kv.key.as_str(), s.as_str()),
                    other => panic!("{other:?}"),
                },
            )
            .collect();
        assert_eq!(res, [("host.name", "h"), ("service.name", "second")]);
        assert_eq!(sm.scope.as_ref().unwrap().name, "scope-name");
        let m = find(sm, semconv::MEMORY_TOTAL_MB.name);
        assert_eq!(m.unit, semconv::MEMORY_TOTAL_MB.unit);
        assert_eq!(m.description, "");
        let p = &points_of(m)[0];
        assert_eq!(p.start_time_unix_nano, 100_000_000_000);
        assert_eq!(p.time_unix_nano, 160_000_000_000);
    }

    #[test]
    fn instrument_kinds_and_value_types_follow_the_registry() {
        for &metric in semconv::ALL {
            let pts = [Point::new(metric, 2.6)];
            let req = encoder(true).request(&pts, at(1));
            let m = &one(&req).1.metrics[0];
            assert_eq!(m.description, metric.brief, "{}", metric.name);
            match (metric.instrument, m.data.as_ref().unwrap()) {
                (Instrument::Gauge, Data::Gauge(_)) => {}
                (Instrument::Counter | Instrument::UpDownCounter, Data::Sum(s)) => {
                    assert_eq!(
                        s.is_monotonic,
                        metric.instrument == Instrument::Counter,
                        "{}",
                        metric.name
                    );
                    assert_eq!(
                        s.aggregation_temporality,
                        AggregationTemporality::Cumulative as i32
                    );
                }
                (i, d) => panic!("{}: {i:?} sent as {d:?}", metric.name),
            }
            let want = match metric.value_type {
                ValueType::Double => number_data_point::Value::AsDouble(2.6),
                ValueType::Int => number_data_point::Value::AsInt(3),
            };
            assert_eq!(points_of(m)[0].value, Some(want), "{}", metric.name);
        }
    }

    fn int_metric(instrument: Instrument) -> Metric {
        Metric {
            name: "m",
            instrument,
            unit: "1",
            value_type: ValueType::Int,
            brief: "",
            attributes: &[],
        }
    }

    #[test]
    fn int_values_round_and_saturate_counters_never_negative() {
        use number_data_point::Value::AsInt;
        let counter = int_metric(Instrument::Counter);
        let gauge = int_metric(Instrument::Gauge);
        let up_down = int_metric(Instrument::UpDownCounter);
        assert_eq!(value(&counter, -3.0), AsInt(0));
        assert_eq!(value(&counter, 2.5), AsInt(3));
        assert_eq!(value(&counter, 1e30), AsInt(i64::MAX));
        assert_eq!(value(&gauge, -2.5), AsInt(-3));
        assert_eq!(value(&gauge, -1e30), AsInt(i64::MIN));
        assert_eq!(value(&up_down, -4.4), AsInt(-4));
    }

    #[test]
    fn series_sorted_by_key_and_one_per_attribute_set() {
        let m = &semconv::SERVICE_CPU_PERCENT;
        let pts = [
            Point::new(m, 1.0)
                .with(attr::UNAMENTIS_SERVICE, "b")
                .with(attr::PROCESS_PID, AttrValue::Int(0)),
            Point::new(m, 2.0).with(attr::UNAMENTIS_SERVICE, "a"),
            // The same set as the first, keys in another order: one series,
            // this later value.
            Point::new(m, 3.0)
                .with(attr::PROCESS_PID, AttrValue::Int(0))
                .with(attr::UNAMENTIS_SERVICE, "b"),
            Point::new(&semconv::MEMORY_TOTAL_MB, 9.0),
        ];
        let req = encoder(false).request(&pts, at(1));
        let sm = one(&req).1;
        let names: Vec<&str> = sm.metrics.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, [m.name, semconv::MEMORY_TOTAL_MB.name]);
        let got: Vec<(Vec<&str>, f64)> = points_of(&sm.metrics[0])
            .iter()
            .map(|p| {
                let keys = p.attributes.iter().map(|kv| kv.key.as_str()).collect();
                let v = match p.value {
                    Some(number_data_point::Value::AsDouble(v)) => v,
                    other => panic!("{other:?}"),
                };
                (keys, v)
            })
            .collect();
        assert_eq!(
            got,
            [
                (vec![attr::PROCESS_PID, attr::UNAMENTIS_SERVICE], 3.0),
                (vec![attr::UNAMENTIS_SERVICE], 2.0)
            ]
        );
        let first = &points_of(&sm.metrics[0])[0].attributes[0];
        assert_eq!(
            first.value.as_ref().unwrap().value,
            Some(any_value::Value::IntValue(0))
        );
    }

    #[test]
    fn no_points_no_metrics_and_the_bytes_decode() {
        let e = encoder(false);
        let bytes = e.encode(&[], at(5));
        let req = ExportMetricsServiceRequest::decode(bytes.as_slice()).unwrap();
        assert!(one(&req).1.metrics.is_empty());
        let pts = [Point::new(&semconv::MEMORY_TOTAL_MB, 1.0)];
        let bytes = e.encode(&pts, at(5));
        assert_eq!(
            ExportMetricsServiceRequest::decode(bytes.as_slice()).unwrap(),
            e.request(&pts, at(5))
        );
    }

    /// The series of any list of points, against a plain quadratic
    /// reading of the rule: one series per attribute set (a key's last
    /// value), in first-seen order, with the last value given for it.
    fn naive(points: &[&Point]) -> Vec<(Vec<(String, AttrValue)>, f64)> {
        let mut out: Vec<(Vec<(String, AttrValue)>, f64)> = Vec::new();
        for p in points {
            let mut attrs: Vec<(String, AttrValue)> = Vec::new();
            for (k, v) in &p.attrs {
                attrs.retain(|(k2, _)| k2 != k);
                attrs.push(((*k).to_owned(), v.clone()));
            }
            attrs.sort_by(|a, b| a.0.cmp(&b.0));
            match out.iter_mut().find(|(a, _)| *a == attrs) {
                Some(s) => s.1 = p.value,
                None => out.push((attrs, p.value)),
            }
        }
        out
    }

    fn plain(series: Vec<(Vec<KeyValue>, f64)>) -> Vec<(Vec<(String, AttrValue)>, f64)> {
        series
            .into_iter()
            .map(|(kvs, v)| {
                let attrs = kvs
                    .into_iter()
                    .map(|kv| {
                        let value = match kv.value.unwrap().value.unwrap() {
                            any_value::Value::StringValue(s) => AttrValue::Str(s),
                            any_value::Value::IntValue(i) => AttrValue::Int(i),
                            other => panic!("{other:?}"),
                        };
                        (kv.key, value)
                    })
                    .collect();
                (attrs, v)
            })
            .collect()
    }

    proptest::proptest! {
        #[test]
        fn series_match_the_plain_rule(
            raw in proptest::collection::vec(
                (proptest::collection::vec((0usize..3, 0i64..3, proptest::bool::ANY), 0..4), 0u32..100),
                0..40,
            )
        ) {
            const KEYS: [&str; 3] = [attr::UNAMENTIS_SERVICE, attr::PROCESS_PID, attr::CPU];
            let points: Vec<Point> = raw
                .iter()
                .map(|(attrs, v)| {
                    let mut p = Point::new(&semconv::SERVICE_CPU_PERCENT, f64::from(*v));
                    for (k, n, text) in attrs {
                        let value = if *text { AttrValue::Str(format!("v{n}")) } else { AttrValue::Int(*n) };
                        p = p.with(KEYS[*k], value);
                    }
                    p
                })
                .collect();
            let refs: Vec<&Point> = points.iter().collect();
            proptest::prop_assert_eq!(plain(series(&refs)), naive(&refs));
        }
    }
}
