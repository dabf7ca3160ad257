//! Metric families, one folder each: the family's stats type, its pure
//! parsers, its source, its config section and its mapping to points,
//! registered by one line in [`ALL`], in sampling order.
//!
//! A family's settings reach it as a value, never the whole configuration.
//! Most have a section `[families.<name>]` in the config file, which the
//! configuration keeps as written; the family parses and checks it
//! ([`check`] runs at load, so a bad key exits 2 like any other)
//! ([`Settings::Section`]). The families older than these sections take
//! top-level settings, which their line in [`ALL`] picks and hands over
//! ([`Settings::Config`]).
//!
//! What a family's source reads lands in the `Snapshot` as a
//! [`FamilySample`](crate::sources::snapshot::FamilySample), which maps
//! itself to points: the export, `snapshot`, `doctor`, `/v1/snapshot` and
//! `/metrics` all see the same points without knowing the family.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use toml::Table;

use crate::config::{Config, ConfigError, Loaded, Origin};
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

/// One family: its name and how its settings become its sources.
pub struct Family {
    pub name: &'static str,
    pub build: Settings,
}

/// Where a family's settings come from.
pub enum Settings {
    /// Its `[families.<name>]` section, parsed and checked by the family
    /// into the maker of its source (`None`: switched off, or not on this
    /// platform). Checking reads nothing of the host: only calling the
    /// [`Builder`] does.
    Section(fn(&Table) -> Result<Option<Builder>, SectionError>),
    /// Top-level settings, which the family's line in [`ALL`] picks from
    /// the configuration and hands to the family as values.
    Config(fn(&Config) -> Option<Builder>),
}

/// Makes a family's sources for the host at the given paths (most have
/// one; power and macOS have three).
pub type Builder = Box<dyn FnOnce(&HostPaths) -> Vec<Box<dyn Source>>>;

/// `make` as the family's builder when it is on and its readers exist on
/// this platform ([`READERS_HERE`]).
pub fn when(
    enabled: bool,
    make: impl FnOnce(&HostPaths) -> Box<dyn Source> + 'static,
) -> Option<Builder> {
    (enabled && READERS_HERE).then(|| one(make))
}

/// `make` as a builder of one source, whatever the platform.
pub fn one(make: impl FnOnce(&HostPaths) -> Box<dyn Source> + 'static) -> Builder {
    Box::new(move |paths: &HostPaths| vec![make(paths)])
}

/// Every family, in sampling order. Adding a family is one line here.
///
/// The order is a contract (see `crate::pipeline`): an earlier power
/// source wins a domain (rapl, hwmon, battery, inside `power`); the
/// families with a section read nothing of another; macOS's apple-gpu
/// runs before powermetrics, which adds to its devices.
pub const ALL: &[Family] = &[
    Family {
        name: "cpu",
        build: Settings::Config(|c| Some(cpu::build(c.compat.hostmetrics))),
    },
    Family {
        name: "memory",
        build: Settings::Config(|c| Some(memory::build(c.compat.hostmetrics))),
    },
    Family {
        name: "services",
        build: Settings::Config(|c| Some(services::build(c.services_section()))),
    },
    Family {
        name: "power",
        build: Settings::Config(|_| power::build()),
    },
    Family {
        name: "filesystem",
        build: Settings::Config(|c| {
            filesystem::build(c.compat.hostmetrics, c.compat.include_virtual_filesystems)
        }),
    },
    cpufreq::FAMILY,
    disk::FAMILY,
    network::FAMILY,
    paging::FAMILY,
    pressure::FAMILY,
    processes::FAMILY,
    thermal::FAMILY,
    Family {
        name: "gpu",
        build: Settings::Config(|c| gpu::build(&c.gpu)),
    },
    Family {
        name: "models",
        build: Settings::Config(|c| models::build(&c.ollama)),
    },
    Family {
        name: "macos",
        build: Settings::Config(|c| macos::build(c.interval.0)),
    },
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

/// Checks every `[families.*]` section: an unknown family (or one without
/// a section of its own) or a bad key is a config error naming where the
/// value came from.
pub fn check(loaded: &Loaded) -> Result<(), ConfigError> {
    for (name, table) in &loaded.config.families {
        let build = ALL.iter().find_map(|f| match f.build {
            Settings::Section(b) if f.name == name => Some(b),
            _ => None,
        });
        let Some(build) = build else {
            let known: Vec<&str> = ALL
                .iter()
                .filter(|f| matches!(f.build, Settings::Section(_)))
                .map(|f| f.name)
                .collect();
            let key = format!("families.{name}");
            return Err(ConfigError {
                origin: origin(loaded, &key),
                key,
                reason: format!(
                    "unknown metric family section (known: {})",
                    known.join(", ")
                ),
            });
        };
        if let Err(e) = build(table) {
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

/// The sources of every family that is on, in [`ALL`] order, reading the
/// host at the configuration's paths. Sections were checked at load; one
/// that still fails is left out.
pub fn sources(cfg: &Config) -> Vec<Box<dyn Source>> {
    let paths = cfg.host_paths();
    let empty = Table::new();
    ALL.iter()
        .filter_map(|f| match f.build {
            Settings::Section(b) => b(cfg.families.get(f.name).unwrap_or(&empty)).ok()?,
            Settings::Config(b) => b(cfg),
        })
        .flat_map(|make| make(&paths))
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
            if let Settings::Section(b) = f.build {
                assert!(b(&Table::new()).is_ok(), "{}", f.name);
            }
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
