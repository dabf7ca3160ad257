//! The `services` family: per-service CPU, memory and disk I/O. Find each configured service's
//! processes and measure the whole process tree under them.
//!
//! A service's matchers must all hold for a process to be one of its roots
//! (`process` name, `cmdline` regex, listening `port`s, `pid_file`); the
//! service is every root plus all descendants. A process two services
//! match goes to the one listed first. A `systemd_unit` or `cgroup`
//! service is its cgroup's processes instead (`sources::cgroup`), its own
//! whatever the order.
//!
//! Cost: each cycle lists the proc directory once (no file reads) and reads
//! `stat` of new processes and `stat` and `io` of the services' processes
//! only (`cgroup` once per process a service or the top list holds); the
//! owners of listening ports are looked up (a readlink per open fd) only when the
//! set of listening sockets changes. Every `RESCAN_EVERY` cycles all
//! processes' `stat` is re-read, to see a process that exec'd into a match.

use std::collections::VecDeque;

use crate::config::{ServiceConfig, ServicesSection};
use crate::point::{AttrValue, Point};
use crate::semconv::{self, attr};
use crate::sources::snapshot::{FamilySample, Snapshot};

use super::cpu::CpuStats;
use super::gpu::GpuStats;
use super::memory::MemoryStats;
pub use crate::patterns::{MAX_CMDLINE_PATTERN, MAX_CMDLINE_PROGRAM, cmdline_regex};
pub use crate::sources::process::{ContainerIdentity, ProcIo};

/// One service's sample.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServiceSample {
    pub name: String,
    pub pids: Vec<u32>,
    /// How the roots were found, for `services` and logs.
    pub matched: Vec<String>,
    /// Why nothing matched, when it is known (an unreadable socket owner).
    pub note: Option<String>,
    /// % of one core over the time since the previous sample (like `ps`).
    pub cpu_percent: Option<f64>,
    pub rss_bytes: Option<u64>,
    pub threads: Option<u64>,
    pub open_files: Option<u64>,
    pub growth_mib_per_hour: Option<f64>,
    /// Storage bytes read and written by the service's processes since the
    /// agent started (`/proc/<pid>/io`, reaped children included): a
    /// counter that carries on across restarts and exited workers. Absent
    /// when a process's file could not be read (`disk_io_note` says why),
    /// and for `systemd_unit` and `cgroup` services.
    pub disk_io: Option<ProcIo>,
    pub disk_io_note: Option<String>,
    /// What all its processes share of their container and pod (a field
    /// is set only when every process has the same value).
    pub container: ContainerIdentity,
}

impl ServiceSample {
    pub fn up(&self) -> bool {
        !self.pids.is_empty()
    }
}

/// A busy process no service claimed (`top_processes`).
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessSample {
    pub pid: u32,
    pub name: String,
    pub cpu_percent: f64,
    pub rss_bytes: u64,
    pub container: ContainerIdentity,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServicesSample {
    pub services: Vec<ServiceSample>,
    pub top: Vec<ProcessSample>,
}

/// What a platform's services source derives from the configuration.
pub struct Plan {
    pub matchers: Vec<Matcher>,
    /// Every port a matcher names.
    pub ports: std::collections::BTreeSet<u16>,
    pub growth: Vec<Growth>,
    pub top_n: usize,
}

impl Plan {
    pub fn new(section: &ServicesSection) -> Plan {
        let matchers: Vec<Matcher> = section.services.iter().map(Matcher::from_config).collect();
        Plan {
            ports: matchers
                .iter()
                .flat_map(|m| m.ports.iter().copied())
                .collect(),
            growth: vec![Growth::default(); matchers.len()],
            matchers,
            top_n: section.top_processes as usize,
        }
    }
}

/// The compiled matchers of one service.
#[derive(Debug, Clone)]
pub struct Matcher {
    pub name: String,
    pub process: Vec<String>,
    pub cmdline: Option<regex::Regex>,
    pub ports: Vec<u16>,
    pub pid_file: Option<std::path::PathBuf>,
    /// `systemd_unit` or `cgroup`: the service is that cgroup, alone.
    pub cgroup: Option<crate::sources::cgroup::CgroupSpec>,
}

/// How [`Matcher::describe`] words the matchers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wording {
    /// What the service is, for `services`: `process ollama`, `cmdline
    /// /re/`, `listening on 11434|11435`, `pid in /run/x.pid`, `systemd
    /// unit x.service`.
    Config,
    /// What was not found, after "no process" in a down note: `named
    /// ollama`, `with a command line matching /re/`, `with the pid in
    /// /run/x.pid`. Ports and cgroups have notes of their own.
    Missing,
}

impl Matcher {
    /// The matchers in words, in the order of the configuration keys.
    pub fn describe(&self, wording: Wording) -> Vec<String> {
        let config = wording == Wording::Config;
        let mut out = Vec::new();
        if !self.process.is_empty() {
            let names = self.process.join("|");
            out.push(match wording {
                Wording::Config => format!("process {names}"),
                Wording::Missing => format!("named {names}"),
            });
        }
        if let Some(re) = &self.cmdline {
            out.push(match wording {
                Wording::Config => format!("cmdline /{re}/"),
                Wording::Missing => format!("with a command line matching /{re}/"),
            });
        }
        if config && !self.ports.is_empty() {
            let ports: Vec<String> = self.ports.iter().map(u16::to_string).collect();
            out.push(format!("listening on {}", ports.join("|")));
        }
        if let Some(f) = &self.pid_file {
            out.push(match wording {
                Wording::Config => format!("pid in {}", f.display()),
                Wording::Missing => format!("with the pid in {}", f.display()),
            });
        }
        if let (true, Some(cg)) = (config, &self.cgroup) {
            out.push(cg.display.clone());
        }
        out
    }

    /// Config is validated before this (regexes compile), so a failure here
    /// only drops that matcher's regex.
    pub fn from_config(c: &ServiceConfig) -> Matcher {
        Matcher {
            name: c.name.clone(),
            process: c.process.clone(),
            cmdline: c.cmdline.as_deref().and_then(|r| cmdline_regex(r).ok()),
            ports: c.port.iter().chain(&c.ports).copied().collect(),
            pid_file: c.pid_file.clone(),
            cgroup: c
                .systemd_unit
                .as_deref()
                .map(crate::sources::cgroup::CgroupSpec::systemd_unit)
                .or_else(|| {
                    c.cgroup
                        .as_deref()
                        .map(crate::sources::cgroup::CgroupSpec::path)
                }),
        }
    }

    /// Name matching: the kernel's `comm` (15 bytes at most) or the first
    /// word of argv[0]'s file name (`/usr/bin/python3`, and process titles
    /// like `next-server (v14.2.3)`).
    pub fn name_matches(&self, comm: &str, cmdline: &str) -> bool {
        if self.process.is_empty() {
            return true;
        }
        let argv0 = cmdline.split(' ').next().unwrap_or("");
        let base = argv0.rsplit('/').next().unwrap_or("");
        self.process.iter().any(|n| n == comm || n == base)
    }
}

/// Least-squares slope of RSS over time, for leak alerts.
#[derive(Debug, Clone, Default)]
pub struct Growth {
    samples: VecDeque<(f64, f64)>,
}

/// Memory growth is reported over the last half hour, once the samples span
/// at least this many seconds (a shorter slope is noise).
pub const GROWTH_WINDOW_S: f64 = 1800.0;
pub const GROWTH_MIN_SPAN_S: f64 = 60.0;
/// Kept samples are at least this far apart (but the newest): about 60 of
/// them per window whatever the interval, so memory and the fit's cost do
/// not grow with a short interval.
pub const GROWTH_STEP_S: f64 = 30.0;

impl Growth {
    pub fn push(&mut self, t_secs: f64, mib: f64) {
        while self
            .samples
            .front()
            .is_some_and(|&(t, _)| t_secs - t > GROWTH_WINDOW_S)
        {
            self.samples.pop_front();
        }
        let n = self.samples.len();
        if n >= 2 && t_secs - self.samples[n - 2].0 < GROWTH_STEP_S {
            // The newest sample replaces the previous newest.
            self.samples[n - 1] = (t_secs, mib);
        } else {
            self.samples.push_back((t_secs, mib));
        }
    }

    pub fn clear(&mut self) {
        self.samples.clear();
    }

    /// MiB per hour, once the window spans `GROWTH_MIN_SPAN_S`.
    pub fn mib_per_hour(&self) -> Option<f64> {
        let (first, last) = (self.samples.front()?, self.samples.back()?);
        if last.0 - first.0 < GROWTH_MIN_SPAN_S {
            return None;
        }
        let n = self.samples.len() as f64;
        let (mt, mv) = self
            .samples
            .iter()
            .fold((0.0, 0.0), |(a, b), &(t, v)| (a + t / n, b + v / n));
        let (num, den) = self.samples.iter().fold((0.0, 0.0), |(num, den), &(t, v)| {
            (num + (t - mt) * (v - mv), den + (t - mt) * (t - mt))
        });
        (den > 0.0).then(|| num / den * 3600.0)
    }
}

/// `lsof -nP -iTCP -sTCP:LISTEN -Fpn` output: `p<pid>` lines, each
/// followed by `n<address>:<port>` lines of that process's listeners.
pub fn parse_lsof_listen(text: &str) -> Vec<(u32, u16)> {
    let mut out = Vec::new();
    let mut pid = None;
    for line in text.lines() {
        if let Some(p) = line.strip_prefix('p') {
            pid = p.trim().parse().ok();
        } else if let (Some(n), Some(pid)) = (line.strip_prefix('n'), pid)
            && let Some(port) = n.rsplit(':').next().and_then(|p| p.parse().ok())
        {
            out.push((pid, port));
        }
    }
    out
}

const MIB: f64 = 1024.0 * 1024.0;

impl FamilySample for ServicesSample {
    fn points(&self, snap: &Snapshot, out: &mut Vec<Point>) {
        let gpu = snap.get::<GpuStats>().filter(|g| g.lists_process_memory());
        service_points(self, gpu, out);
        other_points(snap, self, out);
    }
}

/// The pseudo-service that makes the services add up to the host.
pub const OTHER: &str = "other";

fn service_points(svc: &ServicesSample, gpu: Option<&GpuStats>, out: &mut Vec<Point>) {
    for s in &svc.services {
        let name = s.name.as_str();
        let up = if s.up() { 1.0 } else { 0.0 };
        out.push(Point::new(&semconv::SERVICE_UP, up).with(attr::UNAMENTIS_SERVICE, name));
        if !s.up() {
            continue;
        }
        let values = [
            (&semconv::SERVICE_PROCESSES, Some(s.pids.len() as f64)),
            (&semconv::SERVICE_CPU_PERCENT, s.cpu_percent),
            (
                &semconv::SERVICE_MEMORY_MB,
                s.rss_bytes.map(|b| b as f64 / MIB),
            ),
            (&semconv::SERVICE_THREADS, s.threads.map(|t| t as f64)),
            (&semconv::SERVICE_OPEN_FILES, s.open_files.map(|n| n as f64)),
            (
                &semconv::SERVICE_MEMORY_GROWTH_MB_PER_HOUR,
                s.growth_mib_per_hour,
            ),
            (
                &semconv::SERVICE_VRAM_MB,
                gpu.map(|g| service_vram_mib(g, &s.pids)),
            ),
        ];
        for (metric, v) in values {
            if let Some(v) = v {
                let point = Point::new(metric, v).with(attr::UNAMENTIS_SERVICE, name);
                out.push(with_container(point, &s.container));
            }
        }
        if let Some(io) = s.disk_io {
            for (direction, bytes) in [("read", io.read_bytes), ("write", io.write_bytes)] {
                let point = Point::new(&semconv::SERVICE_DISK_IO_BYTES, bytes as f64)
                    .with(attr::UNAMENTIS_SERVICE, name)
                    .with(attr::DIRECTION, direction);
                out.push(with_container(point, &s.container));
            }
        }
    }
    for p in &svc.top {
        let point = |m, v| {
            let point = Point::new(m, v)
                .with(attr::PROCESS_EXECUTABLE_NAME, p.name.as_str())
                .with(attr::PROCESS_PID, AttrValue::Int(i64::from(p.pid)));
            with_container(point, &p.container)
        };
        out.push(point(&semconv::PROCESS_CPU_PERCENT, p.cpu_percent));
        out.push(point(&semconv::PROCESS_MEMORY_MB, p.rss_bytes as f64 / MIB));
    }
}

/// `container.id` and `k8s.pod.uid` where the cgroup path gave them.
fn with_container(mut point: Point, c: &ContainerIdentity) -> Point {
    if let Some(id) = &c.container_id {
        point = point.with(attr::CONTAINER_ID, id.as_str());
    }
    if let Some(uid) = &c.pod_uid {
        point = point.with(attr::K8S_POD_UID, uid.as_str());
    }
    point
}

/// GPU memory of a service's processes, from the GPU source's process list.
fn service_vram_mib(gpu: &GpuStats, pids: &[u32]) -> f64 {
    let bytes: u64 = gpu
        .processes
        .iter()
        .filter(|p| pids.contains(&p.pid))
        .map(|p| p.used_bytes)
        .sum();
    bytes as f64 / MIB
}

/// `other` = the host's busy CPU (in % of one core) and used memory minus
/// the named services, clamped at 0. Both come from the same cycle, so no
/// per-process scan is needed.
fn other_points(snap: &Snapshot, svc: &ServicesSample, out: &mut Vec<Point>) {
    let host_cpu = snap
        .get::<CpuStats>()
        .and_then(|c| Some(c.percent? * f64::from(c.logical?)));
    if let Some(host) = host_cpu {
        let services: f64 = svc.services.iter().filter_map(|s| s.cpu_percent).sum();
        out.push(
            Point::new(&semconv::SERVICE_CPU_PERCENT, (host - services).max(0.0))
                .with(attr::UNAMENTIS_SERVICE, OTHER),
        );
    }
    if let Some(mem) = snap.get::<MemoryStats>() {
        let services: u64 = svc.services.iter().filter_map(|s| s.rss_bytes).sum();
        let other = mem.used_bytes().saturating_sub(services);
        out.push(
            Point::new(&semconv::SERVICE_MEMORY_MB, other as f64 / MIB)
                .with(attr::UNAMENTIS_SERVICE, OTHER),
        );
    }
}

/// The services family's source.
pub fn build(section: ServicesSection) -> super::Builder {
    super::one(move |paths| Box::new(ServiceSource::new(&section, paths.clone())))
}

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub use linux::ServiceSource;

#[cfg(not(target_os = "linux"))]
mod other;
#[cfg(not(target_os = "linux"))]
pub use other::ServiceSource;

#[cfg(test)]
mod tests {
    use super::*;

    fn matcher(process: &[&str]) -> Matcher {
        Matcher {
            name: "x".into(),
            process: process.iter().map(|s| s.to_string()).collect(),
            cmdline: None,
            ports: vec![],
            pid_file: None,
            cgroup: None,
        }
    }

    #[test]
    fn a_matcher_in_words_for_services_and_for_a_down_note() {
        let c = ServiceConfig {
            name: "tts".into(),
            process: vec!["python3".into(), "piper".into()],
            cmdline: Some("piper --port".into()),
            port: Some(8766),
            ports: vec![8767],
            pid_file: Some("/run/tts.pid".into()),
            systemd_unit: Some("tts.service".into()),
            cgroup: None,
        };
        let m = Matcher::from_config(&c);
        assert_eq!(
            m.describe(Wording::Config),
            [
                "process python3|piper",
                "cmdline /piper --port/",
                "listening on 8766|8767",
                "pid in /run/tts.pid",
                "systemd unit tts.service",
            ]
        );
        assert_eq!(
            m.describe(Wording::Missing),
            [
                "named python3|piper",
                "with a command line matching /piper --port/",
                "with the pid in /run/tts.pid",
            ]
        );
        let c = ServiceConfig {
            name: "vm".into(),
            process: vec![],
            cmdline: None,
            port: None,
            ports: vec![],
            pid_file: None,
            systemd_unit: None,
            cgroup: Some("machine.slice/*".into()),
        };
        let m = Matcher::from_config(&c);
        assert_eq!(m.describe(Wording::Config), ["cgroup machine.slice/*"]);
        assert!(m.describe(Wording::Missing).is_empty());
    }

    #[test]
    fn names_match_comm_or_argv0() {
        let m = matcher(&["python3", "next-server"]);
        assert!(m.name_matches("python3", ""));
        assert!(m.name_matches("MainThread", "/usr/bin/python3 -m app"));
        assert!(m.name_matches("next-server (v1", "next-server (v14.2.3)"));
        assert!(!m.name_matches("python", "python app.py"));
        assert!(matcher(&[]).name_matches("anything", ""));
    }

    #[test]
    fn lsof_listeners() {
        let out = "p412\nf7\nn*:8766\nf8\nn[::1]:11434\np77\nn127.0.0.1:3000\nnbogus\n";
        assert_eq!(
            parse_lsof_listen(out),
            vec![(412, 8766), (412, 11434), (77, 3000)]
        );
    }

    #[test]
    fn growth_slope() {
        let mut g = Growth::default();
        for i in 0..=12 {
            // 10 MiB per minute = 600 MiB per hour.
            g.push(f64::from(i) * 5.0, 100.0 + f64::from(i) * 5.0 / 6.0);
            if i < 12 {
                assert_eq!(g.mib_per_hour(), None, "span under a minute");
            }
        }
        let slope = g.mib_per_hour().unwrap();
        assert!((slope - 600.0).abs() < 1e-6, "{slope}");
        // Old samples leave the window.
        g.push(5000.0, 0.0);
        assert_eq!(g.samples.len(), 1);
        assert_eq!(g.mib_per_hour(), None);
    }

    #[test]
    fn growth_keeps_a_bounded_number_of_samples_at_any_interval() {
        let mut g = Growth::default();
        // Two hours at 100 ms: 72,000 samples, 3 MiB per hour.
        for i in 0..72_000 {
            let t = f64::from(i) * 0.1;
            g.push(t, 50.0 + t / 1200.0);
            assert!(g.samples.len() <= 62, "{} at {t}", g.samples.len());
        }
        let slope = g.mib_per_hour().unwrap();
        assert!((slope - 3.0).abs() < 1e-6, "{slope}");
        // The newest sample is always kept, and the window still spans
        // the last half hour.
        let (first, last) = (g.samples.front().unwrap(), g.samples.back().unwrap());
        assert_eq!(last.0, f64::from(71_999) * 0.1);
        assert!(last.0 - first.0 <= GROWTH_WINDOW_S && last.0 - first.0 > GROWTH_WINDOW_S - 31.0);
    }
}
