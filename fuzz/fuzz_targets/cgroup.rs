//! Fuzzes the cgroup readers: mountinfo (octal escapes, optional fields,
//! short lines), `cpu.stat`, `cpuacct.usage`, v1/v2 `memory.stat`,
//! `cgroup.procs`, and glob matching: any input must give a value or
//! nothing, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use unamentis_agent::host::HostPaths;
use unamentis_agent::sources::cgroup;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mounts = cgroup::parse_cgroup_mounts(text);
    let _ = cgroup::Hierarchies::from_mounts(&mounts, &HostPaths::default());
    let _ = cgroup::parse_cpu_stat_usage_usec(text);
    let _ = cgroup::parse_cpuacct_usage(text);
    let _ = cgroup::parse_memory_v1(text);
    let _ = cgroup::parse_memory_v2(text);
    let _ = cgroup::parse_procs(text);
    let _ = cgroup::check_cgroup_pattern(text);
    let _ = cgroup::check_unit(text);
    if let Some((pattern, name)) = text.split_once('\n') {
        let _ = cgroup::glob_match(pattern, name);
    }
});
