//! The `models` family: the models loaded in Ollama, from `GET /api/ps` (docs/FORMATS.md, Ollama;
//! ollama's api/types.go `ProcessModelResponse`). Sizes are bytes. Fields come and
//! go between Ollama versions: everything is optional and unknown fields
//! are ignored. Ollama down, slow or answering garbage makes this source
//! unavailable and touches nothing else.

use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::config::OllamaConfig;
use crate::point::{AttrValue, Point};
use crate::semconv::{self, attr};
use crate::sources::http_get::{self, HttpUrl};
use crate::sources::snapshot::{FamilySample, Snapshot};
use crate::sources::{Source, SourceError};

use super::gpu::GpuStats;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct OllamaStats {
    pub models: Vec<LoadedModel>,
}

impl OllamaStats {
    /// Sum of `size_vram`: what the models hold in GPU memory, the VRAM
    /// estimate when no GPU backend can be read.
    pub fn vram_bytes(&self) -> u64 {
        self.models.iter().map(|m| m.size_vram_bytes).sum()
    }
}

/// Without a GPU backend that read the devices this cycle, the models'
/// `size_vram` stands in for the host's VRAM use, marked
/// `gpu.vendor=ollama-estimate`.
impl FamilySample for OllamaStats {
    fn points(&self, snap: &Snapshot, out: &mut Vec<Point>) {
        const MIB: f64 = 1024.0 * 1024.0;
        for m in &self.models {
            out.push(Point::new(&semconv::MODEL_LOADED, 1.0).with(attr::MODEL, m.name.as_str()));
            out.push(
                Point::new(&semconv::MODEL_VRAM_MB, m.size_vram_bytes as f64 / MIB)
                    .with(attr::MODEL, m.name.as_str()),
            );
        }
        let gpu_answered = snap
            .get::<GpuStats>()
            .is_some_and(|g| !g.devices.is_empty());
        let vram = self.vram_bytes();
        if !gpu_answered && vram > 0 {
            out.push(
                Point::new(&semconv::GPU_VRAM_USED_MB, vram as f64 / MIB)
                    .with(attr::GPU_INDEX, AttrValue::Int(0))
                    .with(attr::GPU_NAME, "ollama-estimate")
                    .with(attr::GPU_VENDOR, "ollama-estimate"),
            );
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadedModel {
    /// `name:tag`.
    pub name: String,
    /// Whole footprint: weights, KV cache, graph.
    pub size_bytes: u64,
    /// The part resident in GPU memory (0: CPU only).
    pub size_vram_bytes: u64,
    /// RFC 3339, in the server's local offset, as Ollama sent it.
    pub expires_at: Option<String>,
}

#[derive(Deserialize)]
struct PsResponse {
    #[serde(default)]
    models: Option<Vec<PsModel>>,
}

#[derive(Deserialize)]
struct PsModel {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default)]
    size_vram: Option<u64>,
    #[serde(default)]
    expires_at: Option<String>,
}

/// Parses a `/api/ps` body. A model without a name is skipped.
pub fn parse_ps(body: &[u8]) -> Result<OllamaStats, String> {
    let ps: PsResponse = serde_json::from_slice(body)
        .map_err(|e| format!("/api/ps is not the expected JSON: {e}"))?;
    let models = ps
        .models
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| {
            let name = m.name.filter(|n| !n.is_empty()).or(m.model)?;
            (!name.is_empty()).then(|| LoadedModel {
                name,
                size_bytes: m.size.unwrap_or(0),
                size_vram_bytes: m.size_vram.unwrap_or(0),
                expires_at: m.expires_at,
            })
        })
        .collect();
    Ok(OllamaStats { models })
}

/// The models family's source, when `[ollama]` is enabled.
pub fn build(cfg: &OllamaConfig) -> Option<super::Builder> {
    let cfg = cfg.clone();
    cfg.enabled
        .then(|| super::one(move |_| Box::new(OllamaSource::new(&cfg))))
}

/// While nothing listens at `ollama.url` (connection refused: Ollama is
/// not running), it is asked again at most this often instead of every
/// cycle: the name lookup and the refused connect were most of this
/// source's cost on a host without Ollama. A slow or failing Ollama is
/// still asked every cycle.
pub const RETRY_WHILE_REFUSED: Duration = Duration::from_secs(30);

pub struct OllamaSource {
    url: Result<HttpUrl, String>,
    timeout: Duration,
    /// When the last refused attempt was made, and what it said.
    refused: Option<(Instant, SourceError)>,
}

impl OllamaSource {
    pub fn new(cfg: &OllamaConfig) -> Self {
        OllamaSource {
            url: HttpUrl::parse(&cfg.url),
            timeout: cfg.timeout.0,
            refused: None,
        }
    }

    /// `sample` at a given time.
    pub fn sample_at(&mut self, snap: &mut Snapshot, now: Instant) -> Result<(), SourceError> {
        let url = self
            .url
            .as_ref()
            .map_err(|e| SourceError::Unavailable(e.clone()))?;
        if let Some((at, err)) = &self.refused
            && now.saturating_duration_since(*at) < RETRY_WHILE_REFUSED
        {
            return Err(err.clone());
        }
        let down = |why: &dyn std::fmt::Display| {
            SourceError::Unavailable(format!("{}: {why}", url.authority))
        };
        self.refused = None;
        let resp = http_get::get(url, "/api/ps", self.timeout).map_err(|e| {
            let err = down(&e);
            if e.refused {
                self.refused = Some((now, err.clone()));
            }
            err
        })?;
        if resp.status != 200 {
            return Err(down(&format_args!("/api/ps answered HTTP {}", resp.status)));
        }
        snap.put(parse_ps(&resp.body).map_err(|e| down(&e))?);
        Ok(())
    }
}

impl Source for OllamaSource {
    fn name(&self) -> &'static str {
        "ollama"
    }

    fn sample(&mut self, snap: &mut Snapshot) -> Result<(), SourceError> {
        self.sample_at(snap, Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_example() {
        // docs/api.md "List Running Models", plus context_length and an
        // unknown field.
        let body = br#"{"models":[{"name":"mistral:latest","model":"mistral:latest","size":5137025024,
          "digest":"2ae6f6dd7a3dd734790bbbf58b8909a606e0e7e97e94b7604e0aa7ae4490e6d8",
          "details":{"parent_model":"","format":"gguf","family":"llama","families":["llama"],
          "parameter_size":"7.2B","quantization_level":"Q4_0"},
          "expires_at":"2024-06-04T14:38:31.83753-07:00","size_vram":5137025024,"context_length":4096,
          "something_new":{"x":1}}]}"#;
        let s = parse_ps(body).unwrap();
        assert_eq!(
            s.models,
            vec![LoadedModel {
                name: "mistral:latest".into(),
                size_bytes: 5_137_025_024,
                size_vram_bytes: 5_137_025_024,
                expires_at: Some("2024-06-04T14:38:31.83753-07:00".into()),
            }]
        );
    }

    #[test]
    fn missing_fields_and_empty_lists() {
        assert_eq!(parse_ps(br#"{"models":[]}"#).unwrap().models, vec![]);
        assert_eq!(parse_ps(br#"{"models":null}"#).unwrap().models, vec![]);
        assert_eq!(parse_ps(b"{}").unwrap().models, vec![]);
        let s = parse_ps(br#"{"models":[{"model":"llama3:8b"},{"size":1}]}"#).unwrap();
        assert_eq!(s.models.len(), 1);
        assert_eq!(s.models[0].name, "llama3:8b");
        assert_eq!(
            (s.models[0].size_bytes, s.models[0].size_vram_bytes),
            (0, 0)
        );
    }

    #[test]
    fn garbage_is_an_error() {
        for body in [
            &b"<html>"[..],
            b"[1,2]",
            b"{\"models\":[{\"size\":-1,\"name\":\"x\"}]}",
            b"",
        ] {
            assert!(parse_ps(body).is_err(), "{}", String::from_utf8_lossy(body));
        }
    }
}
