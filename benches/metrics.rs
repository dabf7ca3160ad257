//! The cost of one `GET /metrics` answer: rendering a cycle's points (the
//! ones the export sends) and the resource as Prometheus text 0.0.4 and
//! OpenMetrics. Nothing is sampled on a scrape, so this is all a scrape
//! adds to the agent's work. On this host with `[compat]` on, and on a
//! synthetic host of 5,000 processes reporting the 50 busiest.

use std::collections::BTreeMap;

use criterion::{Criterion, criterion_group, criterion_main};
use unamentis_agent::activity::Activity;
use unamentis_agent::config::{CompatConfig, Config};
use unamentis_agent::host::HostPaths;
use unamentis_agent::pipeline::Pipeline;
use unamentis_agent::prometheus::{Format, render};
use unamentis_agent::snapshot::{Point, Sampler};
use unamentis_agent::telemetry;

#[path = "../tests/support/synthetic_host.rs"]
mod synthetic_host;

/// The points of a second cycle (the first has no CPU percentages).
fn points(mut cfg: Config) -> Vec<Point> {
    cfg.compat = CompatConfig {
        hostmetrics: true,
        hw: true,
        include_virtual_filesystems: false,
    };
    let activity = Activity::from_config(&cfg);
    let mut sampler = Sampler::new(Pipeline::new(&cfg).with_activity(&activity).build());
    sampler.sample();
    std::thread::sleep(std::time::Duration::from_millis(100));
    sampler.sample().points_with(cfg.compat)
}

fn resource() -> BTreeMap<String, String> {
    let cfg = Config::default();
    let host = cfg.host_paths().identity();
    telemetry::resource_attributes(&cfg, &host, None)
        .into_iter()
        .collect()
}

fn bench(c: &mut Criterion) {
    let resource = resource();
    let here = points(Config::default());
    let dir = tempfile::tempdir().unwrap();
    synthetic_host::write_host(dir.path(), 5000);
    let mut cfg = Config::for_host(&HostPaths::under(dir.path()));
    cfg.top_processes = 50;
    let synthetic = points(cfg);
    for (label, pts) in [
        ("this host", &here),
        ("5,000 processes, top 50", &synthetic),
    ] {
        for (fmt, format) in [("text", Format::Text), ("OpenMetrics", Format::OpenMetrics)] {
            let bytes = render(pts, &resource, telemetry::AGENT_NAME, format).len();
            c.bench_function(
                &format!(
                    "render /metrics {fmt}, {label} ({} points, {bytes} bytes)",
                    pts.len()
                ),
                |b| b.iter(|| render(pts, &resource, telemetry::AGENT_NAME, format).len()),
            );
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
