//! Configuration: built-in defaults → TOML file → environment
//! (`OTEL_*` standard variables, then `UNAMENTIS_AGENT_*`) → command-line
//! flags. Every value remembers where it came from, so `check-config` can
//! say so and every error names the file or variable, the key and the reason.
//!
//! `mod.rs` holds the model (one struct per section) and its defaults;
//! `keys.rs` the table of keys with their variables and flags; `load.rs`
//! the layering with the origin of every value; `validate.rs` one check
//! per section.

mod keys;
mod load;
mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use toml::Table;

pub use keys::{env_vars, parse_pairs};
pub use load::{ConfigError, Flags, Loaded, Origin, load, load_text};
pub const DEFAULT_GRPC_ENDPOINT: &str = "http://localhost:4317";
pub const DEFAULT_HTTP_ENDPOINT: &str = "http://localhost:4318";
pub const CONFIG_ENV: &str = "UNAMENTIS_AGENT_CONFIG";
/// About 10 minutes of batches at the default 5 s interval (120 batches of
/// up to ~16 KiB encoded, uncompressed: the queue holds them before gzip).
pub const DEFAULT_QUEUE_MAX_BYTES: u64 = 2 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// How often sources are sampled and metrics exported.
    pub interval: Dur,
    pub log: LogConfig,
    pub export: ExportConfig,
    pub resource: ResourceConfig,
    pub host: HostConfig,
    pub server: ServerConfig,
    pub gpu: GpuConfig,
    pub ollama: OllamaConfig,
    pub activity: ActivityConfig,
    pub compat: CompatConfig,
    /// Keep the built-in service catalogue; `[[service]]` entries extend it
    /// and replace a built-in one of the same name. `false`: only the file's.
    pub default_services: bool,
    /// Also report the N busiest processes no service matched (0 = off,
    /// at most 50): costs a read of every process's stat each cycle.
    pub top_processes: u32,
    #[serde(rename = "service")]
    pub services: Vec<ServiceConfig>,
    /// `[families.<name>]`: the section of each metric family under
    /// `src/families/`, kept as written; the family parses and checks its
    /// own section (`families::check`), so this module knows none of them.
    pub families: BTreeMap<String, Table>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A tracing filter: `info`, `debug`, `warn,unamentis_agent=debug`.
    /// `RUST_LOG`, when set, wins.
    pub level: String,
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExportConfig {
    /// `false` (or `OTEL_SDK_DISABLED=true`): sample but export nothing.
    pub enabled: bool,
    /// Base endpoint; OTLP/HTTP appends `/v1/metrics`. Unset: the protocol's
    /// default (4317 for gRPC, 4318 for HTTP).
    pub endpoint: Option<String>,
    /// Full metrics URL, used as is (`OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`).
    pub metrics_endpoint: Option<String>,
    pub protocol: Protocol,
    pub headers: BTreeMap<String, String>,
    pub compression: Compression,
    pub timeout: Dur,
    /// PEM file of the CA that signs the collector's TLS certificate.
    pub certificate: Option<PathBuf>,
    /// Bytes of encoded batches kept for replay while the collector is
    /// down; beyond that the oldest are dropped (0: keep none).
    pub queue_max_bytes: u64,
    /// Batches older than this are dropped from the replay queue.
    pub queue_max_age: Dur,
    /// Send each metric's description with every export. Off: the
    /// descriptions are static text that would make up a third of every
    /// request's bytes; the registry, the README and `/metrics` carry them.
    pub descriptions: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Protocol {
    #[serde(rename = "grpc")]
    Grpc,
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    Gzip,
    None,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResourceConfig {
    /// Overrides `service.name` (default `unamentis-agent`).
    pub service_name: Option<String>,
    /// Extra resource attributes; they override the detected ones.
    pub attributes: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HostConfig {
    /// Where the host's procfs is mounted (`/host/proc` in a container).
    pub proc: PathBuf,
    pub sys: PathBuf,
    /// The host's root filesystem, for `/etc/machine-id`.
    pub root: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Local HTTP server (health, snapshot, activity push).
    pub listen: String,
    /// Bearer token the local server requires, if set.
    pub token: Option<String>,
    /// Listen beyond loopback without a token (health probes from a
    /// kubelet on a trusted node network). Off: such a bind is refused.
    pub allow_unauthenticated: bool,
}

/// GPU source: NVML, then nvidia-smi, then amdgpu sysfs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GpuConfig {
    pub enabled: bool,
    /// NVML shared library to load; unset: the driver's `libnvidia-ml.so`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nvml_library: Option<PathBuf>,
    /// The nvidia-smi program (fallback when NVML cannot be loaded).
    pub nvidia_smi: PathBuf,
    /// nvidia-smi is killed when it takes longer (it hangs on a sick driver).
    pub nvidia_smi_timeout: Dur,
}

/// Ollama's `/api/ps`: loaded models and their VRAM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OllamaConfig {
    pub enabled: bool,
    /// Base URL of the Ollama API (plain http).
    pub url: String,
    pub timeout: Dur,
}

/// Activity probes and the idle clock (`src/activity/`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ActivityConfig {
    /// The stack is idle once nothing was seen for this long.
    pub idle_after: Dur,
    /// Accept `POST /v1/activity` on the local server.
    pub push: bool,
    /// Count established TCP connections on each service's ports.
    pub connections: bool,
    /// Infer inferences from Ollama's `/api/ps` `expires_at`.
    pub ollama: bool,
    /// Remote addresses whose connections are not activity (health checks).
    pub ignore_sources: Vec<String>,
}

/// Standard OpenTelemetry names emitted beside the agent's own, from the
/// same snapshot (`src/compat.rs`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompatConfig {
    /// The Collector hostmetrics names SigNoz's Hosts page keys on
    /// (`system.cpu.time`, `system.memory.usage`, ...).
    pub hostmetrics: bool,
    /// The `hw.*` hardware conventions (`hw.power`, `hw.energy`, ...).
    pub hw: bool,
    /// `system.filesystem.*` for virtual filesystems too (tmpfs, proc,
    /// overlay, ...), as the receiver's `include_virtual_filesystems`.
    pub include_virtual_filesystems: bool,
}

/// What the services source is built from ([`Config::services_section`]):
/// the built-in services merged with the file's, and how many other
/// processes to list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServicesSection {
    pub services: Vec<ServiceConfig>,
    pub top_processes: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    pub name: String,
    /// Exact process names (`comm`), e.g. `ollama`.
    #[serde(
        default,
        deserialize_with = "one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub process: Vec<String>,
    /// Regular expression on the full command line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmdline: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// TCP ports the service listens on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_file: Option<PathBuf>,
    /// A systemd unit (`ollama.service`): the service is its cgroup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub systemd_unit: Option<String>,
    /// A cgroup path below the hierarchy's root, `*` and `?` globs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<String>,
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    match OneOrMany::deserialize(d) {
        Ok(OneOrMany::One(s)) => Ok(vec![s]),
        Ok(OneOrMany::Many(v)) => Ok(v),
        Err(_) => Err(serde::de::Error::custom(
            "expected a process name or a list of names",
        )),
    }
}

/// A duration written as text: `5s`, `500ms`, `1m30s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl Serialize for Dur {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(self.0).to_string())
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Dur;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration such as \"5s\" or \"500ms\"")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Dur, E> {
                humantime::parse_duration(s.trim())
                    .map(Dur)
                    .map_err(|e| E::custom(format!("invalid duration {s:?}: {e}")))
            }
        }
        d.deserialize_str(V)
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            interval: Dur(Duration::from_secs(5)),
            log: LogConfig::default(),
            export: ExportConfig::default(),
            resource: ResourceConfig::default(),
            host: HostConfig::default(),
            server: ServerConfig::default(),
            gpu: GpuConfig::default(),
            ollama: OllamaConfig::default(),
            activity: ActivityConfig::default(),
            compat: CompatConfig::default(),
            default_services: true,
            top_processes: 0,
            services: Vec::new(),
            families: BTreeMap::new(),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

impl Default for ExportConfig {
    fn default() -> Self {
        ExportConfig {
            enabled: true,
            endpoint: None,
            metrics_endpoint: None,
            protocol: Protocol::Grpc,
            headers: BTreeMap::new(),
            compression: Compression::Gzip,
            timeout: Dur(Duration::from_secs(10)),
            certificate: None,
            queue_max_bytes: DEFAULT_QUEUE_MAX_BYTES,
            queue_max_age: Dur(Duration::from_secs(15 * 60)),
            descriptions: false,
        }
    }
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            proc: "/proc".into(),
            sys: "/sys".into(),
            root: "/".into(),
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8767".into(),
            token: None,
            allow_unauthenticated: false,
        }
    }
}

impl Default for GpuConfig {
    fn default() -> Self {
        GpuConfig {
            enabled: true,
            nvml_library: None,
            nvidia_smi: "nvidia-smi".into(),
            nvidia_smi_timeout: Dur(Duration::from_secs(5)),
        }
    }
}

impl Default for OllamaConfig {
    fn default() -> Self {
        OllamaConfig {
            enabled: true,
            url: "http://localhost:11434".into(),
            timeout: Dur(Duration::from_secs(2)),
        }
    }
}

impl Default for ActivityConfig {
    fn default() -> Self {
        ActivityConfig {
            idle_after: Dur(Duration::from_secs(60)),
            push: true,
            connections: true,
            ollama: true,
            ignore_sources: Vec::new(),
        }
    }
}

/// The services of the stack the agent knows without a config file. All
/// matchers of a service must hold: "a python process listening on 8766".
pub fn builtin_services() -> Vec<ServiceConfig> {
    let svc = |name: &str, process: &[&str], port: Option<u16>| ServiceConfig {
        name: name.into(),
        process: process.iter().map(|s| s.to_string()).collect(),
        cmdline: None,
        port,
        ports: Vec::new(),
        pid_file: None,
        systemd_unit: None,
        cgroup: None,
    };
    vec![
        svc("management", &["python", "python3"], Some(8766)),
        // By name alone: the server and its `ollama runner` children share
        // it, and the server may listen elsewhere than 11434 (OLLAMA_HOST).
        svc("ollama", &["ollama"], None),
        svc("vibevoice", &["python", "python3"], Some(8880)),
        svc("nextjs", &["node", "next-server"], Some(3000)),
        svc("whisper", &[], Some(11401)),
        svc("piper", &[], Some(11402)),
    ]
}

impl ExportConfig {
    /// The URL the exporter sends to.
    pub fn effective_endpoint(&self) -> String {
        if let Some(url) = &self.metrics_endpoint {
            return url.clone();
        }
        match self.protocol {
            Protocol::Grpc => self
                .endpoint
                .clone()
                .unwrap_or_else(|| DEFAULT_GRPC_ENDPOINT.into()),
            Protocol::HttpProtobuf => {
                let base = self.endpoint.as_deref().unwrap_or(DEFAULT_HTTP_ENDPOINT);
                format!("{}/v1/metrics", base.trim_end_matches('/'))
            }
        }
    }
}

impl Config {
    /// The configured services with the built-in ones merged in.
    pub fn effective_services(&self) -> Vec<ServiceConfig> {
        let mut out = if self.default_services {
            builtin_services()
        } else {
            Vec::new()
        };
        for s in &self.services {
            match out.iter_mut().find(|b| b.name == s.name) {
                Some(b) => *b = s.clone(),
                None => out.push(s.clone()),
            }
        }
        out
    }

    /// The defaults, reading the host at `paths` (fixture trees in tests).
    pub fn for_host(paths: &crate::host::HostPaths) -> Config {
        let mut c = Config::default();
        c.host.proc = paths.proc.clone();
        c.host.sys = paths.sys.clone();
        c.host.root = paths.root.clone();
        c
    }

    /// The services family's part of the configuration: the effective
    /// services and the length of the top-processes list.
    pub fn services_section(&self) -> ServicesSection {
        ServicesSection {
            services: self.effective_services(),
            top_processes: self.top_processes,
        }
    }

    pub fn host_paths(&self) -> crate::host::HostPaths {
        crate::host::HostPaths {
            proc: self.host.proc.clone(),
            sys: self.host.sys.clone(),
            root: self.host.root.clone(),
        }
    }
}
