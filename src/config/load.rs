//! Layering: defaults, the TOML file, the environment and the flags, with
//! the origin of every value, and the rendering `check-config` prints.

use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};

use toml::{Table, Value};

use super::keys::{KEYS, convert};
use super::validate::validate;
use super::{CONFIG_ENV, Config};

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
