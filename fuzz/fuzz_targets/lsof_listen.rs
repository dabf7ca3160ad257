//! Fuzzes lsof -F listening sockets (macOS service ports): any input must give a value or an error, never a
//! panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use unamentis_agent::families::services;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = services::parse_lsof_listen(text);
});
