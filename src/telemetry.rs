//! The OpenTelemetry pipeline: resource, OTLP exporter (gRPC or
//! HTTP/protobuf) and the meter provider with its periodic reader. Knows
//! nothing of `/proc`: host facts arrive as a [`HostIdentity`].

use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{Instrument, PeriodicReader, SdkMeterProvider, Stream};

use crate::config::{Config, ExportConfig};
use crate::counters::ExportCounters;
use crate::export::{Client, QueueSettings, QueueingExporter};
use crate::host::HostIdentity;

pub const AGENT_NAME: &str = "unamentis-agent";

/// Resource attributes in precedence order: detected facts, then the
/// configured attributes (file and `OTEL_RESOURCE_ATTRIBUTES`), then the
/// service name (`OTEL_SERVICE_NAME`). Later entries win.
pub fn resource_attributes(
    cfg: &Config,
    host: &HostIdentity,
    node: Option<String>,
) -> Vec<(String, String)> {
    let mut attrs: Vec<(String, String)> = vec![
        ("service.name".into(), AGENT_NAME.into()),
        ("service.version".into(), env!("CARGO_PKG_VERSION").into()),
        ("os.type".into(), os_type().into()),
    ];
    if let Some(name) = &host.name {
        attrs.push(("host.name".into(), name.clone()));
    }
    if let Some(id) = &host.id {
        attrs.push(("host.id".into(), id.clone()));
    }
    // Stable across restarts, so one host's series continue: a name-based
    // UUID (v5) of the host, as the semantic conventions recommend.
    if let Some(seed) = host.id.as_ref().or(host.name.as_ref()) {
        let id = uuid::Uuid::new_v5(
            &uuid::Uuid::NAMESPACE_OID,
            format!("{AGENT_NAME}:{seed}").as_bytes(),
        );
        attrs.push(("service.instance.id".into(), id.to_string()));
    }
    if let Some(node) = node.filter(|n| !n.is_empty()) {
        attrs.push(("k8s.node.name".into(), node));
    }
    for (k, v) in &cfg.resource.attributes {
        attrs.push((k.clone(), v.clone()));
    }
    if let Some(name) = &cfg.resource.service_name {
        attrs.push(("service.name".into(), name.clone()));
    }
    attrs
}

fn os_type() -> &'static str {
    match std::env::consts::OS {
        "macos" => "darwin",
        other => other,
    }
}

pub fn resource(attrs: Vec<(String, String)>) -> Resource {
    // builder_empty: the SDK's own env detector would re-read variables the
    // config layer already applied, with a different precedence.
    Resource::builder_empty()
        .with_attributes(attrs.into_iter().map(|(k, v)| KeyValue::new(k, v)))
        .build()
}

/// Builds the OTLP exporter: the agent's own client behind the bounded
/// replay queue (`crate::export`). Must run inside a tokio runtime, which
/// must then be driven for exports to go out.
pub fn build_exporter(
    cfg: &ExportConfig,
    counters: ExportCounters,
) -> Result<QueueingExporter, String> {
    let client = Client::new(cfg)?;
    Ok(QueueingExporter::start(
        client,
        cfg.effective_endpoint(),
        QueueSettings {
            max_bytes: usize::try_from(cfg.queue_max_bytes).unwrap_or(usize::MAX),
            max_age: cfg.queue_max_age.0,
            timeout: cfg.timeout.0,
        },
        counters,
    ))
}

pub fn meter_provider(
    exporter: QueueingExporter,
    interval: Duration,
    resource: Resource,
) -> SdkMeterProvider {
    let reader = PeriodicReader::builder(exporter)
        .with_interval(interval)
        .build();
    SdkMeterProvider::builder()
        .with_resource(resource)
        .with_reader(reader)
        .with_view(one_series_view)
        .build()
}

/// The cardinality limit of a registry metric whose points carry no
/// attribute: it has one series. None for the others, which keep the
/// SDK's default (2000).
///
/// Why: the SDK gives every instrument a map of series sized for its limit
/// when the instrument is made (4096 buckets at the default), and the
/// pages it writes stay resident, about 12 KiB an instrument; a point
/// without attributes never enters the map.
fn one_series_limit(name: &str) -> Option<usize> {
    crate::semconv::ALL
        .iter()
        .find(|m| m.name == name)
        .filter(|m| m.attributes.is_empty())
        .map(|_| 1)
}

fn one_series_view(i: &Instrument) -> Option<Stream> {
    let limit = one_series_limit(i.name())?;
    Stream::builder().with_cardinality_limit(limit).build().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only metrics the registry gives no attribute get the one-series
    /// limit: a metric with attributes keeps the default, or its series
    /// past the first would be folded into an overflow series.
    #[test]
    fn one_series_limit_only_for_metrics_without_attributes() {
        let mut limited = 0;
        for m in crate::semconv::ALL {
            let limit = one_series_limit(m.name);
            assert_eq!(limit.is_some(), m.attributes.is_empty(), "{}", m.name);
            limited += usize::from(limit.is_some());
        }
        assert!(limited > 0);
        assert_eq!(one_series_limit("not.a.registry.metric"), None);
    }
}
