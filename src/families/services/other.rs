//! Service discovery and measurement through sysinfo, for platforms without
//! procfs (macOS). Listening ports come from `lsof` (no root needed for the
//! user's own processes), asked only on a rescan.

use std::collections::{HashMap, HashSet};
use std::process::Command;
use std::time::{Duration, Instant};

use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System, UpdateKind};

use super::{
    Growth, Matcher, Plan, ProcessSample, ServiceSample, ServicesSample, parse_lsof_listen,
};
use crate::config::ServicesSection;
use crate::sources::Snapshot;
use crate::sources::command::run_with_timeout;
use crate::sources::{Source, SourceError};

const RESCAN_EVERY: u64 = 12;
const LSOF_TIMEOUT: Duration = Duration::from_secs(2);

pub struct ServiceSource {
    sys: Option<System>,
    matchers: Vec<Matcher>,
    top_n: usize,
    ports: std::collections::BTreeSet<u16>,
    port_owners: HashMap<u16, HashSet<u32>>,
    cycle: u64,
    started: Instant,
    growth: Vec<Growth>,
}

impl ServiceSource {
    /// `paths` is unused: sysinfo reads the host it runs on.
    pub fn new(section: &ServicesSection, _paths: crate::host::HostPaths) -> Self {
        let Plan {
            matchers,
            ports,
            growth,
            top_n,
        } = Plan::new(section);
        let mut s = ServiceSource {
            sys: System::new().ok(),
            ports,
            growth,
            matchers,
            top_n,
            port_owners: HashMap::new(),
            cycle: 0,
            started: Instant::now(),
        };
        let _ = s.collect();
        s
    }

    fn refresh_ports(&mut self) {
        if self.ports.is_empty() || self.cycle % RESCAN_EVERY != 1 && !self.port_owners.is_empty() {
            return;
        }
        let Ok(out) = run_with_timeout(
            Command::new("lsof").args(["-nP", "-iTCP", "-sTCP:LISTEN", "-Fpn"]),
            LSOF_TIMEOUT,
        ) else {
            return;
        };
        let out = String::from_utf8_lossy(&out);
        let mut owners: HashMap<u16, HashSet<u32>> = HashMap::new();
        for (pid, port) in parse_lsof_listen(&out) {
            if self.ports.contains(&port) {
                owners.entry(port).or_default().insert(pid);
            }
        }
        self.port_owners = owners;
    }

    fn collect(&mut self) -> Result<ServicesSample, SourceError> {
        self.cycle += 1;
        self.refresh_ports();
        let sys = self
            .sys
            .as_mut()
            .ok_or_else(|| SourceError::Unavailable("sysinfo cannot list processes".into()))?;
        sys.refresh_processes_specifics(
            ProcessesToUpdate::All,
            true,
            ProcessRefreshKind::nothing()
                .with_cpu()
                .with_memory()
                .with_cmd(UpdateKind::OnlyIfNotSet),
        );
        let procs = sys.processes();
        let mut children: HashMap<Pid, Vec<Pid>> = HashMap::new();
        for (pid, p) in procs {
            if let Some(parent) = p.parent() {
                children.entry(parent).or_default().push(*pid);
            }
        }
        let t_secs = self.started.elapsed().as_secs_f64();
        let mut owned: HashSet<Pid> = HashSet::new();
        let mut out = ServicesSample::default();
        for (i, m) in self.matchers.iter().enumerate() {
            if let Some(cg) = &m.cgroup {
                self.growth[i].clear();
                out.services.push(ServiceSample {
                    name: m.name.clone(),
                    note: Some(format!("{}: cgroups exist on Linux only", cg.display)),
                    ..Default::default()
                });
                continue;
            }
            let pid_file = m.pid_file.as_ref().map(|f| {
                std::fs::read_to_string(f)
                    .ok()
                    .and_then(|t| t.trim().parse::<u32>().ok())
            });
            let mut roots: Vec<Pid> = procs
                .iter()
                .filter(|(pid, p)| {
                    let cmd: Vec<String> = p
                        .cmd()
                        .iter()
                        .map(|a| a.to_string_lossy().into_owned())
                        .collect();
                    let cmdline = cmd.join(" ");
                    let pid = pid.as_u32();
                    m.name_matches(&p.name().to_string_lossy(), &cmdline)
                        && m.cmdline.as_ref().is_none_or(|re| re.is_match(&cmdline))
                        && (m.ports.is_empty()
                            || m.ports.iter().any(|port| {
                                self.port_owners.get(port).is_some_and(|o| o.contains(&pid))
                            }))
                        && pid_file.is_none_or(|f| f == Some(pid))
                })
                .map(|(pid, _)| *pid)
                .collect();
            roots.sort_unstable();
            let mut s = ServiceSample {
                name: m.name.clone(),
                ..Default::default()
            };
            let mut stack = roots.clone();
            let (mut cpu, mut rss) = (0.0, 0u64);
            while let Some(pid) = stack.pop() {
                if !owned.insert(pid) {
                    continue;
                }
                if let Some(p) = procs.get(&pid) {
                    cpu += f64::from(p.cpu_usage());
                    rss += p.memory();
                    s.pids.push(pid.as_u32());
                }
                stack.extend(children.get(&pid).into_iter().flatten());
            }
            s.pids.sort_unstable();
            s.matched = roots.iter().map(|r| r.as_u32().to_string()).collect();
            if s.up() {
                // sysinfo's first CPU figure needs a previous refresh.
                s.cpu_percent = (self.cycle > 1).then_some(cpu);
                s.rss_bytes = Some(rss);
                self.growth[i].push(t_secs, rss as f64 / (1024.0 * 1024.0));
                s.growth_mib_per_hour = self.growth[i].mib_per_hour();
            } else {
                self.growth[i].clear();
            }
            out.services.push(s);
        }
        if self.top_n > 0 && self.cycle > 1 {
            let mut top: Vec<ProcessSample> = procs
                .iter()
                .filter(|(pid, _)| !owned.contains(pid))
                .map(|(pid, p)| ProcessSample {
                    pid: pid.as_u32(),
                    name: p.name().to_string_lossy().into_owned(),
                    cpu_percent: f64::from(p.cpu_usage()),
                    rss_bytes: p.memory(),
                    container: Default::default(),
                })
                .collect();
            top.sort_by(|a, b| {
                b.cpu_percent
                    .total_cmp(&a.cpu_percent)
                    .then(b.rss_bytes.cmp(&a.rss_bytes))
            });
            top.truncate(self.top_n);
            out.top = top;
        }
        Ok(out)
    }
}

impl Source for ServiceSource {
    fn name(&self) -> &'static str {
        "services"
    }

    fn sample(&mut self, snap: &mut Snapshot) -> Result<(), SourceError> {
        snap.put(self.collect()?);
        Ok(())
    }
}
