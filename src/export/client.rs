//! Sends an encoded `ExportMetricsServiceRequest` over OTLP/gRPC
//! (opentelemetry-proto's generated client on a tonic channel) or
//! OTLP/HTTP (protobuf body), with the endpoint, headers, compression,
//! timeout and TLS of `[export]`. Every value is set in code, so no
//! `OTEL_*` variable is read behind the config layer's back.

use std::fmt;
use std::io::Write as _;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use prost::Message;
use tonic::codec::CompressionEncoding;
use tonic::transport::Channel;

use crate::config::{Compression, ExportConfig, Protocol};

/// Why an attempt failed. Every kind keeps the batch for replay; they only
/// change what the log says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// No answer from the collector: connection refused or reset, name
    /// resolution, TLS handshake, or no answer within the timeout.
    Unreachable(String),
    /// The collector answered that it cannot take the batch now
    /// (UNAVAILABLE, RESOURCE_EXHAUSTED, DEADLINE_EXCEEDED, HTTP 429/5xx):
    /// it will likely take it later.
    Transient(String),
    /// The collector refuses what is sent (UNAUTHENTICATED,
    /// PERMISSION_DENIED, INVALID_ARGUMENT, HTTP 400/401/403...): most
    /// likely a wrong ingestion key or endpoint; fixing it delivers the
    /// backlog.
    Rejected(String),
}

impl Failure {
    pub fn is_rejection(&self) -> bool {
        matches!(self, Failure::Rejected(_))
    }

    pub fn is_unreachable(&self) -> bool {
        matches!(self, Failure::Unreachable(_))
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Unreachable(s) | Failure::Transient(s) | Failure::Rejected(s) => {
                f.write_str(s)
            }
        }
    }
}

/// Classifies a gRPC status (codes as in the OTLP spec's retryable list).
pub fn grpc_failure(code: tonic::Code, message: &str) -> Failure {
    use tonic::Code::*;
    let text = format!("gRPC {code:?}: {message}");
    match code {
        Unauthenticated | PermissionDenied | InvalidArgument | NotFound | Unimplemented
        | FailedPrecondition => Failure::Rejected(text),
        _ => Failure::Transient(text),
    }
}

/// Classifies a failed gRPC call. tonic turns client-side errors
/// (connect, timeout, reset connection) into a status too, but only those
/// keep the error as their source; a status the collector sent has none.
pub fn grpc_status_failure(status: &tonic::Status) -> Failure {
    match std::error::Error::source(status) {
        Some(cause) => {
            let mut text = format!("gRPC {:?}: {}", status.code(), status.message());
            append_causes(&mut text, Some(cause));
            Failure::Unreachable(text)
        }
        None => grpc_failure(status.code(), status.message()),
    }
}

/// Classifies an HTTP status that is not a success.
pub fn http_failure(status: u16) -> Failure {
    let text = format!("HTTP {status}");
    match status {
        429 | 502 | 503 | 504 => Failure::Transient(text),
        400..=499 => Failure::Rejected(text),
        _ => Failure::Transient(text),
    }
}

pub enum Client {
    Grpc {
        client: MetricsServiceClient<Channel>,
        metadata: tonic::metadata::MetadataMap,
    },
    Http {
        client: reqwest::Client,
        url: String,
        headers: reqwest::header::HeaderMap,
        gzip: bool,
    },
}

impl Client {
    /// Builds the client. Must run inside a tokio runtime: the channel
    /// spawns its connection task on it. Connects lazily, so a collector
    /// that is down at start is not an error.
    pub fn new(cfg: &ExportConfig) -> Result<Client, String> {
        let endpoint = cfg.effective_endpoint();
        let timeout = cfg.timeout.0;
        match cfg.protocol {
            Protocol::Grpc => {
                let mut metadata = tonic::metadata::MetadataMap::new();
                for (k, v) in &cfg.headers {
                    let key =
                        tonic::metadata::MetadataKey::from_bytes(k.to_ascii_lowercase().as_bytes())
                            .map_err(|_| {
                                format!("export.headers: {k:?} is not a valid gRPC metadata key")
                            })?;
                    let value = v.parse().map_err(|_| {
                        format!("export.headers.{k}: value is not valid gRPC metadata")
                    })?;
                    metadata.insert(key, value);
                }
                let bad = |e: tonic::transport::Error| format!("export.endpoint {endpoint:?}: {e}");
                let https = matches!(
                    crate::url::split_scheme(&endpoint),
                    Ok((Some(crate::url::Scheme::Https), _))
                );
                #[allow(unused_mut)]
                let mut ep = tonic::transport::Endpoint::from_shared(endpoint.clone())
                    .map_err(bad)?
                    .timeout(timeout)
                    .connect_timeout(timeout);
                #[cfg(feature = "tls")]
                if https {
                    ep = ep.tls_config(grpc_tls(cfg)?).map_err(bad)?;
                }
                #[cfg(not(feature = "tls"))]
                if https {
                    return Err(format!(
                        "export.endpoint {endpoint:?}: this build has no TLS (cargo feature `tls`)"
                    ));
                }
                let mut client = MetricsServiceClient::new(ep.connect_lazy());
                if cfg.compression == Compression::Gzip {
                    client = client
                        .send_compressed(CompressionEncoding::Gzip)
                        .accept_compressed(CompressionEncoding::Gzip);
                }
                Ok(Client::Grpc { client, metadata })
            }
            Protocol::HttpProtobuf => {
                use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE, HeaderName, HeaderValue};
                let mut headers = reqwest::header::HeaderMap::new();
                for (k, v) in &cfg.headers {
                    let name = HeaderName::from_bytes(k.as_bytes())
                        .map_err(|_| format!("export.headers: {k:?} is not a valid header name"))?;
                    let value = HeaderValue::from_str(v)
                        .map_err(|_| format!("export.headers.{k}: not a valid header value"))?;
                    headers.insert(name, value);
                }
                headers.insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("application/x-protobuf"),
                );
                let gzip = cfg.compression == Compression::Gzip;
                if gzip {
                    headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
                }
                #[allow(unused_mut)]
                let mut b = reqwest::Client::builder()
                    .timeout(timeout)
                    .connect_timeout(timeout)
                    .user_agent(concat!("unamentis-agent/", env!("CARGO_PKG_VERSION")));
                #[cfg(feature = "tls")]
                if let Some(pem) = read_ca(cfg)? {
                    let cert = reqwest::Certificate::from_pem(&pem)
                        .map_err(|e| format!("export.certificate: {e}"))?;
                    b = b.add_root_certificate(cert);
                }
                let client = b
                    .build()
                    .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
                Ok(Client::Http {
                    client,
                    url: endpoint,
                    headers,
                    gzip,
                })
            }
        }
    }

    /// Sends one encoded request; the timeout bounds the whole attempt.
    pub async fn send(&self, encoded: &[u8], timeout: Duration) -> Result<(), Failure> {
        match tokio::time::timeout(timeout, self.send_inner(encoded)).await {
            Ok(r) => r,
            Err(_) => Err(Failure::Unreachable(format!(
                "no answer within the export timeout ({})",
                humantime::format_duration(timeout)
            ))),
        }
    }

    async fn send_inner(&self, encoded: &[u8]) -> Result<(), Failure> {
        match self {
            Client::Grpc { client, metadata } => {
                // The stored bytes are decoded again because the generated
                // client takes the message; it is a few microseconds.
                let msg = ExportMetricsServiceRequest::decode(encoded)
                    .map_err(|e| Failure::Rejected(format!("queued request is corrupt: {e}")))?;
                let mut req = tonic::Request::new(msg);
                *req.metadata_mut() = metadata.clone();
                // The client is a cheap handle on the shared channel.
                let mut client = client.clone();
                match client.export(req).await {
                    Ok(resp) => {
                        if let Some(p) = resp.into_inner().partial_success
                            && p.rejected_data_points > 0
                        {
                            tracing::warn!(
                                rejected_data_points = p.rejected_data_points,
                                "collector rejected part of an export: {}",
                                p.error_message
                            );
                        }
                        Ok(())
                    }
                    Err(status) => Err(grpc_status_failure(&status)),
                }
            }
            Client::Http {
                client,
                url,
                headers,
                gzip,
            } => {
                let body = if *gzip {
                    let mut enc =
                        flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                    enc.write_all(encoded)
                        .and_then(|()| enc.finish())
                        .map_err(|e| Failure::Transient(format!("gzip: {e}")))?
                } else {
                    encoded.to_vec()
                };
                let resp = client
                    .post(url)
                    .headers(headers.clone())
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| Failure::Unreachable(error_chain(&e)))?;
                let status = resp.status();
                if status.is_success() {
                    Ok(())
                } else {
                    Err(http_failure(status.as_u16()))
                }
            }
        }
    }
}

/// reqwest's top-level error says little ("error sending request"); the
/// cause (connection refused, certificate) is in its sources.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    append_causes(&mut s, e.source());
    s
}

/// Appends each cause not already in the text (wrappers often repeat
/// their source's message).
fn append_causes(s: &mut String, mut cur: Option<&(dyn std::error::Error + 'static)>) {
    while let Some(c) = cur {
        let text = c.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        cur = c.source();
    }
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
        // tonic's default TLS config has no trust roots at all.
        None => tls.with_webpki_roots(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_codes_split_into_transient_and_configuration_problems() {
        use tonic::Code;
        for code in [
            Code::Unavailable,
            Code::ResourceExhausted,
            Code::DeadlineExceeded,
            Code::Aborted,
            Code::Internal,
            Code::Unknown,
        ] {
            assert!(!grpc_failure(code, "").is_rejection(), "{code:?}");
        }
        for code in [
            Code::Unauthenticated,
            Code::PermissionDenied,
            Code::InvalidArgument,
        ] {
            assert!(grpc_failure(code, "").is_rejection(), "{code:?}");
        }
    }

    /// A port nothing listens on: a real connection refused, on both
    /// protocols, is "unreachable", never a refusal by the collector.
    #[tokio::test]
    async fn connection_refused_is_unreachable_on_both_protocols() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        for protocol in [Protocol::Grpc, Protocol::HttpProtobuf] {
            let cfg = ExportConfig {
                endpoint: Some(format!("http://127.0.0.1:{port}")),
                protocol,
                ..ExportConfig::default()
            };
            let client = Client::new(&cfg).unwrap();
            let e = client.send(&[], Duration::from_secs(10)).await.unwrap_err();
            assert!(e.is_unreachable(), "{protocol:?}: {e:?}");
            assert!(
                e.to_string().to_lowercase().contains("refused"),
                "{protocol:?}: the cause is kept: {e}"
            );
        }
    }

    #[test]
    fn a_status_the_collector_sent_is_classified_by_its_code() {
        let sent = tonic::Status::invalid_argument("bad metric");
        assert!(grpc_status_failure(&sent).is_rejection());
        let sent = tonic::Status::unavailable("draining");
        assert!(!grpc_status_failure(&sent).is_unreachable());
    }

    #[test]
    fn http_statuses_split_into_transient_and_configuration_problems() {
        for s in [429, 500, 502, 503, 504] {
            assert!(!http_failure(s).is_rejection(), "{s}");
        }
        for s in [400, 401, 403, 404, 413] {
            assert!(http_failure(s).is_rejection(), "{s}");
        }
    }
}
