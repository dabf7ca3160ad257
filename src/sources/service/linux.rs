//! Linux service discovery and measurement over procfs.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Instant;

use super::{Growth, Matcher, Plan, ProcessSample, ServiceSample, ServicesSample};
use crate::config::Config;
use crate::host::HostPaths;
use crate::snapshot::Snapshot;
use crate::sources::cgroup::{self, CgroupServices};
use crate::sources::cpu::parse_last_pid;
use crate::sources::net_tcp::{TCP_LISTEN, tcp_sockets};
use crate::sources::process::{
    PidStat, clock_ticks_per_second, count_fds, list_pids, page_size, read_cmdline, read_stat,
    socket_inodes,
};
use crate::sources::{Source, SourceError};

/// Cycles between full re-reads of every process's `stat` (one minute at
/// the default 5 s interval).
const RESCAN_EVERY: u64 = 12;

struct ProcInfo {
    ppid: u32,
    comm: String,
    cmdline: String,
    starttime: u64,
    /// The cycle whose listing first showed this process: one that appeared
    /// since the previous cycle spent all its CPU time inside the window.
    first_seen: u64,
}

pub struct ServiceSource {
    paths: HostPaths,
    matchers: Vec<Matcher>,
    top_n: usize,
    need_cmdline: bool,
    ports: BTreeSet<u16>,
    procs: HashMap<u32, ProcInfo>,
    cycle: u64,
    /// Whether `<proc>` is this process's own pid namespace, where
    /// `loadavg`'s last pid says whether anything forked (a host /proc
    /// mounted into a container without hostPID is not).
    own_pid_ns: bool,
    /// `loadavg`'s last pid before the last listing of `<proc>`.
    last_pid: Option<u32>,
    /// Listening socket inodes on the configured ports.
    listening: BTreeMap<u16, BTreeSet<u64>>,
    port_owners: HashMap<u16, BTreeSet<u32>>,
    /// Processes whose fds could not be read at the last owner lookup.
    fd_denied: usize,
    /// CPU ticks at the previous sample, by (pid, starttime).
    prev: HashMap<(u32, u64), u64>,
    prev_other: HashMap<(u32, u64), u64>,
    last_sample: Option<Instant>,
    started: Instant,
    growth: Vec<Growth>,
    ticks_per_s: f64,
    page: u64,
    /// The `systemd_unit` and `cgroup` services' hierarchies and counters.
    cgroups: CgroupServices,
}

impl ServiceSource {
    /// Discovers the services and takes the CPU baseline.
    pub fn new(cfg: &Config) -> Self {
        let Plan {
            matchers,
            ports,
            growth,
            top_n,
        } = Plan::from_config(cfg);
        let cgroups = CgroupServices::new(
            &cfg.host_paths(),
            matchers.iter().map(|m| m.cgroup.clone()).collect(),
        );
        let mut s = ServiceSource {
            paths: cfg.host_paths(),
            need_cmdline: matchers
                .iter()
                .any(|m| m.cmdline.is_some() || !m.process.is_empty()),
            ports,
            growth,
            matchers,
            top_n,
            procs: HashMap::new(),
            cycle: 0,
            own_pid_ns: own_pid_namespace(&cfg.host_paths()),
            last_pid: None,
            listening: BTreeMap::new(),
            port_owners: HashMap::new(),
            fd_denied: 0,
            prev: HashMap::new(),
            prev_other: HashMap::new(),
            last_sample: None,
            started: Instant::now(),
            ticks_per_s: clock_ticks_per_second() as f64,
            page: page_size(),
            cgroups,
        };
        let _ = s.collect();
        s
    }

    /// Updates the process table; true when new processes appeared.
    ///
    /// Listing `<proc>` is most of this source's cost on an idle host; no
    /// process can have appeared while the kernel's last handed-out pid
    /// stayed the same, so the listing is skipped then (between full
    /// rescans). Read before listing, so a fork during the listing shows
    /// next cycle. Processes that exit in between fail their stat read.
    fn refresh_table(&mut self) -> Result<bool, SourceError> {
        self.cycle += 1;
        let full = self.cycle % RESCAN_EVERY == 1;
        let last_pid = if self.own_pid_ns {
            self.paths
                .read_proc("loadavg")
                .ok()
                .and_then(|t| parse_last_pid(&t))
        } else {
            None
        };
        if !full && last_pid.is_some() && last_pid == self.last_pid {
            return Ok(false);
        }
        let pids = list_pids(&self.paths)?;
        self.last_pid = last_pid;
        let live: HashSet<u32> = pids.iter().copied().collect();
        self.procs.retain(|pid, _| live.contains(pid));
        let mut appeared = false;
        for pid in pids {
            let known = self.procs.get(&pid);
            if known.is_some() && !full {
                continue;
            }
            let Some(stat) = read_stat(&self.paths, pid) else {
                self.procs.remove(&pid);
                continue;
            };
            let same = known.filter(|k| k.starttime == stat.starttime);
            let first_seen = same.map_or(self.cycle, |k| k.first_seen);
            appeared |= same.is_none();
            let cmdline = if self.need_cmdline {
                read_cmdline(&self.paths, pid).unwrap_or_default()
            } else {
                String::new()
            };
            self.procs.insert(
                pid,
                ProcInfo {
                    ppid: stat.ppid,
                    comm: stat.comm,
                    cmdline,
                    starttime: stat.starttime,
                    first_seen,
                },
            );
        }
        Ok(appeared)
    }

    /// Finds which processes hold the listening sockets of the configured
    /// ports; the fd scan runs only when those sockets changed, or a port
    /// has no known owner and new processes appeared, or on a full rescan.
    fn refresh_ports(&mut self, appeared: bool) {
        if self.ports.is_empty() {
            return;
        }
        let mut listening: BTreeMap<u16, BTreeSet<u64>> = BTreeMap::new();
        for s in tcp_sockets(&self.paths, 1 << TCP_LISTEN) {
            let port = s.local.port();
            if self.ports.contains(&port) {
                listening.entry(port).or_default().insert(s.inode);
            }
        }
        let orphaned = listening
            .keys()
            .any(|p| self.port_owners.get(p).is_none_or(BTreeSet::is_empty));
        let full = self.cycle % RESCAN_EVERY == 1;
        if listening == self.listening && !full && !(appeared && orphaned) {
            return;
        }
        let by_inode: HashMap<u64, u16> = listening
            .iter()
            .flat_map(|(port, inodes)| inodes.iter().map(move |i| (*i, *port)))
            .collect();
        let mut owners: HashMap<u16, BTreeSet<u32>> = HashMap::new();
        let mut denied = 0;
        if !by_inode.is_empty() {
            for &pid in self.procs.keys() {
                match socket_inodes(&self.paths, pid) {
                    Ok(inodes) => {
                        for i in inodes {
                            if let Some(port) = by_inode.get(&i) {
                                owners.entry(*port).or_default().insert(pid);
                            }
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => denied += 1,
                    Err(_) => {}
                }
            }
        }
        self.listening = listening;
        self.port_owners = owners;
        self.fd_denied = denied;
    }

    fn pid_from_file(&self, m: &Matcher) -> Option<u32> {
        let path = m.pid_file.as_ref()?;
        let rel = path.strip_prefix("/").unwrap_or(path);
        let text = self.paths.read_root(rel).ok()?;
        text.trim().parse().ok()
    }

    fn is_root(&self, m: &Matcher, pid: u32, p: &ProcInfo, pid_file: Option<Option<u32>>) -> bool {
        m.name_matches(&p.comm, &p.cmdline)
            && m.cmdline.as_ref().is_none_or(|re| re.is_match(&p.cmdline))
            && (m.ports.is_empty()
                || m.ports
                    .iter()
                    .any(|port| self.port_owners.get(port).is_some_and(|o| o.contains(&pid))))
            && pid_file.is_none_or(|f| f == Some(pid))
    }

    /// Each service's processes: its roots and all their descendants, a
    /// process going to the first service that reaches it. `claimed`
    /// processes (the cgroup services') go to none.
    fn assign(&self, claimed: &HashSet<u32>) -> Vec<(Vec<u32>, Vec<u32>)> {
        let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
        for (&pid, p) in &self.procs {
            children.entry(p.ppid).or_default().push(pid);
        }
        let mut owned: HashSet<u32> = claimed.clone();
        let mut out = Vec::with_capacity(self.matchers.len());
        for m in &self.matchers {
            if m.cgroup.is_some() {
                out.push((Vec::new(), Vec::new()));
                continue;
            }
            let pid_file = m.pid_file.as_ref().map(|_| self.pid_from_file(m));
            let mut roots: Vec<u32> = self
                .procs
                .iter()
                .filter(|&(&pid, p)| self.is_root(m, pid, p, pid_file))
                .map(|(&pid, _)| pid)
                .collect();
            roots.sort_unstable();
            let mut members = Vec::new();
            let mut stack = roots.clone();
            while let Some(pid) = stack.pop() {
                if owned.insert(pid) {
                    members.push(pid);
                    if let Some(c) = children.get(&pid) {
                        stack.extend(c);
                    }
                }
            }
            members.sort_unstable();
            roots.retain(|r| members.contains(r));
            out.push((roots, members));
        }
        out
    }

    /// CPU ticks a process spent since the previous sample: the delta when
    /// it was measured then, all of them when it started since, nothing
    /// (a new baseline) otherwise — never negative, never a spike.
    fn delta(&self, prev: &HashMap<(u32, u64), u64>, st: &PidStat) -> Option<u64> {
        match prev.get(&(st.pid, st.starttime)) {
            Some(&p) => Some(st.cpu_ticks().saturating_sub(p)),
            None => {
                let new = self
                    .procs
                    .get(&st.pid)
                    .is_some_and(|p| p.first_seen == self.cycle && p.starttime == st.starttime);
                (new && self.cycle > 1).then_some(st.cpu_ticks())
            }
        }
    }

    fn down_note(&self, m: &Matcher) -> Option<String> {
        let listening: Vec<u16> = m
            .ports
            .iter()
            .copied()
            .filter(|p| self.listening.contains_key(p))
            .collect();
        if m.ports.is_empty() {
            let mut what = vec![];
            if !m.process.is_empty() {
                what.push(format!("named {}", m.process.join("|")));
            }
            if let Some(re) = &m.cmdline {
                what.push(format!("with a command line matching /{re}/"));
            }
            if let Some(f) = &m.pid_file {
                what.push(format!("with the pid in {}", f.display()));
            }
            Some(format!("no process {}", what.join(" ")))
        } else if listening.is_empty() {
            Some(format!("nothing listens on port {}", join(&m.ports)))
        } else if listening
            .iter()
            .all(|p| self.port_owners.get(p).is_none_or(BTreeSet::is_empty))
            && self.fd_denied > 0
        {
            Some(format!(
                "port {} is listening but its owner could not be read ({} processes' fds denied): run the agent as root or as the service's user",
                join(&listening),
                self.fd_denied
            ))
        } else {
            Some(format!(
                "the process listening on port {} does not match the other matchers",
                join(&listening)
            ))
        }
    }

    fn collect(&mut self) -> Result<ServicesSample, SourceError> {
        let appeared = self.refresh_table()?;
        self.refresh_ports(appeared);
        let now = Instant::now();
        let wall = self
            .last_sample
            .map(|t| now.duration_since(t).as_secs_f64())
            .filter(|w| *w > 0.0);
        let t_secs = now.duration_since(self.started).as_secs_f64();
        let mib = 1024.0 * 1024.0;
        let mut next_prev = HashMap::new();
        let mut out = ServicesSample::default();
        // A cgroup service's processes are its own whatever the order.
        let mut by_cgroup = self.cgroups.sample(&self.paths);
        let mut owned: HashSet<u32> = by_cgroup
            .iter()
            .flatten()
            .flat_map(|c| c.pids.iter().copied())
            .collect();
        let assigned = self.assign(&owned);
        for (i, (roots, members)) in assigned.into_iter().enumerate() {
            let m = &self.matchers[i];
            if let Some(cg) = by_cgroup[i].take() {
                let mut s = cgroup::service_sample(&m.name, cg, &self.paths, wall, self.page);
                if let Some(b) = s.rss_bytes {
                    self.growth[i].push(t_secs, b as f64 / mib);
                    s.growth_mib_per_hour = self.growth[i].mib_per_hour();
                } else {
                    self.growth[i].clear();
                }
                out.services.push(s);
                continue;
            }
            let mut s = ServiceSample {
                name: m.name.clone(),
                ..Default::default()
            };
            let (mut ticks, mut rss, mut threads) = (0u64, 0u64, 0u64);
            let mut fds = Some(0u64);
            let mut has_basis = false;
            for pid in members {
                // Gone since the listing: nothing to count, nothing negative.
                let Some(st) = read_stat(&self.paths, pid) else {
                    self.procs.remove(&pid);
                    continue;
                };
                if let Some(d) = self.delta(&self.prev, &st) {
                    ticks += d;
                    has_basis = true;
                }
                next_prev.insert((pid, st.starttime), st.cpu_ticks());
                rss += st.rss_pages * self.page;
                threads += u64::from(st.num_threads);
                fds = fds.and_then(|n| Some(n + count_fds(&self.paths, pid)?));
                owned.insert(pid);
                s.pids.push(pid);
            }
            s.matched = roots
                .iter()
                .filter_map(|r| Some(format!("{r} ({})", self.procs.get(r)?.comm)))
                .collect();
            if s.up() {
                s.cpu_percent = wall
                    .filter(|_| has_basis)
                    .map(|w| ticks as f64 / self.ticks_per_s / w * 100.0);
                s.rss_bytes = Some(rss);
                s.threads = Some(threads);
                s.open_files = fds;
                self.growth[i].push(t_secs, rss as f64 / mib);
                s.growth_mib_per_hour = self.growth[i].mib_per_hour();
            } else {
                self.growth[i].clear();
                s.note = self.down_note(m);
            }
            out.services.push(s);
        }
        if self.top_n > 0 {
            let mut next_other = HashMap::new();
            let mut top = Vec::new();
            let pids: Vec<u32> = self
                .procs
                .keys()
                .copied()
                .filter(|p| !owned.contains(p))
                .collect();
            for pid in pids {
                let Some(st) = read_stat(&self.paths, pid) else {
                    continue;
                };
                let d = self.delta(&self.prev_other, &st);
                next_other.insert((pid, st.starttime), st.cpu_ticks());
                if let (Some(d), Some(w)) = (d, wall) {
                    top.push(ProcessSample {
                        pid,
                        name: st.comm,
                        cpu_percent: d as f64 / self.ticks_per_s / w * 100.0,
                        rss_bytes: st.rss_pages * self.page,
                    });
                }
            }
            top.sort_by(|a, b| {
                b.cpu_percent
                    .total_cmp(&a.cpu_percent)
                    .then(b.rss_bytes.cmp(&a.rss_bytes))
            });
            top.truncate(self.top_n);
            out.top = top;
            self.prev_other = next_other;
        }
        self.prev = next_prev;
        self.last_sample = Some(now);
        Ok(out)
    }
}

/// `<proc>/self` names this process: `<proc>` shows our pid namespace.
fn own_pid_namespace(paths: &HostPaths) -> bool {
    std::fs::read_link(paths.proc_path("self"))
        .ok()
        .and_then(|l| l.to_str()?.parse::<u32>().ok())
        == Some(std::process::id())
}

fn join(ports: &[u16]) -> String {
    ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl Source for ServiceSource {
    fn name(&self) -> &'static str {
        "services"
    }

    fn sample(&mut self, snap: &mut Snapshot) -> Result<(), SourceError> {
        snap.services = Some(self.collect()?);
        Ok(())
    }
}
