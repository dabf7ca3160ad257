//! Where the agent reads the host from. Every `/proc` and `/sys` read goes
//! through [`HostPaths`], so a container can read the node through a mounted
//! `/host/proc` and tests can point the agent at a fixture tree
//! (node_exporter's `--path.procfs` / `--path.sysfs`).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

#[cfg(target_os = "linux")]
mod held;
#[cfg(target_os = "linux")]
pub use held::Cycle;

/// One sampling cycle (Linux keeps its kernel files open between cycles;
/// elsewhere a cycle is nothing more).
#[cfg(not(target_os = "linux"))]
pub struct Cycle;

#[cfg(not(target_os = "linux"))]
impl Cycle {
    pub fn begin() -> Cycle {
        Cycle
    }
}

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
    read_file(&path).map_err(|source| ReadError { path, source })
}

/// A whole kernel file as text, in two system calls for most: one page of
/// buffer, then reads until end of file.
///
/// Not `std::fs::read_to_string`: it first asks for the file's size (a
/// `statx` and an `lseek`) to size its buffer, which procfs and sysfs
/// answer with 0 or 4096 whatever the file holds, and then, with no
/// buffer, probes with a 32-byte read. That is two to three system calls
/// more per file, for the 50 or so files of every cycle.
///
/// Inside a [`Cycle`] the file is read once a cycle and, on procfs, sysfs
/// and cgroupfs, kept open for the next one (`host/held.rs`).
pub fn read_file(path: &Path) -> io::Result<String> {
    #[cfg(target_os = "linux")]
    if let Some(read) = held::read(path) {
        return read;
    }
    let mut text = String::new();
    read_whole(&std::fs::File::open(path)?, &mut text)?;
    Ok(text)
}

/// `file` from offset 0 to its end, appended to `text` (which keeps its
/// allocation: `host/held.rs` re-reads an open file into the same buffer).
fn read_whole(file: &std::fs::File, text: &mut String) -> io::Result<()> {
    text.reserve(PAGE);
    io::Read::read_to_string(&mut FromStart { file, at: 0 }, text).map(drop)
}

/// The names in a directory (those that are UTF-8), in no order. Inside a
/// [`Cycle`] a directory is listed once a cycle, and a sysfs one once
/// every few cycles (`host/held.rs`).
pub fn list_dir(path: &Path) -> io::Result<Vec<String>> {
    #[cfg(target_os = "linux")]
    if let Some(list) = held::list(path) {
        return list;
    }
    list_now(path)
}

fn list_now(path: &Path) -> io::Result<Vec<String>> {
    Ok(std::fs::read_dir(path)?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect())
}

/// [`read_file`] for a file that need not be text (`/proc/<pid>/cmdline`).
pub fn read_bytes(path: &Path) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::with_capacity(PAGE);
    let file = std::fs::File::open(path)?;
    io::Read::read_to_end(&mut FromStart { file: &file, at: 0 }, &mut bytes)?;
    Ok(bytes)
}

/// The first buffer of [`read_file`]: most kernel files fit in a page.
const PAGE: usize = 4096;

/// A file read with `pread` from offset 0 onwards, whatever its position:
/// `Read`'s default `read_to_string` and `read_to_end` then run instead of
/// `File`'s, which ask for the size, and a file kept open reads its text
/// again from the start (seq_file regenerates it at offset 0).
struct FromStart<'a> {
    file: &'a std::fs::File,
    at: u64,
}

impl io::Read for FromStart<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = std::os::unix::fs::FileExt::read_at(self.file, buf, self.at)?;
        self.at += n as u64;
        Ok(n)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Whatever the size (empty, under, at and over the first buffer),
    /// `read_file` gives what `std::fs::read_to_string` gives; invalid
    /// UTF-8 and a missing file are errors of the same kinds.
    #[test]
    fn read_file_reads_what_std_reads() {
        let dir = tempfile::tempdir().unwrap();
        for len in [0, 1, 4095, 4096, 4097, 70_000] {
            let text: String = (0..len)
                .map(|i| char::from(b'a' + (i % 26) as u8))
                .collect();
            let p = dir.path().join(format!("f{len}"));
            std::fs::write(&p, &text).unwrap();
            assert_eq!(read_file(&p).unwrap(), text, "{len} bytes");
        }
        #[cfg(target_os = "linux")]
        for f in ["/proc/self/status", "/proc/meminfo"] {
            // The same lines (the values move between the two reads).
            let keys = |t: String| -> Vec<String> {
                t.lines()
                    .map(|l| l.split(':').next().unwrap().to_owned())
                    .collect()
            };
            let ours = keys(read_file(Path::new(f)).unwrap());
            assert!(ours.len() > 10, "{f}");
            assert_eq!(ours, keys(std::fs::read_to_string(f).unwrap()), "{f}");
        }
        let bad = dir.path().join("bad");
        std::fs::write(&bad, [0x66, 0xff, 0x66]).unwrap();
        assert_eq!(
            read_file(&bad).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        assert_eq!(read_bytes(&bad).unwrap(), [0x66, 0xff, 0x66]);
        let big = dir.path().join("f70000");
        assert_eq!(read_bytes(&big).unwrap(), std::fs::read(&big).unwrap());
        assert_eq!(
            read_file(&dir.path().join("missing")).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
    }
}
