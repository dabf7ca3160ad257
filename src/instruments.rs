//! Registers one observable instrument per registry metric. Callbacks read
//! the cycle's shared sample; they never touch a source themselves.

use opentelemetry::KeyValue;
use opentelemetry::metrics::Meter;

use crate::semconv::{self, Instrument};
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
    _gauges: Vec<opentelemetry::metrics::ObservableGauge<f64>>,
    _counters: Vec<opentelemetry::metrics::ObservableCounter<f64>>,
    _updown: Vec<opentelemetry::metrics::ObservableUpDownCounter<f64>>,
}

/// The number of readers a [`CycleSampler`] for [`register`] must have.
pub fn reader_count() -> usize {
    semconv::ALL.len()
}

pub fn register(meter: &Meter, cycle: &CycleSampler) -> Registered {
    let mut gauges = Vec::new();
    let mut counters = Vec::new();
    let mut updown = Vec::new();
    for (reader, &metric) in semconv::ALL.iter().enumerate() {
        let cycle = cycle.clone();
        // The three observable builders differ only in their method.
        macro_rules! observable {
            ($builder:ident) => {
                meter
                    .$builder(metric.name)
                    .with_unit(metric.unit)
                    .with_description(metric.brief)
                    .with_callback(move |o| {
                        cycle.read(reader, metric, |p| o.observe(p.value, &key_values(p)))
                    })
                    .build()
            };
        }
        match metric.instrument {
            Instrument::Gauge => gauges.push(observable!(f64_observable_gauge)),
            Instrument::Counter => counters.push(observable!(f64_observable_counter)),
            Instrument::UpDownCounter => updown.push(observable!(f64_observable_up_down_counter)),
        }
    }
    Registered {
        _gauges: gauges,
        _counters: counters,
        _updown: updown,
    }
}
