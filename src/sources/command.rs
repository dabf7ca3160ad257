//! Runs a short-lived helper command (`ioreg`, `nvidia-smi`, `lsof`) with a
//! deadline: a command that hangs is killed and reaped, never left behind,
//! and never blocks a collection cycle longer than its timeout.

use std::ffi::OsStr;
use std::fmt;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// At most this much stdout is kept; the answers are tens of KiB.
const MAX_OUTPUT: u64 = 4 << 20;

#[derive(Debug)]
pub enum CommandError {
    /// The program could not be started (not installed: `NotFound`).
    Spawn(io::Error),
    /// No answer within the timeout; the child was killed.
    TimedOut {
        pid: u32,
        after: Duration,
    },
    /// It exited unsuccessfully; its stdout is kept for the message.
    Status(std::process::ExitStatus, Vec<u8>),
    Io(io::Error),
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandError::Spawn(e) => write!(f, "cannot start: {e}"),
            CommandError::TimedOut { pid, after } => {
                write!(f, "no answer within {after:?} (killed pid {pid})")
            }
            CommandError::Status(s, out) => {
                let text = String::from_utf8_lossy(out);
                match text.lines().next().map(str::trim).filter(|l| !l.is_empty()) {
                    Some(first) => write!(f, "exited with {s} ({first:?})"),
                    None => write!(f, "exited with {s}"),
                }
            }
            CommandError::Io(e) => write!(f, "reading its output: {e}"),
        }
    }
}

impl std::error::Error for CommandError {}

/// Where `program` would run from, searched as `execvp` does: itself when
/// it names a path, else the first executable file of that name in a
/// directory of `path` (the value of `PATH`). `None` when there is none:
/// spawning it would fork a child only to fail its exec, about half a
/// millisecond of an agent's start on a host without the tool.
pub fn find_program(program: &Path, path: Option<&OsStr>) -> Option<PathBuf> {
    if program.components().count() != 1 || program.is_absolute() {
        return is_executable(program).then(|| program.to_path_buf());
    }
    std::env::split_paths(path?)
        // An empty entry means the working directory.
        .map(|dir| {
            if dir.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                dir
            }
        })
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(p: &Path) -> bool {
    let Ok(meta) = std::fs::metadata(p) else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        meta.is_file() && meta.permissions().mode() & 0o111 != 0
    }
    #[cfg(not(unix))]
    {
        meta.is_file()
    }
}

/// Runs `cmd` with stdin and stderr closed and returns its stdout, killing
/// it when it has not exited within `timeout`.
pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> Result<Vec<u8>, CommandError> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(CommandError::Spawn)?;
    let pid = child.id();
    let Some(stdout) = child.stdout.take() else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(CommandError::Io(io::Error::other("no stdout pipe")));
    };
    // The pipe is drained on a helper thread so a chatty child cannot block
    // on a full pipe while this thread waits; EOF means the child is done.
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut out = Vec::new();
        let r = stdout.take(MAX_OUTPUT).read_to_end(&mut out).map(|_| out);
        let _ = tx.send(r);
    });
    let deadline = Instant::now() + timeout;
    let out = match rx.recv_timeout(timeout) {
        Ok(read) => read,
        Err(_) => return Err(kill(&mut child, pid, timeout)),
    };
    // stdout is closed: the child is exiting. It still gets only until the
    // deadline (a child can close stdout and go on running).
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(2)),
            Ok(None) => return Err(kill(&mut child, pid, timeout)),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(CommandError::Io(e));
            }
        }
    };
    let out = out.map_err(CommandError::Io)?;
    if status.success() {
        Ok(out)
    } else {
        Err(CommandError::Status(status, out))
    }
}

/// Kills and reaps the child so no zombie is left; the reader thread ends
/// when the pipe closes.
fn kill(child: &mut std::process::Child, pid: u32, after: Duration) -> CommandError {
    let _ = child.kill();
    let _ = child.wait();
    CommandError::TimedOut { pid, after }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn returns_stdout_of_a_successful_command() {
        let out = run_with_timeout(
            Command::new("sh").args(["-c", "printf 'a\\0b'"]),
            Duration::from_secs(20),
        )
        .unwrap();
        assert_eq!(out, b"a\0b");
    }

    #[test]
    fn a_failing_command_reports_its_status() {
        let err = run_with_timeout(
            Command::new("sh").args(["-c", "echo partial; exit 3"]),
            Duration::from_secs(20),
        )
        .unwrap_err();
        match err {
            CommandError::Status(s, out) => {
                assert_eq!(s.code(), Some(3));
                assert_eq!(out, b"partial\n");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_missing_program_is_a_spawn_error() {
        let err = run_with_timeout(
            &mut Command::new("/nonexistent/unamentis-ioreg"),
            Duration::from_secs(20),
        )
        .unwrap_err();
        match err {
            CommandError::Spawn(e) => assert_eq!(e.kind(), io::ErrorKind::NotFound),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_hanging_command_is_killed_and_reaped() {
        let started = Instant::now();
        let err = run_with_timeout(Command::new("sleep").arg("30"), Duration::from_millis(200))
            .unwrap_err();
        // Safety limit only: far below the 30 s the child would have slept.
        assert!(started.elapsed() < Duration::from_secs(20));
        let CommandError::TimedOut { pid, .. } = err else {
            panic!("{err:?}")
        };
        // Reaped: no process (not even a zombie) with that pid remains.
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "pid {pid} still exists"
        );
    }

    #[test]
    fn programs_are_found_on_path_as_execvp_finds_them() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        let make = |p: &Path, mode: u32| {
            std::fs::write(p, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        // Not executable in the first directory: the second one's.
        make(&a.join("tool"), 0o644);
        make(&b.join("tool"), 0o755);
        // A directory of that name is not a program either.
        std::fs::create_dir(a.join("other")).unwrap();
        make(&b.join("other"), 0o700);
        let path = std::env::join_paths([&a, &b]).unwrap();
        let find = |p: &str| find_program(Path::new(p), Some(&path));
        assert_eq!(find("tool"), Some(b.join("tool")));
        assert_eq!(find("other"), Some(b.join("other")));
        assert_eq!(find("nvidia-smi"), None);
        assert_eq!(find_program(Path::new("tool"), None), None, "no PATH");
        // A path is taken as it is, found or not.
        let full = b.join("tool");
        assert_eq!(find(full.to_str().unwrap()), Some(full.clone()));
        assert_eq!(
            find(a.join("tool").to_str().unwrap()),
            None,
            "not executable"
        );
        assert_eq!(find("/nonexistent/tool"), None);
        // What the test runner's PATH holds.
        assert!(find_program(Path::new("sh"), std::env::var_os("PATH").as_deref()).is_some());
    }
}
