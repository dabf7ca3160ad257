//! NVIDIA GPUs through NVML (nvml-wrapper). The library is loaded on the
//! first sample and only once: a host without the driver logs one debug
//! line and every later cycle costs nothing but a branch.
//!
//! Units from nvml.h: memory in bytes, power in milliwatts, total energy in
//! millijoules since the driver was loaded (Volta and newer).

use std::collections::HashMap;
use std::path::PathBuf;

use nvml_wrapper::Nvml;
use nvml_wrapper::enum_wrappers::device::TemperatureSensor;
use nvml_wrapper::enums::device::UsedGpuMemory;
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::struct_wrappers::device::ProcessUtilizationSample;

use super::{Backend, GpuDevice, GpuProcess, GpuReading, normalize_pci_bus_id};
use crate::sources::SourceError;

enum State {
    NotTried,
    // Nvml holds every resolved symbol: about 12 KiB.
    Loaded(Box<Nvml>),
    Failed(SourceError),
}

pub struct NvmlBackend {
    /// `None`: the loader's search for `libnvidia-ml.so`.
    lib_path: Option<PathBuf>,
    state: State,
    /// Per GPU index, the newest per-process utilization sample seen: the
    /// next query asks only for samples after it.
    last_sample_us: HashMap<u32, u64>,
}

impl NvmlBackend {
    pub fn new(lib_path: Option<PathBuf>) -> Self {
        NvmlBackend {
            lib_path,
            state: State::NotTried,
            last_sample_us: HashMap::new(),
        }
    }
}

/// Why NVML could not start: no library, no driver or no permission means
/// no NVIDIA GPU to read here; anything else (a driver/library version
/// mismatch, a library without NVML's symbols) is a driver that is there
/// and broken.
pub fn init_error(e: &NvmlError) -> SourceError {
    let why = format!("cannot load NVML: {e}");
    match e {
        NvmlError::LibloadingError(_)
        | NvmlError::LibraryNotFound
        | NvmlError::DriverNotLoaded
        | NvmlError::NoPermission
        | NvmlError::NotFound => SourceError::Unavailable(why),
        _ => SourceError::Failed(why),
    }
}

fn load<'a>(state: &'a mut State, lib_path: Option<&PathBuf>) -> Result<&'a Nvml, SourceError> {
    if let State::NotTried = state {
        let mut b = Nvml::builder();
        if let Some(p) = lib_path {
            b.lib_path(p.as_os_str());
        }
        *state = match b.init() {
            Ok(n) => State::Loaded(Box::new(n)),
            Err(e) => {
                let why = init_error(&e);
                tracing::debug!("{why}");
                State::Failed(why)
            }
        };
    }
    match state {
        State::Loaded(n) => Ok(n),
        State::Failed(why) => Err(why.clone()),
        State::NotTried => Err(SourceError::Unavailable("NVML not loaded".into())),
    }
}

/// Each process's SM utilization summed over `samples` (one sample per
/// process per driver sampling period, so the sum weighs busy time), and
/// the newest sample's timestamp.
pub fn sum_sm_samples(samples: &[ProcessUtilizationSample]) -> (HashMap<u32, u64>, Option<u64>) {
    let mut by_pid: HashMap<u32, u64> = HashMap::new();
    for s in samples {
        // smUtil is a percentage; anything above 100 is a driver glitch.
        *by_pid.entry(s.pid).or_default() += u64::from(s.sm_util.min(100));
    }
    (by_pid, samples.iter().map(|s| s.timestamp).max())
}

impl Backend for NvmlBackend {
    fn name(&self) -> &'static str {
        "nvml"
    }

    fn read(&mut self) -> Result<GpuReading, SourceError> {
        let nvml = load(&mut self.state, self.lib_path.as_ref())?;
        // Loaded, so the driver is there: its errors are failures.
        let count = nvml
            .device_count()
            .map_err(|e| SourceError::Failed(format!("device count: {e}")))?;
        let mut reading = GpuReading::default();
        // (gpu, pid) → (bytes, SM weight): a process with both a compute
        // and a graphics context is listed twice with the same memory.
        let mut procs: HashMap<(u32, u32), (u64, Option<u64>)> = HashMap::new();
        // The first device the driver counts but cannot open.
        let mut lost = None;
        for index in 0..count {
            // A device that fell off the bus is skipped, the others stay.
            let dev = match nvml.device_by_index(index) {
                Ok(dev) => dev,
                Err(e) => {
                    lost.get_or_insert_with(|| format!("device {index}: {e}"));
                    continue;
                }
            };
            let mem = dev.memory_info().ok();
            reading.devices.push(GpuDevice {
                index,
                name: dev.name().unwrap_or_else(|_| "NVIDIA GPU".into()),
                vendor: "nvidia",
                uuid: dev.uuid().ok(),
                pci_bus_id: dev
                    .pci_info()
                    .ok()
                    .and_then(|p| normalize_pci_bus_id(&p.bus_id)),
                vram_used_bytes: mem.as_ref().map(|m| m.used),
                vram_total_bytes: mem.as_ref().map(|m| m.total).filter(|t| *t > 0),
                utilization_percent: dev.utilization_rates().ok().map(|u| f64::from(u.gpu)),
                temperature_celsius: dev.temperature(TemperatureSensor::Gpu).ok().map(f64::from),
                power_watts: dev.power_usage().ok().map(|mw| f64::from(mw) / 1000.0),
                energy_counter_mj: dev.total_energy_consumption().ok(),
            });
            let lists = [
                dev.running_compute_processes(),
                dev.running_graphics_processes(),
            ];
            // One query per GPU per cycle (nvml-wrapper's size query and
            // fetch). Samples cover only processes that were busy: a
            // listed process without one was idle, and NOT_FOUND means no
            // process was busy since the last sample.
            let last = self.last_sample_us.get(&index).copied();
            let sm = match dev.process_utilization_stats(last) {
                Ok(samples) => {
                    let (sums, newest) = sum_sm_samples(&samples);
                    if let Some(t) = newest {
                        self.last_sample_us.insert(index, t.max(last.unwrap_or(0)));
                    }
                    Some(sums)
                }
                Err(NvmlError::NotFound) => Some(HashMap::new()),
                Err(_) => None,
            };
            for p in lists.into_iter().flatten().flatten() {
                if let UsedGpuMemory::Used(bytes) = p.used_gpu_memory {
                    let slot = procs.entry((index, p.pid)).or_default();
                    slot.0 = slot.0.max(bytes);
                }
            }
            if let Some(sm) = sm {
                for (&(gpu, pid), slot) in procs.iter_mut() {
                    if gpu == index {
                        slot.1 = Some(sm.get(&pid).copied().unwrap_or(0));
                    }
                }
                // Busy in the interval but gone from the lists (exited):
                // its share goes to whoever owns the pid, else to other.
                for (pid, weight) in sm {
                    procs.entry((index, pid)).or_insert((0, Some(weight)));
                }
            }
        }
        let mut processes: Vec<GpuProcess> = procs
            .into_iter()
            .map(|((gpu_index, pid), (used_bytes, sm_util))| GpuProcess {
                pid,
                gpu_index,
                used_bytes,
                sm_util,
            })
            .collect();
        processes.sort_by_key(|p| (p.gpu_index, p.pid));
        reading.processes = processes;
        match lost {
            // Every GPU it counts is unreachable: broken, not absent.
            Some(why) if reading.devices.is_empty() => Err(SourceError::Failed(why)),
            _ => Ok(reading),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(pid: u32, timestamp: u64, sm_util: u32) -> ProcessUtilizationSample {
        ProcessUtilizationSample {
            pid,
            timestamp,
            sm_util,
            mem_util: 0,
            enc_util: 0,
            dec_util: 0,
        }
    }

    #[test]
    fn a_missing_driver_is_unavailable_a_broken_one_failed() {
        for e in [
            NvmlError::LibraryNotFound,
            NvmlError::DriverNotLoaded,
            NvmlError::NoPermission,
        ] {
            assert!(matches!(init_error(&e), SourceError::Unavailable(_)), "{e}");
        }
        for e in [
            NvmlError::LibRmVersionMismatch,
            NvmlError::FailedToLoadSymbol("nvmlInit_v2".into()),
            NvmlError::Unknown,
        ] {
            assert!(matches!(init_error(&e), SourceError::Failed(_)), "{e}");
        }
        assert_eq!(
            init_error(&NvmlError::DriverNotLoaded).to_string(),
            "unavailable: cannot load NVML: NVIDIA driver is not loaded"
        );
    }

    #[test]
    fn samples_sum_per_process_and_give_the_newest_timestamp() {
        let (sums, newest) = sum_sm_samples(&[
            sample(10, 1_000, 40),
            sample(20, 1_500, 5),
            sample(10, 2_000, 60),
            // A glitch above 100 % counts as 100.
            sample(30, 1_200, 250),
        ]);
        assert_eq!(sums.get(&10), Some(&100));
        assert_eq!(sums.get(&20), Some(&5));
        assert_eq!(sums.get(&30), Some(&100));
        assert_eq!(newest, Some(2_000));
        assert_eq!(sum_sm_samples(&[]), (HashMap::new(), None));
    }
}
