//! Every key that a variable or a flag can set, and how a variable's text
//! becomes a value.

use toml::Value;

use super::CONFIG_ENV;

/// How an environment value becomes a config value.
#[derive(Debug, Clone, Copy)]
pub(super) enum Conv {
    Str,
    /// Milliseconds, as the OTel spec writes intervals and timeouts.
    Millis,
    Bool,
    /// `OTEL_SDK_DISABLED=true` means `export.enabled = false`.
    NotBool,
    /// `k=v,k2=v2` with percent-encoded values (W3C Baggage style).
    Pairs,
}

pub(super) struct KeySpec {
    pub(super) key: &'static str,
    /// Lowest precedence first: a later variable that is set wins.
    pub(super) env: &'static [(&'static str, Conv)],
    pub(super) flag: Option<&'static str>,
}

pub(super) const KEYS: &[KeySpec] = &[
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
        key: "export.descriptions",
        env: &[("UNAMENTIS_AGENT_EXPORT_DESCRIPTIONS", Conv::Bool)],
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

pub(super) fn convert(raw: &str, conv: Conv) -> Result<Value, String> {
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
