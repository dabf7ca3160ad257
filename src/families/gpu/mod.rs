//! GPUs, as one source named `gpu` that asks its backends in order and
//! keeps the first that answers: NVML → nvidia-smi → amdgpu sysfs →
//! nothing (the source is down and every GPU metric is absent: failed when
//! a backend is there but broken, else unavailable). Which backend
//! answered is in [`GpuStats::backend`] and in the debug log.

use std::collections::HashMap;
use std::time::Instant;

use crate::config::GpuConfig;
use crate::host::HostPaths;
use crate::point::{AttrValue, Point};
use crate::semconv::{self, Metric, attr};
use crate::sources::energy::{Counter, Trapezoid};
use crate::sources::snapshot::{FamilySample, Snapshot};
use crate::sources::{Source, SourceError};

pub mod amdgpu;
pub mod nvml;
pub mod smi;

/// One GPU as one backend saw it. A value the backend could not read is
/// `None`, never 0.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GpuDevice {
    /// Enumeration order of the backend (NVML / nvidia-smi index, amdgpu
    /// card order).
    pub index: u32,
    pub name: String,
    /// `nvidia`, `amd`, `apple`.
    pub vendor: &'static str,
    pub uuid: Option<String>,
    /// Sysfs form: 4-hex-digit domain, lower-case (`0000:01:00.0`).
    pub pci_bus_id: Option<String>,
    pub vram_used_bytes: Option<u64>,
    pub vram_total_bytes: Option<u64>,
    pub utilization_percent: Option<f64>,
    pub temperature_celsius: Option<f64>,
    pub power_watts: Option<f64>,
    /// The driver's cumulative energy counter in millijoules (NVML,
    /// Volta and newer), counted from driver load, not from agent start.
    pub energy_counter_mj: Option<u64>,
}

/// GPU memory held by one process on one GPU (NVML running processes,
/// nvidia-smi `--query-compute-apps`). PIDs are host PIDs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GpuProcess {
    pub pid: u32,
    pub gpu_index: u32,
    pub used_bytes: u64,
    /// The process's SM (3D/compute) utilization summed over the driver's
    /// samples since the previous read, in percent × samples: its weight
    /// in the GPU's busy time. `Some(0)`: sampled and not busy. `None`: the
    /// backend gives no per-process utilization (nvidia-smi, an NVML
    /// device without the query).
    pub sm_util: Option<u64>,
}

/// One GPU over the interval since the previous read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GpuInterval {
    pub gpu_index: u32,
    /// The interval's mean power: the energy counter's delta over the
    /// time between the reads where the card has a counter, else the
    /// power reading.
    pub watts: Option<f64>,
    /// Energy spent in the interval (counter delta, else the mean of the
    /// two power readings × the time); `None` on the first read.
    pub joules: Option<f64>,
}

/// What one backend read in one cycle.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GpuReading {
    pub devices: Vec<GpuDevice>,
    pub processes: Vec<GpuProcess>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct GpuStats {
    /// The backend that answered: `nvml`, `nvidia-smi`, `amdgpu`; on macOS
    /// `ioreg` (IOAccelerator statistics), `powermetrics` (plus the Apple
    /// GPU's power) or `powermetrics-tasks` (plus each task's GPU time).
    pub backend: &'static str,
    pub devices: Vec<GpuDevice>,
    /// Per-process GPU memory, for mapping to services (service.vram_mb).
    pub processes: Vec<GpuProcess>,
    /// Energy of all GPUs since the agent started, in joules; `None` when
    /// no device gives an energy counter or a power reading.
    pub energy_joules: Option<f64>,
    /// Power and energy of each GPU over the last interval, for dividing
    /// them among services.
    pub intervals: Vec<GpuInterval>,
}

impl GpuStats {
    /// Whether the backend lists per-process GPU memory (NVIDIA does;
    /// amdgpu sysfs does not), so that a process absent from the list
    /// truly uses none.
    pub fn lists_processes(&self) -> bool {
        matches!(self.backend, "nvml" | "nvidia-smi" | "powermetrics-tasks")
    }

    /// Whether the process list gives each process's GPU memory (NVIDIA's
    /// backends; powermetrics' tasks give GPU time only), so that a
    /// service's VRAM is the sum over its processes.
    pub fn lists_process_memory(&self) -> bool {
        matches!(self.backend, "nvml" | "nvidia-smi")
    }
}

/// One way of reading the GPUs. `Err` says why it could not, and the next
/// backend is asked: `Unavailable` when its driver, library, program or
/// device is not there; `Failed` when it is there and broke (a driver
/// error, a timeout, output it cannot parse).
pub trait Backend: Send {
    fn name(&self) -> &'static str;
    fn read(&mut self) -> Result<GpuReading, SourceError>;
}

const MIB: f64 = 1024.0 * 1024.0;

impl FamilySample for GpuStats {
    fn points(&self, _snap: &Snapshot, out: &mut Vec<Point>) {
        let mib = |bytes: u64| bytes as f64 / MIB;
        for d in &self.devices {
            let point = |metric: &'static Metric, value: f64| {
                let mut p = Point::new(metric, value)
                    .with(attr::GPU_INDEX, AttrValue::Int(i64::from(d.index)));
                // Empty when unknown (the Apple GPU powermetrics measures
                // without IOAccelerator's entry).
                if !d.name.is_empty() {
                    p = p.with(attr::GPU_NAME, d.name.as_str());
                }
                p = p.with(attr::GPU_VENDOR, d.vendor);
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
        if let Some(j) = self.energy_joules {
            out.push(Point::new(&semconv::ENERGY_JOULES, j).with(attr::DOMAIN, "gpu"));
        }
    }
}

/// The gpu family's source, when `[gpu]` is enabled.
pub fn build(cfg: &GpuConfig) -> Option<super::Builder> {
    let cfg = cfg.clone();
    cfg.enabled
        .then(|| super::one(move |paths| Box::new(GpuSource::new(&cfg, paths.clone()))))
}

pub struct GpuSource {
    backends: Vec<Box<dyn Backend>>,
    last_backend: Option<&'static str>,
    /// Why no backend answered last time, to log a change once.
    last_failure: String,
    energy: EnergyAccumulator,
}

impl GpuSource {
    pub fn new(cfg: &GpuConfig, paths: HostPaths) -> Self {
        GpuSource::with_backends(vec![
            Box::new(nvml::NvmlBackend::new(cfg.nvml_library.clone())),
            Box::new(smi::SmiBackend::new(
                cfg.nvidia_smi.clone(),
                cfg.nvidia_smi_timeout.0,
            )),
            Box::new(amdgpu::AmdgpuBackend::new(paths)),
        ])
    }

    pub fn with_backends(backends: Vec<Box<dyn Backend>>) -> Self {
        GpuSource {
            backends,
            last_backend: None,
            last_failure: String::new(),
            energy: EnergyAccumulator::default(),
        }
    }
}

impl Source for GpuSource {
    fn name(&self) -> &'static str {
        "gpu"
    }

    fn sample(&mut self, snap: &mut Snapshot) -> Result<(), SourceError> {
        let mut why = Vec::new();
        let mut failed = Vec::new();
        for b in &mut self.backends {
            let name = b.name();
            match b.read() {
                Ok(r) if !r.devices.is_empty() => {
                    if self.last_backend != Some(name) {
                        tracing::debug!(
                            backend = name,
                            devices = r.devices.len(),
                            "GPU backend answered"
                        );
                        self.last_backend = Some(name);
                    }
                    let energy_joules = self.energy.add(&r.devices, Instant::now());
                    snap.put(GpuStats {
                        backend: name,
                        intervals: self.energy.intervals().to_vec(),
                        devices: r.devices,
                        processes: r.processes,
                        energy_joules,
                    });
                    return Ok(());
                }
                Ok(_) => why.push(format!("{name}: no GPU")),
                Err(e) => {
                    why.push(format!("{name}: {e}"));
                    if let SourceError::Failed(reason) = e {
                        failed.push(format!("{name}: {reason}"));
                    }
                }
            }
        }
        // Every GPU gone (hot unplug, driver unloaded): the time until one
        // answers again must add no energy, as for a single device.
        self.energy.forget();
        let why = why.join("; ");
        if self.last_backend.take().is_some() || self.last_failure != why {
            tracing::debug!("no GPU backend answered: {why}");
            self.last_failure = why;
        }
        // A backend that is there but broken makes the source failed (the
        // sampler warns); absent ones stay at debug level: a host without
        // a GPU (or with another vendor's) must not log NVML's absence
        // above it.
        if !failed.is_empty() {
            return Err(SourceError::Failed(failed.join("; ")));
        }
        let tried: Vec<&str> = self.backends.iter().map(|b| b.name()).collect();
        Err(SourceError::Unavailable(format!(
            "no GPU found (tried {})",
            tried.join(", ")
        )))
    }
}

/// Sums GPU energy since the agent started over every device: deltas of
/// the driver's counter where there is one, else the mean power of two
/// consecutive readings times the time between them. A device seen for
/// the first time, or again after a gap, adds nothing; a counter that went
/// backwards (driver reload) adds nothing for that interval.
#[derive(Debug, Default)]
pub struct EnergyAccumulator {
    total_joules: f64,
    devices: HashMap<String, (Counter, Trapezoid)>,
    intervals: Vec<GpuInterval>,
}

impl EnergyAccumulator {
    /// Drops the last readings, keeping the total.
    pub fn forget(&mut self) {
        self.devices.clear();
        self.intervals.clear();
    }

    /// Each measurable device's power and energy over the interval the
    /// last [`add`](Self::add) closed.
    pub fn intervals(&self) -> &[GpuInterval] {
        &self.intervals
    }

    pub fn add(&mut self, devices: &[GpuDevice], now: Instant) -> Option<f64> {
        let mut seen = HashMap::with_capacity(devices.len());
        self.intervals.clear();
        for d in devices {
            if d.energy_counter_mj.is_none() && d.power_watts.is_none() {
                continue;
            }
            let key = device_key(d);
            // A device missing from the last read starts afresh.
            let known = self.devices.contains_key(&key);
            let (mut counter, mut power) = self
                .devices
                .remove(&key)
                .unwrap_or_else(|| (Counter::millijoules(), Trapezoid::default()));
            let had_counter = counter.has_baseline();
            let counter_watts = match d.energy_counter_mj {
                Some(mj) => counter.update(mj, now),
                None => {
                    counter.forget();
                    None
                }
            };
            power.update(d.power_watts, now);
            // The counter decides when it has two readings (a reset gives
            // 0); else the trapezoid of the power readings.
            let joules = if !known {
                None
            } else if had_counter && d.energy_counter_mj.is_some() {
                Some(counter.last_joules().unwrap_or(0.0))
            } else {
                Some(power.last_joules().unwrap_or(0.0))
            };
            // Both integrators only ever add finite, non-negative joules.
            self.total_joules += joules.unwrap_or(0.0);
            self.intervals.push(GpuInterval {
                gpu_index: d.index,
                watts: counter_watts.or(d.power_watts),
                joules,
            });
            seen.insert(key, (counter, power));
        }
        self.devices = seen;
        (!self.intervals.is_empty()).then_some(self.total_joules)
    }
}

fn device_key(d: &GpuDevice) -> String {
    d.uuid
        .clone()
        .or_else(|| d.pci_bus_id.clone())
        .unwrap_or_else(|| format!("{}#{}", d.vendor, d.index))
}

/// NVML and nvidia-smi write `00000000:18:00.0` (8-hex-digit domain);
/// sysfs writes `0000:18:00.0`. Both become the sysfs form, lower-case.
pub fn normalize_pci_bus_id(id: &str) -> Option<String> {
    let id = id.trim();
    let (domain, rest) = id.split_once(':')?;
    let domain = u32::from_str_radix(domain, 16).ok()?;
    let (bus, devfn) = rest.split_once(':')?;
    let (dev, func) = devfn.split_once('.')?;
    let hex = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit());
    if !(hex(bus) && hex(dev) && hex(func)) {
        return None;
    }
    Some(format!("{domain:04x}:{}:{}.{}", bus, dev, func).to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn dev(uuid: &str, counter: Option<u64>, power: Option<f64>) -> GpuDevice {
        GpuDevice {
            uuid: Some(uuid.into()),
            energy_counter_mj: counter,
            power_watts: power,
            ..Default::default()
        }
    }

    #[test]
    fn energy_counts_deltas_and_never_goes_backwards() {
        let t0 = Instant::now();
        let s = |n: u64| t0 + Duration::from_secs(n);
        let mut acc = EnergyAccumulator::default();
        // First sight: nothing yet, but the domain is measurable.
        assert_eq!(
            acc.add(&[dev("a", Some(10_000), Some(50.0))], s(0)),
            Some(0.0)
        );
        // +2500 mJ on a; b appears with power only.
        assert_eq!(
            acc.add(
                &[
                    dev("a", Some(12_500), Some(50.0)),
                    dev("b", None, Some(100.0))
                ],
                s(1)
            ),
            Some(2.5)
        );
        // a's counter reset (driver reload): adds nothing; b: mean(100, 200) W × 2 s.
        assert_eq!(
            acc.add(
                &[dev("a", Some(100), None), dev("b", None, Some(200.0))],
                s(3)
            ),
            Some(2.5 + 300.0)
        );
        // b missing for a cycle, then back: the gap adds nothing.
        assert_eq!(acc.add(&[dev("a", Some(1_100), None)], s(4)), Some(303.5));
        assert_eq!(
            acc.add(
                &[dev("a", Some(1_100), None), dev("b", None, Some(10.0))],
                s(100)
            ),
            Some(303.5)
        );
        // Nothing measurable: absent, and the total is kept for later.
        assert_eq!(acc.add(&[dev("a", None, None)], s(101)), None);
        assert_eq!(acc.add(&[dev("a", Some(5_000), None)], s(102)), Some(303.5));
    }

    #[test]
    fn intervals_give_the_counters_mean_power_else_the_reading() {
        let t0 = Instant::now();
        let s = |ms: u64| t0 + Duration::from_millis(ms);
        let mut acc = EnergyAccumulator::default();
        let iv = |acc: &EnergyAccumulator| -> Vec<(u32, Option<f64>, Option<f64>)> {
            acc.intervals()
                .iter()
                .map(|i| (i.gpu_index, i.watts, i.joules))
                .collect()
        };
        let mut b = dev("b", None, Some(40.0));
        b.index = 1;
        acc.add(&[dev("a", Some(10_000), Some(99.0)), b.clone()], s(0));
        // First read: the readings, no energy yet.
        assert_eq!(iv(&acc), vec![(0, Some(99.0), None), (1, Some(40.0), None)]);
        // 500 ms later a's counter gained 50 J: 100 W whatever the reading;
        // b has no counter: its reading, and the trapezoid's energy.
        b.power_watts = Some(60.0);
        acc.add(&[dev("a", Some(60_000), Some(99.0)), b.clone()], s(500));
        assert_eq!(
            iv(&acc),
            vec![(0, Some(100.0), Some(50.0)), (1, Some(60.0), Some(25.0))]
        );
        // A counter that went backwards: the reading, no energy.
        acc.add(&[dev("a", Some(5), Some(7.0))], s(1000));
        assert_eq!(iv(&acc), vec![(0, Some(7.0), Some(0.0))]);
        acc.forget();
        assert!(acc.intervals().is_empty());
    }

    #[test]
    fn pci_bus_ids_take_the_sysfs_form() {
        assert_eq!(
            normalize_pci_bus_id("00000000:18:00.0").as_deref(),
            Some("0000:18:00.0")
        );
        assert_eq!(
            normalize_pci_bus_id("00000001:AF:1F.7").as_deref(),
            Some("0001:af:1f.7")
        );
        assert_eq!(
            normalize_pci_bus_id("0000:03:00.0").as_deref(),
            Some("0000:03:00.0")
        );
        for bad in ["", "[N/A]", "0000:03", "zz:03:00.0", "0000:03:00."] {
            assert_eq!(normalize_pci_bus_id(bad), None, "{bad}");
        }
    }

    struct Fixed(&'static str, Result<GpuReading, SourceError>);
    impl Backend for Fixed {
        fn name(&self) -> &'static str {
            self.0
        }
        fn read(&mut self) -> Result<GpuReading, SourceError> {
            self.1.clone()
        }
    }

    #[test]
    fn first_backend_with_a_device_wins() {
        let one = GpuReading {
            devices: vec![GpuDevice {
                name: "x".into(),
                vendor: "amd",
                ..Default::default()
            }],
            processes: vec![],
        };
        let no_driver = || Err(SourceError::Unavailable("no driver".into()));
        let timed_out = || Err(SourceError::Failed("no answer within 2s".into()));
        let mut src = GpuSource::with_backends(vec![
            Box::new(Fixed("nvml", no_driver())),
            Box::new(Fixed("nvidia-smi", timed_out())),
            Box::new(Fixed("amdgpu", Ok(one.clone()))),
        ]);
        let mut snap = Snapshot::default();
        src.sample(&mut snap).unwrap();
        let g = snap.get::<GpuStats>().unwrap();
        assert_eq!(g.backend, "amdgpu");
        assert_eq!(g.devices, one.devices);
        assert_eq!(g.energy_joules, None);

        let mut none = GpuSource::with_backends(vec![
            Box::new(Fixed("nvml", no_driver())),
            Box::new(Fixed("nvidia-smi", Ok(GpuReading::default()))),
        ]);
        let mut snap = Snapshot::default();
        assert_eq!(
            none.sample(&mut snap),
            Err(SourceError::Unavailable(
                "no GPU found (tried nvml, nvidia-smi)".into()
            ))
        );
        assert!(snap.get::<GpuStats>().is_none());
    }

    #[test]
    fn a_broken_backend_with_no_answer_is_failed_and_named() {
        let mut src = GpuSource::with_backends(vec![
            Box::new(Fixed(
                "nvml",
                Err(SourceError::Unavailable("no driver".into())),
            )),
            Box::new(Fixed(
                "nvidia-smi",
                Err(SourceError::Failed("no answer within 2s".into())),
            )),
            Box::new(Fixed(
                "amdgpu",
                Err(SourceError::Failed("cannot parse".into())),
            )),
        ]);
        let mut snap = Snapshot::default();
        assert_eq!(
            src.sample(&mut snap),
            Err(SourceError::Failed(
                "nvidia-smi: no answer within 2s; amdgpu: cannot parse".into()
            ))
        );
        assert!(snap.get::<GpuStats>().is_none());
    }
}
