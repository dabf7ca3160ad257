//! Where the agent reads the host from. Every `/proc` and `/sys` read goes
//! through [`HostPaths`], so a container can read the node through a mounted
//! `/host/proc` and tests can point the agent at a fixture tree
//! (node_exporter's `--path.procfs` / `--path.sysfs`).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPaths {
    pub proc: PathBuf,
    pub sys: PathBuf,
    /// The host's `/`, for files outside procfs and sysfs (`/etc/machine-id`).
    pub root: PathBuf,
}

impl Default for HostPaths {
    fn default() -> Self {
        HostPaths {
            proc: PathBuf::from("/proc"),
            sys: PathBuf::from("/sys"),
            root: PathBuf::from("/"),
        }
    }
}

/// A failed read, carrying the path so errors name the file.
#[derive(Debug)]
pub struct ReadError {
    pub path: PathBuf,
    pub source: io::Error,
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.source)
    }
}

impl std::error::Error for ReadError {}

impl ReadError {
    pub fn kind(&self) -> io::ErrorKind {
        self.source.kind()
    }
}

impl HostPaths {
    /// A fixture host laid out as `<dir>/proc`, `<dir>/sys`, `<dir>/root`.
    pub fn under(dir: impl AsRef<Path>) -> Self {
        let dir = dir.as_ref();
        HostPaths {
            proc: dir.join("proc"),
            sys: dir.join("sys"),
            root: dir.join("root"),
        }
    }

    pub fn proc_path(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.proc.join(rel)
    }

    pub fn sys_path(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.sys.join(rel)
    }

    pub fn root_path(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.root.join(rel)
    }

    pub fn read_proc(&self, rel: impl AsRef<Path>) -> Result<String, ReadError> {
        read_to_string(self.proc_path(rel))
    }

    pub fn read_sys(&self, rel: impl AsRef<Path>) -> Result<String, ReadError> {
        read_to_string(self.sys_path(rel))
    }

    pub fn read_root(&self, rel: impl AsRef<Path>) -> Result<String, ReadError> {
        read_to_string(self.root_path(rel))
    }
}

fn read_to_string(path: PathBuf) -> Result<String, ReadError> {
    std::fs::read_to_string(&path).map_err(|source| ReadError { path, source })
}

/// Who this host is, for the OpenTelemetry resource.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostIdentity {
    pub name: Option<String>,
    /// `/etc/machine-id` (systemd) or D-Bus's copy; absent elsewhere.
    pub id: Option<String>,
}

impl HostPaths {
    #[cfg(target_os = "linux")]
    pub fn identity(&self) -> HostIdentity {
        let first_line = |r: Result<String, ReadError>| {
            r.ok()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
        };
        HostIdentity {
            name: first_line(self.read_proc("sys/kernel/hostname")),
            id: first_line(self.read_root("etc/machine-id"))
                .or_else(|| first_line(self.read_root("var/lib/dbus/machine-id"))),
        }
    }

    #[cfg(not(target_os = "linux"))]
    pub fn identity(&self) -> HostIdentity {
        HostIdentity {
            name: sysinfo::System::host_name().ok(),
            id: None,
        }
    }
}
