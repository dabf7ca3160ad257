//! Power and thermal sources against fixture host trees (see each tree's
//! README.md): an Intel laptop on battery, an AMD desktop, a Raspberry
//! Pi-like board and this VM as captured. Files are changed between
//! cycles on a private copy; expected values are computed by hand.
//!
//! Watts are Δenergy / Δt with the agent's own Δt, which a test cannot see.
//! Each read happens inside a call the test brackets with two instants, so
//! Δt lies between (start of this call − end of the previous one) and (end
//! of this call − start of the previous one): the expected watts are
//! bounded exactly by those, and joules are compared exactly.
#![cfg(target_os = "linux")]

mod support;

use std::path::Path;

use support::fixtures::{host_copy, set};
use support::host_run::{Run, assert_watts, get, joules, status};
use unamentis_agent::semconv;
use unamentis_agent::snapshot::Point;
use unamentis_agent::sources::SourceError;

const PKG: &str = "sys/class/powercap/intel-rapl:0/energy_uj";
const CORE: &str = "sys/class/powercap/intel-rapl:0:0/energy_uj";

#[test]
fn intel_laptop_package_core_battery_and_thermal() {
    let mut run = Run::start("intel-laptop");
    // First cycle: the counters did not move since the build's read.
    let (snap, p, dt) = run.step();
    assert_eq!(get(&p, &semconv::POWER_PACKAGE_WATTS, None), Some(0.0));
    assert_eq!(get(&p, &semconv::POWER_CPU_WATTS, None), Some(0.0));
    assert_eq!(joules(&p, "package"), Some(0.0));
    // No dram zone on a laptop: absent, not 0. uncore is not a host gauge.
    assert_eq!(get(&p, &semconv::POWER_DRAM_WATTS, None), None);
    assert_eq!(joules(&p, "dram"), None);
    assert_eq!(get(&p, &semconv::POWER_GPU_WATTS, None), None);
    // BAT0 power_now + BAT1 current_now × voltage_now; the mouse is ignored.
    let battery = 11.873 + 0.512 * 12.103;
    let bw = get(&p, &semconv::POWER_BATTERY_WATTS, None).unwrap();
    assert!((bw - battery).abs() < 1e-9, "{bw}");
    // Constant power over Δt (trapezoid of two equal readings).
    let bj = joules(&p, "battery").unwrap();
    assert!(bj >= battery * dt.0 * (1.0 - 1e-9) && bj <= battery * dt.1 * (1.0 + 1e-9));
    // Charge: BAT0's energy set (Wh) and BAT1's charge set × voltage_now,
    // summed; not the mean of the capacity files (72, 64).
    let (now, full) = (41.23 + 1.58 * 12.103, 57.0 + 2.47 * 12.103);
    let charge = get(&p, &semconv::BATTERY_CHARGE_PERCENT, None).unwrap();
    assert!((charge - now / full * 100.0).abs() < 1e-9, "{charge}");
    let left = get(&p, &semconv::BATTERY_TIME_LEFT, None).unwrap();
    assert!((left - now / battery * 3600.0).abs() < 1e-6, "{left}");
    // The AC adapter's online file says 0.
    assert_eq!(get(&p, &semconv::POWER_AC_ONLINE, None), Some(0.0));
    assert_eq!(get(&p, &semconv::THERMAL_TEMPERATURE, None), Some(52.0));
    assert_eq!(
        get(
            &p,
            &semconv::THERMAL_FAN_RPM,
            Some(("fan", "thinkpad.fan1"))
        ),
        Some(2650.0)
    );
    assert_eq!(
        p.iter()
            .filter(|x| std::ptr::eq(x.metric, &semconv::THERMAL_FAN_RPM))
            .count(),
        1
    );
    assert_eq!(get(&p, &semconv::THERMAL_THROTTLE_EVENTS, None), Some(15.0));
    assert_eq!(get(&p, &semconv::THERMAL_PRESSURE, None), Some(0.0));
    for s in ["rapl", "battery", "thermal"] {
        assert!(status(&snap, s).up, "{s}: {:?}", status(&snap, s).error);
    }
    let hwmon = status(&snap, "hwmon");
    assert!(!hwmon.up && hwmon.error.as_ref().unwrap().to_string().contains("RAPL"));

    // package +5 J, core +3 J, uncore +1 J; psys +20 J and the MMIO copy of
    // the package +5 J must not be added to anything.
    run.set(PKG, 65_997_277_274u64 + 5_000_000);
    run.set(CORE, 30_123_456_789u64 + 3_000_000);
    run.set(
        "sys/class/powercap/intel-rapl:0:1/energy_uj",
        1_235_567_890u64,
    );
    run.set(
        "sys/class/powercap/intel-rapl:1/energy_uj",
        123_456_789_012u64 + 20_000_000,
    );
    run.set(
        "sys/class/powercap/intel-rapl-mmio:0/energy_uj",
        65_997_277_274u64 + 5_000_000,
    );
    let (_, p, dt) = run.step();
    assert_eq!(joules(&p, "package"), Some(5.0));
    assert_eq!(joules(&p, "cpu"), Some(3.0));
    let pw = get(&p, &semconv::POWER_PACKAGE_WATTS, None);
    let cw = get(&p, &semconv::POWER_CPU_WATTS, None);
    assert_watts(pw, 5_000_000, dt);
    assert_watts(cw, 3_000_000, dt);
    // One Δt for every zone of a cycle.
    assert!((pw.unwrap() / cw.unwrap() - 5.0 / 3.0).abs() < 1e-12);
}

#[test]
fn amd_desktop_cpu_is_the_package_and_wraps_exactly() {
    let mut run = Run::start("amd-desktop");
    let (snap, p, _) = run.step();
    assert_eq!(get(&p, &semconv::THERMAL_TEMPERATURE, None), Some(48.625));
    for (fan, rpm) in [
        ("nct6798.fan1", 1043.0),
        ("nct6798.fan2", 0.0),
        ("amdgpu.fan1", 0.0),
    ] {
        assert_eq!(
            get(&p, &semconv::THERMAL_FAN_RPM, Some(("fan", fan))),
            Some(rpm),
            "{fan}"
        );
    }
    // The unconnected AUXTIN0 at 102 °C over its 80 °C max and acpitz are
    // not CPU sensors: nominal.
    assert_eq!(get(&p, &semconv::THERMAL_PRESSURE, None), Some(0.0));
    assert_eq!(get(&p, &semconv::THERMAL_THROTTLE_EVENTS, None), None);
    assert_eq!(get(&p, &semconv::POWER_BATTERY_WATTS, None), None);
    assert!(!status(&snap, "battery").up);

    // Up to just below AMD's max_energy_range_uj, then across the wrap.
    let max = 65_532_610_987u64;
    let start = 12_456_789_012u64;
    run.set(PKG, 65_532_000_000u64);
    run.set(CORE, 345_678_901u64 + 1_000_000);
    let (_, p, dt) = run.step();
    let first = 65_532_000_000 - start;
    assert_eq!(joules(&p, "package"), Some(first as f64 / 1e6));
    assert_watts(get(&p, &semconv::POWER_PACKAGE_WATTS, None), first, dt);
    run.set(PKG, 1_000_000u64);
    let (_, p, dt) = run.step();
    let across = (max - 65_532_000_000) + 1_000_000;
    assert_eq!(across, 1_610_987);
    assert_eq!(joules(&p, "package"), Some((first + across) as f64 / 1e6));
    assert_watts(get(&p, &semconv::POWER_PACKAGE_WATTS, None), across, dt);
    // AMD's core zone is one core's MSR: cpu is the package.
    assert_eq!(joules(&p, "cpu"), joules(&p, "package"));
    assert_eq!(
        get(&p, &semconv::POWER_CPU_WATTS, None),
        get(&p, &semconv::POWER_PACKAGE_WATTS, None)
    );
}

#[test]
fn unreadable_energy_uj_marks_rapl_down_and_keeps_the_counters() {
    let mut run = Run::start("intel-laptop");
    run.set(CORE, 30_123_456_789u64 + 2_000_000);
    let (_, p, _) = run.step();
    assert_eq!(joules(&p, "cpu"), Some(2.0));
    // Tests run as root, where a mode-000 file is still readable: a
    // directory in its place fails the read the same way for the source.
    let core = run.root().join(CORE);
    std::fs::remove_file(&core).unwrap();
    std::fs::create_dir(&core).unwrap();
    run.set(PKG, 65_997_277_274u64 + 1_000_000);
    let (snap, p, _) = run.step();
    let rapl = status(&snap, "rapl");
    assert!(!rapl.up);
    assert!(
        rapl.error
            .as_ref()
            .unwrap()
            .to_string()
            .contains("intel-rapl:0:0/energy_uj"),
        "{:?}",
        rapl.error
    );
    // cpu: no watts this cycle, joules kept (not reset, not absent);
    // the readable package goes on.
    assert_eq!(get(&p, &semconv::POWER_CPU_WATTS, None), None);
    assert_eq!(joules(&p, "cpu"), Some(2.0));
    assert_eq!(joules(&p, "package"), Some(1.0));
    // Readable again, 4 J after the last good read: counted once.
    std::fs::remove_dir(&core).unwrap();
    run.set(CORE, 30_123_456_789u64 + 6_000_000);
    let (snap, p, dt) = run.step();
    assert!(status(&snap, "rapl").up);
    assert_eq!(joules(&p, "cpu"), Some(6.0));
    // The watts of the resumed cycle span the gap: two cycles' Δt.
    let w = get(&p, &semconv::POWER_CPU_WATTS, None).unwrap();
    assert!(w < 4.0 / dt.0, "{w}");
}

#[test]
fn throttling_sequence_raises_pressure_then_it_falls() {
    let mut run = Run::start("intel-laptop");
    let (_, p, _) = run.step();
    assert_eq!(get(&p, &semconv::THERMAL_PRESSURE, None), Some(0.0));
    // Core 1 (cpu1 and its sibling cpu3) throttles once, and the package
    // once (every CPU of the package shows it).
    for cpu in [1, 3] {
        run.set(
            &format!("sys/devices/system/cpu/cpu{cpu}/thermal_throttle/core_throttle_count"),
            6,
        );
    }
    for cpu in 0..4 {
        run.set(
            &format!("sys/devices/system/cpu/cpu{cpu}/thermal_throttle/package_throttle_count"),
            8,
        );
    }
    let (_, p, _) = run.step();
    assert_eq!(get(&p, &semconv::THERMAL_PRESSURE, None), Some(2.0));
    assert_eq!(get(&p, &semconv::THERMAL_THROTTLE_EVENTS, None), Some(17.0));
    // No new event: back to nominal, the count stays.
    let (_, p, _) = run.step();
    assert_eq!(get(&p, &semconv::THERMAL_PRESSURE, None), Some(0.0));
    assert_eq!(get(&p, &semconv::THERMAL_THROTTLE_EVENTS, None), Some(17.0));
}

#[test]
fn every_pressure_level_from_the_laptop_zones_and_sensors() {
    let tcpu = "sys/class/thermal/thermal_zone2/temp";
    let pkg = "sys/class/hwmon/hwmon3/temp1_input";
    let cooling = "sys/class/thermal/cooling_device0/cur_state";
    // (file, value, level): TCPU trips are passive 95, hot 100, critical
    // 105 °C; coretemp max = crit = 100 °C. Each case on a fresh copy.
    let cases: &[&[(&str, i64)]] = &[
        &[(tcpu, 84_999)],
        &[(tcpu, 85_000)],
        &[(tcpu, 95_000)],
        &[(tcpu, 100_000)],
        &[(cooling, 1)],
        &[(pkg, 90_000)],
        &[(pkg, 100_000)],
        // TCC Offset's cur_state and the x86_pkg_temp zero trips are not
        // inputs: still nominal.
        &[("sys/class/thermal/cooling_device1/cur_state", 20)],
    ];
    let expected = [0.0, 1.0, 2.0, 3.0, 2.0, 1.0, 3.0, 0.0];
    for (changes, want) in cases.iter().zip(expected) {
        let mut run = Run::start("intel-laptop");
        for (file, v) in *changes {
            run.set(file, v);
        }
        let (_, p, _) = run.step();
        assert_eq!(
            get(&p, &semconv::THERMAL_PRESSURE, None),
            Some(want),
            "{changes:?}"
        );
    }
}

#[test]
fn raspberry_pi_has_only_cpu_thermal() {
    let mut run = Run::start("rpi4");
    let (snap, p, _) = run.step();
    assert_eq!(get(&p, &semconv::THERMAL_TEMPERATURE, None), Some(47.774));
    assert_eq!(get(&p, &semconv::THERMAL_PRESSURE, None), Some(0.0));
    assert_eq!(get(&p, &semconv::THERMAL_THROTTLE_EVENTS, None), None);
    assert!(
        p.iter()
            .all(|x| !std::ptr::eq(x.metric, &semconv::THERMAL_FAN_RPM))
    );
    for m in [
        &semconv::POWER_CPU_WATTS,
        &semconv::POWER_PACKAGE_WATTS,
        &semconv::POWER_BATTERY_WATTS,
    ] {
        assert_eq!(get(&p, m, None), None, "{}", m.name);
    }
    let rapl = status(&snap, "rapl");
    assert!(
        !rapl.up
            && rapl
                .error
                .as_ref()
                .unwrap()
                .to_string()
                .contains("no RAPL zones")
    );
    assert!(rapl.hint.unwrap().contains("modprobe intel_rapl_msr"));
    // At the 110 °C critical trip (zone and hwmon crit): critical.
    run.set("sys/class/thermal/thermal_zone0/temp", 110_000);
    run.set("sys/class/hwmon/hwmon0/temp1_input", 110_000);
    let (_, p, _) = run.step();
    assert_eq!(get(&p, &semconv::THERMAL_PRESSURE, None), Some(3.0));
    assert_eq!(get(&p, &semconv::THERMAL_TEMPERATURE, None), Some(110.0));
}

/// Without RAPL, zenergy's socket energy (µJ) gives the package and
/// zenpower's SVI2_P_Core power (µW) the cpu (channel layouts from the
/// out-of-tree drivers' READMEs; docs/FORMATS.md, hwmon).
#[test]
fn hwmon_energy_and_power_sensors_stand_in_for_rapl() {
    let dir = host_copy("rpi4");
    for (rel, v) in [
        ("sys/class/hwmon/hwmon2/name", "zenergy"),
        ("sys/class/hwmon/hwmon2/energy1_label", "Ecore000"),
        ("sys/class/hwmon/hwmon2/energy1_input", "123456"),
        ("sys/class/hwmon/hwmon2/energy17_label", "Esocket0"),
        ("sys/class/hwmon/hwmon2/energy17_input", "987654321"),
        ("sys/class/hwmon/hwmon3/name", "zenpower"),
        ("sys/class/hwmon/hwmon3/power1_label", "SVI2_P_Core"),
        ("sys/class/hwmon/hwmon3/power1_input", "15500000"),
        ("sys/class/hwmon/hwmon3/power2_label", "SVI2_P_SoC"),
        ("sys/class/hwmon/hwmon3/power2_input", "9000000"),
    ] {
        std::fs::create_dir_all(dir.path().join(rel).parent().unwrap()).unwrap();
        set(dir.path(), rel, v);
    }
    let mut run = Run::at(dir);
    run.set(
        "sys/class/hwmon/hwmon2/energy17_input",
        987_654_321u64 + 2_000_000,
    );
    run.set("sys/class/hwmon/hwmon2/energy1_input", 999_999_999u64);
    let (snap, p, dt) = run.step();
    assert!(
        status(&snap, "hwmon").up,
        "{:?}",
        status(&snap, "hwmon").error
    );
    assert_eq!(joules(&p, "package"), Some(2.0));
    assert_watts(get(&p, &semconv::POWER_PACKAGE_WATTS, None), 2_000_000, dt);
    assert_eq!(get(&p, &semconv::POWER_CPU_WATTS, None), Some(15.5));
    let cj = joules(&p, "cpu").unwrap();
    assert!(
        cj >= 15.5 * dt.0 * (1.0 - 1e-9) && cj <= 15.5 * dt.1 * (1.0 + 1e-9),
        "{cj}"
    );
}

#[test]
fn this_vm_as_captured_has_no_power_or_thermal_data() {
    let mut run = Run::start("vm-2cpu");
    let (snap, p, _) = run.step();
    for name in ["rapl", "hwmon", "battery", "thermal"] {
        let s = status(&snap, name);
        assert!(!s.up, "{name}");
        assert!(
            matches!(s.error, Some(SourceError::Unavailable(_))),
            "{name}: {:?}",
            s.error
        );
    }
    assert!(status(&snap, "thermal").hint.unwrap().contains("VM"));
    assert!(p.iter().all(|x| {
        let n = x.metric.name;
        !(n.contains(".power.")
            || n.contains(".energy.")
            || n.contains(".thermal.")
            || n.contains(".battery."))
    }));
}

/// On a real host `/sys/class/*` entries are relative symlinks into
/// `/sys/devices`; the fixtures use plain directories. Both must work.
#[test]
fn class_entries_that_are_symlinks_into_devices() {
    let dir = host_copy("intel-laptop");
    let root = dir.path();
    let moves = [
        (
            "powercap/intel-rapl:0",
            "virtual/powercap/intel-rapl/intel-rapl:0",
        ),
        (
            "powercap/intel-rapl:0:0",
            "virtual/powercap/intel-rapl/intel-rapl:0/intel-rapl:0:0",
        ),
        ("hwmon/hwmon3", "platform/coretemp.0/hwmon/hwmon3"),
        (
            "power_supply/BAT0",
            "LNXSYSTM:00/PNP0C0A:00/power_supply/BAT0",
        ),
    ];
    for (class, device) in moves {
        let from = root.join("sys/class").join(class);
        let to = root.join("sys/devices").join(device);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::rename(&from, &to).unwrap();
        let depth = class.matches('/').count() + 1;
        let target = Path::new(&"../".repeat(depth)).join("devices").join(device);
        std::os::unix::fs::symlink(target, &from).unwrap();
    }
    let mut run = Run::at(dir);
    run.set(PKG, 65_997_277_274u64 + 7_000_000);
    let (_, p, _) = run.step();
    assert_eq!(joules(&p, "package"), Some(7.0));
    assert_eq!(get(&p, &semconv::THERMAL_TEMPERATURE, None), Some(52.0));
    let bw = get(&p, &semconv::POWER_BATTERY_WATTS, None).unwrap();
    assert!((bw - (11.873 + 0.512 * 12.103)).abs() < 1e-9);
}

/// Batteries pulled and put back (a ThinkPad's hot-swappable second
/// battery, then both): the rate follows what is present, the energy
/// total is kept while none is, and the time without one adds nothing.
#[test]
fn pulled_batteries_keep_the_energy_total_and_their_absence_adds_nothing() {
    let mut run = Run::start("intel-laptop");
    let supplies = run.root().join("sys/class/power_supply");
    let away = run.root().join("pulled");
    std::fs::create_dir(&away).unwrap();
    let pull = |b: &str| std::fs::rename(supplies.join(b), away.join(b)).unwrap();
    let put_back = |b: &str| std::fs::rename(away.join(b), supplies.join(b)).unwrap();
    let (bat0, bat1) = (11.873, 0.512 * 12.103);

    let (_, p, _) = run.step();
    let j0 = joules(&p, "battery").unwrap();
    pull("BAT1");
    let (snap, p, _) = run.step();
    assert!(status(&snap, "battery").up);
    assert_eq!(get(&p, &semconv::POWER_BATTERY_WATTS, None), Some(bat0));
    let j1 = joules(&p, "battery").unwrap();
    assert!(j1 > j0, "{j0} {j1}");

    pull("BAT0");
    let (snap, p, _) = run.step();
    assert!(!status(&snap, "battery").up);
    assert_eq!(get(&p, &semconv::POWER_BATTERY_WATTS, None), None);
    assert_eq!(joules(&p, "battery"), Some(j1), "kept while no battery");
    std::thread::sleep(std::time::Duration::from_millis(300));

    put_back("BAT0");
    put_back("BAT1");
    let (snap, p, _) = run.step();
    assert!(status(&snap, "battery").up);
    assert_eq!(
        get(&p, &semconv::POWER_BATTERY_WATTS, None),
        Some(bat0 + bat1)
    );
    assert_eq!(
        joules(&p, "battery"),
        Some(j1),
        "the first reading after the gap adds nothing"
    );
    let (_, p, dt) = run.step();
    let added = joules(&p, "battery").unwrap() - j1;
    let w = bat0 + bat1;
    assert!(
        added >= w * dt.0 * (1.0 - 1e-9) && added <= w * dt.1 * (1.0 + 1e-9),
        "{added} for {w} W over {dt:?}"
    );
}

/// The CPU sensor's hwmon device goes away (coretemp unloaded, a USB
/// sensor pulled) and comes back under another hwmonN: the temperature
/// falls back to the CPU thermal zones, then the chip is found again
/// within one rediscovery period.
#[test]
fn an_unplugged_cpu_sensor_falls_back_and_is_found_again_elsewhere() {
    let run_dir = support::fixtures::host_copy("intel-laptop");
    let hwmon = run_dir.path().join("sys/class/hwmon");
    // coretemp's package sensor at 70 °C; the CPU zone (x86_pkg_temp) 52.
    set(run_dir.path(), "sys/class/hwmon/hwmon3/temp1_input", 70_000);
    let mut run = Run::at(run_dir);
    let temp = |p: &[Point]| get(p, &semconv::THERMAL_TEMPERATURE, None);
    let (_, p, _) = run.step();
    assert_eq!(temp(&p), Some(70.0));

    let away = run.root().join("unloaded");
    std::fs::rename(hwmon.join("hwmon3"), &away).unwrap();
    for _ in 0..2 {
        let (snap, p, _) = run.step();
        assert!(status(&snap, "thermal").up);
        assert_eq!(temp(&p), Some(52.0));
    }

    std::fs::rename(&away, hwmon.join("hwmon9")).unwrap();
    // Rediscovery runs every 12 cycles (thermal.rs REDISCOVER_EVERY).
    let found = (1..=12).find(|_| temp(&run.step().1) == Some(70.0));
    assert!(found.is_some(), "coretemp as hwmon9 never found");
}
