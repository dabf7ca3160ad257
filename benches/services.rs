//! One steady-state cycle of the services source on a synthetic host of
//! 5,000 processes with the six default services (budget: under 20 ms).

use criterion::{Criterion, criterion_group, criterion_main};
use unamentis_agent::config::Config;
use unamentis_agent::families::services::ServiceSource;
use unamentis_agent::host::HostPaths;
use unamentis_agent::snapshot::Snapshot;
use unamentis_agent::sources::Source;

#[path = "../tests/support/synthetic_host.rs"]
mod synthetic_host;

fn cycle(c: &mut Criterion) {
    for n in [80u32, 5000] {
        let dir = tempfile::tempdir().unwrap();
        synthetic_host::write_host(dir.path(), n);
        let cfg = Config::for_host(&HostPaths::under(dir.path()));
        let mut source = ServiceSource::new(&cfg.services_section(), cfg.host_paths());
        c.bench_function(&format!("services cycle, {n} processes"), |b| {
            b.iter(|| {
                let mut snap = Snapshot::default();
                source.sample(&mut snap).unwrap();
                snap
            })
        });
    }
}

criterion_group!(benches, cycle);
criterion_main!(benches);
