//! Configuration layering and the errors a user sees (exit code 2, one line
//! naming the file or variable, the key and the reason).

mod support;

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;
use unamentis_agent::families::services::Matcher;

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
        assert_file_refused(text, key, reason);
    }
}

/// Loading `text` fails with one line naming the file, `key` and a reason
/// holding `reason`.
fn assert_file_refused(text: &str, key: &str, reason: &str) {
    let shown: String = text.chars().take(100).collect();
    let f = write(text);
    let err = load(Some(f.path()), &[], &[]).expect_err(&shown);
    assert_eq!(err.origin, Origin::File(f.path().to_path_buf()), "{shown}");
    assert_eq!(err.key, key, "{shown}: {err}");
    assert!(err.reason.contains(reason), "{shown}: {err}");
    let line = err.to_string();
    assert!(!line.contains(['\n', '\r', '\0']), "one line: {line:?}");
    let key_shown: String = key
        .chars()
        .map(|c| match c.is_control() {
            true => c.escape_default().to_string(),
            false => c.to_string(),
        })
        .collect();
    assert!(
        line.contains(&f.path().display().to_string()) && line.contains(&key_shown),
        "{line}"
    );
}

#[test]
fn hostile_values_are_refused_naming_the_key() {
    let svc = |field: &str| format!("[[service]]\nname = \"api\"\n{field}\n");
    let huge_regex = svc(&format!("cmdline = \"{}\"", "a".repeat(10 << 20)));
    let deep_array = format!("x = {}1{}\n", "[".repeat(5000), "]".repeat(5000));
    let deep_inline = format!("x = {}1{}\n", "{a = ".repeat(5000), "}".repeat(5000));
    let deep_regex = svc(&format!(
        "cmdline = \"{}a{}\"",
        "(".repeat(1000),
        ")".repeat(1000)
    ));
    // (file text, key in the error, words of the reason)
    let cases: &[(&str, &str, &str)] = &[
        // Integers beyond TOML's i64, or beyond the key's type.
        (
            "top_processes = 18446744073709551615\n",
            "top_processes",
            "too large",
        ),
        (
            "top_processes = 9223372036854775807\n",
            "top_processes",
            "expected u32",
        ),
        (
            "[export]\nqueue_max_bytes = 9223372036854775807\n",
            "export.queue_max_bytes",
            "256 MiB",
        ),
        (
            "[[service]]\nname = \"api\"\nport = -1\n",
            "service[0].port",
            "u16",
        ),
        // No key takes a float: 1e300, NaN and inf are the wrong type.
        ("top_processes = 1e300\n", "top_processes", "floating point"),
        ("top_processes = nan\n", "top_processes", "floating point"),
        ("interval = inf\n", "interval", "floating point"),
        (
            "[export]\nqueue_max_bytes = -inf\n",
            "export.queue_max_bytes",
            "floating point",
        ),
        // Durations: negative, zero, beyond Duration, not a number.
        ("interval = \"-5s\"\n", "interval", "invalid duration"),
        ("interval = -5\n", "interval", "invalid type: integer"),
        ("interval = \"0s\"\n", "interval", "outside"),
        (
            "interval = \"18446744073709551616s\"\n",
            "interval",
            "too large",
        ),
        ("interval = \"1e300s\"\n", "interval", "invalid duration"),
        ("interval = \"NaN s\"\n", "interval", "invalid duration"),
        (
            "[export]\nqueue_max_age = \"584942417355y\"\n",
            "export.queue_max_age",
            "too large",
        ),
        (
            "[activity]\nidle_after = \"-1s\"\n",
            "activity.idle_after",
            "invalid duration",
        ),
        (
            "[activity]\nidle_after = \"0s\"\n",
            "activity.idle_after",
            "outside",
        ),
        (
            "[gpu]\nnvidia_smi_timeout = \"0s\"\n",
            "gpu.nvidia_smi_timeout",
            "more than 0",
        ),
        (
            "[ollama]\ntimeout = \"0ns\"\n",
            "ollama.timeout",
            "more than 0",
        ),
        // Regexes: too long, too big once compiled, unbalanced, too deep.
        (&huge_regex, "service[0].cmdline", "longer than 4096"),
        (
            &svc("cmdline = \"a{1000}{1000}\""),
            "service[0].cmdline",
            "compiles to more than",
        ),
        (
            &svc("cmdline = '\\w{100}{100}'"),
            "service[0].cmdline",
            "compiles to more than",
        ),
        (
            &svc("cmdline = \"(\""),
            "service[0].cmdline",
            "unclosed group",
        ),
        (&deep_regex, "service[0].cmdline", "nested"),
        // Header injection: CR/LF, NUL and non-ASCII in names and values.
        (
            "[export.headers]\nx = \"a\\r\\nx-evil: 1\"\n",
            "export.headers.x",
            "control characters",
        ),
        (
            "[export.headers]\nx = \"a\\u0000b\"\n",
            "export.headers.x",
            "control characters",
        ),
        (
            "[export.headers]\nx = \"clé\"\n",
            "export.headers.x",
            "visible ASCII",
        ),
        (
            "[export.headers]\n\"x\\r\\nx-evil\" = \"1\"\n",
            "export.headers.x\r\nx-evil",
            "header name",
        ),
        (
            "[server]\ntoken = \"s3cret\\r\\n\"\n",
            "server.token",
            "Authorization header",
        ),
        (
            "[server]\ntoken = \" s3cret\"\n",
            "server.token",
            "surrounding spaces",
        ),
        // Endpoints: credentials, spaces, CR/LF, NUL.
        (
            "[export]\nendpoint = \"http://user:pass@collector:4317\"\n",
            "export.endpoint",
            "credentials",
        ),
        (
            "[export]\nendpoint = \"http://col lector:4317\"\n",
            "export.endpoint",
            "no spaces",
        ),
        (
            "[export]\nmetrics_endpoint = \"http://c:4318/v1/metrics\\r\\nx: 1\"\n",
            "export.metrics_endpoint",
            "control characters",
        ),
        (
            "[export]\nendpoint = \"http://collector\\u0000:4317\"\n",
            "export.endpoint",
            "control characters",
        ),
        (
            "[ollama]\nurl = \"http://localhost:11434/x\\r\\nEvil: 1\"\n",
            "ollama.url",
            "control characters",
        ),
        (
            "[ollama]\nurl = \"http://u:p@localhost:11434\"\n",
            "ollama.url",
            "credentials",
        ),
        // NUL bytes where a file name goes.
        ("[host]\nproc = \"/pr\\u0000oc\"\n", "host.proc", "NUL byte"),
        (
            "[gpu]\nnvidia_smi = \"nvidia-smi\\u0000\"\n",
            "gpu.nvidia_smi",
            "NUL byte",
        ),
        (
            &svc("pid_file = \"/run/x\\u0000.pid\""),
            "service[0].pid_file",
            "NUL byte",
        ),
        // Cgroup services: a unit name, a path below the root, alone.
        (
            &svc("systemd_unit = \"ollama\""),
            "service[0].systemd_unit",
            "\"ollama\" must name a unit with its type",
        ),
        (
            &svc("systemd_unit = \"system.slice/ollama.service\""),
            "service[0].systemd_unit",
            "is not a unit name",
        ),
        (
            &svc("cgroup = \"/\""),
            "service[0].cgroup",
            "the root cgroup",
        ),
        (
            &svc("cgroup = \"system.slice/../x.service\""),
            "service[0].cgroup",
            "\"system.slice/../x.service\" must be a path below the cgroup root",
        ),
        (
            &svc("cgroup = \"a\\u0000b\""),
            "service[0].cgroup",
            "NUL byte",
        ),
        (
            &svc("cgroup = \"system.slice/x.service\"\nsystemd_unit = \"x.service\""),
            "service[0].systemd_unit",
            "not both",
        ),
        (
            &svc("systemd_unit = \"x.service\"\nprocess = \"x\""),
            "service[0].systemd_unit",
            "its cgroup alone",
        ),
        (
            &svc("cgroup = \"system.slice/x.service\"\nport = 80"),
            "service[0].cgroup",
            "its cgroup alone",
        ),
        (
            "[server]\nlisten = \"127.0.0.1:8767\\u0000\"\n",
            "server.listen",
            "not an address",
        ),
        // The user's text in a key or a message stays on one line.
        ("\"a\\nb\" = 1\n", "a\nb", "unknown key"),
        (
            "[log]\nformat = \"json\\ntext\"\n",
            "log.format",
            "unknown variant",
        ),
        // Duplicates, and nesting past the TOML parser's recursion limit.
        (
            "interval = \"5s\"\ninterval = \"6s\"\n",
            "interval",
            "duplicate key",
        ),
        ("[export]\n[export]\n", "export", "duplicate key"),
        (
            "[export]\ntimeout = \"1s\"\n\n[log]\n[export]\ntimeout = \"2s\"\n",
            "export",
            "duplicate key",
        ),
        (
            "[[service]]\nname = \"a\"\nport = 1\n[[service]]\nname = \"a\"\nname = \"b\"\n",
            "service[1].name",
            "duplicate key",
        ),
        (&deep_array, "x", "recurse"),
        (&deep_inline, "x", "recurse"),
    ];
    for (text, key, reason) in cases {
        assert_file_refused(text, key, reason);
    }
    // Dotted keys and headers nested past the limit: refused before any
    // key exists, with no position either.
    for text in [
        format!("{} = 1\n", vec!["a"; 20_000].join(".")),
        format!("[{}]\n", vec!["a"; 20_000].join(".")),
    ] {
        assert_file_refused(&text, "", "recursion limit");
    }
}

#[test]
fn hostile_environment_values_name_the_variable() {
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "OTEL_METRIC_EXPORT_INTERVAL",
            "18446744073709551615",
            "interval",
            "too large",
        ),
        (
            "OTEL_METRIC_EXPORT_INTERVAL",
            "18446744073709551616",
            "interval",
            "whole number",
        ),
        ("OTEL_METRIC_EXPORT_INTERVAL", "0", "interval", "outside"),
        (
            "OTEL_EXPORTER_OTLP_TIMEOUT",
            "1e300",
            "export.timeout",
            "whole number",
        ),
        (
            "OTEL_EXPORTER_OTLP_TIMEOUT",
            "NaN",
            "export.timeout",
            "whole number",
        ),
        (
            "OTEL_EXPORTER_OTLP_TIMEOUT",
            "0",
            "export.timeout",
            "more than 0",
        ),
        (
            "UNAMENTIS_AGENT_COMPAT_INCLUDE_VIRTUAL_FILESYSTEMS",
            "true",
            "compat.include_virtual_filesystems",
            "without compat.hostmetrics",
        ),
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            "x=a%0D%0Ax-evil: 1",
            "export.headers.x",
            "control characters",
        ),
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            "x=%00",
            "export.headers.x",
            "control characters",
        ),
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            "x=%FF",
            "export.headers",
            "not UTF-8",
        ),
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "http://user:pass@collector:4317",
            "export.endpoint",
            "credentials",
        ),
        (
            "UNAMENTIS_AGENT_SERVER_TOKEN",
            "s3cr\net",
            "server.token",
            "Authorization header",
        ),
        ("UNAMENTIS_AGENT_HOST_SYS", "/sys\0", "host.sys", "NUL byte"),
    ];
    for (var, value, key, reason) in cases {
        let err = load(None, &[(var, value)], &[]).expect_err(var);
        assert_eq!(err.origin, Origin::Env(var), "{var}={value:?}: {err}");
        assert_eq!(err.key, *key, "{var}={value:?}: {err}");
        assert!(err.reason.contains(reason), "{var}={value:?}: {err}");
        assert!(!err.to_string().contains(['\n', '\r', '\0']), "{err}");
    }
}

#[test]
fn hostile_values_that_are_accepted_keep_their_meaning() {
    // A catastrophic-backtracking pattern elsewhere; Rust's regex is
    // linear, so it loads and answers.
    let f = write("[[service]]\nname = \"api\"\ncmdline = \"^(a+)+$\"\n");
    let l = load(Some(f.path()), &[], &[]).unwrap();
    let svc = l.config.services[0].clone();
    let re = Matcher::from_config(&svc).cmdline.expect("compiled");
    let long = "a".repeat(100_000);
    assert!(re.is_match(&long));
    assert!(!re.is_match(&format!("{long}!")));

    // NUL and non-ASCII in names and attribute values: kept as written
    // (valid UTF-8, which is all OTLP asks of a string).
    let f = write(
        "[resource]\nservice_name = \"a\\u0000b\"\n[resource.attributes]\n\"dé\\u0000\" = \"é\\r\\n\"\n[[service]]\nname = \"ä\\u0000\"\nprocess = \"x\"\n",
    );
    let c = load(Some(f.path()), &[], &[]).unwrap().config;
    assert_eq!(c.resource.service_name.as_deref(), Some("a\0b"));
    assert_eq!(c.resource.attributes["dé\0"], "é\r\n");
    assert_eq!(c.services[0].name, "ä\0");

    // A tab is part of a header value; the bounds of the ranges are in.
    let f = write(
        "interval = \"1h\"\ntop_processes = 50\n[export]\nqueue_max_bytes = 0\nqueue_max_age = \"1h\"\n[export.headers]\nx = \"a\\tb\"\n[activity]\nidle_after = \"7days\"\n",
    );
    let c = load(Some(f.path()), &[], &[]).unwrap().config;
    assert_eq!(c.interval.0, Duration::from_secs(3600));
    assert_eq!(c.top_processes, 50);
    assert_eq!(c.export.queue_max_bytes, 0);
    assert_eq!(c.export.headers["x"], "a\tb");
    assert_eq!(c.activity.idle_after.0, Duration::from_secs(7 * 24 * 3600));
    let f = write("interval = \"100ms\"\n[export]\nqueue_max_age = \"100ms\"\n");
    assert_eq!(
        load(Some(f.path()), &[], &[]).unwrap().config.interval.0,
        Duration::from_millis(100)
    );
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

#[test]
fn a_bad_cgroup_matcher_exits_2_naming_key_and_value() {
    let f = write("[[service]]\nname = \"llm\"\nsystemd_unit = \"ollama\"\n");
    let out = support::agent::command()
        .args(["--config", &f.path().display().to_string(), "check-config"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("key service[0].systemd_unit: \"ollama\" must name a unit with its type"),
        "{err}"
    );
    // Valid ones load, and compile to a cgroup matcher.
    let f = write(
        "[[service]]\nname = \"llm\"\nsystemd_unit = \"ollama.service\"\n[[service]]\nname = \"pods\"\ncgroup = \"/system.slice/docker-*.scope\"\n",
    );
    let l = load(Some(f.path()), &[], &[]).unwrap();
    let svcs = l.config.effective_services();
    let specs: Vec<_> = svcs
        .iter()
        .filter_map(|s| Matcher::from_config(s).cgroup)
        .map(|c| (c.display, c.patterns.len()))
        .collect();
    assert_eq!(
        specs,
        vec![
            ("systemd unit ollama.service".to_owned(), 3),
            ("cgroup /system.slice/docker-*.scope".to_owned(), 1)
        ]
    );
}
