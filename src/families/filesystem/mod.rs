//! The `filesystem` family: mounted filesystems and their usage, for `system.filesystem.usage` and
//! `system.filesystem.inodes.usage` (`[compat] hostmetrics`). The mount
//! table is read as gopsutil reads it for the hostmetrics receiver:
//! `<proc>/1/mountinfo` (the host's init, so a container with hostPID sees
//! the host's mounts), else `1/mounts`, else `self/mountinfo`, else
//! `self/mounts` (proc_pid_mountinfo(5), proc_pid_mounts(5)); usage is
//! statvfs(2) of the mount point under `host.root`. From mountinfo, a
//! `/dev/mapper/<name>` device is named by its link's target (`/dev/dm-0`)
//! and `/dev/root` by the block device of its `major:minor`, as gopsutil
//! does.
//!
//! Which mounts, as the hostmetrics receiver picks them by default
//! (gopsutil's `disk.Partitions(all=false)`): a mount whose device is not
//! `none` and whose type `<proc>/filesystems` lists without `nodev` (a
//! filesystem that needs a block device), plus zfs. tmpfs, proc, sysfs,
//! cgroup, overlay, nfs and fuse mounts are all `nodev`.
//! `compat.include_virtual_filesystems` takes every mount instead, as the
//! receiver's `include_virtual_filesystems` does.

use crate::point::Point;
use crate::semconv::{self, attr};
use crate::sources::seq_file::unescape;
use crate::sources::snapshot::{FamilySample, Snapshot};

/// One line of a mounts file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub device: String,
    pub mountpoint: String,
    pub fstype: String,
    /// `rw` or `ro` from the mount options, else `unknown` (the receiver's
    /// `mode` attribute).
    pub mode: &'static str,
    /// `major:minor` of the filesystem's device (mountinfo only).
    pub block_device: Option<String>,
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
    /// Inodes (used = f_files - f_ffree, free = f_ffree); `None` when the
    /// counts are inconsistent.
    pub inodes: Option<(u64, u64)>,
}

/// Every filesystem the cycle read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filesystems(pub Vec<FsUsage>);

/// `system.filesystem.usage` and `system.filesystem.inodes.usage`, the
/// hostmetrics receiver's names, states and attributes.
impl FamilySample for Filesystems {
    fn points(&self, _snap: &Snapshot, out: &mut Vec<Point>) {
        for fs in &self.0 {
            let m = &fs.mount;
            let with_mount = |p: Point| {
                p.with(attr::DEVICE, m.device.as_str())
                    .with(attr::MODE, m.mode)
                    .with(attr::MOUNTPOINT, m.mountpoint.as_str())
                    .with(attr::TYPE, m.fstype.as_str())
            };
            for (state, bytes) in [
                ("used", fs.used),
                ("free", fs.free),
                ("reserved", fs.reserved),
            ] {
                out.push(
                    with_mount(Point::new(&semconv::SYSTEM_FILESYSTEM_USAGE, bytes as f64))
                        .with(attr::STATE, state),
                );
            }
            if let Some((used, free)) = fs.inodes {
                for (state, n) in [("used", used), ("free", free)] {
                    out.push(
                        with_mount(Point::new(
                            &semconv::SYSTEM_FILESYSTEM_INODES_USAGE,
                            n as f64,
                        ))
                        .with(attr::STATE, state),
                    );
                }
            }
        }
    }
}

/// The statvfs(2) fields the usage is computed from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatvfsFields {
    pub frsize: u64,
    pub blocks: u64,
    pub bfree: u64,
    pub bavail: u64,
    pub files: u64,
    pub ffree: u64,
}

impl FsUsage {
    /// From statvfs fields; `None` for inconsistent block counts. A
    /// filesystem without blocks (proc, sysfs: only with
    /// `include_virtual_filesystems`) reports the zeros statvfs gives, as
    /// the receiver does.
    pub fn from_statvfs(mount: Mount, st: StatvfsFields) -> Option<Self> {
        if st.bfree > st.blocks || st.bavail > st.bfree {
            return None;
        }
        let inodes = (st.ffree <= st.files).then(|| (st.files - st.ffree, st.ffree));
        Some(FsUsage {
            mount,
            used: (st.blocks - st.bfree).saturating_mul(st.frsize),
            free: st.bavail.saturating_mul(st.frsize),
            reserved: (st.bfree - st.bavail).saturating_mul(st.frsize),
            inodes,
        })
    }
}

/// A NUL-terminated C string field of a fixed-size array (macOS `statfs`
/// names); the whole array when it has no NUL.
pub fn c_field(chars: &[std::ffi::c_char]) -> String {
    let bytes: Vec<u8> = chars
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// `rw` when the options list it, else `ro`, else `unknown` (the kernel
/// always writes one of the two first).
fn mode_of(options: &str) -> &'static str {
    let opts = || options.split(',');
    if opts().any(|o| o == "rw") {
        "rw"
    } else if opts().any(|o| o == "ro") {
        "ro"
    } else {
        "unknown"
    }
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
            mode: mode_of(f.next().unwrap_or("")),
            block_device: None,
        };
        out.retain(|o| o.mountpoint != m.mountpoint);
        out.push(m);
    }
    out
}

/// proc_pid_mountinfo(5): `id parent major:minor root mount_point
/// options [optional fields...] - fstype source super_options` per line;
/// `mode` comes from the per-mount options (field 6), as gopsutil takes
/// them. Lines without the ` - ` separator are skipped. Later lines mount
/// over earlier ones at the same point.
pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    let mut out: Vec<Mount> = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split(' ').filter(|f| !f.is_empty()).collect();
        let Some(sep) = f.iter().skip(6).position(|x| *x == "-").map(|i| i + 6) else {
            continue;
        };
        let (Some(fstype), Some(source)) = (f.get(sep + 1), f.get(sep + 2)) else {
            continue;
        };
        let m = Mount {
            device: unescape(source),
            mountpoint: unescape(f[4]),
            fstype: (*fstype).to_owned(),
            mode: mode_of(f[5]),
            block_device: Some(f[2].to_owned()),
        };
        out.retain(|o| o.mountpoint != m.mountpoint);
        out.push(m);
    }
    out
}

/// The types of `/proc/filesystems` that need a block device (lines without
/// the `nodev` flag), plus zfs, which is `nodev` but holds real data: the
/// list gopsutil keeps for `all=false`.
pub fn parse_filesystems(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        match line.split_once('\t') {
            Some(("nodev", t)) if t.trim() == "zfs" => out.push("zfs".to_owned()),
            Some(("nodev", _)) => {}
            Some((_, t)) => out.push(t.trim().to_owned()),
            None if !line.trim().is_empty() && !line.starts_with("nodev") => {
                out.push(line.trim().to_owned())
            }
            None => {}
        }
    }
    out
}

/// Network filesystems: statvfs on a dead server blocks the whole cycle, so
/// they stay out even with `include_virtual_filesystems` (by default they
/// are out anyway: all are `nodev`).
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

/// Whether a mount is reported: with `physical` (the list of
/// [`parse_filesystems`]) only a device-backed type on a device other than
/// `none`; without it (virtual filesystems included) every mount but the
/// network ones.
pub fn is_reported(m: &Mount, physical: Option<&[String]>) -> bool {
    if REMOTE_TYPES.contains(&m.fstype.as_str()) {
        return false;
    }
    match physical {
        Some(types) => m.device != "none" && types.contains(&m.fstype),
        None => true,
    }
}

#[cfg(target_os = "linux")]
mod imp {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;

    use super::*;
    use crate::host::HostPaths;
    use crate::sources::{Source, SourceError};

    pub struct FilesystemSource {
        paths: HostPaths,
        /// `compat.include_virtual_filesystems`.
        include_virtual: bool,
    }

    impl FilesystemSource {
        pub fn new(paths: HostPaths, include_virtual: bool) -> Self {
            FilesystemSource {
                paths,
                include_virtual,
            }
        }
    }

    impl FilesystemSource {
        /// gopsutil's order: init's mountinfo, init's mounts, then this
        /// process's. Devices are named as gopsutil names them from
        /// mountinfo (not from a mounts file, where it leaves them).
        fn mounts(&self) -> Result<Vec<Mount>, SourceError> {
            let mut last = SourceError::Unavailable("no mount table".into());
            for (file, info) in [
                ("1/mountinfo", true),
                ("1/mounts", false),
                ("self/mountinfo", true),
                ("self/mounts", false),
            ] {
                match self.paths.read_proc(file) {
                    Ok(text) if info => {
                        let mut mounts = parse_mountinfo(&text);
                        for m in &mut mounts {
                            self.resolve_device(m);
                        }
                        return Ok(mounts);
                    }
                    Ok(text) => return Ok(parse_mounts(&text)),
                    Err(e) => last = e.into(),
                }
            }
            Err(last)
        }

        /// `/dev/mapper/<name>` → the link's target (`/dev/dm-0`);
        /// `/dev/root` → the block device `<sys>/dev/block/<major:minor>`
        /// links to. Left as it is when the link cannot be read.
        fn resolve_device(&self, m: &mut Mount) {
            let link = if let Some(name) = m.device.strip_prefix("/dev/mapper/") {
                std::fs::read_link(self.paths.root_path(format!("dev/mapper/{name}")))
            } else if m.device == "/dev/root"
                && let Some(dev) = &m.block_device
            {
                std::fs::read_link(self.paths.sys_path(format!("dev/block/{dev}")))
            } else {
                return;
            };
            if let Some(base) = link.ok().as_deref().and_then(Path::file_name) {
                m.device = format!("/dev/{}", base.to_string_lossy());
            }
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
            let mounts = self.mounts()?;
            let physical = if self.include_virtual {
                None
            } else {
                Some(parse_filesystems(&self.paths.read_proc("filesystems")?))
            };
            let mut out = Vec::new();
            for m in mounts
                .into_iter()
                .filter(|m| is_reported(m, physical.as_deref()))
            {
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
                let fields = StatvfsFields {
                    frsize: u64::from(frsize),
                    blocks: u64::from(st.f_blocks),
                    bfree: u64::from(st.f_bfree),
                    bavail: u64::from(st.f_bavail),
                    files: u64::from(st.f_files),
                    ffree: u64::from(st.f_ffree),
                };
                out.extend(FsUsage::from_statvfs(m, fields));
            }
            if out.is_empty() {
                return Err(SourceError::Unavailable(format!(
                    "no local filesystem readable under {}",
                    self.paths.root.display()
                )));
            }
            snap.put(Filesystems(out));
            Ok(())
        }
    }
}

#[cfg(target_os = "macos")]
mod imp {
    use std::ffi::CString;

    use super::*;
    use crate::host::HostPaths;
    use crate::sources::{Source, SourceError};

    /// macOS: every mount of getfsstat(2), as gopsutil lists them there (its
    /// `all` flag is ignored on macOS, so the receiver reports devfs and
    /// autofs too); network filesystems are skipped, whose statfs can hang.
    pub struct FilesystemSource;

    impl FilesystemSource {
        /// `HostPaths` and `include_virtual_filesystems` have no meaning
        /// here: the mounts are the local host's, all of them.
        pub fn new(_paths: HostPaths, _include_virtual: bool) -> Self {
            FilesystemSource
        }
    }

    fn mounted() -> std::io::Result<Vec<libc::statfs>> {
        // SAFETY: a null buffer asks only for the count.
        let n = unsafe { libc::getfsstat(std::ptr::null_mut(), 0, libc::MNT_NOWAIT) };
        let Ok(n) = usize::try_from(n) else {
            return Err(std::io::Error::last_os_error());
        };
        // Room for a few mounts more than a moment ago.
        // SAFETY: an all-zero statfs is a valid plain C struct.
        let mut buf: Vec<libc::statfs> = vec![unsafe { std::mem::zeroed() }; n + 8];
        let bytes = libc::c_int::try_from(buf.len() * std::mem::size_of::<libc::statfs>())
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
        // MNT_NOWAIT: the kernel's cached counts, no round trip to a
        // filesystem; fresh counts come from statfs below.
        // SAFETY: `buf` holds `bytes` bytes of statfs entries.
        let got = unsafe { libc::getfsstat(buf.as_mut_ptr(), bytes, libc::MNT_NOWAIT) };
        let Ok(got) = usize::try_from(got) else {
            return Err(std::io::Error::last_os_error());
        };
        buf.truncate(got);
        Ok(buf)
    }

    fn statfs(path: &str) -> std::io::Result<libc::statfs> {
        let c = CString::new(path)
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
        // SAFETY: an all-zero statfs is a valid plain C struct.
        let mut buf: libc::statfs = unsafe { std::mem::zeroed() };
        // SAFETY: `c` is NUL-terminated and `buf` is a valid out pointer.
        if unsafe { libc::statfs(c.as_ptr(), &mut buf) } == 0 {
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
            let list = mounted().map_err(|e| SourceError::Failed(format!("getfsstat: {e}")))?;
            let mut out = Vec::new();
            for entry in &list {
                let m = Mount {
                    device: c_field(&entry.f_mntfromname),
                    mountpoint: c_field(&entry.f_mntonname),
                    fstype: c_field(&entry.f_fstypename),
                    mode: if entry.f_flags & libc::MNT_RDONLY as u32 != 0 {
                        "ro"
                    } else {
                        "rw"
                    },
                    block_device: None,
                };
                if !is_reported(&m, None) {
                    continue;
                }
                // Unmounted since the listing: skipped, not an error.
                let Ok(st) = statfs(&m.mountpoint) else {
                    continue;
                };
                let fields = StatvfsFields {
                    frsize: u64::from(st.f_bsize),
                    blocks: st.f_blocks,
                    bfree: st.f_bfree,
                    bavail: st.f_bavail,
                    files: st.f_files,
                    ffree: st.f_ffree,
                };
                out.extend(FsUsage::from_statvfs(m, fields));
            }
            if out.is_empty() {
                return Err(SourceError::Unavailable("no filesystem readable".into()));
            }
            snap.put(Filesystems(out));
            Ok(())
        }
    }
}

#[cfg(any(target_os = "linux", target_os = "macos"))]
pub use imp::FilesystemSource;

/// The filesystem family's source: only for `[compat] hostmetrics` (its
/// names are the receiver's), on Linux and macOS.
pub fn build(hostmetrics: bool, include_virtual: bool) -> Option<super::Builder> {
    #[cfg(any(target_os = "linux", target_os = "macos"))]
    return hostmetrics.then(|| {
        super::one(move |paths| Box::new(FilesystemSource::new(paths.clone(), include_virtual)))
    });
    #[cfg(not(any(target_os = "linux", target_os = "macos")))]
    {
        let _ = (hostmetrics, include_virtual);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mount(dev: &str, mp: &str, t: &str) -> Mount {
        Mount {
            device: dev.into(),
            mountpoint: mp.into(),
            fstype: t.into(),
            mode: "rw",
            block_device: None,
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
    fn mode_from_the_options() {
        let m = parse_mounts(
            "/dev/a /a ext4 ro,relatime 0 0\n/dev/b /b ext4 relatime,rw 0 0\n/dev/c /c ext4 relatime 0 0\n/dev/d /d ext4\n",
        );
        let modes: Vec<_> = m.iter().map(|m| m.mode).collect();
        assert_eq!(modes, ["ro", "rw", "unknown", "unknown"]);
        // An option that only contains the letters is not the flag.
        assert_eq!(mode_of("errors=remount-ro,x"), "unknown");
    }

    #[test]
    fn mountinfo_fields_and_per_mount_mode() {
        // proc_pid_mountinfo(5)'s example, optional fields of any number.
        let text = "36 35 98:0 /mnt1 /mnt2 ro,noatime master:1 - ext3 /dev/root rw,errors=continue\n\
                    24 1 253:0 / / rw,relatime shared:1 - ext4 /dev/mapper/vg-root rw\n\
                    25 24 0:22 / /run rw,nosuid - tmpfs tmpfs rw,mode=755\n\
                    26 24 8:17 / /my\\040disk rw - xfs /dev/sdb1 rw\n\
                    27 24 8:18 / /short rw -\n\
                    no separator here at all\n";
        let m = parse_mountinfo(text);
        let got: Vec<_> = m
            .iter()
            .map(|m| {
                (
                    m.device.as_str(),
                    m.mountpoint.as_str(),
                    m.fstype.as_str(),
                    m.mode,
                    m.block_device.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("/dev/root", "/mnt2", "ext3", "ro", Some("98:0")),
                ("/dev/mapper/vg-root", "/", "ext4", "rw", Some("253:0")),
                ("tmpfs", "/run", "tmpfs", "rw", Some("0:22")),
                ("/dev/sdb1", "/my disk", "xfs", "rw", Some("8:17")),
            ]
        );
    }

    #[test]
    fn unescaped_control_characters_stay_in_the_field() {
        let m = parse_mounts("/dev/sdb1 /mnt/a\x0cb\rc ext4 rw 0 0\n");
        assert_eq!(m, vec![mount("/dev/sdb1", "/mnt/a\x0cb\rc", "ext4")]);
    }

    #[test]
    fn c_fields_end_at_the_first_nul() {
        let f = |b: &[u8]| b.iter().map(|&c| c as std::ffi::c_char).collect::<Vec<_>>();
        assert_eq!(c_field(&f(b"apfs\0\0x")), "apfs");
        assert_eq!(c_field(&f(b"/dev/disk3s1")), "/dev/disk3s1");
        assert_eq!(c_field(&[]), "");
    }

    #[test]
    fn physical_types_from_proc_filesystems() {
        let text = "nodev\tsysfs\nnodev\ttmpfs\n\text3\n\text4\nnodev\tzfs\n\tvfat\nnodev\toverlay\n\txfs\n";
        assert_eq!(
            parse_filesystems(text),
            ["ext3", "ext4", "zfs", "vfat", "xfs"]
        );
    }

    #[test]
    fn virtual_and_remote_mounts_are_skipped_by_default() {
        let physical = parse_filesystems("nodev\ttmpfs\nnodev\tproc\nnodev\tnfs4\n\text4\n");
        let on = |m: &Mount| is_reported(m, Some(&physical));
        assert!(on(&mount("/dev/sda1", "/", "ext4")));
        assert!(!on(&mount("none", "/x", "ext4")));
        assert!(!on(&mount("tmpfs", "/run", "tmpfs")));
        assert!(!on(&mount("proc", "/proc", "proc")));
        assert!(!on(&mount("srv:/x", "/mnt/x", "nfs4")));
        // Virtual filesystems included: all but the network ones.
        assert!(is_reported(&mount("tmpfs", "/run", "tmpfs"), None));
        assert!(is_reported(&mount("proc", "/proc", "proc"), None));
        assert!(!is_reported(&mount("srv:/x", "/mnt/x", "nfs4"), None));
    }

    #[test]
    fn usage_from_statvfs_fields() {
        // 1000 blocks of 4 KiB, 300 free of which 250 for users; 64 inodes,
        // 40 free.
        let st = StatvfsFields {
            frsize: 4096,
            blocks: 1000,
            bfree: 300,
            bavail: 250,
            files: 64,
            ffree: 40,
        };
        let u = FsUsage::from_statvfs(mount("d", "/", "ext4"), st).unwrap();
        assert_eq!(
            (u.used, u.free, u.reserved, u.inodes),
            (700 * 4096, 250 * 4096, 50 * 4096, Some((24, 40)))
        );
        let zero = FsUsage::from_statvfs(mount("proc", "/proc", "proc"), StatvfsFields::default());
        assert_eq!(
            zero.map(|u| (u.used, u.free, u.inodes)),
            Some((0, 0, Some((0, 0))))
        );
        let bad = StatvfsFields {
            bfree: 20,
            blocks: 10,
            ..st
        };
        assert!(FsUsage::from_statvfs(mount("d", "/", "x"), bad).is_none());
        let bad_inodes = StatvfsFields { ffree: 65, ..st };
        assert_eq!(
            FsUsage::from_statvfs(mount("d", "/", "x"), bad_inodes).map(|u| u.inodes),
            Some(None)
        );
    }
}
