//! The `cpu` family: busy percent from `/proc/stat`, load averages from
//! `/proc/loadavg`, core counts from `/sys/devices/system/cpu` topology;
//! with `[compat] hostmetrics` the per-CPU times behind `system.cpu.time`
//! (the `cpuN` lines of the same `/proc/stat` read; Mach's per-processor
//! ticks on macOS). Other platforms use sysinfo behind the same
//! `CpuSource` API.
//!
//! Formats: proc(5) (`/proc/stat`, `/proc/loadavg`) and the kernel's
//! Documentation/admin-guide/cputopology.rst.

use crate::host::HostPaths;
use crate::point::Point;
use crate::semconv::{self, attr};
use crate::sources::snapshot::{FamilySample, Snapshot};
use crate::sources::{ParseError, sysfs};

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CpuStats {
    /// Busy share of all logical CPUs since the previous sample, 0–100.
    pub percent: Option<f64>,
    /// 1, 5 and 15 minute load averages.
    pub load: Option<[f64; 3]>,
    pub logical: Option<u32>,
    pub physical: Option<u32>,
}

impl CpuStats {
    /// Cores not taken by runnable work: max(1, physical − load1).
    pub fn available(&self) -> Option<f64> {
        let physical = f64::from(self.physical?);
        let load1 = self.load?[0];
        Some((physical - load1).max(1.0))
    }
}

/// Per-CPU cumulative times for `system.cpu.time` (`[compat] hostmetrics`):
/// the `cpuN` lines of `/proc/stat` (Linux), Mach's per-processor ticks
/// (macOS).
#[derive(Debug, Clone, Default)]
pub struct PerCpuTimes {
    /// USER_HZ (CLK_TCK): the unit of the times.
    pub ticks_per_second: u64,
    pub cpus: Vec<(u32, CpuTimes)>,
    /// Where they come from, which says which states the host counts.
    pub origin: CpuTimesOrigin,
}

/// The counters behind [`PerCpuTimes`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CpuTimesOrigin {
    /// `/proc/stat`: all eight hostmetrics states.
    #[default]
    ProcStat,
    /// Mach `PROCESSOR_CPU_LOAD_INFO`: user, system, idle and nice only (no
    /// iowait, irq, softirq or steal counters exist).
    Mach,
}

impl FamilySample for CpuStats {
    fn points(&self, _snap: &Snapshot, out: &mut Vec<Point>) {
        if let Some(p) = self.percent {
            out.push(Point::new(&semconv::CPU_PERCENT, p));
        }
        if let Some([l1, l5, l15]) = self.load {
            for (period, v) in [("1m", l1), ("5m", l5), ("15m", l15)] {
                out.push(Point::new(&semconv::CPU_LOAD_AVERAGE, v).with(attr::PERIOD, period));
            }
        }
        let cores = [
            ("logical", self.logical.map(f64::from)),
            ("physical", self.physical.map(f64::from)),
            ("available", self.available()),
        ];
        for (kind, v) in cores {
            if let Some(v) = v {
                out.push(Point::new(&semconv::CPU_CORES, v).with(attr::KIND, kind));
            }
        }
    }
}

/// `system.cpu.time{cpu,state}` in seconds, the hostmetrics receiver's
/// names and states.
impl FamilySample for PerCpuTimes {
    fn points(&self, _snap: &Snapshot, out: &mut Vec<Point>) {
        if self.ticks_per_second == 0 {
            return;
        }
        let hz = self.ticks_per_second as f64;
        for (n, times) in &self.cpus {
            let cpu = format!("cpu{n}");
            // hostmetrics' state names: wait is iowait, interrupt is irq.
            let linux = [
                ("user", times.user),
                ("nice", times.nice),
                ("system", times.system),
                ("idle", times.idle),
                ("wait", times.iowait),
                ("interrupt", times.irq),
                ("softirq", times.softirq),
                ("steal", times.steal),
            ];
            // The receiver reports user, system, idle and interrupt on
            // macOS (not nice); Mach counts no interrupt time, and a value
            // the host does not count has no point.
            let mach = [
                ("user", times.user),
                ("system", times.system),
                ("idle", times.idle),
            ];
            let states: &[(&str, u64)] = match self.origin {
                CpuTimesOrigin::ProcStat => &linux,
                CpuTimesOrigin::Mach => &mach,
            };
            for &(state, ticks) in states {
                out.push(
                    Point::new(&semconv::SYSTEM_CPU_TIME, ticks as f64 / hz)
                        .with(attr::CPU, cpu.as_str())
                        .with(attr::STATE, state),
                );
            }
        }
    }
}

/// Cumulative jiffies of the aggregate `cpu` line of `/proc/stat`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTimes {
    pub user: u64,
    pub nice: u64,
    pub system: u64,
    pub idle: u64,
    pub iowait: u64,
    pub irq: u64,
    pub softirq: u64,
    pub steal: u64,
}

/// The eight columns in `/proc/stat` order: user, nice, system, idle,
/// iowait, irq, softirq, steal.
impl From<[u64; 8]> for CpuTimes {
    fn from(v: [u64; 8]) -> Self {
        CpuTimes {
            user: v[0],
            nice: v[1],
            system: v[2],
            idle: v[3],
            iowait: v[4],
            irq: v[5],
            softirq: v[6],
            steal: v[7],
        }
    }
}

impl CpuTimes {
    /// guest and guest_nice are already counted in user and nice, so they are
    /// left out of the total (proc(5)).
    /// Saturating: the columns come from a file (a hostile or corrupt one
    /// must not overflow).
    pub fn total(&self) -> u64 {
        [
            self.nice,
            self.system,
            self.idle,
            self.iowait,
            self.irq,
            self.softirq,
            self.steal,
        ]
        .iter()
        .fold(self.user, |a, &b| a.saturating_add(b))
    }

    /// Column-wise maximum with `other`.
    pub fn max_columns(&self, other: &CpuTimes) -> CpuTimes {
        CpuTimes {
            user: self.user.max(other.user),
            nice: self.nice.max(other.nice),
            system: self.system.max(other.system),
            idle: self.idle.max(other.idle),
            iowait: self.iowait.max(other.iowait),
            irq: self.irq.max(other.irq),
            softirq: self.softirq.max(other.softirq),
            steal: self.steal.max(other.steal),
        }
    }

    /// iowait is idle time spent waiting for I/O: the CPU was free to run
    /// other work, so it counts as idle (as top and psutil do).
    pub fn idle_all(&self) -> u64 {
        self.idle.saturating_add(self.iowait)
    }
}

/// Busy percent between two samples; `None` when no time passed or the
/// counters went backwards (iowait can decrease on some kernels).
pub fn busy_percent(prev: &CpuTimes, cur: &CpuTimes) -> Option<f64> {
    let total = cur.total().checked_sub(prev.total())?;
    if total == 0 {
        return None;
    }
    let idle = cur.idle_all().saturating_sub(prev.idle_all()).min(total);
    Some(((total - idle) as f64 / total as f64 * 100.0).clamp(0.0, 100.0))
}

/// The parts of `/proc/stat` this source uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcStat {
    pub total: CpuTimes,
    /// Number of `cpuN` lines: the online logical CPUs.
    pub logical_cpus: u32,
}

/// The time columns of one `cpu`/`cpuN` line (after the label).
fn parse_cpu_columns<'a>(
    label: &str,
    mut fields: impl Iterator<Item = &'a str>,
) -> Result<CpuTimes, ParseError> {
    let mut v = [0u64; 8];
    for (i, slot) in v.iter_mut().enumerate() {
        // Kernels before 2.6.11 lack steal; treat missing trailing
        // columns as 0, but at least user..idle must be there.
        match fields.next() {
            Some(f) => {
                *slot = f.parse().map_err(|_| {
                    ParseError(format!(
                        "{label} line: column {} is not a number: {f:?}",
                        i + 1
                    ))
                })?
            }
            None if i >= 4 => break,
            None => return Err(ParseError(format!("{label} line has only {i} columns"))),
        }
    }
    Ok(CpuTimes::from(v))
}

/// The CPU number of a `cpuN` label of `/proc/stat`, or of a
/// `devices/system/cpu` entry (`None` for `cpufreq`, `cpuidle`, `online`).
pub fn cpu_number(label: &str) -> Option<u32> {
    let n = label.strip_prefix("cpu")?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    n.parse().ok()
}

pub fn parse_stat(text: &str) -> Result<ProcStat, ParseError> {
    let mut total = None;
    let mut logical_cpus = 0u32;
    for line in text.lines() {
        let mut fields = line.split_ascii_whitespace();
        let Some(label) = fields.next() else { continue };
        if label == "cpu" {
            total = Some(parse_cpu_columns(label, fields)?);
        } else if label.len() > 3
            && label.starts_with("cpu")
            && label[3..].bytes().all(|b| b.is_ascii_digit())
        {
            logical_cpus += 1;
        }
    }
    let total = total.ok_or_else(|| ParseError("no aggregate `cpu` line".into()))?;
    Ok(ProcStat {
        total,
        logical_cpus,
    })
}

/// The per-CPU `cpuN` lines of `/proc/stat`, by CPU number (offline CPUs
/// have no line, so numbers can have gaps).
pub fn parse_per_cpu(text: &str) -> Result<Vec<(u32, CpuTimes)>, ParseError> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut fields = line.split_ascii_whitespace();
        let Some(label) = fields.next() else { continue };
        if let Some(n) = cpu_number(label) {
            out.push((n, parse_cpu_columns(label, fields)?));
        }
    }
    Ok(out)
}

/// `/proc/loadavg`: "0.20 0.18 0.12 1/80 11206".
pub fn parse_loadavg(text: &str) -> Result<[f64; 3], ParseError> {
    let mut fields = text.split_ascii_whitespace();
    let mut out = [0.0; 3];
    for (i, slot) in out.iter_mut().enumerate() {
        let f = fields
            .next()
            .ok_or_else(|| ParseError(format!("expected 3 load averages, found {i}")))?;
        let v: f64 = f
            .parse()
            .map_err(|_| ParseError(format!("load average {f:?} is not a number")))?;
        if !v.is_finite() || v < 0.0 {
            return Err(ParseError(format!("load average {f:?} is out of range")));
        }
        *slot = v;
    }
    Ok(out)
}

/// The fifth field of `/proc/loadavg`: the pid the kernel handed out last
/// (to a process or a thread) in the reader's pid namespace (proc(5)).
pub fn parse_last_pid(text: &str) -> Option<u32> {
    text.split_ascii_whitespace().nth(4)?.parse().ok()
}

/// A kernel cpulist ("0-3,8,10-11") as the CPU numbers it names.
pub fn parse_cpu_list(text: &str) -> Result<Vec<u32>, ParseError> {
    let text = text.trim();
    let mut cpus = Vec::new();
    if text.is_empty() {
        return Ok(cpus);
    }
    for part in text.split(',') {
        let bad = || ParseError(format!("bad cpu list entry {part:?}"));
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u32, u32) =
                    (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
                if a > b || b - a > 65_536 {
                    return Err(bad());
                }
                cpus.extend(a..=b);
            }
            None => cpus.push(part.parse().map_err(|_| bad())?),
        }
    }
    Ok(cpus)
}

/// The `topology/` files of one CPU that tell its physical core
/// (Documentation/admin-guide/cputopology.rst), as read; `None` where a
/// file is missing. Offline CPUs have no `topology/` directory at all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CpuTopology {
    /// `core_cpus_list` (5.6 and later), else `thread_siblings_list`.
    pub siblings: Option<String>,
    pub physical_package_id: Option<String>,
    pub die_id: Option<String>,
    pub cluster_id: Option<String>,
    pub core_id: Option<String>,
}

impl CpuTopology {
    /// The same for every SMT sibling of one physical core and distinct
    /// across cores: the siblings list when there is one, else the ids.
    /// `core_id` is only unique within a package (and, where the kernel
    /// has them, a die and a cluster: arm64 numbers cores from 0 in every
    /// cluster), so the enclosing ids are part of the key. `None` without
    /// any of these files (an offline CPU).
    pub fn core_key(&self) -> Option<String> {
        if let Some(list) = &self.siblings {
            return Some(format!("cpus {}", list.trim()));
        }
        let core = self.core_id.as_deref()?.trim();
        let id = |v: &Option<String>| v.as_deref().map_or("-", str::trim).to_owned();
        Some(format!(
            "package {} die {} cluster {} core {core}",
            id(&self.physical_package_id),
            id(&self.die_id),
            id(&self.cluster_id)
        ))
    }

    /// Reads CPU `cpu`'s topology; the ids only when no siblings list exists.
    pub fn read(paths: &HostPaths, cpu: u32) -> CpuTopology {
        let dir = format!("{CPUS}/cpu{cpu}/topology");
        let read = |f: &str| sysfs::read_text(paths, format!("{dir}/{f}")).ok();
        let siblings = read("core_cpus_list").or_else(|| read("thread_siblings_list"));
        let ids = siblings.is_none();
        CpuTopology {
            physical_package_id: read("physical_package_id"),
            die_id: ids.then(|| read("die_id")).flatten(),
            cluster_id: ids.then(|| read("cluster_id")).flatten(),
            core_id: ids.then(|| read("core_id")).flatten(),
            siblings,
        }
    }
}

pub const CPUS: &str = "devices/system/cpu";

/// The `cpu[0-9]+` directories of `devices/system/cpu`, by number. Every
/// present CPU has one, online or not; `devices/system/cpu/online` is not
/// needed (some sandboxed and older sysfs views lack it).
pub fn cpu_dirs(paths: &HostPaths) -> Vec<u32> {
    let mut cpus: Vec<u32> = sysfs::entries(paths, CPUS)
        .iter()
        .filter_map(|e| cpu_number(e))
        .collect();
    cpus.sort_unstable();
    cpus
}

/// Whether `cpuN/online` says the CPU is offline (`0`). CPUs that cannot
/// be taken offline (often cpu0) have no such file: online.
pub fn is_offline(paths: &HostPaths, cpu: u32) -> bool {
    sysfs::read_text(paths, format!("{CPUS}/cpu{cpu}/online")).is_ok_and(|s| s == "0")
}

/// Distinct physical cores among the online CPUs, from their
/// [`CpuTopology::core_key`].
pub fn count_cores(topologies: &[CpuTopology]) -> usize {
    let keys: std::collections::HashSet<String> = topologies
        .iter()
        .filter_map(CpuTopology::core_key)
        .collect();
    keys.len()
}

/// Mach's per-CPU tick counters (`host_processor_info` with
/// `PROCESSOR_CPU_LOAD_INFO`: user, system, idle, nice per CPU, in that
/// order), which are 32-bit and wrap (after about 497 days of one state at
/// 100 Hz): extended to 64 bits here so `system.cpu.time` never goes back.
#[derive(Debug, Clone, Default)]
pub struct MachTicks {
    last: Vec<[u32; 4]>,
    wraps: Vec<[u64; 4]>,
}

impl MachTicks {
    /// One reading; the cumulative 64-bit times per CPU. A change in the
    /// number of CPUs starts over.
    pub fn update(&mut self, now: &[[u32; 4]]) -> Vec<(u32, CpuTimes)> {
        if self.last.len() != now.len() {
            self.last = now.to_vec();
            self.wraps = vec![[0; 4]; now.len()];
        }
        let mut out = Vec::with_capacity(now.len());
        for (i, ticks) in now.iter().enumerate() {
            let mut full = [0u64; 4];
            for s in 0..4 {
                if ticks[s] < self.last[i][s] {
                    self.wraps[i][s] = self.wraps[i][s].saturating_add(1);
                }
                self.last[i][s] = ticks[s];
                full[s] = (self.wraps[i][s] << 32) | u64::from(ticks[s]);
            }
            let Ok(n) = u32::try_from(i) else { break };
            out.push((
                n,
                CpuTimes {
                    user: full[0],
                    system: full[1],
                    idle: full[2],
                    nice: full[3],
                    ..Default::default()
                },
            ));
        }
        out
    }
}

#[cfg(target_os = "linux")]
mod imp {
    use super::*;
    use crate::sources::process::clock_ticks_per_second;
    use crate::sources::{Source, SourceError};

    pub struct CpuSource {
        paths: HostPaths,
        prev: Option<CpuTimes>,
        /// Physical cores, re-read only when the online set changes.
        physical: Option<(u32, Option<u32>)>,
        /// Also keep the per-CPU times (`[compat] hostmetrics`).
        per_cpu: bool,
        /// The highest per-CPU times reported so far.
        per_cpu_max: Vec<(u32, CpuTimes)>,
    }

    impl CpuSource {
        /// Reads `/proc/stat` once so the first sample has a baseline.
        pub fn new(paths: HostPaths) -> Self {
            let prev = paths
                .read_proc("stat")
                .ok()
                .and_then(|t| parse_stat(&t).ok())
                .map(|s| s.total);
            CpuSource {
                paths,
                prev,
                physical: None,
                per_cpu: false,
                per_cpu_max: Vec::new(),
            }
        }

        /// Per-CPU columns can step back slightly (iowait especially,
        /// proc_stat(5)); system.cpu.time is a counter, so each column
        /// reports the highest value seen.
        fn never_backwards(&mut self, cur: Vec<(u32, CpuTimes)>) -> Vec<(u32, CpuTimes)> {
            let out: Vec<(u32, CpuTimes)> = cur
                .into_iter()
                .map(
                    |(n, t)| match self.per_cpu_max.iter().find(|(m, _)| *m == n) {
                        Some((_, prev)) => (n, t.max_columns(prev)),
                        None => (n, t),
                    },
                )
                .collect();
            self.per_cpu_max.clone_from(&out);
            out
        }

        /// Also parse the `cpuN` lines of the same `/proc/stat` read into
        /// [`PerCpuTimes`] (for `system.cpu.time`).
        pub fn with_per_cpu_times(mut self, on: bool) -> Self {
            self.per_cpu = on;
            self
        }

        /// Physical cores of the online CPUs, walking the `cpuN`
        /// directories (see [`CpuTopology::core_key`]).
        fn physical_cores(&self) -> Result<u32, SourceError> {
            let cpus = cpu_dirs(&self.paths);
            if cpus.is_empty() {
                return Err(SourceError::Unavailable(format!(
                    "no cpuN directory in {}",
                    self.paths.sys_path(CPUS).display()
                )));
            }
            let topologies: Vec<CpuTopology> = cpus
                .into_iter()
                .filter(|&c| !is_offline(&self.paths, c))
                .map(|c| CpuTopology::read(&self.paths, c))
                .collect();
            match u32::try_from(count_cores(&topologies)) {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(SourceError::Failed(format!(
                    "no CPU in {} has a topology (core_cpus_list, thread_siblings_list or core_id)",
                    self.paths.sys_path(CPUS).display()
                ))),
            }
        }
    }

    impl Source for CpuSource {
        fn name(&self) -> &'static str {
            "cpu"
        }

        fn sample(&mut self, snap: &mut Snapshot) -> Result<(), SourceError> {
            let mut stats = CpuStats::default();
            let mut first_err = None;

            match self.paths.read_proc("stat") {
                Ok(text) => match parse_stat(&text) {
                    Ok(stat) => {
                        stats.percent = self.prev.and_then(|p| busy_percent(&p, &stat.total));
                        self.prev = Some(stat.total);
                        stats.logical = Some(stat.logical_cpus).filter(|&n| n > 0);
                        if self.per_cpu {
                            match parse_per_cpu(&text) {
                                Ok(t) => {
                                    let cpus = self.never_backwards(t);
                                    snap.put(PerCpuTimes {
                                        ticks_per_second: clock_ticks_per_second(),
                                        cpus,
                                        origin: CpuTimesOrigin::ProcStat,
                                    });
                                }
                                Err(e) => first_err = Some(e.in_file("/proc/stat")),
                            }
                        }
                    }
                    Err(e) => first_err = Some(e.in_file("/proc/stat")),
                },
                Err(e) => first_err = Some(e.into()),
            }

            match self.paths.read_proc("loadavg") {
                Ok(text) => match parse_loadavg(&text) {
                    Ok(l) => stats.load = Some(l),
                    Err(e) => first_err = first_err.or(Some(e.in_file("/proc/loadavg"))),
                },
                Err(e) => first_err = first_err.or(Some(e.into())),
            }

            let logical = stats.logical.unwrap_or(0);
            match self.physical {
                Some((n, physical)) if n == logical => stats.physical = physical,
                _ => {
                    let physical = match self.physical_cores() {
                        Ok(p) => Some(p),
                        Err(e) => {
                            first_err = first_err.or(Some(e));
                            None
                        }
                    };
                    self.physical = Some((logical, physical));
                    stats.physical = physical;
                }
            }

            snap.put(stats);
            first_err.map_or(Ok(()), Err)
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use super::*;
    use crate::sources::{Source, SourceError};
    use sysinfo::System;

    pub struct CpuSource {
        sys: Option<System>,
        physical: Option<u32>,
        /// Per-CPU times for `system.cpu.time` (`[compat] hostmetrics`,
        /// macOS only: sysinfo gives none).
        per_cpu: Option<MachTicks>,
    }

    impl CpuSource {
        /// Refreshes CPU usage once so the first sample has a baseline.
        /// `HostPaths` has no meaning here: sysinfo reads the local host.
        pub fn new(_paths: HostPaths) -> Self {
            let mut sys = System::new().ok();
            if let Some(s) = sys.as_mut() {
                s.refresh_cpu_usage();
            }
            let physical = System::physical_core_count()
                .ok()
                .and_then(|n| u32::try_from(n).ok());
            CpuSource {
                sys,
                physical,
                per_cpu: None,
            }
        }

        /// Also read the per-CPU times (macOS: Mach's tick counters; other
        /// platforms have none and `system.cpu.time` is absent).
        pub fn with_per_cpu_times(mut self, on: bool) -> Self {
            self.per_cpu = (on && cfg!(target_os = "macos")).then(MachTicks::default);
            self
        }
    }

    /// The per-CPU (user, system, idle, nice) ticks of
    /// `host_processor_info(PROCESSOR_CPU_LOAD_INFO)`.
    #[cfg(target_os = "macos")]
    #[allow(deprecated)] // libc points the Mach calls to the mach2 crate
    fn mach_cpu_load() -> Result<Vec<[u32; 4]>, SourceError> {
        use std::sync::OnceLock;
        // mach_host_self() hands out a port right per call: take one.
        static HOST: OnceLock<libc::host_t> = OnceLock::new();
        // SAFETY: mach_host_self has no preconditions.
        let host = *HOST.get_or_init(|| unsafe { libc::mach_host_self() });
        let mut ncpu: libc::natural_t = 0;
        let mut info: libc::processor_info_array_t = std::ptr::null_mut();
        let mut count: libc::mach_msg_type_number_t = 0;
        // SAFETY: valid out pointers; on success the kernel allocates
        // `count` integers at `info` in our address space, freed below.
        let kr = unsafe {
            libc::host_processor_info(
                host,
                libc::PROCESSOR_CPU_LOAD_INFO,
                &mut ncpu,
                &mut info,
                &mut count,
            )
        };
        if kr != libc::KERN_SUCCESS || info.is_null() {
            return Err(SourceError::Failed(format!(
                "host_processor_info(PROCESSOR_CPU_LOAD_INFO) returned {kr}"
            )));
        }
        // SAFETY: the kernel wrote `count` integers at `info`.
        let ints = unsafe { std::slice::from_raw_parts(info, count as usize) };
        let state = libc::CPU_STATE_MAX as usize;
        let ticks = ints
            .chunks_exact(state)
            .take(ncpu as usize)
            .map(|c| {
                let at = |i: libc::c_int| c[i as usize] as u32;
                [
                    at(libc::CPU_STATE_USER),
                    at(libc::CPU_STATE_SYSTEM),
                    at(libc::CPU_STATE_IDLE),
                    at(libc::CPU_STATE_NICE),
                ]
            })
            .collect();
        // SAFETY: the region host_processor_info allocated, freed once.
        unsafe {
            libc::vm_deallocate(
                libc::mach_task_self(),
                info as libc::vm_address_t,
                count as usize * std::mem::size_of::<libc::integer_t>(),
            );
        }
        Ok(ticks)
    }

    impl Source for CpuSource {
        fn name(&self) -> &'static str {
            "cpu"
        }

        fn sample(&mut self, snap: &mut Snapshot) -> Result<(), SourceError> {
            let sys = self
                .sys
                .as_mut()
                .ok_or_else(|| SourceError::Unavailable("sysinfo cannot read this host".into()))?;
            sys.refresh_cpu_usage();
            let load = System::load_average()
                .ok()
                .map(|l| [l.one, l.five, l.fifteen]);
            snap.put(CpuStats {
                percent: Some(f64::from(sys.global_cpu_usage()).clamp(0.0, 100.0)),
                load,
                logical: u32::try_from(sys.cpus().len()).ok().filter(|&n| n > 0),
                physical: self.physical,
            });
            #[cfg(target_os = "macos")]
            if let Some(mach) = self.per_cpu.as_mut() {
                let cpus = mach.update(&mach_cpu_load()?);
                // SAFETY: sysconf has no preconditions.
                let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
                snap.put(PerCpuTimes {
                    ticks_per_second: u64::try_from(hz).unwrap_or(0),
                    cpus,
                    origin: CpuTimesOrigin::Mach,
                });
            }
            Ok(())
        }
    }
}

pub use imp::CpuSource;

/// The cpu family's source; `per_cpu_times` with `[compat] hostmetrics`.
pub fn build(per_cpu_times: bool) -> super::Builder {
    super::one(move |paths| {
        Box::new(CpuSource::new(paths.clone()).with_per_cpu_times(per_cpu_times))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "cpu  100 5 50 800 40 3 2 0 7 0\ncpu0 50 2 25 400 20 1 1 0 0 0\ncpu1 50 3 25 400 20 2 1 0 0 0\nintr 1 2 3\nctxt 42\n";

    #[test]
    fn stat_aggregate_and_logical_count() {
        let s = parse_stat(STAT).unwrap();
        assert_eq!(s.logical_cpus, 2);
        assert_eq!(s.total.user, 100);
        assert_eq!(s.total.iowait, 40);
        // guest (7) is not added again.
        assert_eq!(s.total.total(), 100 + 5 + 50 + 800 + 40 + 3 + 2);
    }

    #[test]
    fn per_cpu_lines_by_number_with_gaps() {
        let t = parse_per_cpu("cpu  9 9 9 9\ncpu0 1 2 3 4 5 6 7 8 9 10\ncpu3 10 0 0 20\nintr 1\n")
            .unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].0, 0);
        assert_eq!((t[0].1.user, t[0].1.steal, t[0].1.total()), (1, 8, 36));
        assert_eq!(t[1].0, 3, "offline cpu1 and cpu2 leave a gap");
        assert_eq!((t[1].1.user, t[1].1.idle, t[1].1.iowait), (10, 20, 0));
        assert!(parse_per_cpu("cpu0 1 x 3 4\n").is_err());
        assert!(parse_per_cpu("cpufreq 1 2 3 4\n").unwrap().is_empty());
    }

    #[test]
    fn mach_ticks_in_state_order_and_across_a_wrap() {
        let mut m = MachTicks::default();
        let t = m.update(&[[10, 20, 30, 4], [1, 2, 3, 0]]);
        assert_eq!(t.len(), 2);
        assert_eq!(
            (
                t[0].1.user,
                t[0].1.system,
                t[0].1.idle,
                t[0].1.nice,
                t[0].1.irq
            ),
            (10, 20, 30, 4, 0)
        );
        let t = m.update(&[[u32::MAX, 21, 31, 4], [2, 2, 3, 0]]);
        assert_eq!(t[0].1.user, u64::from(u32::MAX));
        // The counter wrapped past 2^32: 5 more ticks.
        let t = m.update(&[[4, 21, 31, 4], [2, 2, 3, 0]]);
        assert_eq!(t[0].1.user, (1 << 32) + 4);
        // One CPU fewer: start over.
        let t = m.update(&[[7, 0, 0, 0]]);
        assert_eq!((t.len(), t[0].1.user), (1, 7));
    }

    #[test]
    fn stat_old_kernel_without_steal() {
        let s = parse_stat("cpu 1 2 3 4 5\ncpu0 1 2 3 4 5\n").unwrap();
        assert_eq!(s.total.total(), 15);
    }

    #[test]
    fn stat_rejects_garbage() {
        assert!(parse_stat("").is_err());
        assert!(parse_stat("cpu 1 2 x 4\n").is_err());
        assert!(parse_stat("cpu 1 2\n").is_err());
    }

    #[test]
    fn last_pid() {
        assert_eq!(parse_last_pid("0.20 0.18 0.12 1/80 11206\n"), Some(11206));
        assert_eq!(parse_last_pid("0.20 0.18 0.12 1/80\n"), None);
        assert_eq!(parse_last_pid("0.20 0.18 0.12 1/80 -1\n"), None);
    }

    #[test]
    fn busy_percent_counts_iowait_as_idle() {
        let a = CpuTimes {
            user: 100,
            idle: 100,
            ..Default::default()
        };
        let b = CpuTimes {
            user: 130,
            idle: 150,
            iowait: 20,
            ..Default::default()
        };
        // 100 jiffies passed, 30 busy.
        assert_eq!(busy_percent(&a, &b), Some(30.0));
        assert_eq!(
            busy_percent(&b, &a),
            None,
            "counters going back give no value"
        );
        assert_eq!(busy_percent(&a, &a), None, "no time passed gives no value");
        // Columns near u64::MAX (a corrupt file) saturate, never overflow.
        let huge = CpuTimes {
            user: u64::MAX,
            idle: u64::MAX,
            iowait: u64::MAX,
            ..Default::default()
        };
        assert_eq!((huge.total(), huge.idle_all()), (u64::MAX, u64::MAX));
        assert_eq!(busy_percent(&a, &huge), Some(0.0));
    }

    #[test]
    fn loadavg() {
        assert_eq!(
            parse_loadavg("0.20 1.18 12.50 1/80 11206\n").unwrap(),
            [0.2, 1.18, 12.5]
        );
        assert!(parse_loadavg("0.20 1.18\n").is_err());
        assert!(parse_loadavg("0.20 nan 1 1/2 3").is_err());
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(
            parse_cpu_list("0-3,8,10-11\n").unwrap(),
            vec![0, 1, 2, 3, 8, 10, 11]
        );
        assert_eq!(parse_cpu_list("0\n").unwrap(), vec![0]);
        assert!(parse_cpu_list("").unwrap().is_empty());
        assert!(parse_cpu_list("3-1").is_err());
        assert!(parse_cpu_list("a").is_err());
    }

    #[test]
    fn core_keys_from_lists_or_ids() {
        let ids = |pkg: &str, core: &str| CpuTopology {
            physical_package_id: Some(pkg.into()),
            core_id: Some(core.into()),
            ..Default::default()
        };
        // 2 packages × 2 cores × 2 threads, ids only: core 0 of each
        // package is a different core; SMT siblings share one.
        let cpus: Vec<CpuTopology> = [("0", "0"), ("0", "1"), ("1", "0"), ("1", "1")]
            .iter()
            .cycle()
            .take(8)
            .map(|&(p, c)| ids(p, c))
            .collect();
        assert_eq!(count_cores(&cpus), 4);
        // arm64 numbers cores from 0 in each cluster.
        let cluster = |cl: &str, core: &str| CpuTopology {
            cluster_id: Some(cl.into()),
            ..ids("0", core)
        };
        assert_eq!(
            count_cores(&[cluster("0", "0"), cluster("0", "1"), cluster("1", "0")]),
            3
        );
        // A siblings list wins; `0,4` and `0,4\n` are one core.
        let listed = |l: &str| CpuTopology {
            siblings: Some(l.into()),
            ..ids("0", "9")
        };
        assert_eq!(listed("0,4").core_key(), listed("0,4\n").core_key());
        assert_eq!(
            count_cores(&[listed("0,4"), listed("0,4"), listed("1,5")]),
            2
        );
        // An offline CPU has no topology: no key, not a core.
        assert_eq!(CpuTopology::default().core_key(), None);
        assert_eq!(count_cores(&[CpuTopology::default()]), 0);
        assert_eq!(cpu_number("cpu12"), Some(12));
        assert_eq!(cpu_number("cpufreq"), None);
        assert_eq!(cpu_number("cpu"), None);
    }

    #[test]
    fn available_cores() {
        let mut s = CpuStats {
            physical: Some(4),
            load: Some([1.5, 0.0, 0.0]),
            ..Default::default()
        };
        assert_eq!(s.available(), Some(2.5));
        s.load = Some([9.0, 0.0, 0.0]);
        assert_eq!(s.available(), Some(1.0), "never below one core");
        s.physical = None;
        assert_eq!(s.available(), None);
    }
}
