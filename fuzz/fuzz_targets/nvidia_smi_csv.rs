//! Fuzzes nvidia-smi --query-gpu and --query-compute-apps CSV: any input must give a value or an error, never a
//! panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use unamentis_agent::families::gpu;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = gpu::smi::parse_query_gpu(text);
    let _ = gpu::smi::parse_query_compute_apps(text);
});
