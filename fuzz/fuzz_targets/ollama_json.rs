//! Fuzzes Ollama /api/ps JSON: any input must give a value or an error, never a
//! panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use unamentis_agent::families::models;

fuzz_target!(|data: &[u8]| {
    let _ = models::parse_ps(data);
});
