//! Fuzzes NETLINK_SOCK_DIAG replies: any input must give a value or an error, never a
//! panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use unamentis_agent::sources::sock_diag;

fuzz_target!(|data: &[u8]| {
    let mut out = Vec::new();
    let _ = sock_diag::parse_replies(data, &mut out);
});
