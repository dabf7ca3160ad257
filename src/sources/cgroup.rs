//! Services defined by their cgroup (`systemd_unit`, `cgroup` matchers).
//!
//! The kernel counts a cgroup's CPU time for every task that ever ran in
//! it, so short-lived workers and double-forked daemons are measured even
//! when no sample ever saw them. Hierarchies come from `<proc>/self/mountinfo`
//! (proc(5)); file formats are the kernel's
//! <https://docs.kernel.org/admin-guide/cgroup-v2.html> and
//! <https://docs.kernel.org/admin-guide/cgroup-v1/cpuacct.html>,
//! <https://docs.kernel.org/admin-guide/cgroup-v1/memory.html>.
//!
//! Cost per cgroup service and cycle: listing the directories its glob
//! names, then `cgroup.procs`, one CPU counter and one `memory.stat` per
//! matched cgroup (plus `cgroup.procs` of each child cgroup).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use super::seq_file::unescape;
use crate::host::{HostPaths, read_file};
pub use crate::patterns::{check_cgroup_pattern, check_unit};

/// Cgroups one service may match (a glob like `*.scope`), cgroups below
/// each that `cgroup.procs` is read from, and directories a glob's
/// intermediate components may reach: bounds on a cycle's reads.
pub const MAX_MATCHES: usize = 64;
pub const MAX_DESCENDANTS: usize = 256;
pub const MAX_SCAN: usize = 1024;

/// What a `systemd_unit` or `cgroup` matcher looks for: one or more glob
/// patterns, tried in order; the first that matches anything wins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupSpec {
    /// As configured, for `services` and notes (`systemd unit x.service`).
    pub display: String,
    /// Path components; `*` and `?` match within one component.
    pub patterns: Vec<Vec<String>>,
}

impl CgroupSpec {
    /// `x.service` is `<slice>/x.service` for system units (`system.slice`
    /// by default, any top-level slice by `Slice=`), one level deeper for a
    /// nested slice (`Slice=a-b.slice` is `a.slice/a-b.slice`), and
    /// `user.slice/user-<uid>.slice/user@<uid>.service/<slice>/x.service`
    /// for user units (`app.slice` by default).
    pub fn systemd_unit(unit: &str) -> CgroupSpec {
        let pats = [
            format!("*/{unit}"),
            format!("*/*/{unit}"),
            format!("user.slice/*/*/*/{unit}"),
        ];
        CgroupSpec {
            display: format!("systemd unit {unit}"),
            patterns: pats.iter().map(|p| components(p)).collect(),
        }
    }

    pub fn path(pattern: &str) -> CgroupSpec {
        CgroupSpec {
            display: format!("cgroup {pattern}"),
            patterns: vec![components(pattern)],
        }
    }
}

fn components(p: &str) -> Vec<String> {
    p.split('/')
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `*` (any run of characters) and `?` (one character) within one path
/// component.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

fn is_glob(c: &str) -> bool {
    c.contains(['*', '?'])
}

/// A cgroup filesystem in `mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupMount {
    /// `cgroup2`, or `cgroup` with its super options (`cpu`, `cpuacct`,
    /// `memory`, `name=systemd`).
    pub v2: bool,
    pub options: Vec<String>,
    /// The hierarchy's directory this mount shows (`/` but inside a cgroup
    /// namespace or a bind mount of a subtree).
    pub root: String,
    /// Where it is mounted, in the reader's mount namespace.
    pub mount_point: PathBuf,
}

impl CgroupMount {
    fn has(&self, opt: &str) -> bool {
        self.options.iter().any(|o| o == opt)
    }
}

/// Every cgroup and cgroup2 mount of a `mountinfo` text, in order:
/// `id parent maj:min root mount_point options [optional...] - fstype source super_options`.
pub fn parse_cgroup_mounts(mountinfo: &str) -> Vec<CgroupMount> {
    let mut out = Vec::new();
    for line in mountinfo.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(sep) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        if sep < 6 || fields.len() < sep + 4 {
            continue;
        }
        let v2 = match fields[sep + 1] {
            "cgroup2" => true,
            "cgroup" => false,
            _ => continue,
        };
        out.push(CgroupMount {
            v2,
            options: fields[sep + 3].split(',').map(str::to_owned).collect(),
            root: unescape(fields[3]),
            mount_point: PathBuf::from(unescape(fields[4])),
        });
    }
    out
}

/// Where this process reaches a mount point of its own mountinfo, given
/// where the host's `/sys` and `/` are: a point already under `paths.sys`
/// (a container's `/host/sys/fs/cgroup`) is used as is, a `/sys/...` point
/// is taken under `paths.sys`, any other under `paths.root`.
pub fn map_mount_point(point: &Path, paths: &HostPaths) -> PathBuf {
    if point.starts_with(&paths.sys) {
        return point.to_path_buf();
    }
    if let Ok(rest) = point.strip_prefix("/sys") {
        return paths.sys.join(rest);
    }
    paths.root.join(point.strip_prefix("/").unwrap_or(point))
}

/// One hierarchy the agent reads, with where it is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    /// `cgroup2`, `cpuacct`, `memory`, `name=systemd`.
    pub label: &'static str,
    pub mount: CgroupMount,
    pub dir: PathBuf,
}

impl Hierarchy {
    fn describe(&self) -> String {
        let mut s = format!("{} at {}", self.label, self.mount.mount_point.display());
        if self.dir != self.mount.mount_point {
            s.push_str(&format!(" (read at {})", self.dir.display()));
        }
        if self.mount.root != "/" {
            s.push_str(&format!(
                ", which shows the hierarchy from {}",
                self.mount.root
            ));
        }
        s
    }
}

/// The hierarchies a cgroup service may use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hierarchies {
    pub v2: Option<Hierarchy>,
    pub cpuacct: Option<Hierarchy>,
    pub memory: Option<Hierarchy>,
    pub systemd: Option<Hierarchy>,
}

impl Hierarchies {
    /// Picks each kind's mount, preferring one already under `paths.sys`
    /// (in a container, the host's tree rather than the container's own).
    pub fn from_mounts(mounts: &[CgroupMount], paths: &HostPaths) -> Hierarchies {
        let pick = |label: &'static str, want: &dyn Fn(&CgroupMount) -> bool| {
            let mut c: Vec<&CgroupMount> = mounts.iter().filter(|m| want(m)).collect();
            c.sort_by_key(|m| !m.mount_point.starts_with(&paths.sys));
            c.first().map(|m| Hierarchy {
                label,
                mount: (*m).clone(),
                dir: map_mount_point(&m.mount_point, paths),
            })
        };
        Hierarchies {
            v2: pick("cgroup2", &|m| m.v2),
            cpuacct: pick("cpuacct", &|m| !m.v2 && m.has("cpuacct")),
            memory: pick("memory", &|m| !m.v2 && m.has("memory")),
            systemd: pick("name=systemd", &|m| !m.v2 && m.has("name=systemd")),
        }
    }

    pub fn read(paths: &HostPaths) -> Hierarchies {
        let text = paths.read_proc("self/mountinfo").unwrap_or_default();
        Hierarchies::from_mounts(&parse_cgroup_mounts(&text), paths)
    }

    fn any(&self) -> bool {
        self.v2.is_some()
            || self.cpuacct.is_some()
            || self.memory.is_some()
            || self.systemd.is_some()
    }

    /// Where a pattern is looked for, in order: cgroup2, then the v1
    /// hierarchies that can give CPU, memory or at least processes.
    fn search_order(&self) -> impl Iterator<Item = &Hierarchy> {
        [&self.v2, &self.cpuacct, &self.memory, &self.systemd]
            .into_iter()
            .flatten()
    }
}

/// v2 `cpu.stat`: `usage_usec`, the cgroup's and its descendants' CPU
/// time in microseconds.
pub fn parse_cpu_stat_usage_usec(text: &str) -> Option<u64> {
    flat_keyed(text, "usage_usec")
}

/// v1 `cpuacct.usage`: CPU time in nanoseconds, descendants included.
pub fn parse_cpuacct_usage(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

fn flat_keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok())?
    })
}

/// How memory is counted, for `services`.
pub const V2_MEMORY_FORMULA: &str = "memory.stat anon + file_mapped";
pub const V1_MEMORY_FORMULA: &str = "memory.stat total_rss + total_mapped_file";
pub const RSS_FALLBACK: &str = "RSS sum of its processes";

/// A cgroup2 `memory.stat` as the memory its processes map, comparable
/// with the sum of their RSS (anonymous + file + shmem resident pages):
/// `anon` is mapped anonymous memory and `file_mapped` mapped page cache,
/// tmpfs and shared memory included (both `NR_FILE_MAPPED`). `shmem` is
/// not added: mapped shmem is already in `file_mapped`, and the rest is
/// tmpfs files no process maps.
pub fn parse_memory_v2(text: &str) -> Option<u64> {
    Some(flat_keyed(text, "anon")? + flat_keyed(text, "file_mapped")?)
}

/// The v1 counterpart, hierarchical (`total_*` include child cgroups):
/// `total_rss` is anonymous memory and `total_mapped_file` mapped files,
/// tmpfs and shmem included (cgroup-v1/memory.rst); `total_shmem` would
/// count mapped shmem twice.
pub fn parse_memory_v1(text: &str) -> Option<u64> {
    Some(flat_keyed(text, "total_rss")? + flat_keyed(text, "total_mapped_file")?)
}

/// `cgroup.procs`: one pid a line; v1 may repeat one, and a pid outside
/// the reader's pid namespace reads as 0.
pub fn parse_procs(text: &str) -> Vec<u32> {
    text.lines().filter_map(|l| l.trim().parse().ok()).collect()
}

/// Cgroups (relative to `base`) matching `pattern`, sorted, the first
/// `MAX_MATCHES`. A literal component costs a `stat`, a glob a listing.
pub fn resolve(base: &Path, pattern: &[String]) -> Vec<String> {
    let mut found: Vec<String> = vec![String::new()];
    for comp in pattern {
        let mut next = Vec::new();
        for rel in &found {
            let dir = base.join(rel);
            let join = |name: &str| {
                if rel.is_empty() {
                    name.to_owned()
                } else {
                    format!("{rel}/{name}")
                }
            };
            if is_glob(comp) {
                let Ok(entries) = std::fs::read_dir(&dir) else {
                    continue;
                };
                for e in entries.flatten() {
                    if e.file_type().is_ok_and(|t| t.is_dir())
                        && let Some(name) = e.file_name().to_str()
                        && glob_match(comp, name)
                    {
                        next.push(join(name));
                    }
                }
            } else if dir.join(comp).is_dir() {
                next.push(join(comp));
            }
            if next.len() >= MAX_SCAN {
                break;
            }
        }
        // Sorted before any cut, so the same cgroups are kept every cycle
        // (one dropped and back would count as new).
        next.sort();
        next.truncate(MAX_SCAN);
        found = next;
        if found.is_empty() {
            break;
        }
    }
    // Every match has as many components as the pattern: none is below
    // another, so no cgroup's counter is counted twice.
    found.truncate(MAX_MATCHES);
    found
}

/// The pids of a cgroup and of every cgroup below it (up to
/// `MAX_DESCENDANTS` cgroups), deduplicated; `(pids, invisible)` where
/// `invisible` counts entries in another pid namespace (read as 0).
pub fn procs_recursive(dir: &Path) -> Option<(BTreeSet<u32>, usize)> {
    let mut pids = BTreeSet::new();
    let mut invisible = 0;
    let mut stack = vec![dir.to_path_buf()];
    let mut seen = 0;
    let mut first = true;
    while let Some(d) = stack.pop() {
        seen += 1;
        match read_file(&d.join("cgroup.procs")) {
            Ok(t) => {
                for p in parse_procs(&t) {
                    if p == 0 {
                        invisible += 1;
                    } else {
                        pids.insert(p);
                    }
                }
            }
            // The cgroup itself gone: the caller reports it.
            Err(_) if first => return None,
            Err(_) => {}
        }
        first = false;
        if let Ok(entries) = std::fs::read_dir(&d) {
            for e in entries.flatten() {
                if seen + stack.len() >= MAX_DESCENDANTS {
                    break;
                }
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(e.path());
                }
            }
        }
    }
    Some((pids, invisible))
}

/// A CPU counter reading in nanoseconds, with the identity of the cgroup
/// directory it came from (a recreated cgroup is a new inode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counter {
    pub ino: u64,
    pub ns: u64,
}

/// Nanoseconds a cgroup spent since the previous sample: the delta while
/// it is the same cgroup; all of its counter when it was created since
/// (not there, another inode, or a counter that went back, so the cgroup
/// was recreated by a restart) and a previous sample exists; `None` (a new
/// baseline) at the first sample. Never negative, never a spike.
pub fn counter_delta(
    prev: Option<Counter>,
    now: Counter,
    had_previous_sample: bool,
) -> Option<u64> {
    match prev {
        Some(p) if p.ino == now.ino && now.ns >= p.ns => Some(now.ns - p.ns),
        _ if had_previous_sample => Some(now.ns),
        _ => None,
    }
}

/// The kind of counter a matched cgroup gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CpuFrom {
    V2,
    Cpuacct,
}

/// One matched cgroup's reading.
#[derive(Debug, Clone, Default)]
pub struct Reading {
    pub rel: String,
    pub pids: BTreeSet<u32>,
    pub invisible: usize,
    pub cpu: Option<Counter>,
    pub cpu_source: Option<String>,
    pub memory: Option<(u64, &'static str)>,
}

fn ino(p: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(p).ok().map(|m| m.ino())
}

/// Reads one matched cgroup: processes from the hierarchy it was found in,
/// CPU from cgroup2's `cpu.stat` or else v1 `cpuacct.usage` at the same
/// path, memory from cgroup2's or else v1's `memory.stat`.
fn read_cgroup(h: &Hierarchies, found_in: &Hierarchy, rel: &str) -> Option<Reading> {
    let (pids, invisible) = procs_recursive(&found_in.dir.join(rel))?;
    let mut r = Reading {
        rel: rel.to_owned(),
        pids,
        invisible,
        ..Default::default()
    };
    let mut cpu_order = Vec::new();
    if found_in.label == "cgroup2" {
        cpu_order.push(CpuFrom::V2);
    }
    cpu_order.push(CpuFrom::Cpuacct);
    for from in cpu_order {
        let (hier, file) = match from {
            CpuFrom::V2 => (&h.v2, "cpu.stat"),
            CpuFrom::Cpuacct => (&h.cpuacct, "cpuacct.usage"),
        };
        let Some(hier) = hier else { continue };
        let dir = hier.dir.join(rel);
        let Ok(text) = read_file(&dir.join(file)) else {
            continue;
        };
        let ns = match from {
            CpuFrom::V2 => parse_cpu_stat_usage_usec(&text).map(|u| u.saturating_mul(1000)),
            CpuFrom::Cpuacct => parse_cpuacct_usage(&text),
        };
        if let (Some(ns), Some(ino)) = (ns, ino(&dir)) {
            r.cpu = Some(Counter { ino, ns });
            r.cpu_source = Some(match from {
                CpuFrom::V2 => format!("cpu.stat usage_usec in {}", hier.label),
                CpuFrom::Cpuacct => format!("cpuacct.usage in {}", hier.describe()),
            });
            break;
        }
    }
    let v2 = h.v2.as_ref().and_then(|v| {
        let t = read_file(&v.dir.join(rel).join("memory.stat")).ok()?;
        Some((parse_memory_v2(&t)?, V2_MEMORY_FORMULA))
    });
    r.memory = v2.or_else(|| {
        let m = h.memory.as_ref()?;
        let t = read_file(&m.dir.join(rel).join("memory.stat")).ok()?;
        Some((parse_memory_v1(&t)?, V1_MEMORY_FORMULA))
    });
    Some(r)
}

/// What one cgroup service found this cycle, before per-process figures.
#[derive(Debug, Clone, Default)]
pub struct CgroupSample {
    pub pids: BTreeSet<u32>,
    pub invisible: usize,
    /// CPU nanoseconds over the interval, `None` at the baseline or when a
    /// matched cgroup has no counter.
    pub cpu_ns: Option<u64>,
    /// Memory from `memory.stat` of every matched cgroup, and the formula.
    pub memory: Option<(u64, &'static str)>,
    /// `services`' explanation: which cgroups in which hierarchy, where
    /// CPU and memory come from.
    pub explain: Vec<String>,
    /// Why the service is down.
    pub note: Option<String>,
}

/// The cgroup services of a configuration and their previous counters.
#[derive(Debug, Default)]
pub struct CgroupServices {
    hier: Hierarchies,
    specs: Vec<Option<CgroupSpec>>,
    prev: Vec<HashMap<String, Counter>>,
    sampled: Vec<bool>,
}

impl CgroupServices {
    /// `specs[i]` is service i's cgroup matcher, if it has one; mountinfo
    /// is read only when one does.
    pub fn new(paths: &HostPaths, specs: Vec<Option<CgroupSpec>>) -> CgroupServices {
        let hier = if specs.iter().any(Option::is_some) {
            Hierarchies::read(paths)
        } else {
            Hierarchies::default()
        };
        CgroupServices {
            hier,
            prev: vec![HashMap::new(); specs.len()],
            sampled: vec![false; specs.len()],
            specs,
        }
    }

    pub fn hierarchies(&self) -> &Hierarchies {
        &self.hier
    }

    /// Samples every cgroup service; `None` for the others.
    pub fn sample(&mut self, paths: &HostPaths) -> Vec<Option<CgroupSample>> {
        if !self.hier.any() && self.specs.iter().any(Option::is_some) {
            // Mounted since the start (or never: one read a cycle).
            self.hier = Hierarchies::read(paths);
        }
        (0..self.specs.len()).map(|i| self.sample_one(i)).collect()
    }

    fn sample_one(&mut self, i: usize) -> Option<CgroupSample> {
        let spec = self.specs[i].as_ref()?;
        let mut s = CgroupSample::default();
        if !self.hier.any() {
            s.note = Some("no cgroup hierarchy is mounted (none in <proc>/self/mountinfo)".into());
            self.prev[i].clear();
            self.sampled[i] = false;
            return Some(s);
        }
        let mut found = None;
        'search: for h in self.hier.search_order() {
            for pat in &spec.patterns {
                let rels = resolve(&h.dir, pat);
                if !rels.is_empty() {
                    found = Some((h.clone(), pat.join("/"), rels));
                    break 'search;
                }
            }
        }
        let Some((h, pat, rels)) = found else {
            let looked: Vec<String> = self.hier.search_order().map(Hierarchy::describe).collect();
            let pats: Vec<String> = spec.patterns.iter().map(|p| p.join("/")).collect();
            s.note = Some(format!(
                "no cgroup {} under {}",
                pats.join(" or "),
                looked.join(", ")
            ));
            self.prev[i].clear();
            self.sampled[i] = true;
            return Some(s);
        };
        let readings: Vec<Reading> = rels
            .iter()
            .filter_map(|rel| read_cgroup(&self.hier, &h, rel))
            .collect();
        let had_previous = self.sampled[i];
        self.sampled[i] = true;
        let mut next = HashMap::new();
        let mut cpu = Some(0u64);
        let mut memory = Some(0u64);
        let mut formula = None;
        let mut sources = BTreeSet::new();
        for r in &readings {
            s.pids.extend(&r.pids);
            s.invisible += r.invisible;
            match r.cpu {
                Some(c) => {
                    let d = counter_delta(self.prev[i].get(&r.rel).copied(), c, had_previous);
                    cpu = cpu.zip(d).map(|(a, b)| a + b);
                    next.insert(r.rel.clone(), c);
                }
                None => cpu = None,
            }
            if let Some(src) = &r.cpu_source {
                sources.insert(src.clone());
            }
            match r.memory {
                Some((b, f)) => {
                    memory = memory.map(|m| m + b);
                    formula = Some(f);
                }
                None => memory = None,
            }
        }
        self.prev[i] = next;
        if readings.is_empty() {
            // Matched, then gone before its files were read.
            s.note = Some(format!("cgroup {pat} disappeared while it was read"));
            return Some(s);
        }
        s.cpu_ns = cpu;
        s.memory = memory.zip(formula);
        let names: Vec<&str> = readings.iter().map(|r| r.rel.as_str()).collect();
        s.explain.push(format!(
            "cgroup {} (pattern {pat}) in {}",
            names.join(", "),
            h.describe()
        ));
        s.explain.push(
            match (sources.is_empty(), readings.iter().all(|r| r.cpu.is_some())) {
                (false, true) => format!(
                    "cpu from the cgroup's own counter, every process that ran in it ({})",
                    sources.into_iter().collect::<Vec<_>>().join(", ")
                ),
                _ => "no cpu counter: no cpu.stat usage_usec nor cpuacct.usage for this cgroup (on a cgroup v1 host, CPUAccounting=yes puts a unit in cpuacct)".into(),
            },
        );
        s.explain.push(match s.memory {
            Some((_, f)) => format!("memory from {f}"),
            None => {
                format!("memory from the {RSS_FALLBACK} (no memory controller for this cgroup)")
            }
        });
        if s.pids.is_empty() {
            s.note = Some(if s.invisible > 0 {
                format!(
                    "cgroup {} has {} processes in another pid namespace: run the agent in the host's (hostPID)",
                    names.join(", "),
                    s.invisible
                )
            } else {
                format!("cgroup {} has no process", names.join(", "))
            });
        }
        Some(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_stay_within_a_component() {
        assert!(glob_match("*.service", "ollama.service"));
        assert!(glob_match("docker-*.scope", "docker-0123abc.scope"));
        assert!(glob_match("user-?.slice", "user-0.slice"));
        assert!(!glob_match("user-?.slice", "user-10.slice"));
        assert!(glob_match("*", ""));
        assert!(glob_match("a*b*c", "aXbYc"));
        assert!(!glob_match("a*b*c", "aXbY"));
        assert!(!glob_match("ollama.service", "ollama.services"));
    }

    #[test]
    fn resolve_keeps_the_same_first_matches() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..70 {
            std::fs::create_dir_all(
                dir.path()
                    .join(format!("system.slice/docker-{i:02}.scope/sub")),
            )
            .unwrap();
        }
        std::fs::create_dir_all(dir.path().join("system.slice/cron.service")).unwrap();
        std::fs::write(dir.path().join("system.slice/docker-xx.scope"), "a file").unwrap();
        let got = resolve(dir.path(), &components("system.slice/docker-*.scope"));
        let want: Vec<String> = (0..MAX_MATCHES)
            .map(|i| format!("system.slice/docker-{i:02}.scope"))
            .collect();
        assert_eq!(got, want);
        assert_eq!(
            resolve(dir.path(), &components("*/cron.service")),
            vec!["system.slice/cron.service"]
        );
        assert!(resolve(dir.path(), &components("*/nope.service")).is_empty());
    }

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape(r"/mnt/a\040b\134c"), "/mnt/a b\\c");
        assert_eq!(unescape(r"/x\04"), r"/x\04");
    }

    #[test]
    fn counter_deltas_never_go_negative() {
        let c = |ino, ns| Counter { ino, ns };
        assert_eq!(counter_delta(None, c(1, 500), false), None);
        assert_eq!(counter_delta(Some(c(1, 500)), c(1, 800), true), Some(300));
        // Recreated: new inode, or the same inode number reused with a
        // counter that restarted from 0.
        assert_eq!(
            counter_delta(Some(c(1, 5_000_000)), c(2, 7_000), true),
            Some(7_000)
        );
        assert_eq!(
            counter_delta(Some(c(1, 5_000_000)), c(1, 7_000), true),
            Some(7_000)
        );
        // Appeared since the previous sample.
        assert_eq!(counter_delta(None, c(3, 9), true), Some(9));
    }

    #[test]
    fn checks() {
        assert!(check_cgroup_pattern("system.slice/ollama.service").is_none());
        assert!(check_cgroup_pattern("/system.slice/docker-*.scope").is_none());
        assert!(check_cgroup_pattern("/").is_some());
        assert!(check_cgroup_pattern("a//b").is_some());
        assert!(check_cgroup_pattern("a/../b").is_some());
        assert!(check_unit("ollama.service").is_none());
        assert!(check_unit("ollama").is_some());
        assert!(check_unit("system.slice/ollama.service").is_some());
    }
}
