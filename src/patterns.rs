//! The service matchers' patterns, checked the same way by `config` (a bad
//! value is an error naming its key) and by the service source that uses
//! them: a `cmdline` regex within bounds, a systemd unit name, a cgroup
//! path.

/// The longest `cmdline` pattern, and the most memory its compiled program
/// may take: it runs on the command line of every new process.
pub const MAX_CMDLINE_PATTERN: usize = 4096;
pub const MAX_CMDLINE_PROGRAM: usize = 1 << 20;

/// Compiles a `cmdline` pattern within those bounds; the error is one line.
pub fn cmdline_regex(pattern: &str) -> Result<regex::Regex, String> {
    if pattern.len() > MAX_CMDLINE_PATTERN {
        return Err(format!(
            "a pattern of {} bytes is longer than {MAX_CMDLINE_PATTERN}",
            pattern.len()
        ));
    }
    regex::RegexBuilder::new(pattern)
        .size_limit(MAX_CMDLINE_PROGRAM)
        .build()
        .map_err(|e| match e {
            // The syntax error is drawn over several lines; its last says why.
            regex::Error::Syntax(s) => format!(
                "invalid regex: {}",
                s.lines().last().unwrap_or("").trim_start_matches("error: ")
            ),
            regex::Error::CompiledTooBig(n) => format!("the regex compiles to more than {n} bytes"),
            e => format!("invalid regex: {e}"),
        })
}

/// Why a `cgroup` value is refused, in one line; `None` when it is fine.
pub fn check_cgroup_pattern(p: &str) -> Option<String> {
    if p.len() > 4096 {
        return Some(format!("a path of {} bytes is longer than 4096", p.len()));
    }
    if p.contains('\0') {
        return Some("holds a NUL byte: no cgroup has such a name".into());
    }
    let parts: Vec<&str> = p.trim_start_matches('/').split('/').collect();
    if parts.iter().all(|c| c.is_empty()) {
        return Some(format!(
            "{p:?} is the root cgroup, the whole host: name a cgroup below it"
        ));
    }
    if parts
        .iter()
        .any(|c| c.is_empty() || *c == "." || *c == "..")
    {
        return Some(format!(
            "{p:?} must be a path below the cgroup root without empty, . or .. parts, like system.slice/ollama.service"
        ));
    }
    None
}

/// Why a `systemd_unit` value is refused, in one line.
pub fn check_unit(u: &str) -> Option<String> {
    if u.contains('/') || u.contains('\0') || u.len() > 256 {
        return Some(format!("{u:?} is not a unit name"));
    }
    if ![".service", ".scope", ".slice"]
        .iter()
        .any(|s| u.ends_with(s))
        || u.starts_with('.')
    {
        return Some(format!(
            "{u:?} must name a unit with its type, like ollama.service (.service, .scope or .slice)"
        ));
    }
    None
}
