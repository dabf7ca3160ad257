//! macOS power, thermal, battery and GPU: one long-lived `powermetrics`
//! child (root only) for CPU/GPU/ANE/package power, energy, Intel die
//! temperature and fan, and thermal pressure; `ioreg` (no root) for the
//! battery and the IOAccelerator GPU statistics; `notify_get_state` (no
//! root) for thermal pressure when powermetrics cannot run.
//!
//! The parsers, the stream reassembly, the child supervisor and the
//! energy bookkeeping are platform-independent and tested on Linux; the
//! `Source` impls (compiled only for macOS) are thin over them.

use crate::point::{AttrValue, Point};
use crate::semconv::{self, attr};
use crate::sources::snapshot::{FamilySample, Snapshot};

pub mod child;
pub mod ioreg;
pub mod powermetrics;

use ioreg::AcceleratorStats;
use powermetrics::{EnergyTotals, PowermetricsSample};

/// What the macOS sources read in one cycle.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MacosStats {
    /// W, from powermetrics.
    pub cpu_watts: Option<f64>,
    /// The Apple Silicon GPU (gpu.index 0, vendor apple), W.
    pub gpu_watts: Option<f64>,
    pub ane_watts: Option<f64>,
    pub package_watts: Option<f64>,
    pub dram_watts: Option<f64>,
    /// Battery discharge, W; 0 while charging (ioreg AppleSmartBattery).
    pub battery_watts: Option<f64>,
    /// Charge, time left and external power (ioreg AppleSmartBattery).
    pub battery_state: crate::families::power::BatteryState,
    /// Intel Macs' CPU die, °C (there is none on Apple Silicon).
    pub cpu_temperature: Option<f64>,
    /// 0–3, see `powermetrics::pressure_level`.
    pub pressure: Option<u8>,
    /// Intel Macs' SMC fan, RPM (attribute fan=smc).
    pub fan_rpm: Option<f64>,
    /// Cumulative joules per domain since the agent started.
    pub energy: Vec<(&'static str, f64)>,
    /// IOAccelerator entries with statistics, in gpu.index order.
    pub gpus: Vec<AcceleratorStats>,
    /// powermetrics' GPU busy share, used when ioreg has no utilization.
    pub gpu_busy_percent: Option<f64>,
    /// hw.memsize: the unified memory an Apple GPU allocates from, reported
    /// as its vram_total (the registry's choice: unified memory has no
    /// VRAM total).
    pub unified_memory_bytes: Option<u64>,
    /// Per-task GPU time (pid, ms per s) from powermetrics' `tasks`
    /// sampler, when it ran.
    pub gpu_tasks: Option<Vec<(u32, f64)>>,
}

impl MacosStats {
    /// Takes the gauges of one powermetrics sample.
    pub fn apply_sample(&mut self, s: &PowermetricsSample) {
        self.cpu_watts = s.cpu.watts;
        self.gpu_watts = if s.apple_gpu { s.gpu.watts } else { None };
        self.ane_watts = s.ane.watts;
        self.package_watts = s.package.watts;
        self.dram_watts = s.dram.watts;
        self.cpu_temperature = s.cpu_die_celsius;
        self.fan_rpm = s.fan_rpm;
        self.gpu_busy_percent = s.gpu_busy_percent;
        self.gpu_tasks = s.gpu_tasks.clone();
        if s.pressure.is_some() {
            self.pressure = s.pressure;
        }
    }

    /// Takes the energy counters (kept even when the sample is stale).
    pub fn apply_energy(&mut self, totals: &EnergyTotals) {
        for (domain, joules) in totals.iter() {
            self.set_energy(domain, joules);
        }
    }

    pub fn set_energy(&mut self, domain: &'static str, joules: f64) {
        match self.energy.iter_mut().find(|(d, _)| *d == domain) {
            Some((_, j)) => *j = joules,
            None => self.energy.push((domain, joules)),
        }
    }
}

/// What the macOS readers give, under the agent's power, thermal, battery
/// and GPU names.
impl FamilySample for MacosStats {
    fn points(&self, _snap: &Snapshot, out: &mut Vec<Point>) {
        let m = self;
        m.battery_state.points(out);
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
                out.push(gpu(
                    &semconv::GPU_VRAM_USED_MB,
                    b as f64 / (1024.0 * 1024.0),
                ));
            }
            // Unified memory: the pool the GPU allocates from (hw.memsize).
            if let (true, Some(total)) = (apple, m.unified_memory_bytes) {
                out.push(gpu(
                    &semconv::GPU_VRAM_TOTAL_MB,
                    total as f64 / (1024.0 * 1024.0),
                ));
            }
            let busy = g
                .utilization_percent
                .or(if apple { m.gpu_busy_percent } else { None });
            if let Some(u) = busy {
                out.push(gpu(&semconv::GPU_UTILIZATION_PERCENT, u));
            }
        }
    }
}

#[cfg(target_os = "macos")]
mod imp;

#[cfg(target_os = "macos")]
pub use imp::{AppleGpuSource, BatterySource, PowermetricsSource};

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
        use crate::snapshot::{AttrValue, Snapshot};
        let sample = powermetrics::parse_document(include_bytes!(
            "../../../tests/fixtures/macos/powermetrics-apple-m2.plist"
        ))
        .unwrap();
        let mut m = MacosStats {
            gpus: ioreg::parse_accelerators(include_str!(
                "../../../tests/fixtures/macos/ioreg-accelerator-busy.txt"
            )),
            unified_memory_bytes: Some(32 << 30),
            battery_watts: Some(4.5),
            ..Default::default()
        };
        m.apply_sample(&sample);
        let mut totals = EnergyTotals::default();
        totals.add("cpu", 10.16);
        m.apply_energy(&totals);
        let snap = Snapshot::default().with(m);
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
        let e = find(&pts, &sc::ENERGY_JOULES);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].attrs, vec![(attr::DOMAIN, AttrValue::from("cpu"))]);
        // Apple Silicon has no die temperature, fan or DRAM figure: absent.
        assert!(find(&pts, &sc::THERMAL_TEMPERATURE).is_empty());
        assert!(find(&pts, &sc::THERMAL_FAN_RPM).is_empty());
        assert!(find(&pts, &sc::POWER_DRAM_WATTS).is_empty());
    }

    #[test]
    fn intel_sample_sets_no_gpu_watts_and_keeps_os_pressure_when_absent() {
        let intel = powermetrics::parse_document(include_bytes!(
            "../../../tests/fixtures/macos/powermetrics-intel.plist"
        ))
        .unwrap();
        let mut m = MacosStats {
            pressure: Some(3),
            ..Default::default()
        };
        let mut no_pressure = intel.clone();
        no_pressure.pressure = None;
        m.apply_sample(&no_pressure);
        assert_eq!(m.pressure, Some(3));
        m.apply_sample(&intel);
        assert_eq!(m.pressure, Some(1));
        assert_eq!(m.gpu_watts, None);
        assert_eq!(m.cpu_watts, None);
        assert_eq!(m.cpu_temperature, Some(52.81));
        let mut totals = EnergyTotals::default();
        totals.add("package", 9.36);
        m.apply_energy(&totals);
        m.set_energy("battery", 1.5);
        totals.add("package", 1.0);
        m.apply_energy(&totals);
        assert_eq!(m.energy, vec![("package", 10.36), ("battery", 1.5)]);
    }
}
