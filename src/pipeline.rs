//! The cycle's source list, built in this one place for `run`, `snapshot`
//! and `doctor`.
//!
//! The sources share one `Snapshot` and run one after another, so a later
//! one can read what an earlier one wrote in the same cycle. The order is a
//! contract:
//!
//! 1. **Readers**, the families of `families::ALL` in its order, each
//!    writing its family's stats, each built from its own settings (never
//!    the whole configuration): cpu, memory, services; on
//!    Linux rapl, hwmon, battery (an earlier power source wins a domain:
//!    hwmon fills only what RAPL left empty, the battery adds its own
//!    domain last); filesystem (hostmetrics only, Linux and macOS); the
//!    families with a `[families.<name>]` section (cpufreq, disk, network,
//!    paging, pressure, processes, thermal: none reads another); gpu and
//!    models (Ollama) when enabled; on macOS apple-gpu before powermetrics
//!    (which adds the Apple GPU's power to the IOAccelerator devices),
//!    then battery.
//! 2. **Derived steps**, after every reader:
//!    - `export_queue` reads the exporter's dropped-batch counter (`run`
//!      with export on);
//!    - `connections` records new connections on service ports into
//!      `Activity`, so it runs before idle, which must see them to count
//!      the interval as busy;
//!    - `idle` last: it reads the cycle's power, services, GPU processes
//!      and `OllamaStats` (its Ollama probe), and writes `ActivityStats`
//!      (idle clock and energy, per-service power).
//!
//! Building the sources primes their baselines (CPU times, energy
//! counters) so the first cycle has deltas.

use crate::activity::{Activity, connections, idle, ollama as ollama_probe};
use crate::config::Config;
use crate::families::agent::{ExportCounters, ExportQueueSource};
use crate::sources::Source;

/// What to build: the readers always; the export queue stats and the
/// activity steps when asked for.
pub struct Pipeline<'a> {
    cfg: &'a Config,
    readers: Option<Vec<Box<dyn Source>>>,
    export: Option<ExportCounters>,
    activity: Option<&'a Activity>,
}

impl<'a> Pipeline<'a> {
    /// The readers the configuration asks for (what `doctor` samples).
    pub fn new(cfg: &'a Config) -> Self {
        Pipeline {
            cfg,
            readers: None,
            export: None,
            activity: None,
        }
    }

    /// These readers in place of the host's (tests that drive the derived
    /// steps with readers of their own).
    pub fn with_readers(mut self, readers: Vec<Box<dyn Source>>) -> Self {
        self.readers = Some(readers);
        self
    }

    /// Report the exporter's dropped batches (`run` with export on).
    pub fn with_export_stats(mut self, counters: ExportCounters) -> Self {
        self.export = Some(counters);
        self
    }

    /// The activity probes and idle accounting, recording into `activity`.
    pub fn with_activity(mut self, activity: &'a Activity) -> Self {
        self.activity = Some(activity);
        self
    }

    /// The whole list, in sampling order.
    pub fn build(self) -> Vec<Box<dyn Source>> {
        let cfg = self.cfg;
        let mut out = self.readers.unwrap_or_else(|| readers(cfg));
        if let Some(counters) = self.export {
            out.push(Box::new(ExportQueueSource::new(counters)));
        }
        if let Some(activity) = self.activity {
            let services = cfg.effective_services();
            if cfg.activity.connections {
                out.push(Box::new(connections::ConnectionsProbe::new(
                    &cfg.activity,
                    &services,
                    &cfg.ollama.url,
                    cfg.host_paths(),
                    activity.clone(),
                )));
            }
            let ollama = (cfg.activity.ollama && cfg.ollama.enabled)
                .then(|| {
                    ollama_probe::OllamaProbe::new(&services, &cfg.ollama.url, activity.clone())
                })
                .flatten();
            out.push(Box::new(idle::IdleSource::new(activity.clone(), ollama)));
        }
        out
    }
}

/// Every reader the configuration asks for, in sampling order: the
/// families of `families::ALL`.
pub fn readers(cfg: &Config) -> Vec<Box<dyn Source>> {
    crate::families::sources(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[Box<dyn Source>]) -> Vec<&'static str> {
        list.iter().map(|s| s.name()).collect()
    }

    fn before(names: &[&str], a: &str, b: &str) {
        let pos = |n: &str| names.iter().position(|x| *x == n);
        let (Some(i), Some(j)) = (pos(a), pos(b)) else {
            panic!("{a} or {b} missing from {names:?}");
        };
        assert!(i < j, "{a} must run before {b}: {names:?}");
    }

    fn full(cfg: &Config, activity: &Activity) -> Vec<&'static str> {
        names(
            &Pipeline::new(cfg)
                .with_export_stats(ExportCounters::default())
                .with_activity(activity)
                .build(),
        )
    }

    #[test]
    fn readers_first_then_the_derived_steps_idle_last() {
        let mut cfg = Config::default();
        cfg.activity.connections = true;
        let activity = Activity::from_config(&cfg);
        let n = full(&cfg, &activity);
        #[cfg(target_os = "linux")]
        {
            before(&n, "rapl", "hwmon");
            before(&n, "hwmon", "battery");
        }
        #[cfg(target_os = "macos")]
        {
            before(&n, "apple-gpu", "powermetrics");
        }
        let readers = names(&readers(&cfg));
        let first_derived = readers.len();
        assert_eq!(n[..first_derived], readers[..], "readers first");
        assert_eq!(
            n[first_derived..],
            ["export_queue", "connections", "idle"],
            "the derived steps after every reader"
        );
        before(&n, "connections", "idle");
        assert_eq!(n.last(), Some(&"idle"), "idle last");
    }

    #[test]
    fn readers_only_without_activity_and_export() {
        let cfg = Config::default();
        let n = names(&Pipeline::new(&cfg).build());
        assert_eq!(n, names(&readers(&cfg)));
        assert!(!n.contains(&"idle") && !n.contains(&"export_queue"));
    }

    #[test]
    fn optional_readers_keep_their_place() {
        let mut cfg = Config::default();
        cfg.gpu.enabled = true;
        cfg.ollama.enabled = true;
        cfg.compat.hostmetrics = true;
        cfg.activity.connections = false;
        let activity = Activity::from_config(&cfg);
        let n = full(&cfg, &activity);
        before(&n, "services", "gpu");
        before(&n, "gpu", "ollama");
        before(&n, "ollama", "idle");
        // The families of `families::ALL` after the host readers, before
        // the GPU.
        #[cfg(target_os = "linux")]
        {
            before(&n, "filesystem", "thermal");
            before(&n, "disk", "gpu");
            before(&n, "thermal", "gpu");
        }
        assert!(!n.contains(&"connections"));
        assert_eq!(n.last(), Some(&"idle"));
    }
}
