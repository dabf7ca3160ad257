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

use super::{Backend, GpuDevice, GpuProcess, GpuReading, normalize_pci_bus_id};

enum State {
    NotTried,
    // Nvml holds every resolved symbol: about 12 KiB.
    Loaded(Box<Nvml>),
    Failed(String),
}

pub struct NvmlBackend {
    /// `None`: the loader's search for `libnvidia-ml.so`.
    lib_path: Option<PathBuf>,
    state: State,
}

impl NvmlBackend {
    pub fn new(lib_path: Option<PathBuf>) -> Self {
        NvmlBackend {
            lib_path,
            state: State::NotTried,
        }
    }

    fn nvml(&mut self) -> Result<&Nvml, String> {
        if let State::NotTried = self.state {
            let mut b = Nvml::builder();
            if let Some(p) = &self.lib_path {
                b.lib_path(p.as_os_str());
            }
            self.state = match b.init() {
                Ok(n) => State::Loaded(Box::new(n)),
                Err(e) => {
                    let why = format!("cannot load NVML: {e}");
                    tracing::debug!("{why}");
                    State::Failed(why)
                }
            };
        }
        match &self.state {
            State::Loaded(n) => Ok(n),
            State::Failed(why) => Err(why.clone()),
            State::NotTried => Err("NVML not loaded".into()),
        }
    }
}

impl Backend for NvmlBackend {
    fn name(&self) -> &'static str {
        "nvml"
    }

    fn read(&mut self) -> Result<GpuReading, String> {
        let nvml = self.nvml()?;
        let count = nvml
            .device_count()
            .map_err(|e| format!("device count: {e}"))?;
        let mut reading = GpuReading::default();
        // (gpu, pid) → bytes: a process with both a compute and a graphics
        // context is listed twice with the same memory.
        let mut procs: HashMap<(u32, u32), u64> = HashMap::new();
        for index in 0..count {
            // A device that fell off the bus is skipped, the others stay.
            let Ok(dev) = nvml.device_by_index(index) else {
                continue;
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
            for p in lists.into_iter().flatten().flatten() {
                if let UsedGpuMemory::Used(bytes) = p.used_gpu_memory {
                    let slot = procs.entry((index, p.pid)).or_default();
                    *slot = (*slot).max(bytes);
                }
            }
        }
        let mut processes: Vec<GpuProcess> = procs
            .into_iter()
            .map(|((gpu_index, pid), used_bytes)| GpuProcess {
                pid,
                gpu_index,
                used_bytes,
            })
            .collect();
        processes.sort_by_key(|p| (p.gpu_index, p.pid));
        reading.processes = processes;
        Ok(reading)
    }
}
