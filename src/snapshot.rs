//! One sample of every source per collection cycle, and the mapping from
//! that sample to metric points.
//!
//! The PeriodicReader's collect runs every instrument callback; the first
//! callback of a cycle takes the sample and every later one reads it (see
//! [`CycleSampler`]). No background thread polls between cycles.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::config::CompatConfig;
use crate::semconv::{self, Metric, attr};
use crate::sources::cpu::CpuStats;
use crate::sources::export_queue::ExportQueueStats;
use crate::sources::gpu::GpuStats;
use crate::sources::macos::MacosStats;
use crate::sources::memory::MemoryStats;
use crate::sources::ollama::OllamaStats;
use crate::sources::power::{BatteryState, PowerStats};
use crate::sources::service::{ContainerIdentity, ServicesSample};
use crate::sources::snapshot::{ActivityStats, CompatStats};
use crate::sources::{Source, SourceError};

pub use crate::point::{AttrValue, Point};
pub use crate::sources::{Snapshot, SourceStatus};

const MIB: f64 = 1024.0 * 1024.0;

impl Snapshot {
    /// Every point this snapshot holds. A value a source could not read has
    /// no point at all: absent, never 0.
    pub fn points(&self) -> Vec<Point> {
        let mut out = Vec::with_capacity(32);
        if let Some(cpu) = &self.cpu {
            cpu_points(cpu, &mut out);
        }
        if let Some(mem) = &self.memory {
            memory_points(mem, &mut out);
        }
        if let Some(svc) = &self.services {
            let gpu = self.gpu.as_ref().filter(|g| g.lists_processes());
            service_points(svc, gpu, &mut out);
            other_points(self, svc, &mut out);
        }
        if let Some(m) = &self.macos {
            macos_points(m, &mut out);
        }
        if let Some(gpu) = &self.gpu {
            gpu_points(gpu, &mut out);
        }
        if let Some(o) = &self.ollama {
            ollama_points(
                o,
                self.gpu.as_ref().is_some_and(|g| !g.devices.is_empty()),
                &mut out,
            );
        }
        if let Some(power) = &self.power {
            power_points(power, &mut out);
        }
        if let Some(a) = &self.activity {
            activity_points(a, &mut out);
        }
        if let Some(q) = &self.export_queue {
            export_queue_points(q, &mut out);
        }
        for f in &self.families {
            f.points(&mut out);
        }
        self_points(&self.sources, &mut out);
        out
    }

    /// Package power of this cycle: Linux RAPL/hwmon or macOS powermetrics.
    pub fn package_watts(&self) -> Option<f64> {
        let linux = self.power.as_ref().and_then(|p| p.package.watts);
        linux.or_else(|| self.macos.as_ref().and_then(|m| m.package_watts))
    }

    /// Cumulative joules since start per energy domain (`package`, `cpu`,
    /// …), as `energy.joules` reports them.
    pub fn energy_totals(&self) -> Vec<(&'static str, f64)> {
        let mut out = Vec::new();
        if let Some(p) = &self.power {
            out.extend(
                power_energy(p)
                    .into_iter()
                    .filter_map(|(d, j)| Some((d, j?))),
            );
        }
        if let Some(m) = &self.macos {
            out.extend(m.energy.iter().copied());
        }
        // The GPU source's total (NVML, nvidia-smi, amdgpu), unless a
        // platform source already gave the domain.
        if let Some(j) = self.gpu.as_ref().and_then(|g| g.energy_joules)
            && !out.iter().any(|(d, _)| *d == "gpu")
        {
            out.push(("gpu", j));
        }
        out
    }

    /// [`Snapshot::points`] plus the `[compat]` names the switches ask for.
    pub fn points_with(&self, compat: CompatConfig) -> Vec<Point> {
        let mut out = self.points();
        crate::compat::points(self, compat, &mut out);
        out
    }

    pub fn compat_mut(&mut self) -> &mut CompatStats {
        self.compat.get_or_insert_with(CompatStats::default)
    }
}

fn cpu_points(cpu: &CpuStats, out: &mut Vec<Point>) {
    if let Some(p) = cpu.percent {
        out.push(Point::new(&semconv::CPU_PERCENT, p));
    }
    if let Some([l1, l5, l15]) = cpu.load {
        for (period, v) in [("1m", l1), ("5m", l5), ("15m", l15)] {
            out.push(Point::new(&semconv::CPU_LOAD_AVERAGE, v).with(attr::PERIOD, period));
        }
    }
    let cores = [
        ("logical", cpu.logical.map(f64::from)),
        ("physical", cpu.physical.map(f64::from)),
        ("available", cpu.available()),
    ];
    for (kind, v) in cores {
        if let Some(v) = v {
            out.push(Point::new(&semconv::CPU_CORES, v).with(attr::KIND, kind));
        }
    }
}

fn memory_points(mem: &MemoryStats, out: &mut Vec<Point>) {
    let mib = |bytes: u64| bytes as f64 / MIB;
    out.push(Point::new(&semconv::MEMORY_TOTAL_MB, mib(mem.total_bytes)));
    out.push(Point::new(
        &semconv::MEMORY_AVAILABLE_MB,
        mib(mem.available_bytes),
    ));
    out.push(Point::new(&semconv::MEMORY_USED_MB, mib(mem.used_bytes())));
    if let Some(p) = mem.percent() {
        out.push(Point::new(&semconv::MEMORY_PERCENT, p));
    }
}

/// The pseudo-service that makes the services add up to the host.
pub const OTHER: &str = "other";

fn service_points(svc: &ServicesSample, gpu: Option<&GpuStats>, out: &mut Vec<Point>) {
    for s in &svc.services {
        let name = s.name.as_str();
        let up = if s.up() { 1.0 } else { 0.0 };
        out.push(Point::new(&semconv::SERVICE_UP, up).with(attr::UNAMENTIS_SERVICE, name));
        if !s.up() {
            continue;
        }
        let values = [
            (&semconv::SERVICE_PROCESSES, Some(s.pids.len() as f64)),
            (&semconv::SERVICE_CPU_PERCENT, s.cpu_percent),
            (
                &semconv::SERVICE_MEMORY_MB,
                s.rss_bytes.map(|b| b as f64 / MIB),
            ),
            (&semconv::SERVICE_THREADS, s.threads.map(|t| t as f64)),
            (&semconv::SERVICE_OPEN_FILES, s.open_files.map(|n| n as f64)),
            (
                &semconv::SERVICE_MEMORY_GROWTH_MB_PER_HOUR,
                s.growth_mib_per_hour,
            ),
            (
                &semconv::SERVICE_VRAM_MB,
                gpu.map(|g| service_vram_mib(g, &s.pids)),
            ),
        ];
        for (metric, v) in values {
            if let Some(v) = v {
                let point = Point::new(metric, v).with(attr::UNAMENTIS_SERVICE, name);
                out.push(with_container(point, &s.container));
            }
        }
        if let Some(io) = s.disk_io {
            for (direction, bytes) in [("read", io.read_bytes), ("write", io.write_bytes)] {
                let point = Point::new(&semconv::SERVICE_DISK_IO_BYTES, bytes as f64)
                    .with(attr::UNAMENTIS_SERVICE, name)
                    .with(attr::DIRECTION, direction);
                out.push(with_container(point, &s.container));
            }
        }
    }
    for p in &svc.top {
        let point = |m, v| {
            let point = Point::new(m, v)
                .with(attr::PROCESS_EXECUTABLE_NAME, p.name.as_str())
                .with(attr::PROCESS_PID, AttrValue::Int(i64::from(p.pid)));
            with_container(point, &p.container)
        };
        out.push(point(&semconv::PROCESS_CPU_PERCENT, p.cpu_percent));
        out.push(point(&semconv::PROCESS_MEMORY_MB, p.rss_bytes as f64 / MIB));
    }
}

/// `container.id` and `k8s.pod.uid` where the cgroup path gave them.
fn with_container(mut point: Point, c: &ContainerIdentity) -> Point {
    if let Some(id) = &c.container_id {
        point = point.with(attr::CONTAINER_ID, id.as_str());
    }
    if let Some(uid) = &c.pod_uid {
        point = point.with(attr::K8S_POD_UID, uid.as_str());
    }
    point
}

/// GPU memory of a service's processes, from the GPU source's process list.
fn service_vram_mib(gpu: &GpuStats, pids: &[u32]) -> f64 {
    let bytes: u64 = gpu
        .processes
        .iter()
        .filter(|p| pids.contains(&p.pid))
        .map(|p| p.used_bytes)
        .sum();
    bytes as f64 / MIB
}

/// `other` = the host's busy CPU (in % of one core) and used memory minus
/// the named services, clamped at 0. Both come from the same cycle, so no
/// per-process scan is needed.
fn other_points(snap: &Snapshot, svc: &ServicesSample, out: &mut Vec<Point>) {
    let host_cpu = snap
        .cpu
        .and_then(|c| Some(c.percent? * f64::from(c.logical?)));
    if let Some(host) = host_cpu {
        let services: f64 = svc.services.iter().filter_map(|s| s.cpu_percent).sum();
        out.push(
            Point::new(&semconv::SERVICE_CPU_PERCENT, (host - services).max(0.0))
                .with(attr::UNAMENTIS_SERVICE, OTHER),
        );
    }
    if let Some(mem) = &snap.memory {
        let services: u64 = svc.services.iter().filter_map(|s| s.rss_bytes).sum();
        let other = mem.used_bytes().saturating_sub(services);
        out.push(
            Point::new(&semconv::SERVICE_MEMORY_MB, other as f64 / MIB)
                .with(attr::UNAMENTIS_SERVICE, OTHER),
        );
    }
}

fn gpu_points(gpu: &GpuStats, out: &mut Vec<Point>) {
    let mib = |bytes: u64| bytes as f64 / MIB;
    for d in &gpu.devices {
        let point = |metric: &'static Metric, value: f64| {
            let mut p = Point::new(metric, value)
                .with(attr::GPU_INDEX, AttrValue::Int(i64::from(d.index)))
                .with(attr::GPU_NAME, d.name.as_str())
                .with(attr::GPU_VENDOR, d.vendor);
            if let Some(u) = &d.uuid {
                p = p.with(attr::GPU_UUID, u.as_str());
            }
            if let Some(b) = &d.pci_bus_id {
                p = p.with(attr::GPU_PCI_BUS_ID, b.as_str());
            }
            p
        };
        let values = [
            (&semconv::GPU_VRAM_USED_MB, d.vram_used_bytes.map(mib)),
            (&semconv::GPU_VRAM_TOTAL_MB, d.vram_total_bytes.map(mib)),
            (&semconv::GPU_UTILIZATION_PERCENT, d.utilization_percent),
            (&semconv::GPU_TEMPERATURE, d.temperature_celsius),
            (&semconv::POWER_GPU_WATTS, d.power_watts),
        ];
        for (metric, v) in values {
            if let Some(v) = v {
                out.push(point(metric, v));
            }
        }
    }
    if let Some(j) = gpu.energy_joules {
        out.push(Point::new(&semconv::ENERGY_JOULES, j).with(attr::DOMAIN, "gpu"));
    }
}

/// `gpu_answered`: a GPU backend read the devices this cycle; without one,
/// the models' `size_vram` stands in for the host's VRAM use, marked
/// `gpu.vendor=ollama-estimate`.
fn ollama_points(o: &OllamaStats, gpu_answered: bool, out: &mut Vec<Point>) {
    for m in &o.models {
        out.push(Point::new(&semconv::MODEL_LOADED, 1.0).with(attr::MODEL, m.name.as_str()));
        out.push(
            Point::new(&semconv::MODEL_VRAM_MB, m.size_vram_bytes as f64 / MIB)
                .with(attr::MODEL, m.name.as_str()),
        );
    }
    let vram = o.vram_bytes();
    if !gpu_answered && vram > 0 {
        out.push(
            Point::new(&semconv::GPU_VRAM_USED_MB, vram as f64 / MIB)
                .with(attr::GPU_INDEX, AttrValue::Int(0))
                .with(attr::GPU_NAME, "ollama-estimate")
                .with(attr::GPU_VENDOR, "ollama-estimate"),
        );
    }
}

fn macos_points(m: &MacosStats, out: &mut Vec<Point>) {
    battery_state_points(&m.battery_state, out);
    let gauges = [
        (&semconv::POWER_CPU_WATTS, m.cpu_watts),
        (&semconv::POWER_ANE_WATTS, m.ane_watts),
        (&semconv::POWER_PACKAGE_WATTS, m.package_watts),
        (&semconv::POWER_DRAM_WATTS, m.dram_watts),
        (&semconv::POWER_BATTERY_WATTS, m.battery_watts),
        (&semconv::THERMAL_TEMPERATURE, m.cpu_temperature),
        (&semconv::THERMAL_PRESSURE, m.pressure.map(f64::from)),
    ];
    for (metric, v) in gauges {
        if let Some(v) = v {
            out.push(Point::new(metric, v));
        }
    }
    if let Some(w) = m.gpu_watts {
        // powermetrics measures the one Apple Silicon GPU: IOAccelerator's
        // Apple entry, when ioreg named it.
        let mut p = Point::new(&semconv::POWER_GPU_WATTS, w)
            .with(attr::GPU_INDEX, AttrValue::Int(0))
            .with(attr::GPU_VENDOR, "apple");
        if let Some(g) = m.gpus.iter().find(|g| g.vendor == "apple") {
            p = p.with(attr::GPU_NAME, g.name.as_str());
        }
        out.push(p);
    }
    if let Some(rpm) = m.fan_rpm {
        out.push(Point::new(&semconv::THERMAL_FAN_RPM, rpm).with(attr::FAN, "smc"));
    }
    for (domain, j) in &m.energy {
        out.push(Point::new(&semconv::ENERGY_JOULES, *j).with(attr::DOMAIN, *domain));
    }
    for (i, g) in m.gpus.iter().enumerate() {
        let apple = g.vendor == "apple";
        let gpu = |metric, v| {
            Point::new(metric, v)
                .with(attr::GPU_INDEX, AttrValue::Int(i as i64))
                .with(attr::GPU_NAME, g.name.as_str())
                .with(attr::GPU_VENDOR, g.vendor)
        };
        if let Some(b) = g.in_use_bytes {
            out.push(gpu(&semconv::GPU_VRAM_USED_MB, b as f64 / MIB));
        }
        // Unified memory: the pool the GPU allocates from (hw.memsize).
        if let (true, Some(total)) = (apple, m.unified_memory_bytes) {
            out.push(gpu(&semconv::GPU_VRAM_TOTAL_MB, total as f64 / MIB));
        }
        let busy = g
            .utilization_percent
            .or(if apple { m.gpu_busy_percent } else { None });
        if let Some(u) = busy {
            out.push(gpu(&semconv::GPU_UTILIZATION_PERCENT, u));
        }
    }
}

/// The energy domains of the Linux power sources; uncore is left to the
/// GPU source (power.gpu_watts).
fn power_energy(p: &PowerStats) -> [(&'static str, Option<f64>); 4] {
    [
        ("cpu", p.cpu.joules),
        ("package", p.package.joules),
        ("dram", p.dram.joules),
        ("battery", p.battery.joules),
    ]
}

fn power_points(p: &PowerStats, out: &mut Vec<Point>) {
    let gauges = [
        (&semconv::POWER_CPU_WATTS, p.cpu.watts),
        (&semconv::POWER_PACKAGE_WATTS, p.package.watts),
        (&semconv::POWER_DRAM_WATTS, p.dram.watts),
        (&semconv::POWER_BATTERY_WATTS, p.battery.watts),
    ];
    for (metric, v) in gauges {
        if let Some(v) = v {
            out.push(Point::new(metric, v));
        }
    }
    for (domain, j) in power_energy(p) {
        if let Some(j) = j {
            out.push(Point::new(&semconv::ENERGY_JOULES, j).with(attr::DOMAIN, domain));
        }
    }
    battery_state_points(&p.battery_state, out);
}

fn battery_state_points(b: &BatteryState, out: &mut Vec<Point>) {
    for (metric, v) in [
        (&semconv::BATTERY_CHARGE_PERCENT, b.charge_percent),
        (&semconv::BATTERY_TIME_LEFT, b.time_left_s),
        (
            &semconv::POWER_AC_ONLINE,
            b.ac_online.map(|on| f64::from(u8::from(on))),
        ),
    ] {
        if let Some(v) = v {
            out.push(Point::new(metric, v));
        }
    }
}

fn activity_points(a: &ActivityStats, out: &mut Vec<Point>) {
    out.push(Point::new(
        &semconv::IDLE_DURATION_SECONDS,
        a.idle.as_secs_f64(),
    ));
    out.push(Point::new(
        &semconv::IDLE_STATE,
        if a.idle_state() { 1.0 } else { 0.0 },
    ));
    for (domain, j) in &a.idle_energy_joules {
        out.push(Point::new(&semconv::IDLE_ENERGY_JOULES, *j).with(attr::DOMAIN, *domain));
    }
    for s in &a.services {
        let svc = |m, v| Point::new(m, v).with(attr::UNAMENTIS_SERVICE, s.name.as_str());
        out.push(svc(&semconv::IDLE_DURATION_SECONDS, s.idle.as_secs_f64()));
        for (probe, n) in &s.requests {
            out.push(svc(&semconv::ACTIVITY_REQUESTS, *n as f64).with(attr::PROBE, probe.as_str()));
        }
        for (probe, n) in &s.inferences {
            out.push(
                svc(&semconv::ACTIVITY_INFERENCES, *n as f64).with(attr::PROBE, probe.as_str()),
            );
        }
        let values = [
            (
                &semconv::ACTIVITY_CONNECTIONS,
                s.connections.map(|n| n as f64),
            ),
            (&semconv::SERVICE_IDLE_CPU_SECONDS, s.idle_cpu_seconds),
        ];
        for (metric, v) in values {
            if let Some(v) = v {
                out.push(svc(metric, v));
            }
        }
        let by_domain = [
            (&semconv::SERVICE_POWER_WATTS, "cpu", s.power_watts),
            (&semconv::SERVICE_ENERGY_JOULES, "cpu", s.energy_joules),
            (&semconv::SERVICE_POWER_WATTS, "gpu", s.gpu_power_watts),
            (&semconv::SERVICE_ENERGY_JOULES, "gpu", s.gpu_energy_joules),
        ];
        for (metric, domain, v) in by_domain {
            if let Some(v) = v {
                out.push(svc(metric, v).with(attr::DOMAIN, domain));
            }
        }
        for (domain, j) in &s.idle_energy_joules {
            out.push(svc(&semconv::SERVICE_IDLE_ENERGY_JOULES, *j).with(attr::DOMAIN, *domain));
        }
    }
    let other = [
        (&semconv::SERVICE_POWER_WATTS, "cpu", a.other_power_watts),
        (
            &semconv::SERVICE_ENERGY_JOULES,
            "cpu",
            a.other_energy_joules,
        ),
        (
            &semconv::SERVICE_POWER_WATTS,
            "gpu",
            a.other_gpu_power_watts,
        ),
        (
            &semconv::SERVICE_ENERGY_JOULES,
            "gpu",
            a.other_gpu_energy_joules,
        ),
    ];
    for (metric, domain, v) in other {
        if let Some(v) = v {
            out.push(
                Point::new(metric, v)
                    .with(attr::UNAMENTIS_SERVICE, OTHER)
                    .with(attr::DOMAIN, domain),
            );
        }
    }
}

fn self_points(sources: &[SourceStatus], out: &mut Vec<Point>) {
    for s in sources {
        let duration = s.duration.as_secs_f64();
        out.push(
            Point::new(&semconv::AGENT_COLLECTION_DURATION, duration).with(attr::SOURCE, s.name),
        );
        let up = if s.up { 1.0 } else { 0.0 };
        out.push(Point::new(&semconv::AGENT_SOURCE_UP, up).with(attr::SOURCE, s.name));
    }
}

fn export_queue_points(q: &ExportQueueStats, out: &mut Vec<Point>) {
    out.push(Point::new(
        &semconv::AGENT_EXPORT_DROPPED_BATCHES,
        q.dropped_batches as f64,
    ));
}

/// How long a failing source stays quiet after a warning.
const FAILED_LOG_EVERY: Duration = Duration::from_secs(300);

struct SourceSlot {
    source: Box<dyn Source>,
    /// The last error reported, to log a state change once instead of
    /// every cycle.
    last_error: Option<SourceError>,
    last_warned: Option<Instant>,
}

/// Runs every source once per call, timing each and logging failures
/// without flooding: an unavailable source is reported once, a failing one
/// at most every five minutes, a recovery once.
pub struct Sampler {
    slots: Vec<SourceSlot>,
}

impl Sampler {
    pub fn new(sources: Vec<Box<dyn Source>>) -> Self {
        Sampler {
            slots: sources
                .into_iter()
                .map(|source| SourceSlot {
                    source,
                    last_error: None,
                    last_warned: None,
                })
                .collect(),
        }
    }

    pub fn sample(&mut self) -> Snapshot {
        let mut snap = Snapshot::default();
        for slot in &mut self.slots {
            let name = slot.source.name();
            let started = Instant::now();
            let result = slot.source.sample(&mut snap);
            let duration = started.elapsed();
            snap.sources.push(SourceStatus {
                name,
                up: result.is_ok(),
                duration,
                error: result.as_ref().err().cloned(),
                hint: slot.source.hint(),
            });
            slot.report(name, result);
        }
        snap
    }
}

impl SourceSlot {
    fn report(&mut self, name: &str, result: Result<(), SourceError>) {
        match result {
            Ok(()) => {
                if let Some(prev) = self.last_error.take() {
                    tracing::info!(source = name, was = %prev, "source recovered");
                }
                self.last_warned = None;
            }
            Err(err) => {
                let changed = self.last_error.as_ref() != Some(&err);
                match &err {
                    SourceError::Unavailable(_) if changed => {
                        tracing::info!(source = name, "source down: {err}");
                    }
                    SourceError::Unavailable(_) => {}
                    SourceError::Failed(_) => {
                        let quiet = self
                            .last_warned
                            .is_some_and(|t| t.elapsed() < FAILED_LOG_EVERY);
                        if changed || !quiet {
                            tracing::warn!(source = name, "source failed: {err}");
                            self.last_warned = Some(Instant::now());
                        }
                    }
                }
                self.last_error = Some(err);
            }
        }
    }
}

struct CycleState {
    sampler: Sampler,
    generation: u64,
    /// The generation each reader last read; a reader that already read
    /// the current generation is the first of a new cycle.
    seen: Vec<u64>,
    points: Arc<Vec<Point>>,
    compat: CompatConfig,
}

/// Shares one sample per collection cycle between many readers (the
/// instrument callbacks) without knowing their order: a reader that has
/// already seen the current sample starts a new cycle.
#[derive(Clone)]
pub struct CycleSampler {
    state: Arc<Mutex<CycleState>>,
    /// Apart from `state`, so the local server never waits for a cycle
    /// that is sampling: the last sample and the points the export read
    /// from it.
    latest: Arc<Mutex<Option<Latest>>>,
}

type Latest = (Arc<Snapshot>, Arc<Vec<Point>>);

impl CycleSampler {
    pub fn new(sampler: Sampler, readers: usize) -> Self {
        CycleSampler {
            state: Arc::new(Mutex::new(CycleState {
                sampler,
                generation: 0,
                seen: vec![0; readers],
                points: Arc::new(Vec::new()),
                compat: CompatConfig::default(),
            })),
            latest: Arc::new(Mutex::new(None)),
        }
    }

    /// Also produce the `[compat]` points the switches ask for.
    pub fn with_compat(self, compat: CompatConfig) -> Self {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .compat = compat;
        self
    }

    /// Calls `f` with every point of `metric` in the current cycle's sample,
    /// taking the sample first when `reader` starts a new cycle.
    pub fn read(&self, reader: usize, metric: &'static Metric, mut f: impl FnMut(&Point)) {
        // A panic in a callback must not stop every later cycle.
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let st = &mut *st;
        if st.generation == 0 || st.seen.get(reader) == Some(&st.generation) {
            self.take(st);
        }
        if let Some(seen) = st.seen.get_mut(reader) {
            *seen = st.generation;
        }
        for p in st.points.iter().filter(|p| std::ptr::eq(p.metric, metric)) {
            f(p);
        }
    }

    fn take(&self, st: &mut CycleState) {
        let snap = st.sampler.sample();
        st.points = Arc::new(snap.points_with(st.compat));
        *self.latest.lock().unwrap_or_else(PoisonError::into_inner) =
            Some((Arc::new(snap), st.points.clone()));
        st.generation += 1;
    }

    /// Starts a new cycle without a reader: with export disabled there is
    /// no PeriodicReader, and the local server still serves fresh samples.
    pub fn sample_now(&self) {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        self.take(&mut st);
    }

    /// The most recent sample, if any cycle has run.
    pub fn latest(&self) -> Option<Arc<Snapshot>> {
        self.latest
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|(s, _)| s.clone())
    }

    /// The points of the most recent sample, exactly those the export read
    /// (`[compat]` names included): `/metrics` renders them as they are.
    pub fn latest_points(&self) -> Option<Arc<Vec<Point>>> {
        self.latest
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|(_, p)| p.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    struct Counting(Arc<AtomicU32>, Option<SourceError>);

    impl Source for Counting {
        fn name(&self) -> &'static str {
            "counting"
        }
        fn sample(&mut self, snap: &mut Snapshot) -> Result<(), SourceError> {
            let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
            snap.memory = Some(MemoryStats {
                total_bytes: u64::from(n) * 1024 * 1024,
                available_bytes: 0,
            });
            self.1.clone().map_or(Ok(()), Err)
        }
    }

    fn total_seen(c: &CycleSampler, reader: usize) -> f64 {
        let mut v = f64::NAN;
        c.read(reader, &semconv::MEMORY_TOTAL_MB, |p| v = p.value);
        v
    }

    #[test]
    fn one_sample_per_cycle_whatever_the_reader_order() {
        let n = Arc::new(AtomicU32::new(0));
        let c = CycleSampler::new(Sampler::new(vec![Box::new(Counting(n.clone(), None))]), 3);
        // Cycle 1 in order 0,1,2; cycle 2 in order 2,0,1; cycle 3 in order 1,2,0.
        for (cycle, order) in [[0, 1, 2], [2, 0, 1], [1, 2, 0]].iter().enumerate() {
            for &r in order {
                assert_eq!(total_seen(&c, r), (cycle + 1) as f64);
            }
        }
        assert_eq!(n.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn latest_points_are_the_ones_the_readers_got() {
        let n = Arc::new(AtomicU32::new(0));
        let c = CycleSampler::new(Sampler::new(vec![Box::new(Counting(n, None))]), 1);
        assert!(c.latest_points().is_none());
        for cycle in 1..=2 {
            let mut read = Vec::new();
            c.read(0, &semconv::MEMORY_TOTAL_MB, |p| read.push(p.value));
            let latest: Vec<f64> = c
                .latest_points()
                .unwrap()
                .iter()
                .filter(|p| std::ptr::eq(p.metric, &semconv::MEMORY_TOTAL_MB))
                .map(|p| p.value)
                .collect();
            assert_eq!(read, vec![f64::from(cycle)]);
            assert_eq!(latest, read, "cycle {cycle}");
        }
    }

    #[test]
    fn failed_source_reports_down_and_keeps_what_it_read() {
        let n = Arc::new(AtomicU32::new(0));
        let mut s = Sampler::new(vec![Box::new(Counting(
            n,
            Some(SourceError::Failed("boom".into())),
        ))]);
        let snap = s.sample();
        assert_eq!(snap.sources.len(), 1);
        assert!(!snap.sources[0].up);
        let pts = snap.points();
        let up: Vec<_> = pts
            .iter()
            .filter(|p| std::ptr::eq(p.metric, &semconv::AGENT_SOURCE_UP))
            .collect();
        assert_eq!(up.len(), 1);
        assert_eq!(up[0].value, 0.0);
        assert_eq!(
            up[0].attrs,
            vec![(attr::SOURCE, AttrValue::from("counting"))]
        );
        assert!(
            pts.iter()
                .any(|p| std::ptr::eq(p.metric, &semconv::MEMORY_TOTAL_MB))
        );
    }

    #[test]
    fn absent_values_have_no_point() {
        let snap = Snapshot {
            cpu: Some(CpuStats {
                percent: None,
                load: None,
                logical: Some(2),
                physical: None,
            }),
            ..Default::default()
        };
        let pts = snap.points();
        assert_eq!(pts.len(), 1, "{pts:?}");
        assert_eq!(pts[0].attrs, vec![(attr::KIND, AttrValue::from("logical"))]);
    }

    #[test]
    fn every_point_uses_only_its_registered_attributes() {
        use crate::sources::service::{ProcessSample, ServiceSample};
        let up = ServiceSample {
            name: "ollama".into(),
            pids: vec![10, 11],
            cpu_percent: Some(30.0),
            rss_bytes: Some(1 << 30),
            threads: Some(12),
            open_files: Some(40),
            growth_mib_per_hour: Some(1.5),
            disk_io: Some(crate::sources::service::ProcIo {
                read_bytes: 4096,
                write_bytes: 1 << 20,
            }),
            ..Default::default()
        };
        let down = ServiceSample {
            name: "piper".into(),
            ..Default::default()
        };
        let snap = Snapshot {
            cpu: Some(CpuStats {
                percent: Some(50.0),
                load: Some([1.0, 2.0, 3.0]),
                logical: Some(4),
                physical: Some(2),
            }),
            memory: Some(MemoryStats {
                total_bytes: 4 << 30,
                available_bytes: 1 << 30,
            }),
            services: Some(ServicesSample {
                services: vec![up, down],
                top: vec![ProcessSample {
                    pid: 99,
                    name: "yes".into(),
                    cpu_percent: 99.0,
                    rss_bytes: 1 << 20,
                    container: Default::default(),
                }],
            }),
            sources: vec![SourceStatus {
                name: "cpu",
                up: true,
                duration: Duration::from_millis(1),
                error: None,
                hint: None,
            }],
            ..Default::default()
        };
        let pts = snap.points();
        // other = 50 % of 4 cores (200 % of one) − 30, and 3 GiB used − 1 GiB.
        let other: Vec<f64> = pts
            .iter()
            .filter(|p| {
                p.attrs
                    .contains(&(attr::UNAMENTIS_SERVICE, AttrValue::from(OTHER)))
            })
            .map(|p| p.value)
            .collect();
        assert_eq!(other, vec![170.0, 2048.0]);
        let down_points: Vec<_> = pts
            .iter()
            .filter(|p| {
                p.attrs
                    .contains(&(attr::UNAMENTIS_SERVICE, AttrValue::from("piper")))
            })
            .collect();
        assert_eq!(
            down_points.len(),
            1,
            "a down service has service.up 0 and nothing else"
        );
        assert_eq!(down_points[0].value, 0.0);
        assert_eq!(pts.len(), 13 + 7 + 2 + 1 + 2 + 2);
        for p in &pts {
            assert!(
                semconv::ALL.iter().any(|m| std::ptr::eq(*m, p.metric)),
                "{} not in ALL",
                p.metric.name
            );
            for (k, _) in &p.attrs {
                assert!(
                    p.metric.attributes.contains(k),
                    "{} has unregistered attribute {k}",
                    p.metric.name
                );
            }
        }
    }
}

#[cfg(test)]
mod service_vram_tests {
    use super::*;
    use crate::sources::gpu::GpuProcess;
    use crate::sources::service::ServiceSample;

    fn vram_points(backend: &'static str) -> Vec<(String, f64)> {
        let svc = |name: &str, pids: Vec<u32>| ServiceSample {
            name: name.into(),
            pids,
            ..Default::default()
        };
        let snap = Snapshot {
            services: Some(ServicesSample {
                services: vec![svc("ollama", vec![10, 11]), svc("piper", vec![20])],
                top: vec![],
            }),
            gpu: Some(GpuStats {
                backend,
                devices: vec![],
                processes: vec![
                    // One process on two GPUs, and one no service owns.
                    GpuProcess {
                        pid: 11,
                        gpu_index: 0,
                        used_bytes: 512 << 20,
                        sm_util: None,
                    },
                    GpuProcess {
                        pid: 11,
                        gpu_index: 1,
                        used_bytes: 256 << 20,
                        sm_util: None,
                    },
                    GpuProcess {
                        pid: 99,
                        gpu_index: 0,
                        used_bytes: 1 << 30,
                        sm_util: None,
                    },
                ],
                energy_joules: None,
                intervals: vec![],
            }),
            ..Default::default()
        };
        snap.points()
            .into_iter()
            .filter(|p| std::ptr::eq(p.metric, &semconv::SERVICE_VRAM_MB))
            .map(|p| (p.attrs[0].1.to_string(), p.value))
            .collect()
    }

    #[test]
    fn service_vram_sums_the_gpu_process_list() {
        assert_eq!(
            vram_points("nvml"),
            vec![("ollama".to_owned(), 768.0), ("piper".to_owned(), 0.0)]
        );
    }

    #[test]
    fn no_service_vram_without_a_process_list() {
        assert!(vram_points("amdgpu").is_empty());
    }
}
