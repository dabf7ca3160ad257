//! The OpenTelemetry pipeline: resource, OTLP exporter (gRPC or
//! HTTP/protobuf) and the meter provider with its periodic reader. Knows
//! nothing of `/proc`: host facts arrive as a [`HostIdentity`].

use std::sync::Mutex;
use std::time::{Duration, Instant};

use opentelemetry::KeyValue;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider, Temporality};

use crate::config::{Compression, Config, ExportConfig, Protocol};
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

/// Builds the OTLP exporter. Must run inside a tokio runtime (tonic spawns
/// its connection task on it). Every value is set in code so the SDK's own
/// environment lookups never override the config's precedence.
pub fn build_exporter(cfg: &ExportConfig) -> Result<LoggingExporter, String> {
    let endpoint = cfg.effective_endpoint();
    let timeout = cfg.timeout.0;
    let exporter = match cfg.protocol {
        Protocol::Grpc => {
            let mut metadata = tonic::metadata::MetadataMap::new();
            for (k, v) in &cfg.headers {
                let key =
                    tonic::metadata::MetadataKey::from_bytes(k.to_ascii_lowercase().as_bytes())
                        .map_err(|_| {
                            format!("export.headers: {k:?} is not a valid gRPC metadata key")
                        })?;
                let value = v
                    .parse()
                    .map_err(|_| format!("export.headers.{k}: value is not valid gRPC metadata"))?;
                metadata.insert(key, value);
            }
            let mut b = opentelemetry_otlp::MetricExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint.clone())
                .with_timeout(timeout)
                .with_metadata(metadata);
            if cfg.compression == Compression::Gzip {
                b = b.with_compression(opentelemetry_otlp::Compression::Gzip);
            }
            #[cfg(feature = "tls")]
            if endpoint.starts_with("https://") {
                b = b.with_tls_config(grpc_tls(cfg)?);
            }
            b.build()
        }
        Protocol::HttpProtobuf => {
            let mut b = opentelemetry_otlp::MetricExporter::builder()
                .with_http()
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                .with_endpoint(endpoint.clone())
                .with_timeout(timeout)
                .with_headers(cfg.headers.clone().into_iter().collect());
            if cfg.compression == Compression::Gzip {
                b = b.with_compression(opentelemetry_otlp::Compression::Gzip);
            }
            #[cfg(feature = "tls")]
            if let Some(client) = http_client_with_ca(cfg)? {
                b = b.with_http_client(client);
            }
            b.build()
        }
    }
    .map_err(|e| format!("cannot build the OTLP exporter for {endpoint}: {e}"))?;
    Ok(LoggingExporter::new(exporter, endpoint))
}

#[cfg(feature = "tls")]
fn read_ca(cfg: &ExportConfig) -> Result<Option<Vec<u8>>, String> {
    cfg.certificate
        .as_ref()
        .map(|p| std::fs::read(p).map_err(|e| format!("export.certificate: {}: {e}", p.display())))
        .transpose()
}

#[cfg(feature = "tls")]
fn grpc_tls(cfg: &ExportConfig) -> Result<tonic::transport::ClientTlsConfig, String> {
    let tls = tonic::transport::ClientTlsConfig::new();
    Ok(match read_ca(cfg)? {
        Some(pem) => tls.ca_certificate(tonic::transport::Certificate::from_pem(pem)),
        // The SDK's default TLS config has no trust roots at all.
        None => tls.with_webpki_roots(),
    })
}

#[cfg(feature = "tls")]
fn http_client_with_ca(cfg: &ExportConfig) -> Result<Option<reqwest::blocking::Client>, String> {
    let Some(pem) = read_ca(cfg)? else {
        return Ok(None);
    };
    let cert =
        reqwest::Certificate::from_pem(&pem).map_err(|e| format!("export.certificate: {e}"))?;
    let timeout = cfg.timeout.0;
    // reqwest's blocking client owns a runtime and must not be built (or
    // dropped) on an async thread.
    std::thread::spawn(move || {
        reqwest::blocking::Client::builder()
            .timeout(timeout)
            .add_root_certificate(cert)
            .build()
    })
    .join()
    .map_err(|_| "building the HTTP client panicked".to_owned())?
    .map(Some)
    .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// Wraps the OTLP exporter to log failures without flooding: the first
/// failure of an outage is a warning, repeats are at most one a minute, and
/// recovery is logged once. The SDK itself logs nothing without its
/// internal-logs feature.
pub struct LoggingExporter {
    inner: opentelemetry_otlp::MetricExporter,
    endpoint: String,
    outage: Mutex<Option<Outage>>,
}

struct Outage {
    since: Instant,
    failures: u64,
    last_warned: Instant,
}

const REPEAT_WARNING_EVERY: Duration = Duration::from_secs(60);

impl LoggingExporter {
    fn new(inner: opentelemetry_otlp::MetricExporter, endpoint: String) -> Self {
        LoggingExporter {
            inner,
            endpoint,
            outage: Mutex::new(None),
        }
    }
}

impl PushMetricExporter for LoggingExporter {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        let result = self.inner.export(metrics).await;
        let mut outage = self.outage.lock().unwrap_or_else(|e| e.into_inner());
        match (&result, outage.as_mut()) {
            (Ok(()), Some(o)) => {
                tracing::info!(
                    endpoint = %self.endpoint,
                    failed_exports = o.failures,
                    "export recovered after {:.0?}",
                    o.since.elapsed()
                );
                *outage = None;
            }
            (Ok(()), None) => tracing::debug!(endpoint = %self.endpoint, "exported"),
            (Err(e), None) => {
                tracing::warn!(endpoint = %self.endpoint, "export failed: {e}");
                let now = Instant::now();
                *outage = Some(Outage {
                    since: now,
                    failures: 1,
                    last_warned: now,
                });
            }
            (Err(e), Some(o)) => {
                o.failures += 1;
                if o.last_warned.elapsed() >= REPEAT_WARNING_EVERY {
                    tracing::warn!(
                        endpoint = %self.endpoint,
                        failed_exports = o.failures,
                        "export still failing after {:.0?}: {e}",
                        o.since.elapsed()
                    );
                    o.last_warned = Instant::now();
                }
            }
        }
        result
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn temporality(&self) -> Temporality {
        self.inner.temporality()
    }
}

pub fn meter_provider(
    exporter: LoggingExporter,
    interval: Duration,
    resource: Resource,
) -> SdkMeterProvider {
    let reader = PeriodicReader::builder(exporter)
        .with_interval(interval)
        .build();
    SdkMeterProvider::builder()
        .with_resource(resource)
        .with_reader(reader)
        .build()
}
