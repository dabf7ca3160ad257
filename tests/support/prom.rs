//! Prometheus's own tools for the `/metrics` tests, and what promtool's
//! lint says of the registry's names.

use std::path::PathBuf;
use std::process::Command;

/// The Prometheus binary `name` (`promtool`, `prometheus`) when installed.
/// Missing: the test is skipped with a message, except in CI (`CI=true`),
/// where `scripts/test.sh` installs Debian's `prometheus` and a missing
/// tool is a failure.
pub fn tool(name: &str) -> Option<PathBuf> {
    if Command::new(name).arg("--version").output().is_ok() {
        return Some(PathBuf::from(name));
    }
    let why = format!(
        "{name} is not installed (Debian: apt-get install prometheus; scripts/test.sh does it)"
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{why}");
    }
    eprintln!("SKIP: {why}");
    None
}

/// Abbreviated units promtool's lint refuses as a word of a metric name
/// (client_golang's promlint).
const ABBREVIATED: &[&str] = &[
    "s", "ms", "us", "ns", "sec", "b", "kb", "mb", "gb", "tb", "pb", "m", "h", "d",
];

/// The lint problem a Prometheus name trips, if any. The registry's public
/// names keep them rather than being renamed.
pub fn lint(prom_name: &str) -> Option<String> {
    let words: Vec<&str> = prom_name
        .split('_')
        .filter(|w| ABBREVIATED.contains(w))
        .collect();
    let mut problems = Vec::new();
    if !words.is_empty() {
        let quoted: Vec<String> = words.iter().map(|w| format!("`{w}`")).collect();
        problems.push(format!("abbreviated unit {}", quoted.join(", ")));
    }
    // The hostmetrics name system.processes.count, translated as the
    // Collector translates it; Prometheus reserves `_count` for histograms.
    if prom_name.ends_with("_count") {
        problems.push("`_count` suffix".to_owned());
    }
    (!problems.is_empty()).then(|| problems.join("; "))
}
