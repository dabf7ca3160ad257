//! macOS power, thermal, battery and GPU: one long-lived `powermetrics`
//! child (root only) for CPU/GPU/ANE/package power, energy, Intel die
//! temperature and fan, and thermal pressure; `ioreg` (no root) for the
//! battery and the IOAccelerator GPU statistics; `notify_get_state` (no
//! root) for thermal pressure when powermetrics cannot run.
//!
//! The parsers, the stream reassembly, the child supervisor and the
//! energy bookkeeping are platform-independent and tested on Linux; the
//! `Source` impls (compiled only for macOS) are thin over them.

use super::gpu::{GpuDevice, GpuInterval, GpuProcess, GpuStats};
use super::power::{BatteryState, PowerStats};
use super::thermal::ThermalStats;
use crate::sources::snapshot::Snapshot;

pub mod child;
pub mod ioreg;
pub mod powermetrics;

use ioreg::AcceleratorStats;
use powermetrics::{EnergyTotals, PowermetricsSample};

// The macOS readers write the same domain types as the Linux ones (power,
// thermal, GPU), so each value has one mapping whatever the platform. The
// functions below are that writing, platform-independent and tested on
// Linux; the sources in `imp.rs` call them.

/// The IOAccelerator entries with statistics, in gpu.index order, as
/// GPUs (`apple-gpu`, which runs before powermetrics). `unified_memory` is
/// hw.memsize: the pool an Apple GPU allocates from, reported as its
/// vram_total (the registry's choice: unified memory has no VRAM total).
pub fn apply_accelerators(
    snap: &mut Snapshot,
    gpus: Vec<AcceleratorStats>,
    unified_memory: Option<u64>,
) {
    let g = snap.get_or_default::<GpuStats>();
    g.backend = "ioreg";
    g.devices = gpus
        .into_iter()
        .enumerate()
        .map(|(i, a)| GpuDevice {
            index: u32::try_from(i).unwrap_or(u32::MAX),
            vram_total_bytes: unified_memory.filter(|_| a.vendor == "apple"),
            name: a.name,
            vendor: a.vendor,
            vram_used_bytes: a.in_use_bytes,
            utilization_percent: a.utilization_percent,
            ..GpuDevice::default()
        })
        .collect();
}

/// The thermal pressure level the OS publishes (no root needed);
/// powermetrics' own, when it has one, replaces it.
pub fn apply_pressure(snap: &mut Snapshot, level: Option<u8>) {
    snap.get_or_default::<ThermalStats>().pressure = level;
}

/// The energy counters of every powermetrics sample seen (kept even when
/// the latest sample is stale): cpu, package and dram into the power
/// domains, the Apple GPU's into the GPU's energy.
pub fn apply_energy(snap: &mut Snapshot, totals: &EnergyTotals) {
    let p = snap.get_or_default::<PowerStats>();
    for (domain, d) in [
        ("cpu", &mut p.cpu),
        ("package", &mut p.package),
        ("dram", &mut p.dram),
    ] {
        if let Some(j) = totals.get(domain) {
            d.joules = Some(j);
        }
    }
    if let Some(j) = totals.get("gpu") {
        let g = snap.get_or_default::<GpuStats>();
        g.energy_joules = Some(j);
        if g.backend.is_empty() {
            g.backend = "powermetrics";
        }
    }
}

/// The gauges of one powermetrics sample. `gpu_joules`: the Apple GPU's
/// energy since the previous cycle, for dividing it among the tasks.
pub fn apply_sample(snap: &mut Snapshot, s: &PowermetricsSample, gpu_joules: Option<f64>) {
    let p = snap.get_or_default::<PowerStats>();
    p.cpu.watts = s.cpu.watts;
    p.ane.watts = s.ane.watts;
    p.package.watts = s.package.watts;
    p.dram.watts = s.dram.watts;
    let t = snap.get_or_default::<ThermalStats>();
    t.temperature = s.cpu_die_celsius;
    if s.pressure.is_some() {
        t.pressure = s.pressure;
    }
    // Intel Macs' SMC fan.
    t.fans = s
        .fan_rpm
        .map(|rpm| ("smc".to_owned(), rpm))
        .into_iter()
        .collect();
    let gpu_watts = if s.apple_gpu { s.gpu.watts } else { None };
    if gpu_watts.is_none() && s.gpu_busy_percent.is_none() {
        return;
    }
    let g = snap.get_or_default::<GpuStats>();
    let apple = match g.devices.iter().position(|d| d.vendor == "apple") {
        Some(i) => i,
        // powermetrics measures the one Apple Silicon GPU; without
        // IOAccelerator's entry its name is unknown.
        None if gpu_watts.is_some() => {
            g.devices.push(GpuDevice {
                vendor: "apple",
                ..GpuDevice::default()
            });
            g.devices.len() - 1
        }
        None => return,
    };
    let d = &mut g.devices[apple];
    // ioreg's utilization wins over powermetrics' idle ratio.
    d.utilization_percent = d.utilization_percent.or(s.gpu_busy_percent);
    let Some(watts) = gpu_watts else { return };
    d.power_watts = Some(watts);
    let index = d.index;
    g.intervals = vec![GpuInterval {
        gpu_index: index,
        watts: Some(watts),
        joules: gpu_joules,
    }];
    // Each task's GPU time stands in for SM utilization (µs of GPU per
    // s); without the tasks sampler the GPU lists no process.
    match &s.gpu_tasks {
        Some(tasks) => {
            g.backend = "powermetrics-tasks";
            g.processes = tasks
                .iter()
                .map(|&(pid, ms_per_s)| GpuProcess {
                    pid,
                    gpu_index: index,
                    used_bytes: 0,
                    sm_util: Some((ms_per_s * 1000.0).round() as u64),
                })
                .collect();
        }
        None => g.backend = "powermetrics",
    }
}

/// The battery (ioreg AppleSmartBattery): discharge watts (0 while
/// charging), the energy since start, charge, time left, external power.
pub fn apply_battery(snap: &mut Snapshot, watts: f64, joules: f64, state: BatteryState) {
    let p = snap.get_or_default::<PowerStats>();
    p.battery.watts = Some(watts);
    p.battery.joules = Some(joules);
    p.battery_state = state;
}

#[cfg(target_os = "macos")]
mod imp;

#[cfg(target_os = "macos")]
pub use imp::{AppleGpuSource, BatterySource, PowermetricsSource};

/// The macOS readers, apple-gpu before powermetrics (which adds to its
/// devices); `interval` paces the powermetrics child.
pub fn build(interval: std::time::Duration) -> Option<super::Builder> {
    #[cfg(target_os = "macos")]
    return Some(Box::new(move |_: &crate::host::HostPaths| {
        vec![
            Box::new(AppleGpuSource::new()) as Box<dyn crate::sources::Source>,
            Box::new(PowermetricsSource::new(interval)),
            Box::new(BatterySource::default()),
        ]
    }));
    #[cfg(not(target_os = "macos"))]
    {
        let _ = interval;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find<'a>(
        pts: &'a [crate::snapshot::Point],
        metric: &crate::semconv::Metric,
    ) -> Vec<&'a crate::snapshot::Point> {
        pts.iter()
            .filter(|p| std::ptr::eq(p.metric, metric))
            .collect()
    }

    #[test]
    fn apple_silicon_points_carry_exact_values_and_registered_attributes() {
        use crate::semconv::{self as sc, attr};
        use crate::snapshot::AttrValue;
        let sample = powermetrics::parse_document(include_bytes!(
            "../../../tests/fixtures/macos/powermetrics-apple-m2.plist"
        ))
        .unwrap();
        let mut snap = Snapshot::default();
        // In sampling order: apple-gpu, powermetrics, battery.
        apply_accelerators(
            &mut snap,
            ioreg::parse_accelerators(include_str!(
                "../../../tests/fixtures/macos/ioreg-accelerator-busy.txt"
            )),
            Some(32 << 30),
        );
        apply_pressure(&mut snap, None);
        let mut totals = EnergyTotals::default();
        totals.add("cpu", 10.16);
        apply_energy(&mut snap, &totals);
        apply_sample(&mut snap, &sample, None);
        apply_battery(&mut snap, 4.5, 0.0, BatteryState::default());
        let pts = snap.points();
        for p in &pts {
            for (k, _) in &p.attrs {
                assert!(p.metric.attributes.contains(k), "{} {k}", p.metric.name);
            }
        }
        let gpu_attrs = vec![
            (attr::GPU_INDEX, AttrValue::Int(0)),
            (attr::GPU_NAME, AttrValue::from("Apple M2 Max")),
            (attr::GPU_VENDOR, AttrValue::from("apple")),
        ];
        let gw = find(&pts, &sc::POWER_GPU_WATTS);
        assert_eq!(gw.len(), 1);
        assert!((gw[0].value - 0.284 / 1.023685416).abs() < 1e-9);
        let mut sorted = gw[0].attrs.clone();
        sorted.sort_by_key(|(k, _)| *k);
        assert_eq!(sorted, gpu_attrs);
        let used = find(&pts, &sc::GPU_VRAM_USED_MB);
        assert_eq!(used[0].value, 19_327_352_832.0 / 1_048_576.0);
        assert_eq!(used[0].attrs, gpu_attrs);
        assert_eq!(find(&pts, &sc::GPU_VRAM_TOTAL_MB)[0].value, 32768.0);
        // ioreg's 87 % wins over powermetrics' idle_ratio.
        assert_eq!(find(&pts, &sc::GPU_UTILIZATION_PERCENT)[0].value, 87.0);
        assert_eq!(find(&pts, &sc::THERMAL_PRESSURE)[0].value, 2.0);
        assert_eq!(find(&pts, &sc::POWER_BATTERY_WATTS)[0].value, 4.5);
        assert!((find(&pts, &sc::POWER_PACKAGE_WATTS)[0].value - 10.19395).abs() < 1e-9);
        assert_eq!(find(&pts, &sc::POWER_ANE_WATTS)[0].value, 0.0);
        let mut e: Vec<String> = find(&pts, &sc::ENERGY_JOULES)
            .iter()
            .map(|p| format!("{}={}", p.attrs[0].1, p.value))
            .collect();
        e.sort();
        assert_eq!(e, ["battery=0", "cpu=10.16"]);
        // Apple Silicon has no die temperature, fan or DRAM figure: absent.
        assert!(find(&pts, &sc::THERMAL_TEMPERATURE).is_empty());
        assert!(find(&pts, &sc::THERMAL_FAN_RPM).is_empty());
        assert!(find(&pts, &sc::POWER_DRAM_WATTS).is_empty());
        // The GPU lists no task without the tasks sampler: not split.
        let g = snap.get::<GpuStats>().unwrap();
        assert_eq!(g.backend, "powermetrics");
        assert!(g.processes.is_empty());
    }

    #[test]
    fn the_apple_gpu_without_its_ioreg_entry_has_no_name_and_tasks_become_processes() {
        let mut sample = powermetrics::parse_document(include_bytes!(
            "../../../tests/fixtures/macos/powermetrics-apple-m2.plist"
        ))
        .unwrap();
        sample.gpu_tasks = Some(vec![(412, 600.0), (978, 0.25)]);
        let mut snap = Snapshot::default();
        apply_sample(&mut snap, &sample, Some(3.0));
        let g = snap.get::<GpuStats>().unwrap();
        assert_eq!(g.backend, "powermetrics-tasks");
        assert_eq!(g.devices.len(), 1);
        assert_eq!((g.devices[0].index, g.devices[0].name.as_str()), (0, ""));
        let sm: Vec<(u32, Option<u64>)> = g.processes.iter().map(|p| (p.pid, p.sm_util)).collect();
        assert_eq!(sm, [(412, Some(600_000)), (978, Some(250))]);
        assert_eq!(g.intervals.len(), 1);
        assert_eq!(g.intervals[0].joules, Some(3.0));
        assert!(g.lists_processes() && !g.lists_process_memory());
        let pts = snap.points();
        let gw: Vec<_> = pts
            .iter()
            .filter(|p| std::ptr::eq(p.metric, &crate::semconv::POWER_GPU_WATTS))
            .collect();
        assert_eq!(gw.len(), 1);
        assert!(
            !gw[0]
                .attrs
                .iter()
                .any(|(k, _)| *k == crate::semconv::attr::GPU_NAME)
        );
    }

    #[test]
    fn intel_sample_sets_no_gpu_watts_and_keeps_os_pressure_when_absent() {
        let intel = powermetrics::parse_document(include_bytes!(
            "../../../tests/fixtures/macos/powermetrics-intel.plist"
        ))
        .unwrap();
        let mut snap = Snapshot::default();
        apply_pressure(&mut snap, Some(3));
        let mut no_pressure = intel.clone();
        no_pressure.pressure = None;
        apply_sample(&mut snap, &no_pressure, None);
        assert_eq!(snap.get::<ThermalStats>().unwrap().pressure, Some(3));
        apply_sample(&mut snap, &intel, None);
        let t = snap.get::<ThermalStats>().unwrap();
        assert_eq!(t.pressure, Some(1));
        assert_eq!(t.temperature, Some(52.81));
        assert!(
            snap.get::<GpuStats>().is_none(),
            "no Apple GPU on an Intel Mac"
        );
        assert_eq!(snap.get::<PowerStats>().unwrap().cpu.watts, None);
        let mut totals = EnergyTotals::default();
        totals.add("package", 9.36);
        apply_energy(&mut snap, &totals);
        apply_battery(&mut snap, 0.0, 1.5, BatteryState::default());
        totals.add("package", 1.0);
        apply_energy(&mut snap, &totals);
        let p = snap.get::<PowerStats>().unwrap();
        assert_eq!(
            (p.package.joules, p.battery.joules),
            (Some(10.36), Some(1.5))
        );
        assert_eq!(
            crate::families::power::energy_totals(&snap),
            [("package", 10.36), ("battery", 1.5)]
        );
    }
}
