//! A synthetic procfs tree of many processes, written to the kernel's
//! formats (proc(5)), for deterministic service tests and the benchmark.

use std::path::Path;

/// One process of the tree.
pub struct FakeProc<'a> {
    pub pid: u32,
    pub ppid: u32,
    pub comm: &'a str,
    pub cmdline: &'a [&'a str],
    pub ticks: u64,
    pub rss_pages: u64,
    /// Inodes of sockets it holds (as `fd/N -> socket:[inode]`).
    pub sockets: &'a [u64],
}

pub fn write_proc(root: &Path, p: &FakeProc) {
    let dir = root.join("proc").join(p.pid.to_string());
    std::fs::create_dir_all(dir.join("fd")).unwrap();
    std::fs::write(
        dir.join("stat"),
        stat_line(p.pid, p.comm, p.ppid, p.ticks, p.rss_pages),
    )
    .unwrap();
    // Storage bytes apart from the larger rchar/wchar of the calls.
    std::fs::write(
        dir.join("io"),
        io_text(u64::from(p.pid) << 12, p.ticks << 9),
    )
    .unwrap();
    let mut cmdline = p.cmdline.join("\0");
    cmdline.push('\0');
    std::fs::write(dir.join("cmdline"), cmdline).unwrap();
    for (i, inode) in p.sockets.iter().enumerate() {
        std::os::unix::fs::symlink(
            format!("socket:[{inode}]"),
            dir.join("fd").join((i + 3).to_string()),
        )
        .unwrap();
    }
    for fd in 0..3 {
        let link = dir.join("fd").join(fd.to_string());
        if !link.exists() {
            std::os::unix::fs::symlink("/dev/null", link).unwrap();
        }
    }
}

/// `utime` holds all the ticks; starttime is fixed per pid.
pub fn stat_line(pid: u32, comm: &str, ppid: u32, ticks: u64, rss_pages: u64) -> String {
    stat_line_reaped(pid, comm, ppid, ticks, rss_pages, 0)
}

/// [`stat_line`] with `cminflt`, the minor faults of the children the
/// process has waited for (it grows at each reap).
pub fn stat_line_reaped(
    pid: u32,
    comm: &str,
    ppid: u32,
    ticks: u64,
    rss_pages: u64,
    cminflt: u64,
) -> String {
    format!(
        "{pid} ({comm}) S {ppid} {pid} {pid} 0 -1 4194560 100 {cminflt} 0 0 {ticks} 0 0 0 20 0 1 0 {start} 10000 {rss_pages} 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n",
        start = 1000 + u64::from(pid)
    )
}

/// `/proc/<pid>/io` as the kernel writes it (proc(5)).
pub fn io_text(read_bytes: u64, write_bytes: u64) -> String {
    format!(
        "rchar: {}\nwchar: {}\nsyscr: 120\nsyscw: 80\nread_bytes: {read_bytes}\nwrite_bytes: {write_bytes}\ncancelled_write_bytes: 0\n",
        read_bytes * 10 + 7,
        write_bytes * 10 + 3
    )
}

/// `/proc/net/tcp` with one LISTEN socket per (port, inode).
pub fn write_listeners(root: &Path, listeners: &[(u16, u64)]) {
    let mut text = String::from(
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n",
    );
    for (i, (port, inode)) in listeners.iter().enumerate() {
        text.push_str(&format!(
            "{i:4}: 00000000:{port:04X} 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 {inode} 1 0000000000000000 100 0 0 10 0\n"
        ));
    }
    std::fs::create_dir_all(root.join("proc/net")).unwrap();
    std::fs::write(root.join("proc/net/tcp"), text).unwrap();
}

/// A host of `n` processes: pid 1, then the six default services' trees
/// (ollama with runners, a python management API on 8766, a node server
/// on 3000 with workers), and `n` minus those as unrelated `worker` processes.
pub fn write_host(root: &Path, n: u32) {
    write_proc(
        root,
        &FakeProc {
            pid: 1,
            ppid: 0,
            comm: "systemd",
            cmdline: &["/sbin/init"],
            ticks: 500,
            rss_pages: 3000,
            sockets: &[],
        },
    );
    let services: &[FakeProc] = &[
        FakeProc {
            pid: 100,
            ppid: 1,
            comm: "ollama",
            cmdline: &["/usr/bin/ollama", "serve"],
            ticks: 9000,
            rss_pages: 60000,
            sockets: &[],
        },
        FakeProc {
            pid: 101,
            ppid: 100,
            comm: "ollama",
            cmdline: &["/usr/bin/ollama", "runner", "--model", "x"],
            ticks: 90000,
            rss_pages: 900000,
            sockets: &[],
        },
        FakeProc {
            pid: 200,
            ppid: 1,
            comm: "python3",
            cmdline: &["python3", "-m", "uvicorn", "console:app", "--port", "8766"],
            ticks: 700,
            rss_pages: 20000,
            sockets: &[5001],
        },
        FakeProc {
            pid: 201,
            ppid: 200,
            comm: "python3",
            cmdline: &["python3", "-c", "from multiprocessing import spawn"],
            ticks: 300,
            rss_pages: 15000,
            sockets: &[],
        },
        FakeProc {
            pid: 300,
            ppid: 1,
            comm: "node",
            cmdline: &["node", "server.js"],
            ticks: 1200,
            rss_pages: 30000,
            sockets: &[],
        },
        FakeProc {
            pid: 301,
            ppid: 300,
            comm: "next-server (v1",
            cmdline: &["next-server (v14.2.3)"],
            ticks: 2400,
            rss_pages: 40000,
            sockets: &[5003],
        },
    ];
    for p in services {
        write_proc(root, p);
    }
    write_listeners(root, &[(8766, 5001), (3000, 5003)]);
    for pid in 1000..1000 + n.saturating_sub(1 + services.len() as u32) {
        write_proc(
            root,
            &FakeProc {
                pid,
                ppid: 1,
                comm: "worker",
                cmdline: &["/usr/lib/worker", "--id"],
                ticks: u64::from(pid),
                rss_pages: 100,
                sockets: &[7],
            },
        );
    }
}
