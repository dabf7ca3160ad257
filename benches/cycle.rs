//! One whole collection cycle, as the agent runs it: every source (host,
//! services, power, thermal, GPU, Ollama, activity probes and idle
//! accounting) and the conversion to points, on this host and on a
//! synthetic host of 5,000 processes with the six default services.
//! Export encoding is not included (bench/overhead.sh measures the whole
//! process).

use criterion::{Criterion, criterion_group, criterion_main};
use unamentis_agent::activity::Activity;
use unamentis_agent::config::Config;
use unamentis_agent::host::HostPaths;
use unamentis_agent::pipeline::Pipeline;
use unamentis_agent::snapshot::Sampler;

#[path = "../tests/support/synthetic_host.rs"]
mod synthetic_host;

fn sampler(cfg: &Config) -> Sampler {
    let activity = Activity::from_config(cfg);
    Sampler::new(Pipeline::new(cfg).with_activity(&activity).build())
}

fn cycle(c: &mut Criterion) {
    let mut live = sampler(&Config::default());
    c.bench_function("full cycle, this host", |b| {
        b.iter(|| live.sample().points().len())
    });

    let dir = tempfile::tempdir().unwrap();
    synthetic_host::write_host(dir.path(), 5000);
    let mut synthetic = sampler(&Config::for_host(&HostPaths::under(dir.path())));
    c.bench_function("full cycle, 5,000 synthetic processes", |b| {
        b.iter(|| synthetic.sample().points().len())
    });
}

criterion_group!(benches, cycle);
criterion_main!(benches);
