//! The [`Snapshot`] every source fills in one cycle, and the stats types
//! of the derived steps it holds. The mapping of a snapshot to points and
//! the sampler that runs the sources are in `crate::snapshot`; these types
//! live here, beside the `Source` trait, so that the sources, the derived
//! steps (`crate::activity`, `crate::compat`) and the mapping all see them
//! without importing each other.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use crate::point::Point;

use super::cpu::{CpuStats, CpuTimes};
use super::export_queue::ExportQueueStats;
use super::filesystem::FsUsage;
use super::gpu::GpuStats;
use super::macos::MacosStats;
use super::memory::{MemoryStates, MemoryStats, VmMemoryStates};
use super::ollama::OllamaStats;
use super::power::PowerStats;
use super::service::ServicesSample;

#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub cpu: Option<CpuStats>,
    pub memory: Option<MemoryStats>,
    pub services: Option<ServicesSample>,
    /// macOS power, thermal, battery and Apple GPU (`sources::macos`).
    pub macos: Option<MacosStats>,
    pub gpu: Option<GpuStats>,
    pub ollama: Option<OllamaStats>,
    pub power: Option<PowerStats>,
    /// Idle clock, activity probes and idle accounting (`activity/`).
    pub activity: Option<ActivityStats>,
    /// What only the `[compat] hostmetrics` names need (`src/compat.rs`).
    pub compat: Option<CompatStats>,
    pub export_queue: Option<ExportQueueStats>,
    /// What the self-contained families (`crate::families`) read this
    /// cycle, each mapping itself to points.
    pub families: Vec<Arc<dyn FamilySample>>,
    pub sources: Vec<SourceStatus>,
}

/// The stats a family under `src/families/` leaves in the snapshot. The
/// family owns its mapping: the snapshot only asks it for its points.
pub trait FamilySample: Debug + Send + Sync {
    fn points(&self, out: &mut Vec<Point>);
}

#[derive(Debug, Clone, PartialEq)]
pub struct SourceStatus {
    pub name: &'static str,
    pub up: bool,
    pub duration: Duration,
    /// Why the source is down.
    pub error: Option<super::SourceError>,
    /// How to fix it ([`Source::hint`](super::Source::hint)).
    pub hint: Option<&'static str>,
}

/// Who saw it (the `probe` attribute).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Probe {
    Push,
    Connections,
    Ollama,
}

/// One service's activity, read at one instant.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServiceActivity {
    pub name: String,
    /// Since this service's last activity (since the agent's start before any).
    pub idle: Duration,
    /// Cumulative counts by probe; only probes that counted something.
    pub requests: Vec<(Probe, u64)>,
    pub inferences: Vec<(Probe, u64)>,
    /// Established connections on the service's ports (connections probe).
    pub connections: Option<u64>,
    /// CPU seconds spent while the stack was idle (needs the service's CPU).
    pub idle_cpu_seconds: Option<f64>,
    /// Estimate: package power × the service's share of busy CPU.
    pub power_watts: Option<f64>,
    pub energy_joules: Option<f64>,
    /// Estimate: the GPUs' power × the service's share of their processes
    /// (SM time, else memory held); see `activity::gpu_split`.
    pub gpu_power_watts: Option<f64>,
    pub gpu_energy_joules: Option<f64>,
    /// Energy attributed to the service (domains `cpu`, `gpu`) while it was
    /// idle by its own clock.
    pub idle_energy_joules: Vec<(&'static str, f64)>,
}

/// Everything the activity probes and the idle accounting give one cycle.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ActivityStats {
    pub idle_after: Duration,
    /// Since the last activity on any service (since start before any).
    pub idle: Duration,
    pub services: Vec<ServiceActivity>,
    /// Energy by domain (`package`, `cpu`, …) spent while idle.
    pub idle_energy_joules: Vec<(&'static str, f64)>,
    /// The `other` pseudo-service's share of package power and energy.
    pub other_power_watts: Option<f64>,
    pub other_energy_joules: Option<f64>,
    /// And of the GPUs' power and energy.
    pub other_gpu_power_watts: Option<f64>,
    pub other_gpu_energy_joules: Option<f64>,
}

// What `[compat]` needs (`crate::compat`).

/// What only the hostmetrics names need, filled by the sources when
/// `[compat] hostmetrics` is on.
#[derive(Debug, Clone, Default)]
pub struct CompatStats {
    /// Per-CPU cumulative times: the `cpuN` lines of `/proc/stat` (Linux),
    /// Mach's per-processor ticks (macOS).
    pub cpu_times: Option<PerCpuTimes>,
    /// `/proc/meminfo` (Linux).
    pub memory: Option<MemoryStates>,
    /// Mach's VM page counts (macOS).
    pub vm_memory: Option<VmMemoryStates>,
    pub filesystems: Option<Vec<FsUsage>>,
}

#[derive(Debug, Clone, Default)]
pub struct PerCpuTimes {
    /// USER_HZ (CLK_TCK): the unit of the times.
    pub ticks_per_second: u64,
    pub cpus: Vec<(u32, CpuTimes)>,
    /// Where they come from, which says which states the host counts.
    pub origin: CpuTimesOrigin,
}

/// The counters behind [`PerCpuTimes`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CpuTimesOrigin {
    /// `/proc/stat`: all eight hostmetrics states.
    #[default]
    ProcStat,
    /// Mach `PROCESSOR_CPU_LOAD_INFO`: user, system, idle and nice only (no
    /// iowait, irq, softirq or steal counters exist).
    Mach,
}
