//! A sampler over a private copy of a fixture host, for tests that change
//! the tree's files between cycles. Watts are Δenergy / Δt with the
//! agent's own Δt, which a test cannot see: each read happens inside a
//! call the test brackets with two instants, so Δt lies between (start of
//! this call − end of the previous one) and (end of this call − start of
//! the previous one), and expected watts are bounded exactly by those.

use std::path::Path;
use std::time::Instant;

use unamentis_agent::config::Config;
use unamentis_agent::host::HostPaths;
use unamentis_agent::pipeline;
use unamentis_agent::semconv::{self, Metric};
use unamentis_agent::snapshot::{AttrValue, Point, Sampler, Snapshot, SourceStatus};

use super::fixtures::{host_copy, set};

pub struct Run {
    dir: tempfile::TempDir,
    sampler: Sampler,
    prev: (Instant, Instant),
}

impl Run {
    pub fn start(name: &str) -> Run {
        Self::at(host_copy(name))
    }

    pub fn at(dir: tempfile::TempDir) -> Run {
        let paths = HostPaths::under(dir.path());
        let before = Instant::now();
        let sampler = Sampler::new(pipeline::readers(&Config::for_host(&paths)));
        Run {
            dir,
            sampler,
            prev: (before, Instant::now()),
        }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn set(&self, rel: &str, v: impl std::fmt::Display) {
        set(self.root(), rel, v);
    }

    /// One cycle; also returns the bounds of Δt since the previous read,
    /// in seconds (shortest, longest).
    pub fn step(&mut self) -> (Snapshot, Vec<Point>, (f64, f64)) {
        let before = Instant::now();
        let snap = self.sampler.sample();
        let after = Instant::now();
        let dt = (
            (before - self.prev.1).as_secs_f64(),
            (after - self.prev.0).as_secs_f64(),
        );
        self.prev = (before, after);
        let points = snap.points();
        (snap, points, dt)
    }
}

/// The one point of `metric` (with `attr`, when given), if any.
pub fn get(points: &[Point], metric: &Metric, attr: Option<(&str, &str)>) -> Option<f64> {
    let found: Vec<f64> = points
        .iter()
        .filter(|p| {
            std::ptr::eq(p.metric, metric)
                && attr.is_none_or(|(k, v)| p.attrs.contains(&(k, AttrValue::from(v))))
        })
        .map(|p| p.value)
        .collect();
    assert!(found.len() <= 1, "{} has {found:?}", metric.name);
    found.first().copied()
}

pub fn joules(points: &[Point], domain: &str) -> Option<f64> {
    get(points, &semconv::ENERGY_JOULES, Some(("domain", domain)))
}

/// `watts` is `delta_uj` over some Δt within `dt`.
pub fn assert_watts(watts: Option<f64>, delta_uj: u64, dt: (f64, f64)) {
    let w = watts.expect("watts point");
    let j = delta_uj as f64 / 1e6;
    let (lo, hi) = (j / dt.1, j / dt.0);
    assert!(
        w >= lo * (1.0 - 1e-12) && w <= hi * (1.0 + 1e-12),
        "{w} W not in [{lo}, {hi}] for {j} J over {dt:?} s"
    );
}

pub fn status<'a>(snap: &'a Snapshot, name: &str) -> &'a SourceStatus {
    snap.sources
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no source {name}"))
}
