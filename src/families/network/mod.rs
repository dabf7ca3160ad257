//! Network interfaces from `/proc/net/dev` under the hostmetrics
//! receiver's names (`system.network.{io,packets,errors,dropped}`), and
//! with `connections = true` the host's TCP connections by state
//! (`system.network.connections`).
//!
//! Section `[families.network]`: `enabled` (default true),
//! `exclude_interfaces` (globs, default none: the receiver reports `lo`
//! too), `connections` (default false: counting states needs a dump of
//! every TCP socket each cycle, which on a busy host costs more than the
//! rest of the cycle together).

mod parse;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use toml::Table;

pub use parse::{Direction, Interface, parse_net_dev};

use super::{Builder, Family, SectionError, Settings, glob_match, section, when};
use crate::host::HostPaths;
use crate::point::Point;
use crate::semconv::{self, attr};
use crate::sources::snapshot::FamilySample;
use crate::sources::{Snapshot, Source, SourceError};

pub const FAMILY: Family = Family {
    name: "network",
    build: Settings::Section(build),
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkConfig {
    pub enabled: bool,
    pub exclude_interfaces: Vec<String>,
    pub connections: bool,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            enabled: true,
            exclude_interfaces: Vec::new(),
            connections: false,
        }
    }
}

fn build(t: &Table) -> Result<Option<Builder>, SectionError> {
    let cfg: NetworkConfig = section(t)?;
    if let Some(i) = cfg
        .exclude_interfaces
        .iter()
        .position(|g| g.trim().is_empty())
    {
        return Err(SectionError {
            key: format!("exclude_interfaces[{i}]"),
            reason: "an empty pattern matches no interface".into(),
        });
    }
    Ok(when(cfg.enabled, move |paths| {
        Box::new(NetworkSource {
            paths: paths.clone(),
            live: crate::sources::net_tcp::is_live(paths),
            cfg,
        })
    }))
}

/// TCP states by `st` value (include/net/tcp_states.h), named as the
/// receiver names them (gopsutil's upper-case names).
#[cfg(target_os = "linux")]
const TCP_STATES: [(u8, &str); 11] = [
    (1, "ESTABLISHED"),
    (2, "SYN_SENT"),
    (3, "SYN_RECV"),
    (4, "FIN_WAIT1"),
    (5, "FIN_WAIT2"),
    (6, "TIME_WAIT"),
    (7, "CLOSE"),
    (8, "CLOSE_WAIT"),
    (9, "LAST_ACK"),
    (10, "LISTEN"),
    (11, "CLOSING"),
];

#[derive(Debug, Clone, Default, PartialEq)]
pub struct NetworkStats {
    pub interfaces: Vec<Interface>,
    /// TCP connections by state name; `None` when not asked for.
    pub tcp_states: Option<BTreeMap<&'static str, u64>>,
}

struct NetworkSource {
    paths: HostPaths,
    /// [`crate::sources::net_tcp::is_live`]
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    live: bool,
    cfg: NetworkConfig,
}

impl Source for NetworkSource {
    fn name(&self) -> &'static str {
        FAMILY.name
    }

    fn sample(&mut self, snap: &mut Snapshot) -> Result<(), SourceError> {
        let text = self.paths.read_proc("net/dev")?;
        let mut interfaces = parse_net_dev(&text).map_err(|e| e.in_file("/proc/net/dev"))?;
        interfaces.retain(|i| {
            !self
                .cfg
                .exclude_interfaces
                .iter()
                .any(|g| glob_match(g, &i.name))
        });
        let tcp_states = self.cfg.connections.then(|| self.tcp_states());
        snap.put(NetworkStats {
            interfaces,
            tcp_states,
        });
        Ok(())
    }
}

impl NetworkSource {
    #[cfg(target_os = "linux")]
    fn tcp_states(&self) -> BTreeMap<&'static str, u64> {
        // Every state: the receiver reports each, zero included.
        let mut counts: BTreeMap<&'static str, u64> =
            TCP_STATES.iter().map(|(_, n)| (*n, 0)).collect();
        for s in crate::sources::net_tcp::tcp_sockets(&self.paths, self.live, u32::MAX) {
            if let Some((_, name)) = TCP_STATES.iter().find(|(v, _)| *v == s.state) {
                *counts.entry(name).or_default() += 1;
            }
        }
        counts
    }

    #[cfg(not(target_os = "linux"))]
    fn tcp_states(&self) -> BTreeMap<&'static str, u64> {
        BTreeMap::new()
    }
}

impl FamilySample for NetworkStats {
    fn points(&self, _snap: &Snapshot, out: &mut Vec<Point>) {
        for i in &self.interfaces {
            for (dir, d) in [("receive", &i.receive), ("transmit", &i.transmit)] {
                for (m, v) in [
                    (&semconv::SYSTEM_NETWORK_IO, d.bytes),
                    (&semconv::SYSTEM_NETWORK_PACKETS, d.packets),
                    (&semconv::SYSTEM_NETWORK_ERRORS, d.errors),
                    (&semconv::SYSTEM_NETWORK_DROPPED, d.dropped),
                ] {
                    out.push(
                        Point::new(m, v as f64)
                            .with(attr::DEVICE, i.name.as_str())
                            .with(attr::DIRECTION, dir),
                    );
                }
            }
        }
        for (state, n) in self.tcp_states.iter().flatten() {
            out.push(
                Point::new(&semconv::SYSTEM_NETWORK_CONNECTIONS, *n as f64)
                    .with(attr::PROTOCOL, "tcp")
                    .with(attr::STATE, *state),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn section_defaults_and_checks() {
        let on = build(&Table::new()).unwrap();
        assert_eq!(on.is_some(), super::super::READERS_HERE);
        let t: Table = toml::from_str("enabled = false").unwrap();
        assert!(build(&t).unwrap().is_none());
        let t: Table = toml::from_str("exclude_interfaces = ['']").unwrap();
        assert_eq!(build(&t).err().unwrap().key, "exclude_interfaces[0]");
        let t: Table = toml::from_str("connection = true").unwrap();
        assert!(build(&t).err().unwrap().reason.contains("unknown key"));
    }
}
