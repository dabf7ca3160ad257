//! The files of a sampling cycle, kept open from one cycle to the next.
//!
//! Opening a kernel file costs more than reading it: a path walk through
//! the dentry cache (`/sys/devices/system/cpu/cpu0/...` is six lookups),
//! a `struct file`, the seq_file's page of buffer, and a close. procfs,
//! sysfs and cgroupfs generate a file's text again at every read from
//! offset 0 (seq_file restarts its iterator, sysfs calls the attribute's
//! `show`), so a file read at every cycle stays open and is read with
//! `pread(fd, buf, 0)`: two system calls a cycle instead of four, and no
//! path walk (seq_file: `Documentation/filesystems/seq_file.rst`).
//!
//! Within one cycle a file is read once: every later read of the same path
//! gets the same text (`/proc/stat` and `/proc/loadavg` serve more than one
//! family), which also makes the families of a cycle agree with each other.
//!
//! sysfs changes shape (which directories and files exist) only when a
//! device comes or goes, while a cycle lists its class directories
//! (`/sys/class/hwmon`, `powercap`, `thermal`, ...) and probes files that a
//! host may lack (`cpufreq/scaling_cur_freq` on a virtual machine, per
//! CPU). A sysfs directory's names and a sysfs file's absence are
//! therefore learnt again every [`RELEARN_EVERY`] cycles, not at every
//! one: a device that appears shows within a minute at the default 5 s.
//! procfs and cgroupfs are never trusted that way (a pid or a cgroup can
//! come back at any time).
//!
//! Only reads made inside a [`Cycle`] (one `Sampler::sample`) go through
//! here, on the thread that samples; any other read opens the file as
//! before. A file is held from the second cycle in a row that reads it,
//! so the files of a full `/proc` rescan (every process's `stat`, once a
//! minute) are never held; a file not read in a cycle is closed at its
//! end. At most [`MAX_HELD`] files are held, and no more than an eighth
//! of the descriptor limit (`RLIMIT_NOFILE`), which the agent's server
//! needs for its connections. A held file
//! that fails (its process exited: `ESRCH`; its device went: `ENODEV`) is
//! closed and opened again by path, once. Files of other file systems
//! (fixture trees) are read once a cycle too, but never held between
//! cycles: a regular file replaced by a new one would stay the old one.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use super::{list_now, read_whole};

/// The most files a thread keeps open, and the most paths it remembers: a
/// cycle reads about 40 on a laptop and a few per matched process.
pub const MAX_HELD: usize = 256;

/// Cycles a sysfs directory listing or a missing sysfs file is trusted.
pub const RELEARN_EVERY: u64 = 12;

thread_local! {
    static READS: RefCell<Reads> = RefCell::new(Reads::default());
}

struct Reads {
    /// Whether a cycle is running on this thread.
    active: bool,
    /// The running (or last) cycle's number.
    cycle: u64,
    files: HashMap<PathBuf, Entry>,
    /// Directory listings and missing files.
    shapes: HashMap<PathBuf, Shape>,
    /// The most files held open.
    max_held: usize,
}

impl Default for Reads {
    fn default() -> Self {
        Reads {
            active: false,
            cycle: 0,
            files: HashMap::new(),
            shapes: HashMap::new(),
            max_held: MAX_HELD.min(descriptor_limit() / 8),
        }
    }
}

/// The soft `RLIMIT_NOFILE`.
fn descriptor_limit() -> usize {
    // SAFETY: getrlimit writes into the zeroed struct we own.
    let mut lim: libc::rlimit = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 0;
    }
    usize::try_from(lim.rlim_cur).unwrap_or(usize::MAX)
}

struct Shape {
    /// A directory's names, or `None` for a path that does not exist.
    names: Option<Vec<String>>,
    learnt_in: u64,
    used_in: u64,
    /// On sysfs: trusted for [`RELEARN_EVERY`] cycles, else for one.
    lasting: bool,
}

impl Shape {
    fn valid_in(&self, cycle: u64) -> bool {
        self.learnt_in == cycle || (self.lasting && cycle - self.learnt_in < RELEARN_EVERY)
    }
}

struct Entry {
    /// Open between cycles: procfs, sysfs and cgroupfs files read in two
    /// cycles in a row.
    file: Option<File>,
    /// The text read in cycle `read_in`.
    text: String,
    read_in: u64,
}

/// One sampling cycle on this thread, until dropped. A cycle begun inside
/// another is part of it.
pub struct Cycle {
    outermost: bool,
}

impl Cycle {
    pub fn begin() -> Cycle {
        READS.with_borrow_mut(|r| {
            if r.active {
                return Cycle { outermost: false };
            }
            r.active = true;
            r.cycle += 1;
            Cycle { outermost: true }
        })
    }
}

impl Drop for Cycle {
    fn drop(&mut self) {
        if !self.outermost {
            return;
        }
        READS.with_borrow_mut(|r| {
            r.active = false;
            let cycle = r.cycle;
            r.files.retain(|_, e| e.read_in == cycle);
            r.shapes.retain(|_, s| s.used_in == cycle);
        });
    }
}

/// `path`'s text through the cycle's files, or `None` outside a cycle.
pub fn read(path: &Path) -> Option<io::Result<String>> {
    READS.with_borrow_mut(|r| {
        if !r.active {
            return None;
        }
        Some(r.read(path))
    })
}

/// The names in directory `path` through the cycle's listings, or `None`
/// outside a cycle.
pub fn list(path: &Path) -> Option<io::Result<Vec<String>>> {
    READS.with_borrow_mut(|r| {
        if !r.active {
            return None;
        }
        Some(r.list(path))
    })
}

impl Reads {
    /// A known shape of `path` that is still valid, marked used.
    fn shape(&mut self, path: &Path) -> Option<&Shape> {
        let cycle = self.cycle;
        let s = self.shapes.get_mut(path).filter(|s| s.valid_in(cycle))?;
        s.used_in = cycle;
        Some(s)
    }

    fn learn(&mut self, path: &Path, names: Option<Vec<String>>) {
        let cycle = self.cycle;
        if self.shapes.len() < MAX_HELD {
            let shape = Shape {
                names,
                learnt_in: cycle,
                used_in: cycle,
                lasting: on_sysfs(path),
            };
            self.shapes.insert(path.to_owned(), shape);
        }
    }

    fn list(&mut self, path: &Path) -> io::Result<Vec<String>> {
        if let Some(s) = self.shape(path) {
            return s.names.clone().ok_or_else(not_found);
        }
        match list_now(path) {
            Ok(names) => {
                self.learn(path, Some(names.clone()));
                Ok(names)
            }
            Err(e) => {
                if e.kind() == io::ErrorKind::NotFound {
                    self.learn(path, None);
                }
                Err(e)
            }
        }
    }

    fn read(&mut self, path: &Path) -> io::Result<String> {
        let cycle = self.cycle;
        if let Some(s) = self.shape(path)
            && s.names.is_none()
        {
            return Err(not_found());
        }
        let mut again = false;
        if let Some(e) = self.files.get_mut(path) {
            if e.read_in == cycle {
                return Ok(e.text.clone());
            }
            if let Some(f) = &e.file {
                // The same buffer, read again from offset 0.
                let mut text = std::mem::take(&mut e.text);
                text.clear();
                if read_whole(f, &mut text).is_ok() {
                    e.text = text;
                    e.read_in = cycle;
                    return Ok(e.text.clone());
                }
                e.file = None;
            }
            again = e.read_in + 1 == cycle;
        }
        let file = File::open(path).inspect_err(|e| {
            self.files.remove(path);
            if e.kind() == io::ErrorKind::NotFound {
                self.learn(path, None);
            }
        })?;
        let mut s = String::new();
        if let Err(e) = read_whole(&file, &mut s) {
            self.files.remove(path);
            return Err(e);
        }
        let hold = again && self.held() < self.max_held && regenerated_at_each_read(&file);
        let entry = Entry {
            file: hold.then_some(file),
            text: s.clone(),
            read_in: cycle,
        };
        if let Some(e) = self.files.get_mut(path) {
            *e = entry;
        } else if self.files.len() < MAX_HELD {
            self.files.insert(path.to_owned(), entry);
        }
        Ok(s)
    }

    fn held(&self) -> usize {
        self.files.values().filter(|e| e.file.is_some()).count()
    }
}

/// The error the kernel gave when the shape was learnt, word for word.
fn not_found() -> io::Error {
    io::Error::from_raw_os_error(libc::ENOENT)
}

// File system magic numbers (linux/magic.h).
const PROC_SUPER_MAGIC: i64 = 0x9fa0;
const SYSFS_MAGIC: i64 = 0x6265_6572;
const CGROUP_SUPER_MAGIC: i64 = 0x0027_e0eb;
const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

/// Whether the file lives on procfs, sysfs or cgroupfs.
fn regenerated_at_each_read(f: &File) -> bool {
    // SAFETY: fstatfs writes a statfs into the zeroed struct we own.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstatfs(f.as_raw_fd(), &mut st) } != 0 {
        return false;
    }
    matches!(
        fs_type(&st),
        PROC_SUPER_MAGIC | SYSFS_MAGIC | CGROUP_SUPER_MAGIC | CGROUP2_SUPER_MAGIC
    )
}

/// Whether `path`, or for a missing path its nearest existing ancestor,
/// is on sysfs.
fn on_sysfs(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    for p in path.ancestors().filter(|p| !p.as_os_str().is_empty()) {
        let Ok(c) = std::ffi::CString::new(p.as_os_str().as_bytes()) else {
            return false;
        };
        // SAFETY: statfs reads the NUL-terminated path and writes into the
        // zeroed struct we own.
        let mut st: libc::statfs = unsafe { std::mem::zeroed() };
        if unsafe { libc::statfs(c.as_ptr(), &mut st) } == 0 {
            return fs_type(&st) == SYSFS_MAGIC;
        }
    }
    false
}

#[allow(clippy::unnecessary_cast)] // f_type's type differs by libc.
fn fs_type(st: &libc::statfs) -> i64 {
    st.f_type as i64
}

/// Forgets this thread's files: a test thread may have run another
/// test before.
#[cfg(test)]
pub fn reset() {
    READS.with_borrow_mut(|r| *r = Reads::default());
}

/// The number of files this thread holds open between cycles.
#[cfg(test)]
pub fn held() -> usize {
    READS.with_borrow(Reads::held)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_in_cycle(path: &Path) -> io::Result<String> {
        read(path).expect("inside a cycle")
    }

    #[test]
    fn outside_a_cycle_nothing_goes_through_here() {
        assert!(read(Path::new("/proc/self/stat")).is_none());
    }

    #[test]
    fn a_kernel_file_is_held_and_read_again_from_the_start() {
        reset();
        // /proc/self/schedstat's first field is this thread's CPU time in
        // ns: it grows between two cycles, and the held file must see it.
        let path = Path::new("/proc/thread-self/schedstat");
        {
            let _c = Cycle::begin();
            read_in_cycle(path).unwrap();
        }
        assert_eq!(held(), 0, "read in one cycle: not held");
        let first = {
            let _c = Cycle::begin();
            read_in_cycle(path).unwrap()
        };
        assert_eq!(held(), 1, "read in two cycles in a row: held");
        let mut spin = 0u64;
        for i in 0..5_000_000u64 {
            spin = spin.wrapping_add(i * i);
        }
        std::hint::black_box(spin);
        let second = {
            let _c = Cycle::begin();
            let a = read_in_cycle(path).unwrap();
            let b = read_in_cycle(path).unwrap();
            assert_eq!(a, b, "read once within a cycle");
            a
        };
        let ns = |t: &str| t.split_whitespace().next().unwrap().parse::<u64>().unwrap();
        assert!(ns(&second) > ns(&first), "{first:?} then {second:?}");
        // The same text a fresh open reads, field for field but the
        // running times.
        let fresh = std::fs::read_to_string(path).unwrap();
        assert_eq!(
            second.split_whitespace().count(),
            fresh.split_whitespace().count()
        );
    }

    #[test]
    fn files_not_read_in_a_cycle_are_closed_at_its_end() {
        reset();
        for _ in 0..2 {
            let _c = Cycle::begin();
            read_in_cycle(Path::new("/proc/loadavg")).unwrap();
            read_in_cycle(Path::new("/proc/uptime")).unwrap();
        }
        assert_eq!(held(), 2);
        {
            let _c = Cycle::begin();
            read_in_cycle(Path::new("/proc/uptime")).unwrap();
        }
        assert_eq!(held(), 1);
        {
            let _c = Cycle::begin();
        }
        assert_eq!(held(), 0);
    }

    #[test]
    fn a_regular_file_is_read_once_a_cycle_and_never_held() {
        reset();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("value");
        std::fs::write(&path, "1\n").unwrap();
        {
            let _c = Cycle::begin();
            assert_eq!(read_in_cycle(&path).unwrap(), "1\n");
            // Replaced within the cycle: the cycle keeps what it read.
            std::fs::write(dir.path().join("new"), "2\n").unwrap();
            std::fs::rename(dir.path().join("new"), &path).unwrap();
            assert_eq!(read_in_cycle(&path).unwrap(), "1\n");
        }
        assert_eq!(held(), 0);
        let _c = Cycle::begin();
        assert_eq!(read_in_cycle(&path).unwrap(), "2\n", "the new file");
    }

    #[test]
    fn a_held_file_of_a_process_that_exited_is_opened_again_by_path() {
        reset();
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let path = PathBuf::from(format!("/proc/{}/stat", child.id()));
        for _ in 0..2 {
            let _c = Cycle::begin();
            assert!(read_in_cycle(&path).unwrap().contains("(sleep)"));
        }
        assert_eq!(held(), 1);
        child.kill().unwrap();
        child.wait().unwrap();
        let _c = Cycle::begin();
        let e = read_in_cycle(&path).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound, "{e}");
        assert_eq!(held(), 0);
    }

    #[test]
    fn missing_and_invalid_files_fail_as_a_plain_read_does() {
        reset();
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad");
        std::fs::write(&bad, [0xff, 0xfe]).unwrap();
        let _c = Cycle::begin();
        let missing = read_in_cycle(&dir.path().join("missing")).unwrap_err();
        assert_eq!(missing.kind(), io::ErrorKind::NotFound);
        let invalid = read_in_cycle(&bad).unwrap_err();
        assert_eq!(invalid.kind(), io::ErrorKind::InvalidData);
        assert_eq!(
            std::fs::read_to_string(&bad).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
    }

    #[test]
    fn a_file_longer_than_a_page_is_read_whole_and_again() {
        reset();
        // /proc/self/smaps is many pages; read twice through the held file.
        let path = Path::new("/proc/self/maps");
        for _ in 0..2 {
            let _c = Cycle::begin();
            let t = read_in_cycle(path).unwrap();
            assert!(t.ends_with('\n'));
            assert!(t.lines().count() > 5);
        }
        let _c = Cycle::begin();
        let t = read_in_cycle(Path::new("/proc/self/smaps")).unwrap();
        assert!(t.len() > 4096, "{} bytes", t.len());
    }

    #[test]
    fn sysfs_listings_and_missing_files_are_learnt_again_every_few_cycles() {
        reset();
        let cpus = Path::new("/sys/devices/system/cpu");
        let missing = cpus.join("cpu0/no_such_attribute");
        let listed = list_now(cpus).unwrap();
        assert!(on_sysfs(cpus) && on_sysfs(&missing));
        for i in 0..RELEARN_EVERY {
            let _c = Cycle::begin();
            assert_eq!(list(cpus).unwrap().unwrap(), listed);
            let e = read_in_cycle(&missing).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::NotFound);
            READS.with_borrow(|r| {
                assert_eq!(r.shapes[cpus].learnt_in, 1, "cycle {}", i + 1);
                assert_eq!(r.shapes[&missing].learnt_in, 1);
            });
        }
        let _c = Cycle::begin();
        list(cpus).unwrap().unwrap();
        read_in_cycle(&missing).unwrap_err();
        READS.with_borrow(|r| {
            assert_eq!(r.shapes[cpus].learnt_in, RELEARN_EVERY + 1, "learnt again");
            assert_eq!(r.shapes[&missing].learnt_in, RELEARN_EVERY + 1);
        });
    }

    #[test]
    fn other_listings_and_missing_files_are_learnt_at_every_cycle() {
        reset();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("later");
        {
            let _c = Cycle::begin();
            assert_eq!(list(dir.path()).unwrap().unwrap(), Vec::<String>::new());
            assert!(read_in_cycle(&file).is_err());
            // Within the cycle, the shape it saw first.
            std::fs::write(&file, "1").unwrap();
            assert!(list(dir.path()).unwrap().unwrap().is_empty());
            assert!(read_in_cycle(&file).is_err());
        }
        let _c = Cycle::begin();
        assert_eq!(list(dir.path()).unwrap().unwrap(), ["later"]);
        assert_eq!(read_in_cycle(&file).unwrap(), "1");
        // procfs is not trusted either: a pid can come back.
        assert!(!on_sysfs(Path::new("/proc/1/stat")));
    }

    #[test]
    fn listings_and_shapes_not_used_in_a_cycle_are_forgotten() {
        reset();
        let cpus = Path::new("/sys/devices/system/cpu");
        {
            let _c = Cycle::begin();
            list(cpus).unwrap().unwrap();
        }
        {
            let _c = Cycle::begin();
        }
        READS.with_borrow(|r| assert!(r.shapes.is_empty()));
        assert!(list(cpus).is_none(), "outside a cycle");
    }

    #[test]
    fn files_read_every_other_cycle_are_never_held() {
        // A full rescan's files: read, then not, then read again.
        reset();
        for i in 0..4 {
            let _c = Cycle::begin();
            if i % 2 == 0 {
                read_in_cycle(Path::new("/proc/self/stat")).unwrap();
            }
            assert_eq!(held(), 0);
        }
    }

    #[test]
    fn held_files_stay_under_an_eighth_of_the_descriptor_limit() {
        reset();
        let limit = descriptor_limit();
        READS.with_borrow(|r| assert_eq!(r.max_held, MAX_HELD.min(limit / 8)));
        READS.with_borrow_mut(|r| r.max_held = 2);
        let files = ["/proc/loadavg", "/proc/uptime", "/proc/meminfo"];
        for _ in 0..3 {
            let _c = Cycle::begin();
            for f in files {
                assert!(!read_in_cycle(Path::new(f)).unwrap().is_empty());
            }
        }
        assert_eq!(held(), 2);
    }

    #[test]
    fn no_more_than_max_held_files_are_kept() {
        reset();
        let dir = tempfile::tempdir().unwrap();
        let _c = Cycle::begin();
        // Entries count against the limit whether held or not.
        for i in 0..MAX_HELD + 10 {
            let p = dir.path().join(i.to_string());
            std::fs::write(&p, "x").unwrap();
            assert_eq!(read_in_cycle(&p).unwrap(), "x");
        }
        READS.with_borrow(|r| assert_eq!(r.files.len(), MAX_HELD));
    }
}
