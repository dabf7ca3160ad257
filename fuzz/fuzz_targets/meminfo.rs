//! Fuzzes /proc/meminfo (totals and the hostmetrics state breakdown): any input must give a value or an error, never a
//! panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use unamentis_agent::families::memory;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = memory::parse_meminfo(text);
    let _ = memory::parse_meminfo_states(text);
});
