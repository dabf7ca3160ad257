//! Fuzzes /proc/net/tcp{,6}: any input must give a value or an error, never a
//! panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use unamentis_agent::sources::net_tcp;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = net_tcp::parse_net_tcp(text);
});
