//! Linux service discovery and measurement over procfs.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Instant;

use super::{Growth, Matcher, Plan, ProcessSample, ServiceSample, ServicesSample, Wording};
use crate::config::Config;
use crate::host::HostPaths;
use crate::sources::Snapshot;
use crate::sources::cgroup::{self, CgroupServices};
use crate::sources::cpu::parse_last_pid;
use crate::sources::net_tcp::{TCP_LISTEN, tcp_sockets};
use crate::sources::process::{
    ContainerIdentity, PidStat, clock_ticks_per_second, count_fds, list_pids, page_size,
    read_cmdline, read_container_identity, read_stat, socket_inodes,
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
    /// From `cgroup`, read the first time a service or the top list needs
    /// it: a process does not change containers.
    identity: Option<ContainerIdentity>,
}

/// A process across pid reuse: (pid, starttime).
type Key = (u32, u64);

/// What a service's process showed at a sample.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Seen {
    ppid: u32,
    /// Its own CPU ticks (utime + stime).
    ticks: u64,
    /// Its reaped children's (cutime + cstime).
    child_ticks: u64,
}

/// A service's process read at this sample.
#[derive(Debug, Clone, Copy)]
struct Reading {
    key: Key,
    seen: Seen,
    /// It appeared since the previous sample, so all its time (and all its
    /// reaped children's) was spent inside the window.
    new: bool,
}

/// CPU ticks each process of `now` spent since the previous sample: its
/// own, plus the growth of its reaped children's counters. A child's whole
/// total (own and reaped) goes into its parent's counters when the parent
/// waits for it, so a child that was measured at the previous sample and
/// has since vanished already had that much counted: it is taken off the
/// parent's growth (clamped at 0), leaving only what the child ran after
/// that sample. A child that started and was reaped in between counts
/// whole; the reaped children of processes outside `now` count nothing.
/// `None`: no basis yet (a process measured for the first time that did
/// not appear inside the window).
fn cpu_deltas(
    prev: &HashMap<Key, Seen>,
    now: &[Reading],
    alive: impl Fn(Key) -> bool,
) -> Vec<Option<u64>> {
    let current: HashSet<Key> = now.iter().map(|r| r.key).collect();
    // By parent pid: what its vanished children were counted up to.
    let mut counted: HashMap<u32, u64> = HashMap::new();
    for (key, s) in prev {
        if !current.contains(key) && !alive(*key) {
            *counted.entry(s.ppid).or_default() += s.ticks + s.child_ticks;
        }
    }
    now.iter()
        .map(|r| match prev.get(&r.key) {
            Some(p) => {
                let own = r.seen.ticks.saturating_sub(p.ticks);
                let reaped = r
                    .seen
                    .child_ticks
                    .saturating_sub(p.child_ticks)
                    .saturating_sub(counted.get(&r.key.0).copied().unwrap_or(0));
                Some(own + reaped)
            }
            None => r.new.then_some(r.seen.ticks + r.seen.child_ticks),
        })
        .collect()
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
    /// Services' processes at the previous sample, by (pid, starttime).
    prev: HashMap<Key, Seen>,
    /// CPU ticks of the other processes at the previous sample.
    prev_other: HashMap<Key, u64>,
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
            let identity = same.and_then(|k| k.identity.clone());
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
                    identity,
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

    /// Whether a process appeared since the previous sample (so it spent
    /// all its CPU time inside the window); never on the first sample.
    fn is_new(&self, key: Key) -> bool {
        self.cycle > 1
            && self
                .procs
                .get(&key.0)
                .is_some_and(|p| p.first_seen == self.cycle && p.starttime == key.1)
    }

    /// The container and pod of a process, read once per process.
    fn identity(&mut self, (pid, start): Key) -> ContainerIdentity {
        let read = |paths: &HostPaths| read_container_identity(paths, pid).unwrap_or_default();
        match self.procs.get_mut(&pid) {
            Some(p) if p.starttime == start => {
                p.identity.get_or_insert_with(|| read(&self.paths)).clone()
            }
            _ => read(&self.paths),
        }
    }

    /// CPU ticks of another process since the previous sample: the delta
    /// when it was measured then, all of them when it started since,
    /// nothing (a new baseline) otherwise — never negative, never a spike.
    fn other_delta(&self, st: &PidStat) -> Option<u64> {
        match self.prev_other.get(&(st.pid, st.starttime)) {
            Some(&p) => Some(st.cpu_ticks().saturating_sub(p)),
            None => self
                .is_new((st.pid, st.starttime))
                .then_some(st.cpu_ticks()),
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
            let what = m.describe(Wording::Missing);
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
        let mut out = ServicesSample::default();
        // A cgroup service's processes are its own whatever the order.
        let mut by_cgroup = self.cgroups.sample(&self.paths);
        let mut owned: HashSet<u32> = by_cgroup
            .iter()
            .flatten()
            .flat_map(|c| c.pids.iter().copied())
            .collect();
        let assigned = self.assign(&owned);
        // Every service's processes are read before any CPU is summed: a
        // child one service measured may be reaped by another's process.
        let mut readings: Vec<Reading> = Vec::new();
        let mut spans = Vec::with_capacity(assigned.len());
        for (i, (roots, members)) in assigned.into_iter().enumerate() {
            if let Some(cg) = by_cgroup[i].take() {
                // The cgroup's own counter already holds every process
                // that ran in it, reaped ones included.
                let name = &self.matchers[i].name;
                let mut s = cgroup::service_sample(name, cg, &self.paths, wall, self.page);
                if let Some(b) = s.rss_bytes {
                    self.growth[i].push(t_secs, b as f64 / mib);
                    s.growth_mib_per_hour = self.growth[i].mib_per_hour();
                } else {
                    self.growth[i].clear();
                }
                spans.push(readings.len()..readings.len());
                out.services.push(s);
                continue;
            }
            let mut s = ServiceSample {
                name: self.matchers[i].name.clone(),
                ..Default::default()
            };
            let (mut rss, mut threads) = (0u64, 0u64);
            let mut fds = Some(0u64);
            let mut shared: Option<ContainerIdentity> = None;
            let start = readings.len();
            for pid in members {
                // Gone since the listing: nothing to count, nothing negative.
                let Some(st) = read_stat(&self.paths, pid) else {
                    self.procs.remove(&pid);
                    continue;
                };
                let key = (pid, st.starttime);
                readings.push(Reading {
                    key,
                    seen: Seen {
                        ppid: st.ppid,
                        ticks: st.cpu_ticks(),
                        child_ticks: st.child_ticks(),
                    },
                    new: self.is_new(key),
                });
                let id = self.identity(key);
                shared = Some(match shared {
                    None => id,
                    Some(s) => ContainerIdentity {
                        container_id: s
                            .container_id
                            .filter(|c| id.container_id.as_ref() == Some(c)),
                        pod_uid: s.pod_uid.filter(|u| id.pod_uid.as_ref() == Some(u)),
                    },
                });
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
                s.container = shared.unwrap_or_default();
                s.rss_bytes = Some(rss);
                s.threads = Some(threads);
                s.open_files = fds;
                self.growth[i].push(t_secs, rss as f64 / mib);
                s.growth_mib_per_hour = self.growth[i].mib_per_hour();
            } else {
                self.growth[i].clear();
                s.note = self.down_note(&self.matchers[i]);
            }
            spans.push(start..readings.len());
            out.services.push(s);
        }
        let procs = &self.procs;
        let deltas = cpu_deltas(&self.prev, &readings, |(pid, start)| {
            procs.get(&pid).is_some_and(|p| p.starttime == start)
        });
        for (s, span) in out.services.iter_mut().zip(spans) {
            let counted: Vec<u64> = deltas[span].iter().flatten().copied().collect();
            if s.up() && !counted.is_empty() {
                let ticks: u64 = counted.iter().sum();
                s.cpu_percent = wall.map(|w| ticks as f64 / self.ticks_per_s / w * 100.0);
            }
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
                let d = self.other_delta(&st);
                next_other.insert((pid, st.starttime), st.cpu_ticks());
                if let (Some(d), Some(w)) = (d, wall) {
                    let p = ProcessSample {
                        pid,
                        name: st.comm,
                        cpu_percent: d as f64 / self.ticks_per_s / w * 100.0,
                        rss_bytes: st.rss_pages * self.page,
                        container: ContainerIdentity::default(),
                    };
                    top.push((p, st.starttime));
                }
            }
            top.sort_by(|(a, _), (b, _)| {
                b.cpu_percent
                    .total_cmp(&a.cpu_percent)
                    .then(b.rss_bytes.cmp(&a.rss_bytes))
            });
            top.truncate(self.top_n);
            // Only the listed few have their cgroup read.
            for (mut p, start) in top {
                p.container = self.identity((p.pid, start));
                out.top.push(p);
            }
            self.prev_other = next_other;
        }
        self.prev = readings.iter().map(|r| (r.key, r.seen)).collect();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(ppid: u32, ticks: u64, child_ticks: u64) -> Seen {
        Seen {
            ppid,
            ticks,
            child_ticks,
        }
    }

    fn reading(key: Key, seen: Seen) -> Reading {
        Reading {
            key,
            seen,
            new: false,
        }
    }

    const PARENT: Key = (100, 5);
    const CHILD: Key = (200, 70);

    #[test]
    fn a_child_seen_then_reaped_counts_only_its_ticks_after_that_sample() {
        // At the previous sample the child had run 30 ticks (and reaped 4
        // of its own); it ran 12 more, exited and was waited for: its
        // whole 46 landed in the parent's cutime + cstime.
        let prev = HashMap::from([(PARENT, seen(1, 50, 8)), (CHILD, seen(100, 30, 4))]);
        let now = [reading(PARENT, seen(1, 55, 8 + 46))];
        assert_eq!(cpu_deltas(&prev, &now, |_| false), vec![Some(5 + 12)]);
    }

    #[test]
    fn a_child_never_seen_counts_whole() {
        let prev = HashMap::from([(PARENT, seen(1, 50, 8))]);
        let now = [reading(PARENT, seen(1, 51, 8 + 40))];
        assert_eq!(cpu_deltas(&prev, &now, |_| false), vec![Some(1 + 40)]);
    }

    #[test]
    fn a_child_still_measured_or_alive_elsewhere_takes_nothing_off() {
        let prev = HashMap::from([(PARENT, seen(1, 50, 0)), (CHILD, seen(100, 30, 0))]);
        // Still a member: measured on its own, its parent's counters did
        // not move.
        let now = [
            reading(PARENT, seen(1, 50, 0)),
            reading(CHILD, seen(100, 45, 0)),
        ];
        assert_eq!(cpu_deltas(&prev, &now, |_| false), vec![Some(0), Some(15)]);
        // Alive but no longer a member: not reaped, so its parent's growth
        // (another child's 9 ticks) stays whole.
        let now = [reading(PARENT, seen(1, 50, 9))];
        assert_eq!(cpu_deltas(&prev, &now, |k| k == CHILD), vec![Some(9)]);
    }

    #[test]
    fn reaped_children_of_processes_outside_the_service_count_nothing() {
        // The vanished child's parent (pid 300) is no member: nothing
        // reaches the member, whose own counters alone count.
        let prev = HashMap::from([(PARENT, seen(1, 50, 0)), ((201, 9), seen(300, 30, 0))]);
        let now = [reading(PARENT, seen(1, 60, 0))];
        assert_eq!(cpu_deltas(&prev, &now, |_| false), vec![Some(10)]);
    }

    #[test]
    fn a_child_that_vanished_without_being_waited_for_never_goes_negative() {
        // Auto-reaped (SIGCHLD ignored): its time never reaches the
        // parent's counters; the parent's own ticks still count.
        let prev = HashMap::from([(PARENT, seen(1, 50, 0)), (CHILD, seen(100, 30, 0))]);
        let now = [reading(PARENT, seen(1, 53, 0))];
        assert_eq!(cpu_deltas(&prev, &now, |_| false), vec![Some(3)]);
    }

    #[test]
    fn a_recycled_parent_pid_is_a_new_process() {
        // The pid 100 of the previous sample (start 5) is gone; the one
        // now (start 90) appeared inside the window: all of its own and
        // its reaped children's time, and nothing taken off for the old
        // process's vanished child.
        let prev = HashMap::from([(PARENT, seen(1, 50, 0)), (CHILD, seen(100, 30, 0))]);
        let mut r = reading((100, 90), seen(1, 7, 20));
        assert_eq!(cpu_deltas(&prev, &[r], |_| false), vec![None]);
        r.new = true;
        assert_eq!(cpu_deltas(&prev, &[r], |_| false), vec![Some(27)]);
    }
}
