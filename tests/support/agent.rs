//! The real agent binary, spawned with a clean environment.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub struct Agent {
    pub child: Child,
    pub log: tempfile::NamedTempFile,
}

/// A command for the agent binary without any inherited OTEL_* or
/// UNAMENTIS_AGENT_* variable, so the host's environment cannot leak in.
pub fn command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_unamentis-agent"));
    for (k, _) in std::env::vars() {
        if k.starts_with("OTEL_")
            || k.starts_with("UNAMENTIS_AGENT_")
            || k == "RUST_LOG"
            || k == "K8S_NODE_NAME"
        {
            cmd.env_remove(k);
        }
    }
    cmd
}

pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
}

/// `command()` run as an unprivileged user, for real EACCES on root-only
/// files: as root, through `setpriv` as nobody with no groups (root reads
/// every file whatever its mode); else as the test's own user. `None` when
/// running as root without setpriv.
pub fn unprivileged_command() -> Option<Command> {
    if !is_root() {
        return Some(command());
    }
    if Command::new("setpriv").arg("--version").output().is_err() {
        return None;
    }
    let plain = command();
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(plain.get_program());
    for (k, v) in plain.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    Some(cmd)
}

impl Agent {
    pub fn spawn(env: &[(&str, &str)], args: &[&str]) -> Agent {
        let mut cmd = command();
        cmd.args(args).envs(env.iter().copied());
        Agent::start(cmd)
    }

    /// Starts `cmd` (from [`command`]) with its stderr as the log.
    pub fn start(mut cmd: Command) -> Agent {
        let log = tempfile::NamedTempFile::new().unwrap();
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log.reopen().unwrap());
        Agent {
            child: cmd.spawn().expect("spawn agent"),
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill -{sig} failed");
    }

    /// Waits for the process to exit (the limit only guards against a hang).
    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if start.elapsed() > limit {
                let _ = self.child.kill();
                panic!(
                    "agent did not exit within {limit:?}; log:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Polls the agent's log until it holds `needle`; fails the test with
    /// the log when `limit` passes first (a guard against hanging).
    pub async fn wait_for_log(&self, needle: &str, limit: Duration) {
        let start = Instant::now();
        while !self.log_text().contains(needle) {
            assert!(
                start.elapsed() < limit,
                "no {needle:?} in the log within {limit:?}:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The local server's address from the agent's log line; a wildcard
    /// bind (`0.0.0.0`, `::`) is reached through loopback.
    pub fn server_addr(&self, limit: Duration) -> SocketAddr {
        let start = Instant::now();
        loop {
            let log = self.log_text();
            let found = log
                .lines()
                .filter(|l| l.contains("local server listening"))
                .flat_map(|l| {
                    // Words of address characters only: the log may be
                    // coloured (ANSI escapes around `addr=`).
                    l.split(|c: char| !(c.is_ascii_hexdigit() || ".:[]".contains(c)))
                })
                .find_map(|w| w.parse::<SocketAddr>().ok());
            if let Some(mut addr) = found {
                if addr.ip().is_unspecified() {
                    addr.set_ip(match addr {
                        SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                        SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
                    });
                }
                return addr;
            }
            assert!(start.elapsed() < limit, "no server line:\n{log}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    pub fn log_path(&self) -> PathBuf {
        self.log.path().to_path_buf()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
