//! Fuzzes ioreg text (-l) and XML (-a) output: any input must give a value or an error, never a
//! panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use unamentis_agent::families::macos;

fuzz_target!(|data: &[u8]| {
    let text = &String::from_utf8_lossy(data);
    let _ = macos::ioreg::parse_entries(text);
    let _ = macos::ioreg::parse_accelerators(text);
    let _ = macos::ioreg::parse_battery_text(text);
    let _ = macos::ioreg::parse_battery_xml(data);
});
