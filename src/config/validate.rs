//! The checks run after loading: a value that could only fail later, or
//! do harm, is refused here naming its key.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use super::Config;
use super::load::{ConfigError, Loaded};

const MAX_QUEUE_BYTES: u64 = 256 * 1024 * 1024;
const MIN_INTERVAL: Duration = Duration::from_millis(100);
const MAX_INTERVAL: Duration = Duration::from_secs(3600);

/// Builds the error for a key, with the origin of its value.
type Err<'a> = &'a dyn Fn(&str, String) -> ConfigError;

/// Every section's checks, in the order of the sections in the file.
pub(super) fn validate(l: &Loaded) -> Result<(), ConfigError> {
    let err = |key: &str, reason: String| ConfigError {
        origin: l.origin(key),
        key: key.into(),
        reason,
    };
    for check in [
        cycle, log, export, resource, host, server, gpu, ollama, activity, compat, services,
    ] {
        check(&l.config, &err)?;
    }
    Ok(())
}

/// `interval` and `top_processes`.
fn cycle(c: &Config, err: Err) -> Result<(), ConfigError> {
    if c.interval.0 < MIN_INTERVAL || c.interval.0 > MAX_INTERVAL {
        return Err(err(
            "interval",
            format!(
                "{} is outside 100ms..1h",
                humantime::format_duration(c.interval.0)
            ),
        ));
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
    Ok(())
}

/// `[log]`.
fn log(c: &Config, err: Err) -> Result<(), ConfigError> {
    if let Err(e) = tracing_subscriber::EnvFilter::builder().parse(&c.log.level) {
        return Err(err(
            "log.level",
            format!("{:?} is not a log filter: {e}", c.log.level),
        ));
    }
    Ok(())
}

/// `[export]`.
fn export(c: &Config, err: Err) -> Result<(), ConfigError> {
    if c.export.timeout.0.is_zero() {
        return Err(err("export.timeout", "must be more than 0".into()));
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
    Ok(())
}

/// `[resource]`.
fn resource(c: &Config, err: Err) -> Result<(), ConfigError> {
    for k in c.resource.attributes.keys() {
        if k.trim().is_empty() {
            return Err(err("resource.attributes", "empty attribute key".into()));
        }
    }
    Ok(())
}

/// `[host]`.
fn host(c: &Config, err: Err) -> Result<(), ConfigError> {
    for (key, path) in [
        ("host.proc", Some(&c.host.proc)),
        ("host.sys", Some(&c.host.sys)),
        ("host.root", Some(&c.host.root)),
    ] {
        if path.is_some_and(|p| has_nul(p)) {
            return Err(err(key, NUL_PATH.into()));
        }
    }
    Ok(())
}

/// `[server]`.
fn server(c: &Config, err: Err) -> Result<(), ConfigError> {
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
    Ok(())
}

/// `[gpu]`.
fn gpu(c: &Config, err: Err) -> Result<(), ConfigError> {
    let t = c.gpu.nvidia_smi_timeout.0;
    if t.is_zero() || t > Duration::from_secs(5) {
        return Err(err(
            "gpu.nvidia_smi_timeout",
            "must be more than 0 and at most 5s".into(),
        ));
    }
    for (key, path) in [
        ("gpu.nvml_library", c.gpu.nvml_library.as_ref()),
        ("gpu.nvidia_smi", Some(&c.gpu.nvidia_smi)),
    ] {
        if path.is_some_and(|p| has_nul(p)) {
            return Err(err(key, NUL_PATH.into()));
        }
    }
    Ok(())
}

/// `[ollama]`.
fn ollama(c: &Config, err: Err) -> Result<(), ConfigError> {
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
    Ok(())
}

/// `[activity]`.
fn activity(c: &Config, err: Err) -> Result<(), ConfigError> {
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
    Ok(())
}

/// `[compat]`.
fn compat(c: &Config, err: Err) -> Result<(), ConfigError> {
    if c.compat.include_virtual_filesystems && !c.compat.hostmetrics {
        return Err(err(
            "compat.include_virtual_filesystems",
            "true without compat.hostmetrics = true: no filesystem is read".into(),
        ));
    }
    Ok(())
}

/// `[[service]]`.
fn services(c: &Config, err: Err) -> Result<(), ConfigError> {
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
