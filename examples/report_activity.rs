//! How a Rust service reports activity to unamentis-agent's push probe.
//!
//! ```sh
//! cargo run --example report_activity -- piper inference
//! ```
//!
//! A service would keep one `Client` and call `report` after each request
//! it serves; a failure is logged and ignored so that monitoring never
//! breaks the service. Uses reqwest's blocking client (the agent's `tls`
//! feature already depends on it); an async service would use
//! `reqwest::Client` the same way.

use std::time::Duration;

fn report(
    client: &reqwest::blocking::Client,
    agent: &str,
    token: Option<&str>,
    service: &str,
    kind: &str,
    count: u64,
) -> Result<(), String> {
    let body = serde_json::json!({ "service": service, "kind": kind, "count": count });
    let mut req = client
        .post(format!("{agent}/v1/activity"))
        .header("Content-Type", "application/json")
        .body(body.to_string());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().map_err(|e| e.to_string())?;
    if resp.status().is_success() {
        Ok(())
    } else {
        let status = resp.status();
        Err(format!("{status}: {}", resp.text().unwrap_or_default()))
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let service = args.next().unwrap_or_else(|| "management".into());
    let kind = args.next().unwrap_or_else(|| "request".into());
    let agent =
        std::env::var("UNAMENTIS_AGENT_URL").unwrap_or_else(|_| "http://127.0.0.1:8767".into());
    let token = std::env::var("UNAMENTIS_AGENT_SERVER_TOKEN").ok();
    let client = match reqwest::blocking::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cannot build an HTTP client: {e}");
            return;
        }
    };
    match report(&client, &agent, token.as_deref(), &service, &kind, 1) {
        Ok(()) => println!("reported one {kind} for {service}"),
        Err(e) => eprintln!("not reported (ignored): {e}"),
    }
}
