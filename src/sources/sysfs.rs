//! Small helpers for sysfs attribute files, all read through [`HostPaths`].
//!
//! sysfs attributes hold one value and a newline. `/sys/class/<class>/*`
//! entries are symlinks into `/sys/devices` on a real host and plain
//! directories in fixture trees; nothing here looks at the entry type, so
//! both work (a mounted `/host/sys` keeps the links relative, so they
//! resolve inside the mount).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::SourceError;
use crate::host::{HostPaths, ReadError};

/// A sysfs value that could not be read or understood.
#[derive(Debug)]
pub enum ValueError {
    Read(ReadError),
    Parse { path: PathBuf, text: String },
}

impl ValueError {
    pub fn kind(&self) -> Option<io::ErrorKind> {
        match self {
            ValueError::Read(e) => Some(e.kind()),
            ValueError::Parse { .. } => None,
        }
    }

    pub fn is_permission(&self) -> bool {
        self.kind() == Some(io::ErrorKind::PermissionDenied)
    }
}

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueError::Read(e) => e.fmt(f),
            ValueError::Parse { path, text } => {
                write!(f, "{}: {text:?} is not a valid value", path.display())
            }
        }
    }
}

impl From<ValueError> for SourceError {
    fn from(e: ValueError) -> Self {
        match e {
            ValueError::Read(r) => r.into(),
            ValueError::Parse { .. } => SourceError::Failed(e.to_string()),
        }
    }
}

/// The trimmed content of a sysfs file.
pub fn read_text(paths: &HostPaths, rel: impl AsRef<Path>) -> Result<String, ValueError> {
    paths
        .read_sys(rel)
        .map(|s| s.trim().to_owned())
        .map_err(ValueError::Read)
}

/// A sysfs file holding one number.
pub fn read_value<T: FromStr>(paths: &HostPaths, rel: impl AsRef<Path>) -> Result<T, ValueError> {
    let rel = rel.as_ref();
    let text = read_text(paths, rel)?;
    parse_value(&text).ok_or_else(|| ValueError::Parse {
        path: paths.sys_path(rel),
        text,
    })
}

/// One value as a sysfs attribute holds it: the text and a newline.
pub fn parse_value<T: FromStr>(text: &str) -> Option<T> {
    text.trim().parse().ok()
}

/// Names in a sysfs directory, in natural order (`hwmon2` before
/// `hwmon10`); empty when the directory does not exist.
pub fn entries(paths: &HostPaths, rel: impl AsRef<Path>) -> Vec<String> {
    let Ok(mut names) = crate::host::list_dir(&paths.sys_path(rel)) else {
        return Vec::new();
    };
    names.sort_by(|a, b| natural_key(a).cmp(&natural_key(b)));
    names
}

/// `hwmon10` → ("hwmon", 10, ""); names without a number sort by text.
fn natural_key(name: &str) -> (&str, u64, &str) {
    let start = name
        .find(|c: char| c.is_ascii_digit())
        .unwrap_or(name.len());
    let end = name[start..]
        .find(|c: char| !c.is_ascii_digit())
        .map_or(name.len(), |i| start + i);
    let n = name[start..end].parse().unwrap_or(0);
    (&name[..start], n, &name[end..])
}

/// The number after `prefix` in names like `fan3_input` (`prefix` "fan",
/// `suffix` "_input"); `None` for other names.
pub fn channel(name: &str, prefix: &str, suffix: &str) -> Option<u32> {
    name.strip_prefix(prefix)?
        .strip_suffix(suffix)?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order() {
        let mut v = vec!["hwmon10", "hwmon2", "hwmon1", "name"];
        v.sort_by(|a, b| natural_key(a).cmp(&natural_key(b)));
        assert_eq!(v, ["hwmon1", "hwmon2", "hwmon10", "name"]);
    }

    #[test]
    fn channels() {
        assert_eq!(channel("fan12_input", "fan", "_input"), Some(12));
        assert_eq!(channel("fan_input", "fan", "_input"), None);
        assert_eq!(channel("fan1_label", "fan", "_input"), None);
    }
}
