//! Fuzzes the Tcp lines of /proc/net/snmp and the gate that compares two of them: any input must give a value or an error, never a
//! panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use unamentis_agent::activity::connections::{Gate, parse_snmp_tcp};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Two reads of the file: the text up to and after the first NUL.
    let (a, b) = text.split_once('\0').unwrap_or((text, text));
    let (Some(was), Some(now)) = (parse_snmp_tcp(a), parse_snmp_tcp(b)) else {
        return;
    };
    let g = Gate {
        counters: was,
        own: (now.active_opens, was.passive_opens),
        sockets: Vec::new(),
    };
    let _ = g.unchanged(&now, (was.curr_estab, now.estab_resets));
});
