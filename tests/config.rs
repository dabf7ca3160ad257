//! Configuration layering and the errors a user sees (exit code 2, one line
//! naming the file or variable, the key and the reason).

mod support;

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use unamentis_agent::config::{self, ConfigError, Flags, Loaded, Origin, Protocol};

fn write(text: &str) -> tempfile::NamedTempFile {
    let f = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    std::fs::write(f.path(), text).unwrap();
    f
}

fn load(
    file: Option<&Path>,
    env: &[(&str, &str)],
    flags: &[(&'static str, &str)],
) -> Result<Loaded, ConfigError> {
    let env: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let flags: Flags = flags.iter().map(|(k, v)| (*k, v.to_string())).collect();
    config::load(file, &|k| env.get(k).cloned(), &flags)
}

#[test]
fn bad_files_name_the_file_the_key_and_the_reason() {
    // (file text, key in the error, words of the reason)
    let cases: &[(&str, &str, &str)] = &[
        ("intervall = \"5s\"\n", "intervall", "unknown key"),
        (
            "[export]\nendpont = \"http://x:4317\"\n",
            "export.endpont",
            "unknown key",
        ),
        ("interval = 5\n", "interval", "duration"),
        ("interval = \"5 parsecs\"\n", "interval", "invalid duration"),
        ("interval = \"10ms\"\n", "interval", "outside"),
        (
            "[export]\nprotocol = \"http/json\"\n",
            "export.protocol",
            "unknown variant",
        ),
        (
            "[export]\ncompression = \"zstd\"\n",
            "export.compression",
            "unknown variant",
        ),
        (
            "[export]\nendpoint = \"localhost:4317\"\n",
            "export.endpoint",
            "http://",
        ),
        (
            "[export]\nendpoint = \"http://collector:99999\"\n",
            "export.endpoint",
            "invalid port",
        ),
        (
            "[export]\ntimeout = \"0s\"\n",
            "export.timeout",
            "more than 0",
        ),
        (
            "[export]\nqueue_max_bytes = 300000000\n",
            "export.queue_max_bytes",
            "256 MiB",
        ),
        (
            "[export]\nqueue_max_bytes = -1\n",
            "export.queue_max_bytes",
            "invalid value",
        ),
        (
            "[export]\nqueue_max_age = \"1s\"\n",
            "export.queue_max_age",
            "shorter than the interval",
        ),
        (
            "[export]\nheaders = \"signoz-ingestion-key=x\"\n",
            "export.headers",
            "map",
        ),
        (
            "[export.headers]\n\"bad header\" = \"x\"\n",
            "export.headers.bad header",
            "header name",
        ),
        (
            "[export]\ncertificate = \"/nonexistent/ca.pem\"\n",
            "export.certificate",
            "No such file",
        ),
        (
            "[server]\nlisten = \"localhost\"\n",
            "server.listen",
            "address",
        ),
        (
            "[server]\nlisten = \"0.0.0.0:8767\"\n",
            "server.listen",
            "set server.token",
        ),
        ("[log]\nformat = \"xml\"\n", "log.format", "unknown variant"),
        (
            "[gpu]\nnvidia_smi_timeout = \"10s\"\n",
            "gpu.nvidia_smi_timeout",
            "at most 5s",
        ),
        (
            "[ollama]\ntimeout = \"3s\"\n",
            "ollama.timeout",
            "at most 2s",
        ),
        (
            "[ollama]\nurl = \"https://gpu-box:11434\"\n",
            "ollama.url",
            "http://",
        ),
        (
            "[ollama]\nurl = \"http://:11434\"\n",
            "ollama.url",
            "no host",
        ),
        (
            "[log]\nlevel = \"info,=[\"\n",
            "log.level",
            "not a log filter",
        ),
        (
            "[[service]]\nname = \"api\"\nport = 0\n",
            "service[0].port",
            "port 0",
        ),
        (
            "[[service]]\nname = \"api\"\nport = 70000\n",
            "service[0].port",
            "u16",
        ),
        (
            "[[service]]\nname = \"api\"\nport = 1\n[[service]]\nname = \"api\"\nport = 2\n",
            "service[1].name",
            "duplicate",
        ),
        (
            "[[service]]\nname = \"api\"\n",
            "service[0].name",
            "no matcher",
        ),
        (
            "[[service]]\nname = \"api\"\nprocess = 3\n",
            "service[0].process",
            "process name",
        ),
        ("default_services = \"yes\"\n", "default_services", "bool"),
        (
            "[activity]\nidle_after = \"500ms\"\n",
            "activity.idle_after",
            "outside 1s..7days",
        ),
        (
            "[activity]\nidle_after = \"soon\"\n",
            "activity.idle_after",
            "invalid duration",
        ),
        (
            "[activity]\nignore_sources = [\"10.0.0.5\", \"health-checker\"]\n",
            "activity.ignore_sources[1]",
            "not an IP address",
        ),
        (
            "[activity]\nignore_sources = \"10.0.0.5\"\n",
            "activity.ignore_sources",
            "sequence",
        ),
        ("[activity]\npush = \"on\"\n", "activity.push", "bool"),
        (
            "[activity]\nprobes = true\n",
            "activity.probes",
            "unknown key",
        ),
    ];
    for (text, key, reason) in cases {
        let f = write(text);
        let err = load(Some(f.path()), &[], &[]).expect_err(text);
        assert_eq!(err.origin, Origin::File(f.path().to_path_buf()), "{text}");
        assert_eq!(err.key, *key, "{text}: {err}");
        assert!(err.reason.contains(reason), "{text}: {err}");
        let line = err.to_string();
        assert!(!line.contains('\n'), "one line: {line}");
        assert!(
            line.contains(&f.path().display().to_string()) && line.contains(key),
            "{line}"
        );
    }
}

#[test]
fn toml_syntax_errors_give_line_and_column() {
    let f = write("interval = \"5s\"\n[export\nendpoint = 1\n");
    let err = load(Some(f.path()), &[], &[]).unwrap_err();
    assert!(err.reason.contains("invalid TOML: line 2"), "{err}");
    assert!(!err.to_string().contains('\n'));
}

#[test]
fn unreadable_file_is_named() {
    let err = load(Some(Path::new("/nonexistent/agent.toml")), &[], &[]).unwrap_err();
    assert_eq!(err.origin, Origin::Flag("--config"));
    assert!(err.reason.contains("/nonexistent/agent.toml"), "{err}");
    let err = load(
        None,
        &[("UNAMENTIS_AGENT_CONFIG", "/nonexistent/b.toml")],
        &[],
    )
    .unwrap_err();
    assert_eq!(err.origin, Origin::Env("UNAMENTIS_AGENT_CONFIG"));
}

#[test]
fn bad_environment_values_name_the_variable() {
    let cases: &[(&str, &str, &str)] = &[
        ("UNAMENTIS_AGENT_INTERVAL", "soon", "interval"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "5s", "interval"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "-1", "export.timeout"),
        ("OTEL_SDK_DISABLED", "maybe", "export.enabled"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "novalue", "export.headers"),
        ("OTEL_RESOURCE_ATTRIBUTES", "=x", "resource.attributes"),
        (
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "http/json",
            "export.protocol",
        ),
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "collector:4317",
            "export.endpoint",
        ),
        (
            "OTEL_EXPORTER_OTLP_CERTIFICATE",
            "/nonexistent/ca.pem",
            "export.certificate",
        ),
        (
            "UNAMENTIS_AGENT_SERVER_LISTEN",
            "127.0.0.1",
            "server.listen",
        ),
        (
            "UNAMENTIS_AGENT_ACTIVITY_IDLE_AFTER",
            "0s",
            "activity.idle_after",
        ),
        (
            "UNAMENTIS_AGENT_ACTIVITY_CONNECTIONS",
            "sometimes",
            "activity.connections",
        ),
    ];
    for (var, value, key) in cases {
        let err = load(None, &[(var, value)], &[]).expect_err(var);
        assert_eq!(err.origin, Origin::Env(var), "{var}: {err}");
        assert_eq!(err.key, *key, "{var}: {err}");
        assert!(
            err.to_string()
                .starts_with(&format!("env {var}: key {key}: ")),
            "{err}"
        );
    }
}

#[test]
fn layers_apply_in_order_and_remember_their_origin() {
    let f = write(
        "interval = \"10s\"\n[export]\nendpoint = \"http://file:4317\"\n[export.headers]\nx-file = \"1\"\n",
    );
    let p = Some(f.path());

    let l = load(p, &[], &[]).unwrap();
    assert_eq!(l.config.interval.0, Duration::from_secs(10));
    assert_eq!(l.origin("interval"), Origin::File(f.path().to_path_buf()));
    assert_eq!(l.origin("log.level"), Origin::Default);

    // The standard variable is below the agent's own.
    let env = [
        ("OTEL_METRIC_EXPORT_INTERVAL", "2000"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "x-env=2"),
    ];
    let l = load(p, &env, &[]).unwrap();
    assert_eq!(l.config.interval.0, Duration::from_secs(2));
    assert_eq!(
        l.origin("interval"),
        Origin::Env("OTEL_METRIC_EXPORT_INTERVAL")
    );
    let l = load(p, &[env[0], ("UNAMENTIS_AGENT_INTERVAL", "7s")], &[]).unwrap();
    assert_eq!(l.config.interval.0, Duration::from_secs(7));

    // Flags beat everything.
    let l = load(
        p,
        &[("UNAMENTIS_AGENT_INTERVAL", "7s")],
        &[("--interval", "3s")],
    )
    .unwrap();
    assert_eq!(l.config.interval.0, Duration::from_secs(3));
    assert_eq!(l.origin("interval"), Origin::Flag("--interval"));

    // Maps merge key by key.
    let l = load(p, &env, &[]).unwrap();
    let h: Vec<_> = l
        .config
        .export
        .headers
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    assert_eq!(h, ["x-env=2", "x-file=1"]);
    assert_eq!(
        l.origin("export.headers.x-env"),
        Origin::Env("OTEL_EXPORTER_OTLP_HEADERS")
    );
    assert_eq!(
        l.origin("export.headers.x-file"),
        Origin::File(f.path().to_path_buf())
    );
}

#[test]
fn otel_variables_map_to_keys() {
    let l = load(
        None,
        &[
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_SDK_DISABLED", "true"),
            ("OTEL_SERVICE_NAME", "svc"),
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "https://ingest.us.signoz.cloud:443",
            ),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", ""),
        ],
        &[],
    )
    .unwrap();
    let c = &l.config;
    assert_eq!(c.export.timeout.0, Duration::from_millis(2500));
    assert_eq!(c.export.protocol, Protocol::HttpProtobuf);
    assert!(!c.export.enabled);
    assert_eq!(c.resource.service_name.as_deref(), Some("svc"));
    assert_eq!(
        c.export.effective_endpoint(),
        "https://ingest.us.signoz.cloud:443/v1/metrics"
    );
    // Empty means unset (OTel spec).
    assert_eq!(l.origin("export.compression"), Origin::Default);

    let l = load(
        None,
        &[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")],
        &[],
    )
    .unwrap();
    assert_eq!(
        l.config.export.effective_endpoint(),
        "http://localhost:4318/v1/metrics"
    );
    let l = load(None, &[], &[]).unwrap();
    assert_eq!(
        l.config.export.effective_endpoint(),
        "http://localhost:4317"
    );
}

#[test]
fn activity_section_defaults_file_and_environment() {
    let d = load(None, &[], &[]).unwrap().config.activity;
    assert_eq!(d.idle_after.0, Duration::from_secs(60));
    assert!(d.push && d.connections && d.ollama);
    assert!(d.ignore_sources.is_empty());
    let f = write(
        "[activity]\nidle_after = \"5m\"\nollama = false\nignore_sources = [\"10.0.0.5\", \"fd00::5\"]\n",
    );
    let env = [
        ("UNAMENTIS_AGENT_ACTIVITY_PUSH", "false"),
        ("UNAMENTIS_AGENT_ACTIVITY_IDLE_AFTER", "90s"),
    ];
    let l = load(Some(f.path()), &env, &[]).unwrap();
    let a = &l.config.activity;
    assert_eq!(a.idle_after.0, Duration::from_secs(90));
    assert!(!a.push && a.connections && !a.ollama);
    assert_eq!(a.ignore_sources, vec!["10.0.0.5", "fd00::5"]);
    assert_eq!(
        l.origin("activity.idle_after"),
        Origin::Env("UNAMENTIS_AGENT_ACTIVITY_IDLE_AFTER")
    );
    assert_eq!(
        l.origin("activity.ignore_sources"),
        Origin::File(f.path().to_path_buf())
    );
}

#[test]
fn services_extend_or_replace_the_builtin_catalogue() {
    let f = write(
        "[[service]]\nname = \"ollama\"\nprocess = \"ollama-custom\"\n\n[[service]]\nname = \"comfy\"\nports = [8188]\n",
    );
    let l = load(Some(f.path()), &[], &[]).unwrap();
    let svcs = l.config.effective_services();
    let names: Vec<_> = svcs.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "management",
            "ollama",
            "vibevoice",
            "nextjs",
            "whisper",
            "piper",
            "comfy"
        ]
    );
    assert_eq!(svcs[1].process, ["ollama-custom"]);
    let f = write("default_services = false\n[[service]]\nname = \"comfy\"\nports = [8188]\n");
    let l = load(Some(f.path()), &[], &[]).unwrap();
    assert_eq!(l.config.effective_services().len(), 1);
}

#[test]
fn check_config_shows_origins_and_masks_secrets() {
    let f = write("[export.headers]\nsignoz-ingestion-key = \"top-secret\"\n");
    let l = load(Some(f.path()), &[("UNAMENTIS_AGENT_INTERVAL", "2s")], &[]).unwrap();
    let text = l.render();
    assert!(!text.contains("top-secret"), "{text}");
    let line = |k: &str| {
        text.lines()
            .find(|l| l.starts_with(k))
            .unwrap_or_else(|| panic!("{k} in\n{text}"))
    };
    assert!(line("interval =").ends_with("# env UNAMENTIS_AGENT_INTERVAL"));
    assert!(line("export.headers.signoz-ingestion-key").contains("\"***\""));
    assert!(line("export.endpoint").ends_with("# default"));
    assert!(line("service[0]").contains("management"));
}

#[test]
fn the_binary_exits_2_with_one_line_on_bad_config() {
    let f = write("[export]\ntimeout = \"fast\"\n");
    for cmd in ["check-config", "run", "snapshot"] {
        let out = support::agent::command()
            .args(["--config", &f.path().display().to_string(), cmd])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{cmd}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains("key export.timeout") && stderr.contains("invalid duration"),
            "{stderr}"
        );
    }
    let out = support::agent::command()
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "carrier-pigeon")
        .arg("check-config")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("env OTEL_EXPORTER_OTLP_PROTOCOL"));
    // Usage errors are 2 as well.
    let out = support::agent::command()
        .arg("frobnicate")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = support::agent::command()
        .arg("check-config")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn readme_and_example_document_every_key_and_variable() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    for (var, key) in config::env_vars() {
        assert!(readme.contains(var), "README.md does not mention {var}");
        if !key.starts_with('(') {
            assert!(
                readme.contains(&format!("`{key}`")),
                "README.md does not document key {key}"
            );
        }
    }
    // The example file is valid and names every key.
    let example = root.join("examples/unamentis-agent.toml");
    load(Some(&example), &[], &[]).unwrap();
    let text = std::fs::read_to_string(&example).unwrap();
    for (_, key) in config::env_vars().filter(|(_, k)| !k.starts_with('(')) {
        let leaf = key.rsplit('.').next().unwrap();
        assert!(text.contains(leaf), "example lacks {key}");
    }
}

#[test]
fn a_non_loopback_server_needs_a_token_or_an_explicit_allowance() {
    for ok in [
        "[server]\nlisten = \"127.0.0.1:9000\"\n",
        "[server]\nlisten = \"[::1]:9000\"\n",
        "[server]\nlisten = \"0.0.0.0:8767\"\ntoken = \"s3cr3t\"\n",
        "[server]\nlisten = \"0.0.0.0:8767\"\nallow_unauthenticated = true\n",
    ] {
        let f = write(ok);
        load(Some(f.path()), &[], &[]).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    let err = load(
        None,
        &[("UNAMENTIS_AGENT_SERVER_LISTEN", "0.0.0.0:8767")],
        &[],
    )
    .unwrap_err();
    assert_eq!(err.origin, Origin::Env("UNAMENTIS_AGENT_SERVER_LISTEN"));
    let with_token = load(
        None,
        &[
            ("UNAMENTIS_AGENT_SERVER_LISTEN", "0.0.0.0:8767"),
            ("UNAMENTIS_AGENT_SERVER_TOKEN", "t"),
        ],
        &[],
    );
    assert!(with_token.is_ok());
}
