//! Configuration: built-in defaults → TOML file → environment
//! (`OTEL_*` standard variables, then `UNAMENTIS_AGENT_*`) → command-line
//! flags. Every value remembers where it came from, so `check-config` can
//! say so and every error names the file or variable, the key and the reason.

use std::collections::{BTreeMap, HashMap};
use std::fmt::{self, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use toml::{Table, Value};

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

    pub fn host_paths(&self) -> crate::host::HostPaths {
        crate::host::HostPaths {
            proc: self.host.proc.clone(),
            sys: self.host.sys.clone(),
            root: self.host.root.clone(),
        }
    }
}

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Default,
    File(PathBuf),
    Env(&'static str),
    Flag(&'static str),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("default"),
            Origin::File(p) => write!(f, "{}", p.display()),
            Origin::Env(v) => write!(f, "env {v}"),
            Origin::Flag(v) => write!(f, "flag {v}"),
        }
    }
}

/// A configuration error: exit code 2, printed on one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub origin: Origin,
    pub key: String,
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let line = if self.key.is_empty() {
            format!("{}: {}", self.origin, self.reason)
        } else {
            format!("{}: key {}: {}", self.origin, self.key, self.reason)
        };
        // One line whatever the file holds: keys, paths and some serde
        // messages carry the user's text as is.
        for c in line.chars() {
            if c.is_control() {
                write!(f, "{}", c.escape_default())?;
            } else {
                f.write_char(c)?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// How an environment value becomes a config value.
#[derive(Debug, Clone, Copy)]
enum Conv {
    Str,
    /// Milliseconds, as the OTel spec writes intervals and timeouts.
    Millis,
    Bool,
    /// `OTEL_SDK_DISABLED=true` means `export.enabled = false`.
    NotBool,
    /// `k=v,k2=v2` with percent-encoded values (W3C Baggage style).
    Pairs,
}

struct KeySpec {
    key: &'static str,
    /// Lowest precedence first: a later variable that is set wins.
    env: &'static [(&'static str, Conv)],
    flag: Option<&'static str>,
}

const KEYS: &[KeySpec] = &[
    KeySpec {
        key: "interval",
        env: &[
            ("OTEL_METRIC_EXPORT_INTERVAL", Conv::Millis),
            ("UNAMENTIS_AGENT_INTERVAL", Conv::Str),
        ],
        flag: Some("--interval"),
    },
    KeySpec {
        key: "log.level",
        env: &[("UNAMENTIS_AGENT_LOG_LEVEL", Conv::Str)],
        flag: Some("--log-level"),
    },
    KeySpec {
        key: "log.format",
        env: &[("UNAMENTIS_AGENT_LOG_FORMAT", Conv::Str)],
        flag: Some("--log-format"),
    },
    KeySpec {
        key: "export.enabled",
        env: &[
            ("OTEL_SDK_DISABLED", Conv::NotBool),
            ("UNAMENTIS_AGENT_EXPORT_ENABLED", Conv::Bool),
        ],
        flag: None,
    },
    KeySpec {
        key: "export.endpoint",
        env: &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", Conv::Str),
            ("UNAMENTIS_AGENT_EXPORT_ENDPOINT", Conv::Str),
        ],
        flag: Some("--endpoint"),
    },
    KeySpec {
        key: "export.metrics_endpoint",
        env: &[
            ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", Conv::Str),
            ("UNAMENTIS_AGENT_EXPORT_METRICS_ENDPOINT", Conv::Str),
        ],
        flag: None,
    },
    KeySpec {
        key: "export.protocol",
        env: &[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", Conv::Str),
            ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", Conv::Str),
            ("UNAMENTIS_AGENT_EXPORT_PROTOCOL", Conv::Str),
        ],
        flag: Some("--protocol"),
    },
    KeySpec {
        key: "export.headers",
        env: &[
            ("OTEL_EXPORTER_OTLP_HEADERS", Conv::Pairs),
            ("OTEL_EXPORTER_OTLP_METRICS_HEADERS", Conv::Pairs),
            ("UNAMENTIS_AGENT_EXPORT_HEADERS", Conv::Pairs),
        ],
        flag: None,
    },
    KeySpec {
        key: "export.compression",
        env: &[
            ("OTEL_EXPORTER_OTLP_COMPRESSION", Conv::Str),
            ("OTEL_EXPORTER_OTLP_METRICS_COMPRESSION", Conv::Str),
            ("UNAMENTIS_AGENT_EXPORT_COMPRESSION", Conv::Str),
        ],
        flag: None,
    },
    KeySpec {
        key: "export.timeout",
        env: &[
            ("OTEL_EXPORTER_OTLP_TIMEOUT", Conv::Millis),
            ("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", Conv::Millis),
            ("UNAMENTIS_AGENT_EXPORT_TIMEOUT", Conv::Str),
        ],
        flag: None,
    },
    KeySpec {
        key: "export.certificate",
        env: &[
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", Conv::Str),
            ("OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE", Conv::Str),
            ("UNAMENTIS_AGENT_EXPORT_CERTIFICATE", Conv::Str),
        ],
        flag: None,
    },
    KeySpec {
        key: "resource.service_name",
        env: &[("OTEL_SERVICE_NAME", Conv::Str)],
        flag: None,
    },
    KeySpec {
        key: "resource.attributes",
        env: &[
            ("OTEL_RESOURCE_ATTRIBUTES", Conv::Pairs),
            ("UNAMENTIS_AGENT_RESOURCE_ATTRIBUTES", Conv::Pairs),
        ],
        flag: None,
    },
    KeySpec {
        key: "host.proc",
        env: &[("UNAMENTIS_AGENT_HOST_PROC", Conv::Str)],
        flag: Some("--host-proc"),
    },
    KeySpec {
        key: "host.sys",
        env: &[("UNAMENTIS_AGENT_HOST_SYS", Conv::Str)],
        flag: Some("--host-sys"),
    },
    KeySpec {
        key: "host.root",
        env: &[("UNAMENTIS_AGENT_HOST_ROOT", Conv::Str)],
        flag: Some("--host-root"),
    },
    KeySpec {
        key: "server.listen",
        env: &[("UNAMENTIS_AGENT_SERVER_LISTEN", Conv::Str)],
        flag: Some("--listen"),
    },
    KeySpec {
        key: "server.token",
        env: &[("UNAMENTIS_AGENT_SERVER_TOKEN", Conv::Str)],
        flag: None,
    },
    KeySpec {
        key: "gpu.enabled",
        env: &[("UNAMENTIS_AGENT_GPU_ENABLED", Conv::Bool)],
        flag: None,
    },
    KeySpec {
        key: "gpu.nvml_library",
        env: &[("UNAMENTIS_AGENT_GPU_NVML_LIBRARY", Conv::Str)],
        flag: None,
    },
    KeySpec {
        key: "gpu.nvidia_smi",
        env: &[("UNAMENTIS_AGENT_GPU_NVIDIA_SMI", Conv::Str)],
        flag: None,
    },
    KeySpec {
        key: "gpu.nvidia_smi_timeout",
        env: &[("UNAMENTIS_AGENT_GPU_NVIDIA_SMI_TIMEOUT", Conv::Str)],
        flag: None,
    },
    KeySpec {
        key: "ollama.enabled",
        env: &[("UNAMENTIS_AGENT_OLLAMA_ENABLED", Conv::Bool)],
        flag: None,
    },
    KeySpec {
        key: "ollama.url",
        env: &[("UNAMENTIS_AGENT_OLLAMA_URL", Conv::Str)],
        flag: None,
    },
    KeySpec {
        key: "ollama.timeout",
        env: &[("UNAMENTIS_AGENT_OLLAMA_TIMEOUT", Conv::Str)],
        flag: None,
    },
    KeySpec {
        key: "activity.idle_after",
        env: &[("UNAMENTIS_AGENT_ACTIVITY_IDLE_AFTER", Conv::Str)],
        flag: None,
    },
    KeySpec {
        key: "activity.push",
        env: &[("UNAMENTIS_AGENT_ACTIVITY_PUSH", Conv::Bool)],
        flag: None,
    },
    KeySpec {
        key: "activity.connections",
        env: &[("UNAMENTIS_AGENT_ACTIVITY_CONNECTIONS", Conv::Bool)],
        flag: None,
    },
    KeySpec {
        key: "activity.ollama",
        env: &[("UNAMENTIS_AGENT_ACTIVITY_OLLAMA", Conv::Bool)],
        flag: None,
    },
    KeySpec {
        key: "compat.hostmetrics",
        env: &[("UNAMENTIS_AGENT_COMPAT_HOSTMETRICS", Conv::Bool)],
        flag: None,
    },
    KeySpec {
        key: "compat.hw",
        env: &[("UNAMENTIS_AGENT_COMPAT_HW", Conv::Bool)],
        flag: None,
    },
    KeySpec {
        key: "compat.include_virtual_filesystems",
        env: &[(
            "UNAMENTIS_AGENT_COMPAT_INCLUDE_VIRTUAL_FILESYSTEMS",
            Conv::Bool,
        )],
        flag: None,
    },
];

/// Every environment variable the agent reads, with its config key, for
/// `--help` and the README.
pub fn env_vars() -> impl Iterator<Item = (&'static str, &'static str)> {
    std::iter::once((CONFIG_ENV, "(config file path)")).chain(
        KEYS.iter()
            .flat_map(|k| k.env.iter().map(|(v, _)| (*v, k.key))),
    )
}

/// A loaded configuration and where each key came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub file: Option<PathBuf>,
    origins: HashMap<String, Origin>,
}

impl Loaded {
    /// Where `key` (dotted, `service[0].name`) came from: the closest
    /// recorded key at or above it.
    pub fn origin(&self, key: &str) -> Origin {
        let mut k = key;
        loop {
            if let Some(o) = self.origins.get(k) {
                return o.clone();
            }
            match k.rfind(['.', '[']) {
                Some(i) => k = &k[..i],
                None => return Origin::Default,
            }
        }
    }

    /// The effective configuration, one `key = value  # origin` per line;
    /// secrets (headers, token) are masked.
    pub fn render(&self) -> String {
        let mut lines = Vec::new();
        let mut value = Value::try_from(&self.config).unwrap_or(Value::Table(Table::new()));
        if let Value::Table(t) = &mut value {
            // Show the services the agent will really watch.
            t.remove("service");
        }
        flatten("", &value, &mut lines);
        if self.config.export.endpoint.is_none() && self.config.export.metrics_endpoint.is_none() {
            let url = self.config.export.effective_endpoint();
            lines.push(("export.endpoint".into(), format!("{url:?}"), None));
        }
        lines.sort_by(|a, b| a.0.cmp(&b.0));
        for (i, s) in self.config.effective_services().iter().enumerate() {
            let key = format!("service[{i}]");
            let origin = self
                .config
                .services
                .iter()
                .position(|c| c.name == s.name)
                .map(|j| self.origin(&format!("service[{j}]")))
                .unwrap_or(Origin::Default);
            let v = Value::try_from(s)
                .map(|v| v.to_string())
                .unwrap_or_default();
            lines.push((key, v, Some(origin)));
        }
        let width = lines
            .iter()
            .map(|(k, v, _)| k.len() + v.len() + 3)
            .max()
            .unwrap_or(0);
        let mut out = String::new();
        for (k, v, origin) in lines {
            let origin = origin.unwrap_or_else(|| self.origin(&k));
            let shown = if is_secret(&k) {
                "\"***\"".to_owned()
            } else {
                v
            };
            let line = format!("{k} = {shown}");
            out.push_str(&format!("{line:<width$}  # {origin}\n"));
        }
        out
    }
}

fn is_secret(key: &str) -> bool {
    key.starts_with("export.headers.") || key == "server.token"
}

type Line = (String, String, Option<Origin>);

fn flatten(prefix: &str, v: &Value, out: &mut Vec<Line>) {
    match v {
        Value::Table(t) if !t.is_empty() || prefix.is_empty() => {
            for (k, v) in t {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        _ => out.push((prefix.to_owned(), v.to_string(), None)),
    }
}

/// Values given on the command line, by flag name (`--interval`).
pub type Flags = Vec<(&'static str, String)>;

/// Loads the configuration. `config_flag` is `--config`; `env` is the
/// process environment (a closure so tests can pass their own).
pub fn load(
    config_flag: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
    flags: &Flags,
) -> Result<Loaded, ConfigError> {
    let file = match config_flag {
        Some(p) => Some((p.to_path_buf(), Origin::Flag("--config"))),
        None => env(CONFIG_ENV)
            .filter(|s| !s.is_empty())
            .map(|p| (PathBuf::from(p), Origin::Env(CONFIG_ENV))),
    };
    let text = match &file {
        Some((path, how)) => Some(std::fs::read_to_string(path).map_err(|e| ConfigError {
            origin: how.clone(),
            key: String::new(),
            reason: format!("cannot read config file {}: {e}", path.display()),
        })?),
        None => None,
    };
    let file = file.as_ref().map(|(p, _)| p.as_path());
    load_text(file.zip(text.as_deref()), env, flags)
}

/// [`load`] with the file's text given (as read from the path): fuzz
/// targets and tests reach the TOML layer without a file.
pub fn load_text(
    file: Option<(&Path, &str)>,
    env: &dyn Fn(&str) -> Option<String>,
    flags: &Flags,
) -> Result<Loaded, ConfigError> {
    let mut origins = HashMap::new();
    let mut table = Table::new();
    if let Some((path, text)) = file {
        table = parse_file(path, text)?;
        record_file_origins("", &table, &Origin::File(path.to_path_buf()), &mut origins);
    }

    for spec in KEYS {
        for (var, conv) in spec.env {
            let Some(raw) = env(var) else { continue };
            // The OTel spec treats an empty variable as unset.
            if raw.trim().is_empty() {
                continue;
            }
            let origin = Origin::Env(var);
            let value = convert(&raw, *conv).map_err(|reason| ConfigError {
                origin: origin.clone(),
                key: spec.key.into(),
                reason,
            })?;
            set(&mut table, spec.key, value, &origin, &mut origins);
        }
    }
    for (flag, raw) in flags {
        // The flags come from main's own table, each written with its key.
        #[allow(clippy::expect_used)]
        let spec = KEYS
            .iter()
            .find(|k| k.flag == Some(*flag))
            .expect("every flag passed to config::load has a KeySpec");
        set(
            &mut table,
            spec.key,
            Value::String(raw.clone()),
            &Origin::Flag(flag),
            &mut origins,
        );
    }

    let loaded_file = file.map(|(p, _)| p.to_path_buf());
    let config: Config = serde_path_to_error::deserialize(Value::Table(table)).map_err(|e| {
        let key = e.path().to_string();
        let reason = e
            .inner()
            .message()
            .replacen("unknown field", "unknown key", 1);
        let origin = Loaded {
            config: Config::default(),
            file: None,
            origins: origins.clone(),
        }
        .origin(&key);
        ConfigError {
            origin,
            key,
            reason,
        }
    })?;
    let loaded = Loaded {
        config,
        file: loaded_file,
        origins,
    };
    validate(&loaded)?;
    Ok(loaded)
}

fn parse_file(path: &Path, text: &str) -> Result<Table, ConfigError> {
    text.parse::<Table>().map_err(|e| {
        let start = e.span().map(|s| s.start.min(text.len()));
        let at = start
            .map(|start| {
                let before = &text[..start];
                let line = before.matches('\n').count() + 1;
                let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                format!("line {line}, column {col}: ")
            })
            .unwrap_or_default();
        ConfigError {
            origin: Origin::File(path.to_path_buf()),
            key: start.and_then(|s| key_at(text, s)).unwrap_or_default(),
            reason: format!("invalid TOML: {at}{}", e.message().trim()),
        }
    })
}

/// The key defined on the line holding byte `at`, for TOML errors (the
/// parser gives a position only): a `[table]` header, or `key = value`
/// under the nearest header above. `None` for other lines (the inside of
/// a multi-line array or string).
fn key_at(text: &str, at: usize) -> Option<String> {
    let start = text.get(..at)?.rfind('\n').map_or(0, |i| i + 1);
    let above = &text[..start];
    let line = text[start..].lines().next().unwrap_or("");
    if let Some((table, _)) = header(line) {
        return Some(table);
    }
    let key = dotted_key(line.split_once('=')?.0)?;
    let Some((table, array)) = above.lines().rev().find_map(header) else {
        return Some(key);
    };
    if !array {
        return Some(format!("{table}.{key}"));
    }
    // The n-th `[[service]]` is `service[n-1]`, as serde names it.
    let n = above
        .lines()
        .filter(|l| header(l) == Some((table.clone(), true)))
        .count();
    Some(format!("{table}[{}].{key}", n.saturating_sub(1)))
}

/// `[a.b]` → (`a.b`, false), `[[a]]` → (`a`, true).
fn header(line: &str) -> Option<(String, bool)> {
    let line = line.split('#').next()?.trim();
    let inner = line.strip_prefix('[')?.strip_suffix(']')?;
    match inner.strip_prefix('[').and_then(|i| i.strip_suffix(']')) {
        Some(i) => Some((dotted_key(i)?, true)),
        None => Some((dotted_key(inner)?, false)),
    }
}

/// `a . "b.c"` → `a.b.c`; only bare and simple quoted parts.
fn dotted_key(s: &str) -> Option<String> {
    let mut parts = Vec::new();
    let mut rest = s.trim();
    loop {
        let (part, after) = match rest.chars().next()? {
            q @ ('"' | '\'') => {
                let end = rest[1..].find(q)? + 1;
                (&rest[1..end], &rest[end + 1..])
            }
            _ => {
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
                    .unwrap_or(rest.len());
                (&rest[..end], &rest[end..])
            }
        };
        if part.is_empty() || part.contains('\\') {
            return None;
        }
        parts.push(part);
        let after = after.trim_start();
        if after.is_empty() {
            return Some(parts.join("."));
        }
        rest = after.strip_prefix('.')?.trim_start();
    }
}

fn record_file_origins(
    prefix: &str,
    t: &Table,
    origin: &Origin,
    out: &mut HashMap<String, Origin>,
) {
    for (k, v) in t {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        // Tables themselves get no origin: their keys may come from
        // different layers.
        if !v.is_table() {
            out.insert(key.clone(), origin.clone());
        }
        match v {
            Value::Table(sub) => record_file_origins(&key, sub, origin, out),
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    out.insert(format!("{key}[{i}]"), origin.clone());
                    if let Value::Table(sub) = item {
                        record_file_origins(&format!("{key}[{i}]"), sub, origin, out);
                    }
                }
            }
            _ => {}
        }
    }
}

/// Sets a dotted key; maps (`headers`, `attributes`) are merged key by key.
fn set(
    table: &mut Table,
    key: &str,
    value: Value,
    origin: &Origin,
    origins: &mut HashMap<String, Origin>,
) {
    let (parents, leaf) = match key.rsplit_once('.') {
        Some((p, l)) => (p.split('.').collect::<Vec<_>>(), l),
        None => (Vec::new(), key),
    };
    let mut t = table;
    for p in parents {
        let entry = t.entry(p).or_insert_with(|| Value::Table(Table::new()));
        if !entry.is_table() {
            // A file gave a scalar where a section belongs; the env value
            // replaces it and deserialization reports nothing wrong.
            *entry = Value::Table(Table::new());
        }
        #[allow(clippy::expect_used)] // replaced by a table just above
        let table = entry.as_table_mut().expect("made a table just above");
        t = table;
    }
    match (t.get_mut(leaf), value) {
        (Some(Value::Table(existing)), Value::Table(new)) => {
            for (k, v) in new {
                origins.insert(format!("{key}.{k}"), origin.clone());
                existing.insert(k, v);
            }
        }
        (_, value) => {
            if let Value::Table(new) = &value {
                for k in new.keys() {
                    origins.insert(format!("{key}.{k}"), origin.clone());
                }
            }
            origins.insert(key.to_owned(), origin.clone());
            t.insert(leaf.to_owned(), value);
        }
    }
}

fn convert(raw: &str, conv: Conv) -> Result<Value, String> {
    let raw = raw.trim();
    match conv {
        Conv::Str => Ok(Value::String(raw.to_owned())),
        Conv::Millis => raw
            .parse::<u64>()
            .map(|ms| Value::String(format!("{ms}ms")))
            .map_err(|_| format!("{raw:?} is not a whole number of milliseconds")),
        Conv::Bool | Conv::NotBool => {
            let b = match raw.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => true,
                "false" | "0" | "no" => false,
                _ => return Err(format!("{raw:?} is not a boolean (true or false)")),
            };
            Ok(Value::Boolean(if matches!(conv, Conv::NotBool) {
                !b
            } else {
                b
            }))
        }
        Conv::Pairs => parse_pairs(raw).map(|pairs| {
            Value::Table(
                pairs
                    .into_iter()
                    .map(|(k, v)| (k, Value::String(v)))
                    .collect(),
            )
        }),
    }
}

/// `k1=v1,k2=v2` as used by OTEL_RESOURCE_ATTRIBUTES and
/// OTEL_EXPORTER_OTLP_HEADERS; values are percent-decoded.
pub fn parse_pairs(raw: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (k, v) = item
            .split_once('=')
            .ok_or_else(|| format!("{item:?} is not key=value"))?;
        let k = k.trim();
        if k.is_empty() {
            return Err(format!("{item:?} has an empty key"));
        }
        let v = percent_encoding::percent_decode_str(v.trim())
            .decode_utf8()
            .map_err(|_| format!("value of {k:?} is not UTF-8 after percent-decoding"))?;
        out.push((k.to_owned(), v.into_owned()));
    }
    Ok(out)
}

const MAX_QUEUE_BYTES: u64 = 256 * 1024 * 1024;
const MIN_INTERVAL: Duration = Duration::from_millis(100);
const MAX_INTERVAL: Duration = Duration::from_secs(3600);

fn validate(l: &Loaded) -> Result<(), ConfigError> {
    let c = &l.config;
    let err = |key: &str, reason: String| ConfigError {
        origin: l.origin(key),
        key: key.into(),
        reason,
    };
    if c.interval.0 < MIN_INTERVAL || c.interval.0 > MAX_INTERVAL {
        return Err(err(
            "interval",
            format!(
                "{} is outside 100ms..1h",
                humantime::format_duration(c.interval.0)
            ),
        ));
    }
    if c.export.timeout.0.is_zero() {
        return Err(err("export.timeout", "must be more than 0".into()));
    }
    if c.compat.include_virtual_filesystems && !c.compat.hostmetrics {
        return Err(err(
            "compat.include_virtual_filesystems",
            "true without compat.hostmetrics = true: no filesystem is read".into(),
        ));
    }
    if c.export.queue_max_bytes > MAX_QUEUE_BYTES {
        return Err(err(
            "export.queue_max_bytes",
            format!(
                "{} is more than {MAX_QUEUE_BYTES} (256 MiB): the queue lives in memory",
                c.export.queue_max_bytes
            ),
        ));
    }
    if c.export.queue_max_age.0 < c.interval.0 {
        return Err(err(
            "export.queue_max_age",
            format!(
                "{} is shorter than the interval ({}): nothing could be replayed",
                humantime::format_duration(c.export.queue_max_age.0),
                humantime::format_duration(c.interval.0)
            ),
        ));
    }
    if let Err(e) = tracing_subscriber::EnvFilter::builder().parse(&c.log.level) {
        return Err(err(
            "log.level",
            format!("{:?} is not a log filter: {e}", c.log.level),
        ));
    }
    for key in ["export.endpoint", "export.metrics_endpoint"] {
        let v = if key == "export.endpoint" {
            &c.export.endpoint
        } else {
            &c.export.metrics_endpoint
        };
        if let Some(url) = v {
            check_url(url).map_err(|reason| err(key, reason))?;
        }
    }
    for (k, v) in &c.export.headers {
        let key = format!("export.headers.{k}");
        if k.is_empty()
            || !k
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err(err(&key, format!("{k:?} is not a valid header name")));
        }
        // What the gRPC and HTTP clients accept; anything else would pass
        // here and fail only when the exporter starts.
        if !v.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b)) {
            return Err(err(
                &key,
                "value holds control characters or non-ASCII bytes: a header value is visible ASCII"
                    .into(),
            ));
        }
    }
    if let Some(p) = &c.export.certificate
        && let Err(e) = std::fs::metadata(p)
    {
        return Err(err("export.certificate", format!("{}: {e}", p.display())));
    }
    if let Some(t) = &c.server.token
        && (t.trim() != t || !t.bytes().all(|b| (0x20..0x7f).contains(&b)))
    {
        return Err(err(
            "server.token",
            "holds control characters, non-ASCII bytes or surrounding spaces: \
             no client could send it in an Authorization header"
                .into(),
        ));
    }
    for (key, path) in [
        ("host.proc", Some(&c.host.proc)),
        ("host.sys", Some(&c.host.sys)),
        ("host.root", Some(&c.host.root)),
        ("gpu.nvml_library", c.gpu.nvml_library.as_ref()),
        ("gpu.nvidia_smi", Some(&c.gpu.nvidia_smi)),
    ] {
        if path.is_some_and(|p| has_nul(p)) {
            return Err(err(key, NUL_PATH.into()));
        }
    }
    if let Ok(addr) = c.server.listen.parse::<SocketAddr>()
        && !addr.ip().is_loopback()
        && c.server.token.as_deref().is_none_or(str::is_empty)
        && !c.server.allow_unauthenticated
    {
        return Err(err(
            "server.listen",
            format!(
                "{addr} is reachable from other hosts: set server.token \
                 (or UNAMENTIS_AGENT_SERVER_TOKEN; an empty value counts as none), or \
                 server.allow_unauthenticated = true to accept pushes from anyone who can reach it"
            ),
        ));
    }
    if c.server.listen.parse::<SocketAddr>().is_err() {
        return Err(err(
            "server.listen",
            format!(
                "{:?} is not an address like 127.0.0.1:8767",
                c.server.listen
            ),
        ));
    }
    for k in c.resource.attributes.keys() {
        if k.trim().is_empty() {
            return Err(err("resource.attributes", "empty attribute key".into()));
        }
    }
    if c.top_processes > 50 {
        return Err(err(
            "top_processes",
            format!(
                "{} is more than 50 (each is a time series)",
                c.top_processes
            ),
        ));
    }
    let t = c.gpu.nvidia_smi_timeout.0;
    if t.is_zero() || t > Duration::from_secs(5) {
        return Err(err(
            "gpu.nvidia_smi_timeout",
            "must be more than 0 and at most 5s".into(),
        ));
    }
    let t = c.ollama.timeout.0;
    if t.is_zero() || t > Duration::from_secs(2) {
        return Err(err(
            "ollama.timeout",
            "must be more than 0 and at most 2s".into(),
        ));
    }
    if let Err(reason) = crate::url::HttpUrl::parse(&c.ollama.url) {
        return Err(err("ollama.url", reason));
    }
    let idle = c.activity.idle_after.0;
    if idle < Duration::from_secs(1) || idle > Duration::from_secs(7 * 24 * 3600) {
        return Err(err(
            "activity.idle_after",
            format!("{} is outside 1s..7days", humantime::format_duration(idle)),
        ));
    }
    for (i, a) in c.activity.ignore_sources.iter().enumerate() {
        if a.trim().parse::<std::net::IpAddr>().is_err() {
            return Err(err(
                &format!("activity.ignore_sources[{i}]"),
                format!("{a:?} is not an IP address like 10.0.0.5 or fd00::5"),
            ));
        }
    }
    let mut names = std::collections::HashSet::new();
    for (i, s) in c.services.iter().enumerate() {
        let key = |field: &str| format!("service[{i}].{field}");
        if s.name.trim().is_empty() {
            return Err(err(&key("name"), "must not be empty".into()));
        }
        if !names.insert(s.name.as_str()) {
            return Err(err(
                &key("name"),
                format!("duplicate service name {:?}", s.name),
            ));
        }
        if s.port == Some(0) || s.ports.contains(&0) {
            let k = if s.port == Some(0) { "port" } else { "ports" };
            return Err(err(
                &key(k),
                "port 0 is not a port a service listens on".into(),
            ));
        }
        if let Some(re) = &s.cmdline {
            crate::patterns::cmdline_regex(re).map_err(|r| err(&key("cmdline"), r))?;
        }
        if s.pid_file.as_ref().is_some_and(|p| has_nul(p)) {
            return Err(err(&key("pid_file"), NUL_PATH.into()));
        }
        let tree_matchers = !s.process.is_empty()
            || s.cmdline.is_some()
            || s.port.is_some()
            || !s.ports.is_empty()
            || s.pid_file.is_some();
        if let Some(u) = &s.systemd_unit {
            if let Some(why) = crate::patterns::check_unit(u) {
                return Err(err(&key("systemd_unit"), why));
            }
            if s.cgroup.is_some() {
                return Err(err(
                    &key("systemd_unit"),
                    "give systemd_unit or cgroup, not both".into(),
                ));
            }
        }
        if let Some(c) = &s.cgroup
            && let Some(why) = crate::patterns::check_cgroup_pattern(c)
        {
            return Err(err(&key("cgroup"), why));
        }
        if let Some(k) = [("systemd_unit", &s.systemd_unit), ("cgroup", &s.cgroup)]
            .iter()
            .find_map(|(k, v)| v.is_some().then_some(*k))
            && tree_matchers
        {
            return Err(err(
                &key(k),
                "a cgroup service is its cgroup alone: drop process, cmdline, port, ports and pid_file"
                    .into(),
            ));
        }
        if !tree_matchers && s.systemd_unit.is_none() && s.cgroup.is_none() {
            return Err(err(
                &key("name"),
                format!(
                    "service {:?} has no matcher: give process, cmdline, port, ports, pid_file, systemd_unit or cgroup",
                    s.name
                ),
            ));
        }
    }
    Ok(())
}

const NUL_PATH: &str = "holds a NUL byte: no file has such a name";

fn has_nul(p: &Path) -> bool {
    p.as_os_str().as_encoded_bytes().contains(&0)
}

fn check_url(url: &str) -> Result<(), String> {
    use crate::url::UrlError;
    crate::url::parse(url)
        .and_then(|u| match u.scheme {
            None => Err(UrlError::Scheme),
            Some(_) => u.host_port(),
        })
        .map(|_| ())
        .map_err(|e| match e {
            UrlError::Credentials => {
                format!("{}: send them as a header (export.headers)", e.message(url))
            }
            e => e.message(url),
        })
}

#[cfg(test)]
mod tests {
    use super::key_at;

    #[test]
    fn the_key_of_a_toml_error_line() {
        let at = |text: &str, needle: &str| key_at(text, text.find(needle).unwrap());
        let t = "a = 1\n[export] # x\n\"b.c\" . d = 99999999999999999999\n";
        assert_eq!(at(t, "9999").as_deref(), Some("export.b.c.d"));
        assert_eq!(at(t, "a =").as_deref(), Some("a"));
        assert_eq!(at(t, "export").as_deref(), Some("export"));
        // The inside of a multi-line array names nothing.
        let t = "[gpu]\nx = [\n  99999999999999999999,\n]\n";
        assert_eq!(at(t, "9999"), None);
        let t = "[[service]]\nname = \"a\"\n[[service]]\nport = 1\nport = 2\n";
        assert_eq!(at(t, "port = 2").as_deref(), Some("service[1].port"));
        assert_eq!(at("{x} = 1\n", "x"), None);
    }
}
