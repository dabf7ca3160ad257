//! Fuzzes the body of POST /v1/activity (the push probe): any input must give a value or an error, never a
//! panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use unamentis_agent::server;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = server::parse_push(data) {
        // The handler relies on this range.
        assert!((1..=server::MAX_COUNT).contains(&p.count));
    }
});
