//! Standard OpenTelemetry names beside the agent's own (`[compat]`), from the
//! same snapshot: the Collector hostmetrics receiver's `system.*` names that
//! SigNoz's Hosts page queries, and the `hw.*` hardware conventions. Nothing
//! here samples the host: hostmetrics reads what the sources put into
//! [`CompatStats`] from their one read per cycle, and `hw.*` is derived from
//! the cycle's own `unamentis.server.*` points.

use crate::config::CompatConfig;
use crate::families::cpu::CpuStats;
use crate::point::{AttrValue, Point};
use crate::semconv::{self, Metric, attr};
use crate::sources::Snapshot;

const MIB: f64 = 1024.0 * 1024.0;

/// Appends the compatibility points the switches ask for.
pub fn points(snap: &Snapshot, compat: CompatConfig, out: &mut Vec<Point>) {
    if compat.hostmetrics {
        hostmetrics_points(snap, out);
    }
    if compat.hw {
        let hw = hw_points(out);
        out.extend(hw);
    }
}

/// The load averages under the receiver's names; the other hostmetrics
/// names are mapped by their families (cpu, memory, filesystem, disk, …),
/// whose sources read them only with `[compat] hostmetrics` on.
fn hostmetrics_points(snap: &Snapshot, out: &mut Vec<Point>) {
    if let Some([l1, l5, l15]) = snap.get::<CpuStats>().and_then(|c| c.load) {
        out.push(Point::new(&semconv::SYSTEM_CPU_LOAD_AVERAGE_1M, l1));
        out.push(Point::new(&semconv::SYSTEM_CPU_LOAD_AVERAGE_5M, l5));
        out.push(Point::new(&semconv::SYSTEM_CPU_LOAD_AVERAGE_15M, l15));
    }
}

fn is(p: &Point, m: &'static Metric) -> bool {
    std::ptr::eq(p.metric, m)
}

fn attr_of<'a>(p: &'a Point, key: &str) -> Option<&'a AttrValue> {
    p.attrs.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
}

/// `gpu<index>`, or `gpu` for a reading that is not per device.
fn gpu_id(p: &Point) -> String {
    match attr_of(p, attr::GPU_INDEX) {
        Some(i) => format!("gpu{i}"),
        None => "gpu".into(),
    }
}

/// hw.type of an energy.joules domain / power metric id.
fn hw_type(id: &str) -> &'static str {
    match id {
        "dram" => "memory",
        "battery" => "battery",
        "gpu" => "gpu",
        _ => "cpu",
    }
}

/// The hw.* points derived from this cycle's own points.
fn hw_points(own: &[Point]) -> Vec<Point> {
    let hw = |m: &'static Metric, v: f64, id: &str, kind: &'static str| {
        Point::new(m, v)
            .with(attr::HW_ID, id)
            .with(attr::HW_TYPE, kind)
    };
    let mut out = Vec::new();
    for p in own {
        let v = p.value;
        let fixed_power = [
            (&semconv::POWER_CPU_WATTS, "cpu"),
            (&semconv::POWER_PACKAGE_WATTS, "package"),
            (&semconv::POWER_DRAM_WATTS, "dram"),
            (&semconv::POWER_BATTERY_WATTS, "battery"),
        ];
        if let Some((_, id)) = fixed_power.iter().find(|(m, _)| is(p, m)) {
            out.push(hw(&semconv::HW_POWER, v, id, hw_type(id)));
        } else if is(p, &semconv::POWER_GPU_WATTS) {
            out.push(hw(&semconv::HW_POWER, v, &gpu_id(p), "gpu"));
        } else if is(p, &semconv::ENERGY_JOULES) {
            if let Some(AttrValue::Str(d)) = attr_of(p, attr::DOMAIN) {
                out.push(hw(&semconv::HW_ENERGY, v, d, hw_type(d)));
            }
        } else if is(p, &semconv::BATTERY_CHARGE_PERCENT) {
            out.push(hw(
                &semconv::HW_BATTERY_CHARGE,
                v / 100.0,
                "battery",
                "battery",
            ));
        } else if is(p, &semconv::BATTERY_TIME_LEFT) {
            out.push(hw(&semconv::HW_BATTERY_TIME_LEFT, v, "battery", "battery"));
        } else if is(p, &semconv::THERMAL_TEMPERATURE) {
            out.push(hw(&semconv::HW_TEMPERATURE, v, "cpu", "temperature"));
        } else if is(p, &semconv::GPU_TEMPERATURE) {
            out.push(hw(&semconv::HW_TEMPERATURE, v, &gpu_id(p), "temperature"));
        } else if is(p, &semconv::GPU_VRAM_USED_MB) || is(p, &semconv::GPU_VRAM_TOTAL_MB) {
            // The Ollama estimate is not a reading of the hardware.
            if attr_of(p, attr::GPU_VENDOR) == Some(&AttrValue::from("ollama-estimate")) {
                continue;
            }
            let m = if is(p, &semconv::GPU_VRAM_USED_MB) {
                &semconv::HW_GPU_MEMORY_USAGE
            } else {
                &semconv::HW_GPU_MEMORY_LIMIT
            };
            out.push(hw(m, (v * MIB).round(), &gpu_id(p), "gpu"));
        } else if is(p, &semconv::GPU_UTILIZATION_PERCENT) {
            out.push(hw(
                &semconv::HW_GPU_UTILIZATION,
                v / 100.0,
                &gpu_id(p),
                "gpu",
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::families::cpu::{CpuTimes, CpuTimesOrigin, PerCpuTimes};
    use crate::families::memory::{MemoryStates, VmMemoryStates};

    fn find<'a>(pts: &'a [Point], m: &'static Metric, attrs: &[(&str, &str)]) -> Vec<&'a Point> {
        pts.iter()
            .filter(|p| is(p, m))
            .filter(|p| {
                attrs
                    .iter()
                    .all(|(k, v)| attr_of(p, k) == Some(&AttrValue::from(*v)))
            })
            .collect()
    }

    #[test]
    fn off_by_default_and_nothing_without_data() {
        let snap = Snapshot::default();
        let mut out = Vec::new();
        points(&snap, CompatConfig::default(), &mut out);
        points(
            &snap,
            CompatConfig {
                hostmetrics: true,
                hw: true,
                include_virtual_filesystems: false,
            },
            &mut out,
        );
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn hostmetrics_cpu_times_memory_and_load() {
        let mut snap = Snapshot::default().with(CpuStats {
            load: Some([0.5, 1.0, 1.5]),
            ..Default::default()
        });
        snap.put(PerCpuTimes {
            origin: CpuTimesOrigin::ProcStat,
            ticks_per_second: 100,
            cpus: vec![(
                3,
                CpuTimes {
                    user: 250,
                    iowait: 7,
                    irq: 1,
                    ..Default::default()
                },
            )],
        });
        snap.put(MemoryStates {
            total: 1000,
            free: 100,
            buffers: 50,
            cached: 250,
            slab_reclaimable: None,
            slab_unreclaimable: Some(30),
        });
        // The families map these names; `points_with` is what every
        // output reads.
        let out = snap.points_with(CompatConfig {
            hostmetrics: true,
            hw: false,
            include_virtual_filesystems: false,
        });
        let t = |state| {
            find(
                &out,
                &semconv::SYSTEM_CPU_TIME,
                &[("cpu", "cpu3"), ("state", state)],
            )[0]
            .value
        };
        assert_eq!(
            (t("user"), t("wait"), t("interrupt"), t("idle")),
            (2.5, 0.07, 0.01, 0.0)
        );
        assert_eq!(find(&out, &semconv::SYSTEM_CPU_TIME, &[]).len(), 8);
        let mem = |state| find(&out, &semconv::SYSTEM_MEMORY_USAGE, &[("state", state)])[0].value;
        assert_eq!(
            (mem("used"), mem("free"), mem("cached")),
            (600.0, 100.0, 250.0)
        );
        assert!(
            find(
                &out,
                &semconv::SYSTEM_MEMORY_USAGE,
                &[("state", "slab_reclaimable")]
            )
            .is_empty()
        );
        assert_eq!(mem("slab_unreclaimable"), 30.0);
        assert_eq!(
            find(&out, &semconv::SYSTEM_CPU_LOAD_AVERAGE_15M, &[])[0].value,
            1.5
        );
    }

    #[test]
    fn hostmetrics_on_macos_the_receivers_states() {
        let mut snap = Snapshot::default();
        snap.put(PerCpuTimes {
            ticks_per_second: 100,
            cpus: vec![(
                0,
                CpuTimes {
                    user: 300,
                    system: 200,
                    idle: 900,
                    nice: 5,
                    ..Default::default()
                },
            )],
            origin: CpuTimesOrigin::Mach,
        });
        snap.put(VmMemoryStates {
            free: 10,
            inactive: 30,
            used: 60,
        });
        // The families map these names; `points_with` is what every
        // output reads.
        let out = snap.points_with(CompatConfig {
            hostmetrics: true,
            ..Default::default()
        });
        let states = |m| {
            let mut v: Vec<String> = find(&out, m, &[])
                .iter()
                .map(|p| format!("{}={}", attr_of(p, "state").unwrap(), p.value))
                .collect();
            v.sort();
            v
        };
        // No nice (the receiver drops it there), no counters Mach lacks.
        assert_eq!(
            states(&semconv::SYSTEM_CPU_TIME),
            ["idle=9", "system=2", "user=3"]
        );
        assert_eq!(
            states(&semconv::SYSTEM_MEMORY_USAGE),
            ["free=10", "inactive=30", "used=60"]
        );
    }

    #[test]
    fn hw_from_own_points() {
        let own = vec![
            Point::new(&semconv::POWER_PACKAGE_WATTS, 12.5),
            Point::new(&semconv::POWER_GPU_WATTS, 80.0).with(attr::GPU_INDEX, AttrValue::Int(1)),
            Point::new(&semconv::ENERGY_JOULES, 900.0).with(attr::DOMAIN, "dram"),
            Point::new(&semconv::GPU_VRAM_USED_MB, 2.0)
                .with(attr::GPU_INDEX, AttrValue::Int(1))
                .with(attr::GPU_VENDOR, "nvidia"),
            Point::new(&semconv::GPU_VRAM_USED_MB, 5.0)
                .with(attr::GPU_INDEX, AttrValue::Int(0))
                .with(attr::GPU_VENDOR, "ollama-estimate"),
            Point::new(&semconv::GPU_UTILIZATION_PERCENT, 42.0)
                .with(attr::GPU_INDEX, AttrValue::Int(1)),
            Point::new(&semconv::THERMAL_TEMPERATURE, 71.0),
        ];
        let hw = hw_points(&own);
        let one = |m, id: &str, kind: &str| {
            let f = find(&hw, m, &[("hw.id", id), ("hw.type", kind)]);
            assert_eq!(f.len(), 1, "{}{{{id},{kind}}} in {hw:?}", m.name);
            f[0].value
        };
        assert_eq!(one(&semconv::HW_POWER, "package", "cpu"), 12.5);
        assert_eq!(one(&semconv::HW_POWER, "gpu1", "gpu"), 80.0);
        assert_eq!(one(&semconv::HW_ENERGY, "dram", "memory"), 900.0);
        assert_eq!(one(&semconv::HW_GPU_MEMORY_USAGE, "gpu1", "gpu"), 2.0 * MIB);
        assert_eq!(one(&semconv::HW_GPU_UTILIZATION, "gpu1", "gpu"), 0.42);
        assert_eq!(one(&semconv::HW_TEMPERATURE, "cpu", "temperature"), 71.0);
        assert_eq!(hw.len(), 6, "the Ollama estimate has no hw point");
    }
}
