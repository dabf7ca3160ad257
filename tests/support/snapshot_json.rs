//! The agent's JSON snapshot (`snapshot --json`, `GET /v1/snapshot`):
//! `{"resource": {..}, "metrics": [{"name", "unit", "attributes", "value"}]}`.

use std::process::Command;

use serde_json::Value;

/// Runs `cmd` (the agent with `snapshot --json` among its arguments), which
/// must succeed, and parses what it printed.
pub fn run(cmd: &mut Command) -> Value {
    let out = cmd.output().expect("run the agent");
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("snapshot JSON")
}

pub fn metrics(json: &Value) -> &[Value] {
    json["metrics"].as_array().expect("a metrics array")
}

pub fn names(json: &Value) -> Vec<&str> {
    metrics(json)
        .iter()
        .filter_map(|m| m["name"].as_str())
        .collect()
}

/// The values of `name`'s points whose attributes include all of `attrs`.
pub fn values(json: &Value, name: &str, attrs: &[(&str, &str)]) -> Vec<f64> {
    metrics(json)
        .iter()
        .filter(|m| m["name"] == name && attrs.iter().all(|(k, v)| m["attributes"][*k] == *v))
        .map(|m| m["value"].as_f64().expect("a number"))
        .collect()
}
