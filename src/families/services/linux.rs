//! Linux service discovery and measurement over procfs.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Instant;

use super::{Growth, Matcher, Plan, ProcessSample, ServiceSample, ServicesSample, Wording};
use crate::config::ServicesSection;
use crate::families::cpu::parse_last_pid;
use crate::host::HostPaths;
use crate::sources::Snapshot;
use crate::sources::cgroup::{self, CgroupServices};
use crate::sources::net_tcp::{SockstatTcp, TCP_LISTEN, parse_sockstat_tcp, tcp_sockets};
use crate::sources::process::{
    ContainerIdentity, IoUnreadable, PidStat, ProcIo, clock_ticks_per_second, count_fds, list_pids,
    page_size, read_cmdline, read_container_identity, read_io, read_stat, socket_inodes,
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
    /// Its reaped children's minor faults (cminflt): grows at every reap.
    child_faults: u64,
    /// Its `/proc/<pid>/io` as far as it has been counted: the last value
    /// read (kept while the file cannot be read); `None` before any.
    io: Option<ProcIo>,
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
    // By pid: what the vanished processes whose totals reached it were
    // counted up to.
    let mut counted: HashMap<u32, u64> = HashMap::new();
    for (up, s) in vanished_to_ancestors(prev, now, alive) {
        *counted.entry(up).or_default() += s.ticks + s.child_ticks;
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

/// Each process of `prev` that is gone (not in `now`, not alive
/// elsewhere), with the pid its totals reached when it was waited for: its
/// parent, or, when the parent vanished too (a shell and the command it
/// ran, both done), the nearest ancestor that did not. A child's totals
/// go into its parent's reaped-children counters, and the parent's whole
/// totals into its own parent's, so the chain ends at the first process
/// still there.
fn vanished_to_ancestors<'a>(
    prev: &'a HashMap<Key, Seen>,
    now: &[Reading],
    alive: impl Fn(Key) -> bool,
) -> Vec<(u32, &'a Seen)> {
    let current: HashSet<Key> = now.iter().map(|r| r.key).collect();
    let parents: HashMap<u32, u32> = prev
        .iter()
        .filter(|(key, _)| !current.contains(key) && !alive(**key))
        .map(|(key, s)| (key.0, s.ppid))
        .collect();
    prev.iter()
        .filter(|(key, _)| parents.contains_key(&key.0) && !current.contains(key))
        .map(|(_, s)| {
            let mut up = s.ppid;
            // Bounded: a pid chain has no cycle, but files may say anything.
            for _ in 0..parents.len() {
                match parents.get(&up) {
                    Some(next) => up = *next,
                    None => break,
                }
            }
            (up, s)
        })
        .collect()
}

/// Storage bytes each process of `now` moved since the previous sample,
/// from `io_now` (this sample's `/proc/<pid>/io`, `None` where unreadable).
///
/// The same bookkeeping as [`cpu_deltas`], with one difference: the kernel
/// reports a process's own bytes and its reaped children's as one sum, so
/// a vanished child's counted bytes are taken off its parent's whole
/// growth. Only when the parent's reaped-children counter (`cminflt`) grew:
/// a child that vanished without being waited for (SIGCHLD ignored, or its
/// parent not in `now`) never reached the parent, whose own bytes then
/// count whole. A child that started and was reaped in between counts
/// whole through its parent; the bytes a child of a process outside `now`
/// moved after its last sample are lost, never counted twice. A measured
/// child reaped by a measured parent that vanished too (a shell and the
/// command it ran, both done) reached that parent's parent with it, so its
/// counted bytes go to the nearest ancestor still in `now`.
/// `None`: unreadable, or no basis yet (first read, not new).
fn io_deltas(
    prev: &HashMap<Key, Seen>,
    now: &[Reading],
    io_now: &[Option<ProcIo>],
    alive: impl Fn(Key) -> bool,
) -> Vec<Option<ProcIo>> {
    let mut counted: HashMap<u32, ProcIo> = HashMap::new();
    for (up, s) in vanished_to_ancestors(prev, now, alive) {
        if let Some(io) = s.io {
            let c = counted.entry(up).or_default();
            *c = c.plus(io);
        }
    }
    now.iter()
        .zip(io_now)
        .map(|(r, io)| {
            let io = (*io)?;
            match prev.get(&r.key) {
                Some(p) => {
                    let growth = io.since(p.io?);
                    let reaped = r.seen.child_faults > p.child_faults;
                    Some(match counted.get(&r.key.0) {
                        Some(c) if reaped => growth.since(*c),
                        _ => growth,
                    })
                }
                None => r.new.then_some(io),
            }
        })
        .collect()
}

/// Why a service's disk I/O is absent: the worst reason among its
/// processes whose `/proc/<pid>/io` could not be read.
fn io_note(unreadable: &[IoUnreadable], members: usize) -> String {
    let n = |kind| unreadable.iter().filter(|u| **u == kind).count();
    let (denied, missing, failed) = (
        n(IoUnreadable::Denied),
        n(IoUnreadable::Missing),
        n(IoUnreadable::Failed),
    );
    if denied > 0 {
        format!(
            "/proc/<pid>/io of {denied} of its {members} processes denied (another user's): {IO_FIX}"
        )
    } else if failed > 0 {
        format!("/proc/<pid>/io of {failed} of its {members} processes could not be read")
    } else {
        format!(
            "no /proc/<pid>/io for {missing} of its {members} processes (exited while read, or a \
             kernel without CONFIG_TASK_IO_ACCOUNTING)"
        )
    }
}

/// How to give the agent another user's `/proc/<pid>/io` (ptrace-read
/// access: same user, or CAP_SYS_PTRACE).
const IO_FIX: &str = "run the agent as root, or grant it CAP_SYS_PTRACE (containers: add the \
     SYS_PTRACE capability), or run it as the service's user";

const IO_HINT: &str = "per-service disk I/O reads /proc/<pid>/io, which needs ptrace-read access \
     to another user's process: run the agent as root, or grant it CAP_SYS_PTRACE (containers: \
     add the SYS_PTRACE capability), or run it as the services' user";

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
    /// [`crate::sources::net_tcp::is_live`]
    live_net: bool,
    /// `loadavg`'s last pid before the last listing of `<proc>`.
    last_pid: Option<u32>,
    /// `net/sockstat`'s TCP counts at the last look.
    tcp_counts: Option<SockstatTcp>,
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
    /// Each service's storage bytes since the agent started.
    io_totals: Vec<ProcIo>,
    /// The last sample met a `/proc/<pid>/io` it was not allowed to read.
    io_denied: bool,
}

impl ServiceSource {
    /// Discovers the services and takes the CPU baseline.
    pub fn new(section: &ServicesSection, paths: HostPaths) -> Self {
        let Plan {
            matchers,
            ports,
            growth,
            top_n,
        } = Plan::new(section);
        let matchers_len = matchers.len();
        let cgroups =
            CgroupServices::new(&paths, matchers.iter().map(|m| m.cgroup.clone()).collect());
        let own_pid_ns = own_pid_namespace(&paths);
        let live_net = crate::sources::net_tcp::is_live(&paths);
        let mut s = ServiceSource {
            paths,
            need_cmdline: matchers
                .iter()
                .any(|m| m.cmdline.is_some() || !m.process.is_empty()),
            ports,
            growth,
            matchers,
            top_n,
            procs: HashMap::new(),
            cycle: 0,
            own_pid_ns,
            live_net,
            last_pid: None,
            tcp_counts: None,
            listening: BTreeMap::new(),
            port_owners: HashMap::new(),
            fd_denied: 0,
            prev: HashMap::new(),
            prev_other: HashMap::new(),
            last_sample: None,
            started: Instant::now(),
            ticks_per_s: clock_ticks_per_second() as f64,
            page: page_size(),
            io_totals: vec![ProcIo::default(); matchers_len],
            io_denied: false,
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
            // A kernel thread's cmdline is empty: not worth a read, and
            // they are most of an idle host's pids.
            let cmdline = if self.need_cmdline && !stat.is_kernel_thread() {
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
    ///
    /// The listening sockets are dumped again only when new processes
    /// appeared, on a full rescan, or when `net/sockstat`'s TCP counts
    /// moved: a socket that starts or stops listening is created, hashed,
    /// unhashed or freed, and each moves a count. A dump walks the whole
    /// listening hash table (64 Ki buckets on most hosts), reading
    /// sockstat does not. A process that swaps one listener for another
    /// between two cycles leaves the counts as they were; the next full
    /// rescan sees it.
    fn refresh_ports(&mut self, appeared: bool) {
        if self.ports.is_empty() {
            return;
        }
        let full = self.cycle % RESCAN_EVERY == 1;
        let counts = if self.live_net {
            self.paths
                .read_proc("net/sockstat")
                .ok()
                .and_then(|t| parse_sockstat_tcp(&t))
        } else {
            None
        };
        let unchanged = counts.is_some() && counts == self.tcp_counts;
        self.tcp_counts = counts;
        if unchanged && !full && !appeared {
            return;
        }
        let mut listening: BTreeMap<u16, BTreeSet<u64>> = BTreeMap::new();
        for s in tcp_sockets(&self.paths, self.live_net, 1 << TCP_LISTEN) {
            let port = s.local.port();
            if self.ports.contains(&port) {
                listening.entry(port).or_default().insert(s.inode);
            }
        }
        let orphaned = listening
            .keys()
            .any(|p| self.port_owners.get(p).is_none_or(BTreeSet::is_empty));
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
        // One `io` read per process, beside its `stat`.
        let mut io_now: Vec<Result<ProcIo, IoUnreadable>> = Vec::new();
        let mut io_exited: Vec<bool> = Vec::new();
        let mut spans = Vec::with_capacity(assigned.len());
        for (i, (roots, members)) in assigned.into_iter().enumerate() {
            if let Some(cg) = by_cgroup[i].take() {
                // The cgroup's own counter already holds every process
                // that ran in it, reaped ones included.
                let name = &self.matchers[i].name;
                let mut s = cgroup_service_sample(name, cg, &self.paths, wall, self.page);
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
                let io = read_io(&self.paths, pid);
                // No io file and no stat any more: it exited in between,
                // which leaves nothing unread.
                io_exited.push(
                    io == Err(IoUnreadable::Missing) && read_stat(&self.paths, pid).is_none(),
                );
                readings.push(Reading {
                    key,
                    seen: Seen {
                        ppid: st.ppid,
                        ticks: st.cpu_ticks(),
                        child_ticks: st.child_ticks(),
                        child_faults: st.cminflt,
                        io: io.ok(),
                    },
                    new: self.is_new(key),
                });
                io_now.push(io);
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
        let io_read: Vec<Option<ProcIo>> = io_now.iter().map(|r| r.ok()).collect();
        let io_moved = io_deltas(&self.prev, &readings, &io_read, |(pid, start)| {
            procs.get(&pid).is_some_and(|p| p.starttime == start)
        });
        self.io_denied = false;
        for (i, (s, span)) in out.services.iter_mut().zip(spans).enumerate() {
            let counted: Vec<u64> = deltas[span.clone()].iter().flatten().copied().collect();
            if s.up() && !counted.is_empty() {
                let ticks: u64 = counted.iter().sum();
                s.cpu_percent = wall.map(|w| ticks as f64 / self.ticks_per_s / w * 100.0);
            }
            if self.matchers[i].cgroup.is_some() {
                continue;
            }
            // What the readable processes moved counts even in a sample
            // that cannot report the service, so the total stays whole.
            for d in io_moved[span.clone()].iter().flatten() {
                self.io_totals[i] = self.io_totals[i].plus(*d);
            }
            let unreadable: Vec<IoUnreadable> = io_now[span.clone()]
                .iter()
                .zip(&io_exited[span.clone()])
                .filter(|(_, exited)| !**exited)
                .filter_map(|(r, _)| r.err())
                .collect();
            self.io_denied |= unreadable.contains(&IoUnreadable::Denied);
            if !s.up() {
                continue;
            }
            if unreadable.is_empty() {
                s.disk_io = Some(self.io_totals[i]);
            } else {
                s.disk_io_note = Some(io_note(&unreadable, span.len()));
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
        // An unreadable `io` stays counted up to its last value.
        for r in &mut readings {
            if r.seen.io.is_none() {
                r.seen.io = self.prev.get(&r.key).and_then(|p| p.io);
            }
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
        snap.put(self.collect()?);
        Ok(())
    }

    fn hint(&self) -> Option<&'static str> {
        self.io_denied.then_some(IO_HINT)
    }
}

/// A cgroup service's sample: CPU and memory from the cgroup, threads and
/// open files (and RSS when there is no memory controller) from its
/// processes' `stat` and `fd/`, as for other services. `wall` is the time
/// since the previous sample.
fn cgroup_service_sample(
    name: &str,
    cg: cgroup::CgroupSample,
    paths: &HostPaths,
    wall: Option<f64>,
    page: u64,
) -> ServiceSample {
    use crate::sources::process::{count_fds, read_stat};
    let mut s = ServiceSample {
        name: name.to_owned(),
        note: cg.note,
        ..Default::default()
    };
    let (mut rss, mut threads, mut fds) = (0u64, 0u64, Some(0u64));
    for &pid in &cg.pids {
        // Gone since cgroup.procs was read: nothing to count.
        let Some(st) = read_stat(paths, pid) else {
            continue;
        };
        rss += st.rss_pages * page;
        threads += u64::from(st.num_threads);
        fds = fds.and_then(|n| Some(n + count_fds(paths, pid)?));
        s.pids.push(pid);
    }
    s.matched = cg.explain;
    if s.up() {
        s.cpu_percent = cg
            .cpu_ns
            .zip(wall)
            .map(|(ns, w)| ns as f64 / 1e9 / w * 100.0);
        s.rss_bytes = Some(cg.memory.map_or(rss, |(b, _)| b));
        s.threads = Some(threads);
        s.open_files = fds;
        s.note = None;
    } else if s.note.is_none() {
        s.note = Some("the cgroup's processes exited while they were read".into());
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(ppid: u32, ticks: u64, child_ticks: u64) -> Seen {
        Seen {
            ppid,
            ticks,
            child_ticks,
            child_faults: 0,
            io: None,
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
    fn a_grandchild_reaped_by_a_child_that_vanished_too_counts_once() {
        // The grandchild had run 20 ticks at the last sample and 5 more;
        // the child (30 ticks, 0 reaped then) waited for it, ran 2 more
        // and was waited for by the parent: the parent's reaped counters
        // grew by 32 + 25. Only what ran after the sample counts: 2 + 5.
        const GRAND: Key = (300, 90);
        let prev = HashMap::from([
            (PARENT, seen(1, 50, 0)),
            (CHILD, seen(100, 30, 0)),
            (GRAND, seen(200, 20, 0)),
        ]);
        let now = [reading(PARENT, seen(1, 50, 32 + 25))];
        assert_eq!(cpu_deltas(&prev, &now, |_| false), vec![Some(2 + 5)]);
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

    fn io(read_bytes: u64, write_bytes: u64) -> ProcIo {
        ProcIo {
            read_bytes,
            write_bytes,
        }
    }

    /// A process seen with `faults` reaped-children faults and `io`.
    fn io_seen(ppid: u32, faults: u64, io: ProcIo) -> Seen {
        Seen {
            child_faults: faults,
            io: Some(io),
            ..seen(ppid, 0, 0)
        }
    }

    #[test]
    fn io_a_child_seen_then_reaped_adds_only_its_bytes_after_that_sample() {
        // The child had written 300 bytes at the previous sample (100 of
        // them by its own reaped child), wrote 50 more and was waited for:
        // its 350 landed in the parent's counters with the parent's own 7.
        let prev = HashMap::from([
            (PARENT, io_seen(1, 10, io(1000, 2000))),
            (CHILD, io_seen(100, 4, io(20, 300))),
        ]);
        let now = [reading(
            PARENT,
            io_seen(1, 25, io(1000 + 20, 2000 + 7 + 350)),
        )];
        let io_now = [now[0].seen.io];
        assert_eq!(
            io_deltas(&prev, &now, &io_now, |_| false),
            vec![Some(io(0, 7 + 50))]
        );
    }

    #[test]
    fn io_a_child_never_seen_counts_whole_and_a_live_one_on_its_own() {
        let prev = HashMap::from([
            (PARENT, io_seen(1, 10, io(0, 2000))),
            (CHILD, io_seen(100, 0, io(0, 300))),
        ]);
        // A worker forked and reaped between the samples (4096 bytes) while
        // the measured child, still alive, wrote 100.
        let now = [
            reading(PARENT, io_seen(1, 11, io(0, 2000 + 4096))),
            reading(CHILD, io_seen(100, 0, io(0, 400))),
        ];
        let io_now = [now[0].seen.io, now[1].seen.io];
        assert_eq!(
            io_deltas(&prev, &now, &io_now, |_| false),
            vec![Some(io(0, 4096)), Some(io(0, 100))]
        );
    }

    #[test]
    fn io_a_child_not_waited_for_takes_nothing_off_its_parent() {
        // The child vanished, but the parent reaped nothing (cminflt
        // unchanged: SIGCHLD ignored, auto-reaped): the parent's own 500
        // bytes count whole; the child's bytes after its last sample are
        // lost, never taken from the parent.
        let prev = HashMap::from([
            (PARENT, io_seen(1, 10, io(0, 2000))),
            (CHILD, io_seen(100, 0, io(0, 300))),
        ]);
        let now = [reading(PARENT, io_seen(1, 10, io(0, 2500)))];
        let io_now = [now[0].seen.io];
        assert_eq!(
            io_deltas(&prev, &now, &io_now, |_| false),
            vec![Some(io(0, 500))]
        );
        // Its parent outside the service: nothing of it reaches a member.
        let prev = HashMap::from([
            (PARENT, io_seen(1, 10, io(0, 2000))),
            ((201, 9), io_seen(300, 0, io(0, 300))),
        ]);
        let now = [reading(PARENT, io_seen(1, 11, io(0, 2600)))];
        let io_now = [now[0].seen.io];
        assert_eq!(
            io_deltas(&prev, &now, &io_now, |_| false),
            vec![Some(io(0, 600))]
        );
    }

    #[test]
    fn io_a_child_and_grandchild_both_reaped_count_once() {
        // A shell (the child) and the command it ran (the grandchild) were
        // measured, then both finished: the command's 900 bytes went into
        // the shell's counters at its reap, and the shell's whole total
        // (its own 10 and the command's 900 + 100 more) into the parent's.
        const GRANDCHILD: Key = (300, 80);
        let prev = HashMap::from([
            (PARENT, io_seen(1, 10, io(0, 2000))),
            (CHILD, io_seen(100, 0, io(0, 10))),
            (GRANDCHILD, io_seen(200, 0, io(0, 900))),
        ]);
        let now = [reading(PARENT, io_seen(1, 11, io(0, 2000 + 10 + 1000)))];
        let io_now = [now[0].seen.io];
        assert_eq!(
            io_deltas(&prev, &now, &io_now, |_| false),
            vec![Some(io(0, 100))]
        );
    }

    #[test]
    fn io_unreadable_baseline_and_new_processes() {
        let prev = HashMap::from([(PARENT, io_seen(1, 10, io(0, 2000)))]);
        let now = [reading(PARENT, io_seen(1, 10, io(0, 2100)))];
        // Unreadable now: no delta.
        assert_eq!(io_deltas(&prev, &now, &[None], |_| false), vec![None]);
        // First read of a process that was there before: a baseline.
        let mut r = reading((100, 90), io_seen(1, 0, io(5, 70)));
        assert_eq!(io_deltas(&prev, &[r], &[r.seen.io], |_| false), vec![None]);
        // One that appeared inside the window: all of it.
        r.new = true;
        assert_eq!(
            io_deltas(&prev, &[r], &[r.seen.io], |_| false),
            vec![Some(io(5, 70))]
        );
        // A counter that went down (never in practice) adds nothing.
        let now = [reading(PARENT, io_seen(1, 10, io(0, 10)))];
        assert_eq!(
            io_deltas(&prev, &now, &[now[0].seen.io], |_| false),
            vec![Some(io(0, 0))]
        );
    }

    #[test]
    fn io_notes_name_the_cause_and_the_fix() {
        let denied = io_note(&[IoUnreadable::Denied, IoUnreadable::Missing], 3);
        assert!(denied.starts_with("/proc/<pid>/io of 1 of its 3 processes denied"));
        assert!(denied.contains("CAP_SYS_PTRACE"), "{denied}");
        let missing = io_note(&[IoUnreadable::Missing], 1);
        assert!(missing.contains("CONFIG_TASK_IO_ACCOUNTING"), "{missing}");
    }
}
