//! Per-process files of procfs: `/proc/<pid>/stat`, `cmdline`, `fd/`
//! (proc(5)). Parsing is apart from reading so fixtures and property tests
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
        utime: num(14)?,
        stime: num(15)?,
        cutime: signed(16)?,
        cstime: signed(17)?,
        num_threads: u32::try_from(num(20)?).unwrap_or(u32::MAX),
        starttime: num(22)?,
        rss_pages: signed(24)?,
    })
}

/// `/proc/<pid>/cmdline`: NUL-separated arguments, joined with spaces.
/// Kernel threads have none.
pub fn parse_cmdline(bytes: &[u8]) -> String {
    let args: Vec<String> = bytes
        .split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    args.join(" ")
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
    use crate::host::{HostPaths, ReadError};

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

    pub fn read_cmdline(paths: &HostPaths, pid: u32) -> Option<String> {
        std::fs::read(paths.proc_path(format!("{pid}/cmdline")))
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
        assert_eq!((s.utime, s.stime), (7, 3));
        assert_eq!((s.cutime, s.cstime), (5, 2));
        assert_eq!((s.cpu_ticks(), s.child_ticks()), (10, 7));
        assert_eq!(s.num_threads, 1);
        assert_eq!(s.starttime, 143719);
        assert_eq!(s.rss_pages, 380);
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

    #[test]
    fn cmdline_and_socket_links() {
        assert_eq!(
            parse_cmdline(b"python3\0-m\0uvicorn\0app:main\0"),
            "python3 -m uvicorn app:main"
        );
        assert_eq!(parse_cmdline(b""), "");
        assert_eq!(parse_socket_link("socket:[48213]"), Some(48213));
        assert_eq!(parse_socket_link("pipe:[1]"), None);
        assert_eq!(parse_socket_link("/dev/null"), None);
    }
}
