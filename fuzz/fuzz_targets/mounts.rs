//! Fuzzes /proc/<pid>/mounts and mountinfo (octal escapes, short lines, mounts over mounts) and /proc/filesystems: any input must give a value or an error, never a
//! panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use unamentis_agent::families::filesystem;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let physical = filesystem::parse_filesystems(text);
    for m in filesystem::parse_mounts(text)
        .into_iter()
        .chain(filesystem::parse_mountinfo(text))
    {
        let _ = filesystem::is_reported(&m, Some(&physical));
    }
});
