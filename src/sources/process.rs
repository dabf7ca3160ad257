//! Per-process files of procfs: `/proc/<pid>/stat`, `cmdline`, `io`,
//! `fd/` (proc(5)). Parsing is apart from reading so fixtures and property tests
//! reach the parsers directly.

use super::ParseError;

/// The fields of `/proc/<pid>/stat` the agent uses. One read gives CPU
/// time, RSS, threads and the parent: `statm` and `status` would repeat
/// them at two more reads per process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PidStat {
    pub pid: u32,
    /// `comm`: the executable name, truncated to 15 bytes by the kernel.
    pub comm: String,
    pub state: char,
    pub ppid: u32,
    /// The kernel's per-task flags (`PF_*` of include/linux/sched.h).
    pub flags: u32,
    /// Minor faults of the children this process has waited for: grows at
    /// every reap (a process that ran user code faulted at least once), so
    /// it tells whether a vanished child's counters went to this parent.
    pub cminflt: u64,
    /// User and system CPU time in clock ticks (USER_HZ).
    pub utime: u64,
    pub stime: u64,
    /// User and system time of the children this process has waited for
    /// (each child's own time plus its reaped children's), in ticks: a
    /// child's whole total is added when it is reaped, not while it runs.
    pub cutime: u64,
    pub cstime: u64,
    pub num_threads: u32,
    /// Start time in clock ticks after boot: with the pid, it identifies a
    /// process across pid reuse.
    pub starttime: u64,
    /// Resident pages (the same counters `statm` and VmRSS read).
    pub rss_pages: u64,
}

impl PidStat {
    pub fn cpu_ticks(&self) -> u64 {
        self.utime + self.stime
    }

    /// A kernel thread (`PF_KTHREAD`): no user memory, an empty `cmdline`.
    /// Most of the pids of an idle host are these.
    pub fn is_kernel_thread(&self) -> bool {
        const PF_KTHREAD: u32 = 0x0020_0000;
        self.flags & PF_KTHREAD != 0
    }

    /// CPU ticks of the reaped children (`cutime` + `cstime`).
    pub fn child_ticks(&self) -> u64 {
        self.cutime + self.cstime
    }
}

/// `comm` may hold spaces and parentheses (`(sd-pam)`, `tmux: server`,
/// a name like `a) b (c`), so it runs from the first `(` to the LAST `)`.
pub fn parse_pid_stat(text: &str) -> Result<PidStat, ParseError> {
    let open = text
        .find('(')
        .ok_or_else(|| ParseError("no '(' before comm".into()))?;
    let close = text
        .rfind(')')
        .ok_or_else(|| ParseError("no ')' after comm".into()))?;
    if close < open {
        return Err(ParseError("')' before '('".into()));
    }
    let pid = text[..open]
        .trim()
        .parse()
        .map_err(|_| ParseError(format!("bad pid {:?}", text[..open].trim())))?;
    let comm = text[open + 1..close].to_owned();
    let rest: Vec<&str> = text[close + 1..].split_ascii_whitespace().collect();
    // rest[0] is field 3 (state); field n is rest[n - 3].
    let field = |n: usize| -> Result<&str, ParseError> {
        rest.get(n - 3)
            .copied()
            .ok_or_else(|| ParseError(format!("only {} fields after comm", rest.len())))
    };
    let num = |n: usize| -> Result<u64, ParseError> {
        let f = field(n)?;
        f.parse()
            .map_err(|_| ParseError(format!("field {n} is not a number: {f:?}")))
    };
    // cutime, cstime and rss are signed longs (proc(5) `%ld`); never
    // negative in practice, clamped anyway.
    let signed = |n: usize| -> Result<u64, ParseError> {
        let f = field(n)?;
        f.parse::<i64>()
            .map(|v| v.max(0) as u64)
            .map_err(|_| ParseError(format!("field {n} is not a number: {f:?}")))
    };
    let state = field(3)?.chars().next().unwrap_or('?');
    Ok(PidStat {
        pid,
        comm,
        state,
        ppid: u32::try_from(num(4)?).map_err(|_| ParseError("ppid out of range".into()))?,
        // `%u` since Linux 2.6.22; wider values are not flags this knows.
        flags: num(9)? as u32,
        cminflt: num(11)?,
        utime: num(14)?,
        stime: num(15)?,
        cutime: signed(16)?,
        cstime: signed(17)?,
        num_threads: u32::try_from(num(20)?).unwrap_or(u32::MAX),
        starttime: num(22)?,
        rss_pages: signed(24)?,
    })
}

/// The storage-layer bytes of `/proc/<pid>/io` (proc(5), and
/// https://docs.kernel.org/filesystems/proc.html section 3.3): what the
/// process caused to be read from or sent to block devices, not the
/// `rchar`/`wchar` of its read and write calls (page-cache hits, pipes and
/// sockets). The whole thread group's, including its exited threads and
/// the children it has waited for (the kernel adds a child's totals to its
/// parent's at the reap).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcIo {
    pub read_bytes: u64,
    /// Counted when a page is dirtied, not when it is written back;
    /// `cancelled_write_bytes` (dirty pages truncated before writeback) is
    /// not taken off.
    pub write_bytes: u64,
}

impl ProcIo {
    /// Both directions' growth since `earlier`, each clamped at 0.
    pub fn since(self, earlier: ProcIo) -> ProcIo {
        ProcIo {
            read_bytes: self.read_bytes.saturating_sub(earlier.read_bytes),
            write_bytes: self.write_bytes.saturating_sub(earlier.write_bytes),
        }
    }

    pub fn plus(self, other: ProcIo) -> ProcIo {
        ProcIo {
            read_bytes: self.read_bytes.saturating_add(other.read_bytes),
            write_bytes: self.write_bytes.saturating_add(other.write_bytes),
        }
    }
}

/// `key: value` lines (`rchar`, `wchar`, `syscr`, `syscw`, `read_bytes`,
/// `write_bytes`, `cancelled_write_bytes`); only the two byte counters are
/// required, lines the kernel may add are ignored.
pub fn parse_proc_io(text: &str) -> Result<ProcIo, ParseError> {
    let (mut read, mut write) = (None, None);
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let slot = match key.trim() {
            "read_bytes" => &mut read,
            "write_bytes" => &mut write,
            _ => continue,
        };
        let v = value.trim();
        *slot = Some(
            v.parse::<u64>()
                .map_err(|_| ParseError(format!("{} is not a number: {v:?}", key.trim())))?,
        );
    }
    match (read, write) {
        (Some(read_bytes), Some(write_bytes)) => Ok(ProcIo {
            read_bytes,
            write_bytes,
        }),
        _ => Err(ParseError("no read_bytes and write_bytes lines".into())),
    }
}

/// `/proc/<pid>/cmdline`: NUL-separated arguments, joined with spaces.
/// Kernel threads have none.
pub fn parse_cmdline(bytes: &[u8]) -> String {
    // One pass and one allocation: this runs for every process on a full
    // rescan. NUL is ASCII, so decoding first splits the same arguments.
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::with_capacity(text.len());
    for arg in text.split('\0').filter(|a| !a.is_empty()) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(arg);
    }
    out
}

/// The container and Kubernetes pod a process runs in, as its cgroup path
/// names them; each absent when the path does not say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerIdentity {
    /// The runtime's 64-hex container id (Docker, containerd/CRI, CRI-O,
    /// Podman).
    pub container_id: Option<String>,
    /// The pod's UID, with dashes (`k8s.pod.uid`).
    pub pod_uid: Option<String>,
}

impl ContainerIdentity {
    pub fn is_empty(&self) -> bool {
        self.container_id.is_none() && self.pod_uid.is_none()
    }
}

/// `/proc/<pid>/cgroup` (cgroups(7)): `hierarchy:controllers:path` lines,
/// one per v1 hierarchy and `0::path` for v2. The first line whose path
/// names a container (or a pod) gives it: in hybrid mode the v2 line may
/// be `/` while the v1 lines hold `/docker/<id>`. Shapes:
///
/// - systemd driver: `.../docker-<id>.scope`, `cri-containerd-<id>.scope`,
///   `crio-<id>.scope`, `libpod-<id>.scope` (Podman may add `/container`
///   below it), under `kubepods[-<qos>]-pod<uid with _>.slice` for a pod;
/// - cgroupfs driver: `/docker/<id>`, `/kubepods[/<qos>]/pod<uid>/<id>`,
///   `/libpod_parent/libpod-<id>`.
///
/// The deepest match of a path wins (a container inside a container).
/// Paths are relative to the reader's cgroup namespace (`/../..` prefixes
/// for an agent in a pod of its own), which changes nothing here. The
/// runtimes' monitor scopes (`crio-conmon-<id>`, `libpod-conmon-<id>`)
/// are no container.
pub fn parse_container_identity(text: &str) -> ContainerIdentity {
    let mut out = ContainerIdentity::default();
    for line in text.lines() {
        let Some(path) = line.splitn(3, ':').nth(2) else {
            continue;
        };
        let found = path_identity(path);
        if out.container_id.is_none() {
            out.container_id = found.container_id;
        }
        if out.pod_uid.is_none() {
            out.pod_uid = found.pod_uid;
        }
    }
    out
}

fn path_identity(path: &str) -> ContainerIdentity {
    let mut out = ContainerIdentity::default();
    let mut parent = "";
    for part in path.split('/') {
        if let Some(uid) = pod_uid(part) {
            out.pod_uid = Some(uid);
        } else if let Some(id) = scoped_container_id(part) {
            out.container_id = Some(id.to_owned());
        } else if (parent == "docker" || pod_uid(parent).is_some()) && is_container_id(part) {
            out.container_id = Some(part.to_owned());
        }
        parent = part;
    }
    out
}

/// `docker-<id>.scope` and the like; `libpod-<id>` and `crio-<id>` also
/// without the suffix (cgroupfs driver).
fn scoped_container_id(part: &str) -> Option<&str> {
    let name = part.strip_suffix(".scope").unwrap_or(part);
    ["docker-", "cri-containerd-", "crio-", "libpod-"]
        .iter()
        .find_map(|p| name.strip_prefix(p))
        .filter(|id| is_container_id(id))
}

fn is_container_id(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `pod<uid>` (cgroupfs) or `kubepods[-<qos>]-pod<uid, _ for ->.slice`
/// (systemd, which reserves `-` for nesting).
fn pod_uid(part: &str) -> Option<String> {
    let uid = match part.strip_suffix(".slice") {
        Some(slice) if slice.starts_with("kubepods") => slice
            .rsplit('-')
            .next()?
            .strip_prefix("pod")?
            .replace('_', "-"),
        Some(_) => return None,
        None => part.strip_prefix("pod")?.to_owned(),
    };
    is_uuid(&uid).then_some(uid)
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

/// `socket:[12345]` → 12345, the target of a `/proc/<pid>/fd/N` link.
pub fn parse_socket_link(target: &str) -> Option<u64> {
    target
        .strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

#[cfg(target_os = "linux")]
pub use linux::*;

#[cfg(target_os = "linux")]
mod linux {
    use super::*;
    use crate::host::{HostPaths, ReadError, read_bytes};

    /// Every numeric entry of the proc directory: one pass, no file reads.
    pub fn list_pids(paths: &HostPaths) -> Result<Vec<u32>, ReadError> {
        let dir = std::fs::read_dir(&paths.proc).map_err(|source| ReadError {
            path: paths.proc.clone(),
            source,
        })?;
        Ok(dir
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect())
    }

    pub fn read_stat(paths: &HostPaths, pid: u32) -> Option<PidStat> {
        let text = paths.read_proc(format!("{pid}/stat")).ok()?;
        parse_pid_stat(&text).ok()
    }

    /// Why `/proc/<pid>/io` gave no value.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum IoUnreadable {
        /// EACCES: another user's process (or a non-dumpable one) without
        /// ptrace-read access.
        Denied,
        /// No such file: the process exited, or a kernel built without
        /// CONFIG_TASK_IO_ACCOUNTING.
        Missing,
        /// Read but not understood, or another read error.
        Failed,
    }

    pub fn read_io(paths: &HostPaths, pid: u32) -> Result<ProcIo, IoUnreadable> {
        let text = paths
            .read_proc(format!("{pid}/io"))
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::PermissionDenied => IoUnreadable::Denied,
                std::io::ErrorKind::NotFound => IoUnreadable::Missing,
                // ESRCH: the process exited between open and read.
                _ if e.source.raw_os_error() == Some(libc::ESRCH) => IoUnreadable::Missing,
                _ => IoUnreadable::Failed,
            })?;
        parse_proc_io(&text).map_err(|_| IoUnreadable::Failed)
    }

    pub fn read_container_identity(paths: &HostPaths, pid: u32) -> Option<ContainerIdentity> {
        let text = paths.read_proc(format!("{pid}/cgroup")).ok()?;
        Some(parse_container_identity(&text))
    }

    pub fn read_cmdline(paths: &HostPaths, pid: u32) -> Option<String> {
        read_bytes(&paths.proc_path(format!("{pid}/cmdline")))
            .ok()
            .map(|b| parse_cmdline(&b))
    }

    /// Open file descriptors; `None` when the directory cannot be read
    /// (another user's process without root).
    pub fn count_fds(paths: &HostPaths, pid: u32) -> Option<u64> {
        let dir = std::fs::read_dir(paths.proc_path(format!("{pid}/fd"))).ok()?;
        Some(dir.filter(|e| e.is_ok()).count() as u64)
    }

    /// Inodes of the sockets the process holds.
    pub fn socket_inodes(paths: &HostPaths, pid: u32) -> Result<Vec<u64>, std::io::Error> {
        let dir = std::fs::read_dir(paths.proc_path(format!("{pid}/fd")))?;
        Ok(dir
            .filter_map(|e| {
                let target = std::fs::read_link(e.ok()?.path()).ok()?;
                parse_socket_link(target.to_str()?)
            })
            .collect())
    }

    /// USER_HZ and the page size: fixed per boot, asked once.
    pub fn clock_ticks_per_second() -> u64 {
        // SAFETY: sysconf has no preconditions.
        let v = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        if v > 0 { v as u64 } else { 100 }
    }

    pub fn page_size() -> u64 {
        // SAFETY: sysconf has no preconditions.
        let v = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if v > 0 { v as u64 } else { 4096 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "30630 (cat) R 30626 30626 1075 0 -1 4194304 100 0 1 0 7 3 5 2 20 0 1 0 143719 3133440 380 18446744073709551615 94249184325632 94249184345513 140720537187264 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";

    #[test]
    fn stat_fields() {
        let s = parse_pid_stat(STAT).unwrap();
        assert_eq!(s.pid, 30630);
        assert_eq!(s.comm, "cat");
        assert_eq!(s.state, 'R');
        assert_eq!(s.ppid, 30626);
        assert_eq!(s.cminflt, 0);
        assert_eq!((s.utime, s.stime), (7, 3));
        assert_eq!((s.cutime, s.cstime), (5, 2));
        assert_eq!((s.cpu_ticks(), s.child_ticks()), (10, 7));
        assert_eq!(s.num_threads, 1);
        assert_eq!(s.starttime, 143719);
        assert_eq!(s.rss_pages, 380);
    }

    /// `/proc/2/stat` (kthreadd) and `/proc/14/stat` (ksoftirqd/0) of the
    /// development machine: `flags` has PF_KTHREAD (0x200000).
    const KTHREADD: &str = "2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 2 0 0 20 0 1 0 22 0 0 18446744073709551615 0 0 0 0 0 0 0 2147483647 0 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n";
    const KSOFTIRQD: &str = "14 (ksoftirqd/0) S 2 0 0 0 -1 69238848 0 0 0 0 8 457 0 0 20 0 1 0 22 0 0 18446744073709551615 0 0 0 0 0 0 0 2147483647 0 1 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n";

    #[test]
    fn kernel_threads_by_their_flags() {
        for text in [KTHREADD, KSOFTIRQD] {
            let s = parse_pid_stat(text).unwrap();
            assert!(s.is_kernel_thread(), "{text}");
            assert_eq!(s.rss_pages, 0);
        }
        assert_eq!(parse_pid_stat(KTHREADD).unwrap().flags, 2129984);
        // `cat`, a user process: PF_RANDOMIZE only.
        let cat = parse_pid_stat(STAT).unwrap();
        assert_eq!(cat.flags, 0x40_0000);
        assert!(!cat.is_kernel_thread());
        // This very process.
        #[cfg(target_os = "linux")]
        {
            let me = std::fs::read_to_string("/proc/self/stat").unwrap();
            assert!(!parse_pid_stat(&me).unwrap().is_kernel_thread());
        }
    }

    #[test]
    fn comm_with_spaces_and_parentheses() {
        let text = STAT.replace("(cat)", "(a) b (c d)");
        let s = parse_pid_stat(&text).unwrap();
        assert_eq!(s.comm, "a) b (c d");
        assert_eq!(s.ppid, 30626);
        assert_eq!(s.rss_pages, 380);
        let s = parse_pid_stat(&STAT.replace("(cat)", "(tmux: server)")).unwrap();
        assert_eq!(s.comm, "tmux: server");
    }

    #[test]
    fn stat_errors() {
        assert!(parse_pid_stat("").is_err());
        assert!(parse_pid_stat("12 (x) R 1 2").is_err());
        assert!(parse_pid_stat(&STAT.replace(" 7 3 ", " x 3 ")).is_err());
        assert!(parse_pid_stat("x (cat) R 1").is_err());
    }

    /// `cat /proc/self/io` on the development machine (ext4 on a virtio
    /// disk), after `dd if=/dev/zero of=f bs=1M count=8 conv=fsync` run by
    /// the same shell: the shell's own counters plus the reaped dd's.
    const IO_AFTER_DD: &str = "rchar: 8399564\nwchar: 8388608\nsyscr: 26\nsyscw: 8\nread_bytes: 8192\nwrite_bytes: 8413184\ncancelled_write_bytes: 0\n";
    /// A fresh `cat /proc/self/io` on the same machine: page-cache reads
    /// only, so rchar grows and read_bytes stays 0.
    const IO_FRESH: &str = "rchar: 6976\nwchar: 0\nsyscr: 10\nsyscw: 0\nread_bytes: 0\nwrite_bytes: 0\ncancelled_write_bytes: 0\n";

    #[test]
    fn io_storage_bytes_not_chars() {
        let io = parse_proc_io(IO_AFTER_DD).unwrap();
        assert_eq!((io.read_bytes, io.write_bytes), (8192, 8413184));
        assert_eq!(parse_proc_io(IO_FRESH).unwrap(), ProcIo::default());
        // A line a later kernel might add, in any place.
        let more = format!("syscfs: 3\n{IO_FRESH}extra: 1\n");
        assert_eq!(parse_proc_io(&more).unwrap(), ProcIo::default());
    }

    #[test]
    fn io_errors() {
        for bad in [
            "",
            "garbage\n",
            // Truncated before write_bytes.
            "rchar: 6976\nwchar: 0\nsyscr: 10\nsyscw: 0\nread_bytes: 0\n",
            "read_bytes: -1\nwrite_bytes: 0\n",
            "read_bytes: 12\nwrite_bytes: 1e9\n",
            "read_bytes: 18446744073709551616\nwrite_bytes: 0\n",
        ] {
            assert!(parse_proc_io(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn io_deltas_clamp_and_add() {
        let a = ProcIo {
            read_bytes: 10,
            write_bytes: 100,
        };
        let b = ProcIo {
            read_bytes: 4,
            write_bytes: 160,
        };
        let d = b.since(a);
        assert_eq!((d.read_bytes, d.write_bytes), (0, 60));
        assert_eq!(
            a.plus(b),
            ProcIo {
                read_bytes: 14,
                write_bytes: 260
            }
        );
    }

    const CID: &str = "3f5b7c9d1e2a4b6c8d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e";
    const CID2: &str = "9e8d7c6b5a493827161504f3e2d1c0b9a8978675645342312f1e0d0c0b0a0908";
    const POD: &str = "0c2f4a2e-5b7d-4d0e-9c1a-3f6b2e8d9a10";
    const POD_: &str = "0c2f4a2e_5b7d_4d0e_9c1a_3f6b2e8d9a10";

    fn identity(text: &str) -> (Option<String>, Option<String>) {
        let id = parse_container_identity(text);
        (id.container_id, id.pod_uid)
    }

    fn some(s: &str) -> Option<String> {
        Some(s.to_owned())
    }

    #[test]
    fn docker_container_ids() {
        // cgroup v1, cgroupfs driver: every hierarchy names the container;
        // the v2 line of a hybrid host does not.
        let v1 = format!(
            "12:pids:/docker/{CID}\n11:memory:/docker/{CID}\n10:cpu,cpuacct:/docker/{CID}\n1:name=systemd:/docker/{CID}\n0::/\n"
        );
        assert_eq!(identity(&v1), (some(CID), None));
        // cgroup v2, systemd driver.
        let v2 = format!("0::/system.slice/docker-{CID}.scope\n");
        assert_eq!(identity(&v2), (some(CID), None));
        // Docker in Docker: the innermost container.
        let nested = format!("0::/docker/{CID2}/docker/{CID}\n");
        assert_eq!(identity(&nested), (some(CID), None));
    }

    #[test]
    fn kubernetes_pods_on_either_cgroup_driver() {
        // containerd, systemd driver, cgroup v2 (the host's view).
        let containerd = format!(
            "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{POD_}.slice/cri-containerd-{CID}.scope\n"
        );
        assert_eq!(identity(&containerd), (some(CID), some(POD)));
        // The same seen from an agent in a pod of its own cgroup namespace.
        let relative = format!(
            "0::/../../kubepods-besteffort.slice/kubepods-besteffort-pod{POD_}.slice/cri-containerd-{CID}.scope\n"
        );
        assert_eq!(identity(&relative), (some(CID), some(POD)));
        // A Guaranteed pod has no QoS level in its slice name.
        let guaranteed =
            format!("0::/kubepods.slice/kubepods-pod{POD_}.slice/cri-containerd-{CID}.scope\n");
        assert_eq!(identity(&guaranteed), (some(CID), some(POD)));
        // cgroupfs driver, cgroup v1: the container is the bare id below
        // the pod.
        let cgroupfs = format!(
            "11:memory:/kubepods/burstable/pod{POD}/{CID}\n4:cpu,cpuacct:/kubepods/burstable/pod{POD}/{CID}\n1:name=systemd:/kubepods/burstable/pod{POD}/{CID}\n"
        );
        assert_eq!(identity(&cgroupfs), (some(CID), some(POD)));
        let cgroupfs_guaranteed = format!("0::/kubepods/pod{POD}/{CID}\n");
        assert_eq!(identity(&cgroupfs_guaranteed), (some(CID), some(POD)));
        // Docker as the runtime (dockershim, cri-dockerd).
        let dockershim = format!(
            "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{POD_}.slice/docker-{CID}.scope\n"
        );
        assert_eq!(identity(&dockershim), (some(CID), some(POD)));
    }

    #[test]
    fn cri_o_and_its_monitor() {
        let crio = format!(
            "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{POD_}.slice/crio-{CID}.scope\n"
        );
        assert_eq!(identity(&crio), (some(CID), some(POD)));
        // conmon watches the container from the pod, outside it.
        let conmon = format!(
            "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{POD_}.slice/crio-conmon-{CID}.scope\n"
        );
        assert_eq!(identity(&conmon), (None, some(POD)));
        let cgroupfs = format!("6:memory:/kubepods/besteffort/pod{POD}/crio-{CID}\n");
        assert_eq!(identity(&cgroupfs), (some(CID), some(POD)));
    }

    #[test]
    fn podman_rootful_rootless_and_cgroupfs() {
        let rootful = format!("0::/machine.slice/libpod-{CID}.scope/container\n");
        assert_eq!(identity(&rootful), (some(CID), None));
        let rootless = format!(
            "0::/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{CID}.scope\n"
        );
        assert_eq!(identity(&rootless), (some(CID), None));
        let cgroupfs = format!("5:memory:/libpod_parent/libpod-{CID}\n");
        assert_eq!(identity(&cgroupfs), (some(CID), None));
        let conmon = format!("0::/machine.slice/libpod-conmon-{CID}.scope\n");
        assert_eq!(identity(&conmon), (None, None));
    }

    #[test]
    fn host_processes_have_no_identity() {
        // Captured on this machine (v1 controllers, v2 at unified).
        let here = "9:name=systemd:/\n8:pids:/\n4:memory:/process_api/13bf091ebb2e7e172d2cdf7e93c436c1\n3:cpuset:/\n1:cpu:/\n0::/\n";
        assert_eq!(identity(here), (None, None));
        for text in [
            "0::/user.slice/user-1000.slice/session-2.scope\n",
            "0::/system.slice/docker.service\n",
            "0::/system.slice/containerd.service\n",
            // Too short to be a container id, or not hex.
            "0::/system.slice/docker-3f5b7c9d.scope\n",
            "0::/docker/zzzz\n",
            "0::/podnot-a-uid/x\n",
            "",
            "garbage without colons\n",
        ] {
            assert_eq!(identity(text), (None, None), "{text:?}");
        }
    }

    #[test]
    fn cmdline_and_socket_links() {
        assert_eq!(
            parse_cmdline(b"python3\0-m\0uvicorn\0app:main\0"),
            "python3 -m uvicorn app:main"
        );
        assert_eq!(parse_cmdline(b""), "");
        // Empty arguments dropped; a broken sequence at an argument's end
        // is one replacement character, not carried into the next.
        assert_eq!(
            parse_cmdline(b"\0a\xff\0\0b\xe2\x82\0c"),
            "a\u{FFFD} b\u{FFFD} c"
        );
        assert_eq!(parse_socket_link("socket:[48213]"), Some(48213));
        assert_eq!(parse_socket_link("pipe:[1]"), None);
        assert_eq!(parse_socket_link("/dev/null"), None);
    }
}
