//! Fuzzes the TOML config file, through the whole load (defaults, file, validation): any input must give a value or an error, never a
//! panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = unamentis_agent::config::load_text(
        Some((std::path::Path::new("fuzz.toml"), text)),
        &|_| None,
        &Vec::new(),
    );
});
