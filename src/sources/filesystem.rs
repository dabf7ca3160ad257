//! Mounted filesystems and their usage, for `system.filesystem.usage`
//! (`[compat] hostmetrics`). The mount table is `<proc>/1/mounts` (the host's
//! init, so a container with hostPID sees the host's mounts; else
//! `self/mounts`), in the fstab-like format of proc_pid_mounts(5); usage is
//! statvfs(2) of the mount point under `host.root`.

/// One line of a mounts file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub device: String,
    pub mountpoint: String,
    pub fstype: String,
}

/// Usage of one filesystem, in bytes (statvfs: `f_frsize` units).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsUsage {
    pub mount: Mount,
    /// (f_blocks - f_bfree) * f_frsize
    pub used: u64,
    /// f_bavail * f_frsize: what an unprivileged user can still write.
    pub free: u64,
    /// (f_bfree - f_bavail) * f_frsize: kept for root.
    pub reserved: u64,
}

impl FsUsage {
    /// From statvfs fields; `None` for a filesystem without blocks (ramfs,
    /// some pseudo filesystems) or inconsistent counts.
    pub fn from_statvfs(
        mount: Mount,
        frsize: u64,
        blocks: u64,
        bfree: u64,
        bavail: u64,
    ) -> Option<Self> {
        if blocks == 0 || bfree > blocks || bavail > bfree {
            return None;
        }
        Some(FsUsage {
            mount,
            used: (blocks - bfree).saturating_mul(frsize),
            free: bavail.saturating_mul(frsize),
            reserved: (bfree - bavail).saturating_mul(frsize),
        })
    }
}

/// Mounts file fields escape space, tab, newline and backslash as
/// three-digit octal (`\040`), as the kernel's `mangle()` writes them.
fn unescape(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            let oct = &b[i + 1..i + 4];
            if oct.iter().all(|c| (b'0'..=b'7').contains(c)) {
                let v = oct
                    .iter()
                    .fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0'));
                if let Ok(v) = u8::try_from(v) {
                    out.push(v);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `device mountpoint type options dump pass` per line; short lines are
/// skipped. Later lines mount over earlier ones at the same point.
pub fn parse_mounts(text: &str) -> Vec<Mount> {
    let mut out: Vec<Mount> = Vec::new();
    for line in text.lines() {
        // Fields are separated by one space: mangle() leaves CR, form
        // feed and vertical tab in a name as they are.
        let mut f = line.split(' ').filter(|f| !f.is_empty());
        let (Some(device), Some(mountpoint), Some(fstype)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let m = Mount {
            device: unescape(device),
            mountpoint: unescape(mountpoint),
            fstype: fstype.to_owned(),
        };
        out.retain(|o| o.mountpoint != m.mountpoint);
        out.push(m);
    }
    out
}

/// Pseudo and container-image filesystems, as node_exporter's default
/// `--collector.filesystem.fs-types-exclude`, plus efivarfs and ramfs.
const PSEUDO_TYPES: &[&str] = &[
    "autofs",
    "binfmt_misc",
    "bpf",
    "cgroup",
    "cgroup2",
    "configfs",
    "debugfs",
    "devpts",
    "devtmpfs",
    "efivarfs",
    "erofs",
    "fusectl",
    "hugetlbfs",
    "iso9660",
    "mqueue",
    "nsfs",
    "overlay",
    "proc",
    "procfs",
    "pstore",
    "ramfs",
    "rpc_pipefs",
    "securityfs",
    "selinuxfs",
    "squashfs",
    "sysfs",
    "tracefs",
];

/// Network filesystems: statvfs on a dead server blocks the whole cycle.
const REMOTE_TYPES: &[&str] = &[
    "afs",
    "ceph",
    "cifs",
    "fuse.gcsfuse",
    "fuse.glusterfs",
    "fuse.rclone",
    "fuse.s3fs",
    "fuse.sshfs",
    "glusterfs",
    "lustre",
    "ncpfs",
    "nfs",
    "nfs4",
    "smb3",
    "smbfs",
];

/// Mount points of the kernel's and the container runtimes' own mounts
/// (node_exporter's default mount-points-exclude, plus kubelet's per-pod
/// volumes and containerd's sandboxes).
const SKIP_UNDER: &[&str] = &[
    "/dev",
    "/proc",
    "/sys",
    "/run/credentials/",
    "/run/containerd/",
    "/var/lib/docker/",
    "/var/lib/containers/storage/",
    "/var/lib/kubelet/pods/",
];

/// Whether a mount is a real local filesystem worth a statvfs.
pub fn is_reported(m: &Mount) -> bool {
    if PSEUDO_TYPES.contains(&m.fstype.as_str()) || REMOTE_TYPES.contains(&m.fstype.as_str()) {
        return false;
    }
    !SKIP_UNDER.iter().any(|p| {
        let dir = p.trim_end_matches('/');
        m.mountpoint == dir && !p.ends_with('/') || m.mountpoint.starts_with(&format!("{dir}/"))
    })
}

#[cfg(target_os = "linux")]
mod imp {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;

    use super::*;
    use crate::host::HostPaths;
    use crate::sources::Snapshot;
    use crate::sources::{Source, SourceError};

    pub struct FilesystemSource {
        paths: HostPaths,
    }

    impl FilesystemSource {
        pub fn new(paths: HostPaths) -> Self {
            FilesystemSource { paths }
        }
    }

    fn statvfs(path: &Path) -> std::io::Result<libc::statvfs> {
        let c = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
        // SAFETY: an all-zero statvfs is a valid value of a plain C struct.
        let mut buf: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: `c` is NUL-terminated and `buf` is a valid out pointer.
        if unsafe { libc::statvfs(c.as_ptr(), &mut buf) } == 0 {
            Ok(buf)
        } else {
            Err(std::io::Error::last_os_error())
        }
    }

    impl Source for FilesystemSource {
        fn name(&self) -> &'static str {
            "filesystem"
        }

        fn sample(&mut self, snap: &mut Snapshot) -> Result<(), SourceError> {
            let text = self
                .paths
                .read_proc("1/mounts")
                .or_else(|_| self.paths.read_proc("self/mounts"))?;
            let mut out = Vec::new();
            for m in parse_mounts(&text).into_iter().filter(is_reported) {
                let under_root = self.paths.root_path(m.mountpoint.trim_start_matches('/'));
                // A mount the agent cannot see (not propagated into the
                // container, no permission) is skipped, not an error.
                let Ok(st) = statvfs(&under_root) else {
                    continue;
                };
                let frsize = if st.f_frsize > 0 {
                    st.f_frsize
                } else {
                    st.f_bsize
                };
                #[allow(clippy::useless_conversion)] // the field widths differ by target
                let usage = FsUsage::from_statvfs(
                    m,
                    u64::from(frsize),
                    u64::from(st.f_blocks),
                    u64::from(st.f_bfree),
                    u64::from(st.f_bavail),
                );
                out.extend(usage);
            }
            if out.is_empty() {
                return Err(SourceError::Unavailable(format!(
                    "no local filesystem readable under {}",
                    self.paths.root.display()
                )));
            }
            snap.compat_mut().filesystems = Some(out);
            Ok(())
        }
    }
}

#[cfg(target_os = "linux")]
pub use imp::FilesystemSource;

#[cfg(test)]
mod tests {
    use super::*;

    fn mount(dev: &str, mp: &str, t: &str) -> Mount {
        Mount {
            device: dev.into(),
            mountpoint: mp.into(),
            fstype: t.into(),
        }
    }

    #[test]
    fn mounts_unescape_and_shadow() {
        let text = "/dev/sda1 / ext4 rw,relatime 0 0\nproc /proc proc rw 0 0\n/dev/sdb1 /mnt/My\\040Disk vfat rw 0 0\n/dev/sdc1 /data ext4 rw 0 0\n/dev/sdd1 /data xfs rw 0 0\nshort line\n";
        let m = parse_mounts(text);
        assert_eq!(
            m,
            vec![
                mount("/dev/sda1", "/", "ext4"),
                mount("proc", "/proc", "proc"),
                mount("/dev/sdb1", "/mnt/My Disk", "vfat"),
                mount("/dev/sdd1", "/data", "xfs"),
            ]
        );
        assert_eq!(unescape("a\\134b\\011c\\0"), "a\\b\tc\\0");
    }

    #[test]
    fn unescaped_control_characters_stay_in_the_field() {
        let m = parse_mounts("/dev/sdb1 /mnt/a\x0cb\rc ext4 rw 0 0\n");
        assert_eq!(m, vec![mount("/dev/sdb1", "/mnt/a\x0cb\rc", "ext4")]);
    }

    #[test]
    fn pseudo_remote_and_runtime_mounts_are_skipped() {
        assert!(is_reported(&mount("/dev/sda1", "/", "ext4")));
        assert!(is_reported(&mount("tmpfs", "/run", "tmpfs")));
        assert!(is_reported(&mount("/dev/sda2", "/devices", "ext4")));
        assert!(!is_reported(&mount("proc", "/proc", "proc")));
        assert!(!is_reported(&mount("tmpfs", "/dev/shm", "tmpfs")));
        assert!(!is_reported(&mount("srv:/x", "/mnt/x", "nfs4")));
        assert!(!is_reported(&mount(
            "overlay",
            "/var/lib/docker/overlay2/a/merged",
            "overlay"
        )));
        assert!(!is_reported(&mount(
            "tmpfs",
            "/var/lib/kubelet/pods/u/volumes/x",
            "tmpfs"
        )));
        assert!(is_reported(&mount("/dev/sdb", "/var/lib/kubelet", "ext4")));
    }

    #[test]
    fn usage_from_statvfs_fields() {
        // 1000 blocks of 4 KiB, 300 free of which 250 for users.
        let u = FsUsage::from_statvfs(mount("d", "/", "ext4"), 4096, 1000, 300, 250).unwrap();
        assert_eq!(
            (u.used, u.free, u.reserved),
            (700 * 4096, 250 * 4096, 50 * 4096)
        );
        assert!(FsUsage::from_statvfs(mount("d", "/", "ramfs"), 4096, 0, 0, 0).is_none());
        assert!(FsUsage::from_statvfs(mount("d", "/", "x"), 4096, 10, 20, 0).is_none());
    }
}
