//! Fuzzes sysfs value helpers: channel names, amdgpu integers, RAPL zone dirs, trip kinds, PCI bus ids: any input must give a value or an error, never a
//! panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use unamentis_agent::families::thermal;
use unamentis_agent::families::{gpu, power};
use unamentis_agent::sources::sysfs;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for line in text.lines() {
        let _ = sysfs::channel(line, "fan", "_input");
        let _ = sysfs::channel(line, "temp", "_label");
        let _ = gpu::amdgpu::parse_int(line);
        let _ = power::rapl::parse_zone_dir(line);
        let _ = thermal::parse_trip_kind(line);
        let _ = gpu::normalize_pci_bus_id(line);
        let _ = thermal::is_cpu_zone(line);
    }
});
