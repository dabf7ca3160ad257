//! Fuzzes the thermal, hwmon, RAPL and battery sysfs values (one value per line, as each attribute file holds
//! it) through what the sources compute from them: pressure level, discharge watts, energy deltas, CPU channels.
//! Any input must give a value or an error, never a panic.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use unamentis_agent::families::power::{battery, rapl};
use unamentis_agent::families::thermal;
use unamentis_agent::sources::{energy, sysfs};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let lines: Vec<&str> = text.split('\n').collect();
    let int = |i: usize| lines.get(i).and_then(|l| sysfs::parse_value::<i64>(l));
    let uint = |i: usize| lines.get(i).and_then(|l| sysfs::parse_value::<u64>(l));

    // Thermal zones: temp, then (trip type, trip temp) pairs; hwmon
    // channels: input, max, crit.
    let mut inputs = thermal::PressureInputs::default();
    for chunk in lines.chunks(4) {
        let n = |i: usize| chunk.get(i).and_then(|l| sysfs::parse_value::<i64>(l));
        if let Some(temp_mc) = n(0) {
            let trips = chunk[1..]
                .iter()
                .filter_map(|l| {
                    let (kind, t) = l.split_once(' ')?;
                    Some((thermal::parse_trip_kind(kind), sysfs::parse_value(t)?))
                })
                .collect();
            inputs.zones.push(thermal::ZoneReading { temp_mc, trips });
            inputs.sensors.push(thermal::SensorReading {
                temp_mc,
                max_mc: n(1),
                crit_mc: n(2),
            });
        }
        inputs.cooling_devices |= chunk.iter().any(|l| thermal::is_processor_cooling(l));
    }
    if let Some(level) = thermal::pressure_level(&inputs) {
        assert!(level <= 3);
    }
    let channels: Vec<(u32, Option<String>)> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| (i as u32, (!l.is_empty()).then(|| l.to_string())))
        .collect();
    for chip in ["coretemp", "k10temp", "zenpower", "cpu_thermal", lines[0]] {
        let _ = thermal::cpu_channels(chip, &channels);
    }
    let _ = thermal::is_cpu_zone(lines[0]);

    // Battery: status, then power_now, current_now, voltage_now.
    for on_ac in [false, true] {
        if let Some(w) = battery::discharge_watts(lines[0], on_ac, int(1), int(2), int(3)) {
            assert!(w >= 0.0);
        }
    }

    // RAPL / hwmon energy: max_energy_range_uj, then energy_uj reads.
    let mut counter = energy::Counter::microjoules(uint(0));
    let start = Instant::now();
    for i in 1..lines.len().min(64) {
        if let Some(raw) = uint(i) {
            let _ = energy::counter_delta(uint(i - 1).unwrap_or(0), raw, uint(0));
            let _ = counter.update(raw, start + Duration::from_millis(i as u64));
        }
        let _ = rapl::domain_of(lines[i], i % 2 == 0);
    }
    let _ = counter.total_joules();
    if let Some(v) = rapl::cpu_vendor(text) {
        let _ = rapl::is_amd(v);
    }
    let _ = unamentis_agent::doctor::is_virtual(text);
});
