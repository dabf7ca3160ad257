//! Metric families that live in one folder each: the family's stats type,
//! its pure parsers, its source, its config section and its mapping to
//! points, registered by one line in [`ALL`].
//!
//! A family's section is `[families.<name>]` in the config file. The
//! configuration keeps it as written; the family parses and checks it
//! ([`check`] runs at load, so a bad key exits 2 like any other) and
//! receives only that section, never the whole configuration.
//!
//! What a family's source reads lands in `Snapshot::families` as a
//! [`FamilySample`](crate::sources::snapshot::FamilySample), which maps
//! itself to points: the export, `snapshot`, `doctor`, `/v1/snapshot` and
//! `/metrics` all see the same points without knowing the family.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use toml::Table;

use crate::config::{ConfigError, Loaded, Origin};
use crate::host::HostPaths;
use crate::sources::Source;

pub mod agent;
pub mod cpu;
pub mod cpufreq;
pub mod disk;
pub mod filesystem;
pub mod gpu;
pub mod macos;
pub mod memory;
pub mod models;
pub mod network;
pub mod paging;
pub mod power;
pub mod pressure;
pub mod processes;
pub mod services;
pub mod thermal;

/// One family: its name (the section's and the source's) and how its
/// section becomes its source.
pub struct Family {
    pub name: &'static str,
    pub build: Build,
}

/// A family's section, parsed and checked, into the maker of its source
/// (`None`: switched off, or not on this platform). Checking a section
/// reads nothing of the host: only calling the [`Builder`] does.
pub type Build = fn(&Table) -> Result<Option<Builder>, SectionError>;

/// Makes a family's source for the host at the given paths.
pub type Builder = Box<dyn FnOnce(&HostPaths) -> Box<dyn Source>>;

/// `make` as the family's builder when it is on and its readers exist on
/// this platform ([`READERS_HERE`]).
pub fn when(
    enabled: bool,
    make: impl FnOnce(&HostPaths) -> Box<dyn Source> + 'static,
) -> Option<Builder> {
    (enabled && READERS_HERE).then(|| Box::new(make) as Builder)
}

/// Every family, in sampling order. Adding a family is one line here.
pub const ALL: &[Family] = &[
    cpufreq::FAMILY,
    disk::FAMILY,
    network::FAMILY,
    paging::FAMILY,
    pressure::FAMILY,
    processes::FAMILY,
    thermal::FAMILY,
];

/// The section of a family whose only setting is whether it is on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OnOff {
    pub enabled: bool,
}

impl Default for OnOff {
    fn default() -> Self {
        OnOff { enabled: true }
    }
}

/// A key of a family's section that is wrong, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionError {
    /// Below the section (`exclude_devices`, `exclude_devices[1]`).
    pub key: String,
    pub reason: String,
}

/// A section into its typed config (absent keys: the type's defaults;
/// unknown keys are refused by the type's `deny_unknown_fields`).
pub fn section<T: DeserializeOwned>(t: &Table) -> Result<T, SectionError> {
    serde_path_to_error::deserialize(toml::Value::Table(t.clone())).map_err(|e| SectionError {
        key: e.path().to_string(),
        reason: e
            .inner()
            .message()
            .replacen("unknown field", "unknown key", 1),
    })
}

/// Checks every `[families.*]` section: an unknown family or a bad key is
/// a config error naming where the value came from.
pub fn check(loaded: &Loaded) -> Result<(), ConfigError> {
    for (name, table) in &loaded.config.families {
        let Some(f) = ALL.iter().find(|f| f.name == name) else {
            let known: Vec<&str> = ALL.iter().map(|f| f.name).collect();
            let key = format!("families.{name}");
            return Err(ConfigError {
                origin: origin(loaded, &key),
                key,
                reason: format!("unknown metric family (known: {})", known.join(", ")),
            });
        };
        if let Err(e) = (f.build)(table) {
            let key = if e.key.is_empty() || e.key == "." {
                format!("families.{name}")
            } else {
                format!("families.{name}.{}", e.key)
            };
            return Err(ConfigError {
                origin: origin(loaded, &key),
                key,
                reason: e.reason,
            });
        }
    }
    Ok(())
}

/// Sections come only from the file; an empty `[families.x]` table has
/// no value of its own to have recorded an origin.
fn origin(loaded: &Loaded, key: &str) -> Origin {
    match (loaded.origin(key), &loaded.file) {
        (Origin::Default, Some(f)) => Origin::File(f.clone()),
        (o, _) => o,
    }
}

/// The sources of every family that is on, in [`ALL`] order. Sections
/// were checked at load; one that still fails is left out.
pub fn sources(paths: &HostPaths, sections: &BTreeMap<String, Table>) -> Vec<Box<dyn Source>> {
    let empty = Table::new();
    ALL.iter()
        .filter_map(|f| (f.build)(sections.get(f.name).unwrap_or(&empty)).ok()?)
        .map(|make| make(paths))
        .collect()
}

/// True where the families' readers exist (they read Linux procfs and
/// sysfs); elsewhere a family builds no source rather than one that is
/// always down.
pub const READERS_HERE: bool = cfg!(target_os = "linux");

/// Shell-style globs (`*`, `?`) on a device or interface name, the same
/// matching the cgroup matchers use.
pub use crate::sources::cgroup::glob_match;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_builds_from_an_empty_section() {
        for f in ALL {
            assert!((f.build)(&Table::new()).is_ok(), "{}", f.name);
        }
    }

    #[test]
    fn names_are_unique() {
        let mut names: Vec<&str> = ALL.iter().map(|f| f.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL.len());
    }
}
