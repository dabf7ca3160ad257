//! The `Source` trait every family's source implements, its
//! [`SourceError`], the [`Snapshot`] they fill, and the readers several
//! families share (per-process procfs files, cgroups, TCP sockets, sysfs
//! values, energy bookkeeping, helper commands, a minimal HTTP GET). They
//! know files and units, never OpenTelemetry.

use std::fmt;
use std::io;

use crate::host::ReadError;

pub mod cgroup;
pub mod command;
pub mod energy;
pub mod http_get;
pub mod net_tcp;
pub mod process;
pub mod seq_file;
pub mod snapshot;
pub mod sock_diag;
pub mod sysfs;

pub use snapshot::{Snapshot, SourceStatus};

pub trait Source: Send {
    /// Stable short name, used as the `source` attribute of self-metrics.
    fn name(&self) -> &'static str;
    /// Take one sample into `snap`. Values that could be read stay in the
    /// snapshot even when the call reports an error for the rest.
    fn sample(&mut self, snap: &mut Snapshot) -> Result<(), SourceError>;
    /// How to fix what the last sample found missing (a permission, a
    /// driver), for `doctor`; `None` when there is nothing to fix.
    fn hint(&self) -> Option<&'static str> {
        None
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceError {
    /// No such hardware, file or permission: expected on some hosts. Logged
    /// once; the source is reported down.
    Unavailable(String),
    /// Something that should have worked did not (a malformed file). Logged,
    /// rate-limited.
    Failed(String),
}

impl SourceError {
    /// `unavailable` or `failed`: the status `doctor` shows.
    pub fn kind(&self) -> &'static str {
        match self {
            SourceError::Unavailable(_) => "unavailable",
            SourceError::Failed(_) => "failed",
        }
    }

    /// Why, without the kind.
    pub fn reason(&self) -> &str {
        match self {
            SourceError::Unavailable(why) | SourceError::Failed(why) => why,
        }
    }
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind(), self.reason())
    }
}

impl std::error::Error for SourceError {}

impl From<ReadError> for SourceError {
    fn from(e: ReadError) -> Self {
        match e.kind() {
            io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied => {
                SourceError::Unavailable(e.to_string())
            }
            _ => SourceError::Failed(e.to_string()),
        }
    }
}

/// A file that was read but could not be understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseError {}

impl ParseError {
    /// Name the file the text came from.
    pub fn in_file(self, file: &str) -> SourceError {
        SourceError::Failed(format!("{file}: {}", self.0))
    }
}
