//! Sends an encoded `ExportMetricsServiceRequest` over OTLP/gRPC (a tonic
//! client on a tonic channel) or OTLP/HTTP (protobuf body), with the
//! endpoint, headers, compression, timeout and TLS of `[export]`. Every
//! value is set in code, so no `OTEL_*` variable is read behind the config
//! layer's back.
//!
//! The queued bytes go out as they are: gRPC sends them as the request
//! message through a pass-through codec (no decode and re-encode). gzip,
//! on both protocols, uses one deflate state reused across requests: tonic
//! would create one per message, and setting one up costs about a fifth of
//! compressing a cycle's batch.

use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{BufMut as _, Bytes};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
use prost::Message;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
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

/// gzip level on both protocols: 1, the fastest. On this host's 9.4 KB
/// request level 1 takes 11 µs and writes 2,301 bytes, level 6 (flate2's
/// default, tonic's and the SDK exporters') 46 µs for 1,965 bytes; in the
/// running agent the export thread spent about 50 µs less per export
/// (cold caches widen the gap), while the request stays well under the
/// 3 KB budget.
const GZIP_LEVEL: flate2::Compression = flate2::Compression::new(1);

/// deflate window of 8 KiB instead of zlib's 32 KiB. The state zeroes its
/// buffer of two windows and its chain array (two bytes a window byte) when
/// it is made, and the agent keeps it for its whole life: 32 KiB resident
/// instead of 128. A cycle's batch (about 10 KB of protobuf on a small
/// host) compresses to within a few bytes of what the 32 KiB window gives:
/// its repeats (attribute keys, names) are close together. Any gzip reader
/// inflates it: the window only bounds how far back a match may point.
const GZIP_WINDOW_BITS: u8 = 13;

/// The OTLP metrics Export method (the path opentelemetry-proto's
/// generated client calls).
const EXPORT_PATH: &str = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";

/// The gRPC codec of the Export call: the request is an already encoded
/// `ExportMetricsServiceRequest`, written as it is; the response is decoded
/// as tonic-prost's codec would.
struct EncodedExportCodec;

impl Codec for EncodedExportCodec {
    type Encode = Bytes;
    type Decode = ExportMetricsServiceResponse;
    type Encoder = PassThrough;
    type Decoder = ResponseDecoder;

    fn encoder(&mut self) -> PassThrough {
        PassThrough
    }

    fn decoder(&mut self) -> ResponseDecoder {
        ResponseDecoder
    }
}

struct PassThrough;

impl Encoder for PassThrough {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

struct ResponseDecoder;

impl Decoder for ResponseDecoder {
    type Item = ExportMetricsServiceResponse;
    type Error = tonic::Status;

    fn decode(
        &mut self,
        src: &mut DecodeBuf<'_>,
    ) -> Result<Option<ExportMetricsServiceResponse>, tonic::Status> {
        // INTERNAL for a response that does not parse, as tonic-prost does.
        ExportMetricsServiceResponse::decode(src)
            .map(Some)
            .map_err(|e| tonic::Status::internal(e.to_string()))
    }
}

/// A gzip request message compressed and framed by the agent (flag 1, then
/// its length), carried to [`GzipFrames`] in the request's extensions.
#[derive(Clone)]
struct GzipFrame(Bytes);

/// The channel, with one change: a request that carries a [`GzipFrame`]
/// gets that frame as its body and `grpc-encoding: gzip`, what tonic sends
/// when it compresses itself. Everything else (metadata, timeout, the
/// response and its status) is tonic's.
#[derive(Clone)]
pub struct GzipFrames(Channel);

type HttpRequest = http::Request<tonic::body::Body>;

impl tower_service::Service<HttpRequest> for GzipFrames {
    type Response = http::Response<tonic::body::Body>;
    type Error = tonic::transport::Error;
    type Future = <Channel as tower_service::Service<HttpRequest>>::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, mut req: HttpRequest) -> Self::Future {
        if let Some(GzipFrame(frame)) = req.extensions_mut().remove::<GzipFrame>() {
            req.headers_mut()
                .insert("grpc-encoding", http::HeaderValue::from_static("gzip"));
            *req.body_mut() = tonic::body::Body::new(http_body_util::Full::new(frame));
        }
        self.0.call(req)
    }
}

/// gzip (RFC 1952) with one deflate state kept across requests: creating
/// one allocates and clears a few hundred KiB.
pub struct Gzip {
    deflate: Mutex<flate2::Compress>,
    header: [u8; 10],
}

impl Gzip {
    pub fn new(level: flate2::Compression) -> Self {
        // The header flate2's `GzEncoder` writes: no flags, no mtime,
        // XFL 2 (best) or 4 (fastest) by level, OS 255 (unknown).
        let xfl = if level.level() >= flate2::Compression::best().level() {
            2
        } else if level.level() <= flate2::Compression::fast().level() {
            4
        } else {
            0
        };
        Gzip {
            deflate: Mutex::new(flate2::Compress::new_with_window_bits(
                level,
                false,
                GZIP_WINDOW_BITS,
            )),
            header: [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 255],
        }
    }

    /// One gzip member holding `data`.
    pub fn compress(&self, data: &[u8]) -> Result<Vec<u8>, String> {
        let mut out = Vec::with_capacity(self.header.len() + data.len() / 4 + 64);
        out.extend_from_slice(&self.header);
        let mut deflate = self.deflate.lock().unwrap_or_else(PoisonError::into_inner);
        // A state left midway by an earlier error must not leak into
        // this member.
        deflate.reset();
        let start_in = deflate.total_in();
        loop {
            let (was_in, was_out) = (deflate.total_in(), deflate.total_out());
            let consumed = (was_in - start_in) as usize;
            let status = deflate
                .compress_vec(&data[consumed..], &mut out, flate2::FlushCompress::Finish)
                .map_err(|e| format!("gzip: {e}"))?;
            if status == flate2::Status::StreamEnd {
                break;
            }
            if (deflate.total_in(), deflate.total_out()) == (was_in, was_out)
                && out.len() < out.capacity()
            {
                // Room left and nothing done: growing would never end.
                return Err("gzip: the compressor is stuck".into());
            }
            // Out of room: give it more and go on.
            out.reserve(out.capacity().max(4096));
        }
        drop(deflate);
        let mut crc = flate2::Crc::new();
        crc.update(data);
        out.extend_from_slice(&crc.sum().to_le_bytes());
        // ISIZE: the input length modulo 2^32.
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        Ok(out)
    }
}

pub enum Client {
    Grpc {
        client: tonic::client::Grpc<GzipFrames>,
        metadata: tonic::metadata::MetadataMap,
        gzip: Option<Gzip>,
    },
    Http {
        client: reqwest::Client,
        url: String,
        headers: reqwest::header::HeaderMap,
        gzip: Option<Gzip>,
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
                let channel = ep.connect_with_connector_lazy(
                    super::connect::CountingConnector::new(&crate::counters::EXPORT_TCP),
                );
                let mut client = tonic::client::Grpc::new(GzipFrames(channel));
                let gzip = cfg.compression == Compression::Gzip;
                if gzip {
                    // Requests are compressed here (GzipFrames); responses
                    // by tonic.
                    client = client.accept_compressed(CompressionEncoding::Gzip);
                }
                Ok(Client::Grpc {
                    client,
                    metadata,
                    gzip: gzip.then(|| Gzip::new(GZIP_LEVEL)),
                })
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
                    gzip: gzip.then(|| Gzip::new(GZIP_LEVEL)),
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
            Client::Grpc {
                client,
                metadata,
                gzip,
            } => {
                let mut req = match gzip {
                    Some(gz) => {
                        let frame = grpc_frame(&gz.compress(encoded).map_err(Failure::Transient)?)?;
                        // tonic frames an empty message; GzipFrames puts
                        // this frame in its place.
                        let mut req = tonic::Request::new(Bytes::new());
                        req.extensions_mut().insert(GzipFrame(frame));
                        req
                    }
                    None => tonic::Request::new(Bytes::copy_from_slice(encoded)),
                };
                *req.metadata_mut() = metadata.clone();
                req.extensions_mut().insert(tonic::GrpcMethod::new(
                    "opentelemetry.proto.collector.metrics.v1.MetricsService",
                    "Export",
                ));
                // The client is a cheap handle on the shared channel.
                let mut client = client.clone();
                client.ready().await.map_err(|e| {
                    grpc_failure(tonic::Code::Unknown, &format!("Service was not ready: {e}"))
                })?;
                let path = http::uri::PathAndQuery::from_static(EXPORT_PATH);
                match client.unary(req, path, EncodedExportCodec).await {
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
                let body = match gzip {
                    Some(gz) => gz.compress(encoded).map_err(Failure::Transient)?,
                    None => encoded.to_vec(),
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

/// A gRPC length-prefixed message with the compressed flag set
/// (https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md).
fn grpc_frame(compressed: &[u8]) -> Result<Bytes, Failure> {
    let len = u32::try_from(compressed.len())
        .map_err(|_| Failure::Transient("gzip: request over 4 GiB".into()))?;
    let mut frame = Vec::with_capacity(5 + compressed.len());
    frame.push(1);
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(compressed);
    Ok(frame.into())
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

    /// The reused compressor writes, request after request, what a fresh
    /// one writes (nothing of the previous request leaks into the next),
    /// with the header flate2's `GzEncoder` writes, and it inflates back
    /// to the input.
    #[test]
    fn reused_gzip_writes_what_a_fresh_one_writes() {
        use std::io::{Read as _, Write as _};
        let big: Vec<u8> = (0..20_000u32)
            .flat_map(|i| format!("point {} value {}\n", i % 997, i / 7).into_bytes())
            .collect();
        let inputs: [&[u8]; 5] = [&big, b"small", b"", &big[..70_000], &big];
        for level in [GZIP_LEVEL, flate2::Compression::default()] {
            let gz = Gzip::new(level);
            for input in inputs {
                let reused = gz.compress(input).unwrap();
                let fresh = Gzip::new(level).compress(input).unwrap();
                assert!(reused == fresh, "level {level:?}, {} bytes", input.len());
                let mut back = Vec::new();
                flate2::read::GzDecoder::new(&reused[..])
                    .read_to_end(&mut back)
                    .unwrap();
                assert!(back == input, "level {level:?}, {} bytes", input.len());
                let mut encoder = flate2::write::GzEncoder::new(Vec::new(), level);
                encoder.write_all(input).unwrap();
                assert_eq!(reused[..10], encoder.finish().unwrap()[..10]);
            }
        }
    }

    /// What GzipFrames sends is a gRPC message: compressed flag, length,
    /// then the gzip member.
    #[test]
    fn grpc_frame_is_flag_length_message() {
        let f = grpc_frame(&[7; 300]).unwrap();
        assert_eq!(&f[..5], &[1, 0, 0, 1, 44]);
        assert_eq!(f.len(), 305);
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
