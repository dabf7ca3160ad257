//! Hardware shapes the other fixture hosts do not have (each tree's
//! README.md says where its format comes from and computes the expected
//! values by hand): powercap zones past 9 (hexadecimal ids), coretemp's old
//! `Physical id` label, CPU topology from ids alone and without
//! `devices/system/cpu/online`, and SoC thermal zone names.
//!
//! Watts are bounded as in power_fixtures.rs: each read happens inside a
//! call the test brackets with two instants; joules are compared exactly.
#![cfg(target_os = "linux")]

mod support;

use std::path::Path;

use support::fixtures::{host_copy, set};
use support::host_run::{Run, assert_watts, get, joules, status};
use unamentis_agent::semconv;
use unamentis_agent::snapshot::Point;

fn temperature(points: &[Point]) -> Option<f64> {
    get(points, &semconv::THERMAL_TEMPERATURE, None)
}

fn cores(points: &[Point], kind: &str) -> Option<f64> {
    get(points, &semconv::CPU_CORES, Some(("kind", kind)))
}

const PKG_MAX: u64 = 262_143_328_850;

fn energy(root: &Path, zone: &str) -> u64 {
    let path = root.join(format!("sys/class/powercap/{zone}/energy_uj"));
    std::fs::read_to_string(path)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn twelve_packages_with_hexadecimal_zone_ids_are_all_summed() {
    let mut run = Run::start("xeon-12s");
    let (snap, p, _) = run.step();
    assert!(
        status(&snap, "rapl").up,
        "{:?}",
        status(&snap, "rapl").error
    );
    assert_eq!(joules(&p, "package"), Some(0.0));
    assert_eq!(joules(&p, "dram"), Some(0.0));
    // No core zone on server parts: cpu is absent, not 0.
    assert_eq!(get(&p, &semconv::POWER_CPU_WATTS, None), None);

    // Package k (zone `intel-rapl:{k:x}`) advances (k + 1) J, each DRAM
    // zone 0.25 J; package-11 (`intel-rapl:b`) crosses its wrap.
    let root = run.root().to_owned();
    for k in 0..12u64 {
        let zone = format!("intel-rapl:{k:x}");
        let start = energy(&root, &zone);
        let next = (start + (k + 1) * 1_000_000) % PKG_MAX;
        set(&root, &format!("sys/class/powercap/{zone}/energy_uj"), next);
        let dram = format!("{zone}:0");
        let d = energy(&root, &dram) + 250_000;
        set(&root, &format!("sys/class/powercap/{dram}/energy_uj"), d);
    }
    assert_eq!(energy(&root, "intel-rapl:b"), 8_000_000, "wrapped");
    let (snap, p, dt) = run.step();
    assert!(status(&snap, "rapl").up);
    // 1 + … + 12 J; without `intel-rapl:a` and `intel-rapl:b`, 55.
    assert_eq!(joules(&p, "package"), Some(78.0));
    assert_eq!(joules(&p, "dram"), Some(3.0));
    assert_watts(get(&p, &semconv::POWER_PACKAGE_WATTS, None), 78_000_000, dt);
    assert_watts(get(&p, &semconv::POWER_DRAM_WATTS, None), 3_000_000, dt);
}

#[test]
fn coretemp_physical_id_is_the_package_sensor() {
    let mut run = Run::start("coretemp-physical-id");
    let (snap, p, _) = run.step();
    assert!(status(&snap, "thermal").up);
    // Physical id 0 (64 °C), not the hottest core (63 °C).
    assert_eq!(temperature(&p), Some(64.0));
    assert_eq!(get(&p, &semconv::THERMAL_PRESSURE, None), Some(0.0));
    // Package 1's sensor at 80 °C: the temperature, and within 10 °C of
    // its 85 °C max; its cores (55, 56) say nothing of it.
    set(
        run.root(),
        "sys/class/hwmon/hwmon1/device/temp1_input",
        80_000,
    );
    let (_, p, _) = run.step();
    assert_eq!(temperature(&p), Some(80.0));
    assert_eq!(get(&p, &semconv::THERMAL_PRESSURE, None), Some(1.0));
}

#[test]
fn cores_and_throttle_counters_from_ids_without_the_online_file() {
    let mut run = Run::start("xeon-2s-ids");
    let (snap, p, _) = run.step();
    assert!(status(&snap, "cpu").up, "{:?}", status(&snap, "cpu").error);
    assert_eq!(cores(&p, "logical"), Some(8.0));
    // (package, core) pairs: 2 × 2, the offline cpu8 not among them.
    assert_eq!(cores(&p, "physical"), Some(4.0));
    assert_eq!(cores(&p, "available"), Some(2.5));
    // (2 + 0 + 5 + 1) per core + (4 + 9) per package.
    assert_eq!(get(&p, &semconv::THERMAL_THROTTLE_EVENTS, None), Some(21.0));
    assert_eq!(get(&p, &semconv::THERMAL_PRESSURE, None), Some(0.0));

    // P1C0 (cpu2 and its sibling cpu6) throttles twice more: counted once.
    for cpu in [2, 6] {
        set(
            run.root(),
            &format!("sys/devices/system/cpu/cpu{cpu}/thermal_throttle/core_throttle_count"),
            7,
        );
    }
    let (_, p, _) = run.step();
    assert_eq!(get(&p, &semconv::THERMAL_THROTTLE_EVENTS, None), Some(23.0));
    assert_eq!(get(&p, &semconv::THERMAL_PRESSURE, None), Some(2.0));
}

#[test]
fn hosts_with_sibling_lists_need_no_online_file_either() {
    // The pre-5.6 server (thread_siblings_list only) and the laptop
    // (core_cpus_list), their `online` files removed.
    let dir = host_copy("server-old-kernel");
    std::fs::remove_file(dir.path().join("sys/devices/system/cpu/online")).unwrap();
    let mut run = Run::at(dir);
    let (snap, p, _) = run.step();
    assert!(status(&snap, "cpu").up, "{:?}", status(&snap, "cpu").error);
    assert_eq!(cores(&p, "physical"), Some(4.0));

    let dir = host_copy("intel-laptop");
    std::fs::remove_file(dir.path().join("sys/devices/system/cpu/online")).unwrap();
    let mut run = Run::at(dir);
    let (_, p, _) = run.step();
    assert_eq!(get(&p, &semconv::THERMAL_THROTTLE_EVENTS, None), Some(15.0));
}

#[test]
fn soc_thermal_zone_names_give_the_cpu_temperature() {
    // (tree, °C): the SoC die zone of a Pi 3 and an Odroid-C2, the hottest
    // of four cpuN-thermal zones (not the hotter gpu-thermal), Tegra's
    // CPU-therm (not the hotter SOCn-therm or tj-therm).
    for (tree, want, pressure) in [
        ("rpi3-bcm2835", 51.54, 0.0),
        ("odroid-c2", 46.0, 0.0),
        ("odroid-xu4", 62.0, 1.0),
        ("jetson-orin", 48.5, 0.0),
    ] {
        let mut run = Run::start(tree);
        let (snap, p, _) = run.step();
        assert!(status(&snap, "thermal").up, "{tree}");
        assert_eq!(temperature(&p), Some(want), "{tree}");
        assert_eq!(
            get(&p, &semconv::THERMAL_PRESSURE, None),
            Some(pressure),
            "{tree}"
        );
    }

    // Without CPU-therm the Orin's hottest SoC zone stands in.
    let dir = host_copy("jetson-orin");
    std::fs::remove_dir_all(dir.path().join("sys/class/thermal/thermal_zone0")).unwrap();
    let (_, p, _) = Run::at(dir).step();
    assert_eq!(temperature(&p), Some(50.0));
}

#[test]
fn acpitz_alone_gives_no_cpu_temperature() {
    let mut run = Run::start("acpitz-only");
    let (snap, p, _) = run.step();
    assert!(status(&snap, "thermal").up);
    assert_eq!(temperature(&p), None, "acpitz is not the CPU");
    assert_eq!(get(&p, &semconv::THERMAL_PRESSURE, None), Some(0.0));
    // At its critical trip acpitz raises pressure, still no temperature.
    set(run.root(), "sys/class/thermal/thermal_zone0/temp", 105_000);
    let (_, p, _) = run.step();
    assert_eq!(temperature(&p), None);
    assert_eq!(get(&p, &semconv::THERMAL_PRESSURE, None), Some(3.0));
}
