//! Fuzzes BSD/macOS `netstat -an -p tcp` output (the connections probe off Linux): any input must give a value or an error, never a
//! panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use unamentis_agent::activity::connections;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let sockets = connections::parse_netstat(&text);
    let ports: Vec<Vec<u16>> = sockets.iter().map(|s| vec![s.local.port()]).collect();
    let _ = connections::by_service(&sockets, &ports, &[]);
});
