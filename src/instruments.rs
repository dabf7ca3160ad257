//! Registers one observable instrument per registry metric. Callbacks read
//! the cycle's shared sample; they never touch a source themselves.

use opentelemetry::KeyValue;
use opentelemetry::metrics::Meter;

use crate::semconv::{self, Instrument, ValueType};
use crate::snapshot::{AttrValue, CycleSampler, Point};

fn key_values(p: &Point) -> Vec<KeyValue> {
    p.attrs
        .iter()
        .map(|(k, v)| match v {
            AttrValue::Str(s) => KeyValue::new(*k, s.clone()),
            AttrValue::Int(i) => KeyValue::new(*k, *i),
        })
        .collect()
}

/// Keeps the instruments alive for the life of the meter provider.
pub struct Registered {
    _instruments: Vec<Box<dyn std::any::Any + Send + Sync>>,
}

/// The number of readers a [`CycleSampler`] for [`register`] must have.
pub fn reader_count() -> usize {
    semconv::ALL.len()
}

/// `descriptions`: give each instrument its registry brief, which the
/// exporter then sends with every export (`export.descriptions`).
pub fn register(meter: &Meter, cycle: &CycleSampler, descriptions: bool) -> Registered {
    let mut instruments: Vec<Box<dyn std::any::Any + Send + Sync>> = Vec::new();
    for (reader, &metric) in semconv::ALL.iter().enumerate() {
        let cycle = cycle.clone();
        // The six observable builders differ only in their method and in
        // how the f64 value becomes the instrument's type. An `Int`
        // metric's values are whole numbers (bytes, counts); the cast
        // rounds nothing away and saturates at the type's range.
        macro_rules! observable {
            ($builder:ident, $conv:expr) => {
                Box::new(
                    meter
                        .$builder(metric.name)
                        .with_unit(metric.unit)
                        .with_description(if descriptions { metric.brief } else { "" })
                        .with_callback(move |o| {
                            cycle.read(reader, metric, |p| {
                                o.observe($conv(p.value), &key_values(p))
                            })
                        })
                        .build(),
                )
            };
        }
        let f = |v: f64| v;
        let i = |v: f64| v.round() as i64;
        let u = |v: f64| v.round().max(0.0) as u64;
        instruments.push(match (metric.instrument, metric.value_type) {
            (Instrument::Gauge, ValueType::Double) => observable!(f64_observable_gauge, f),
            (Instrument::Gauge, ValueType::Int) => observable!(i64_observable_gauge, i),
            (Instrument::Counter, ValueType::Double) => observable!(f64_observable_counter, f),
            (Instrument::Counter, ValueType::Int) => observable!(u64_observable_counter, u),
            (Instrument::UpDownCounter, ValueType::Double) => {
                observable!(f64_observable_up_down_counter, f)
            }
            (Instrument::UpDownCounter, ValueType::Int) => {
                observable!(i64_observable_up_down_counter, i)
            }
        });
    }
    Registered {
        _instruments: instruments,
    }
}
