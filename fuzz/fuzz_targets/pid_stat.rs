//! Fuzzes /proc/<pid>/stat, cmdline, io and fd link targets: any input must give a value or an error, never a
//! panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use unamentis_agent::sources::process;

fuzz_target!(|data: &[u8]| {
    let text = &String::from_utf8_lossy(data);
    let _ = process::parse_pid_stat(text);
    let _ = process::parse_cmdline(data);
    let _ = process::parse_proc_io(text);
    let _ = process::parse_socket_link(text);
});
