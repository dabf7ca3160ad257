//! Block device I/O from `/proc/diskstats` under the hostmetrics
//! receiver's names (`system.disk.*`): bytes, operations, merged
//! operations, time busy, time per direction, weighted time, queue.
//!
//! Section `[families.disk]`: `enabled` (default true),
//! `exclude_devices` (globs, default `loop*`, `ram*`: loop and RAM disks
//! mirror I/O that the real device also counts, or none at all).

mod parse;

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use toml::Table;

pub use parse::{DiskLine, parse_diskstats};

use super::{Builder, Family, SectionError, Settings, glob_match, section, when};
use crate::host::HostPaths;
use crate::point::Point;
use crate::semconv::{self, attr};
use crate::sources::energy::counter_delta;
use crate::sources::snapshot::FamilySample;
use crate::sources::{Snapshot, Source, SourceError};

pub const FAMILY: Family = Family {
    name: "disk",
    build: Settings::Section(build),
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiskConfig {
    pub enabled: bool,
    pub exclude_devices: Vec<String>,
}

impl Default for DiskConfig {
    fn default() -> Self {
        DiskConfig {
            enabled: true,
            exclude_devices: vec!["loop*".into(), "ram*".into()],
        }
    }
}

fn build(t: &Table) -> Result<Option<Builder>, SectionError> {
    let cfg: DiskConfig = section(t)?;
    if let Some(i) = cfg.exclude_devices.iter().position(|g| g.trim().is_empty()) {
        return Err(SectionError {
            key: format!("exclude_devices[{i}]"),
            reason: "an empty pattern matches no device".into(),
        });
    }
    Ok(when(cfg.enabled, move |paths| {
        Box::new(DiskSource {
            paths: paths.clone(),
            exclude: cfg.exclude_devices,
            wraps: HashMap::new(),
        })
    }))
}

/// One device, its time fields made monotonic across their 32-bit wrap.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DiskDevice {
    pub line: DiskLine,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct DiskStats {
    pub devices: Vec<DiskDevice>,
}

/// The kernel prints the millisecond fields as `%u`.
const MS_WRAP: u64 = u32::MAX as u64;

/// A 32-bit counter kept growing past its wrap: the first reading as
/// read (so values match the file until the first wrap), then deltas.
#[derive(Debug, Clone, Copy)]
struct Unwrapped {
    last: u64,
    total: u64,
}

impl Unwrapped {
    fn update(this: &mut Option<Unwrapped>, raw: u64) -> u64 {
        let u = this.get_or_insert(Unwrapped {
            last: raw,
            total: raw,
        });
        // A value above the 32-bit range is a kernel that prints 64 bits:
        // then going backwards is a reset (device re-added), adding nothing.
        if let Some(d) = counter_delta(u.last, raw, (raw <= MS_WRAP).then_some(MS_WRAP)) {
            u.total = u.total.saturating_add(d);
        }
        u.last = raw;
        u.total
    }
}

struct DiskSource {
    paths: HostPaths,
    exclude: Vec<String>,
    /// read, write, io, weighted ms per device name.
    wraps: HashMap<String, [Option<Unwrapped>; 4]>,
}

impl Source for DiskSource {
    fn name(&self) -> &'static str {
        FAMILY.name
    }

    fn sample(&mut self, snap: &mut Snapshot) -> Result<(), SourceError> {
        let text = self.paths.read_proc("diskstats")?;
        let lines = parse_diskstats(&text).map_err(|e| e.in_file("/proc/diskstats"))?;
        let mut seen = HashMap::with_capacity(self.wraps.len());
        let mut devices = Vec::with_capacity(lines.len());
        for mut line in lines {
            if self.exclude.iter().any(|g| glob_match(g, &line.name)) {
                continue;
            }
            let mut w = self.wraps.remove(&line.name).unwrap_or_default();
            line.read_ms = Unwrapped::update(&mut w[0], line.read_ms);
            line.write_ms = Unwrapped::update(&mut w[1], line.write_ms);
            line.io_ms = Unwrapped::update(&mut w[2], line.io_ms);
            line.weighted_ms = Unwrapped::update(&mut w[3], line.weighted_ms);
            seen.insert(line.name.clone(), w);
            devices.push(DiskDevice { line });
        }
        // A device that went away takes its state with it.
        self.wraps = seen;
        snap.put(DiskStats { devices });
        Ok(())
    }
}

/// Bytes per sector in `/proc/diskstats`, fixed by the kernel.
const SECTOR: f64 = 512.0;

impl FamilySample for DiskStats {
    fn points(&self, _snap: &Snapshot, out: &mut Vec<Point>) {
        for d in &self.devices {
            let l = &d.line;
            let per_dir =
                |m: &'static semconv::Metric, read: f64, write: f64, out: &mut Vec<Point>| {
                    for (dir, v) in [("read", read), ("write", write)] {
                        out.push(
                            Point::new(m, v)
                                .with(attr::DEVICE, l.name.as_str())
                                .with(attr::DIRECTION, dir),
                        );
                    }
                };
            per_dir(
                &semconv::SYSTEM_DISK_IO,
                l.sectors_read as f64 * SECTOR,
                l.sectors_written as f64 * SECTOR,
                out,
            );
            per_dir(
                &semconv::SYSTEM_DISK_OPERATIONS,
                l.reads as f64,
                l.writes as f64,
                out,
            );
            per_dir(
                &semconv::SYSTEM_DISK_MERGED,
                l.reads_merged as f64,
                l.writes_merged as f64,
                out,
            );
            per_dir(
                &semconv::SYSTEM_DISK_OPERATION_TIME,
                l.read_ms as f64 / 1e3,
                l.write_ms as f64 / 1e3,
                out,
            );
            for (m, v) in [
                (&semconv::SYSTEM_DISK_IO_TIME, l.io_ms as f64 / 1e3),
                (
                    &semconv::SYSTEM_DISK_WEIGHTED_IO_TIME,
                    l.weighted_ms as f64 / 1e3,
                ),
                (
                    &semconv::SYSTEM_DISK_PENDING_OPERATIONS,
                    l.in_progress as f64,
                ),
            ] {
                out.push(Point::new(m, v).with(attr::DEVICE, l.name.as_str()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_fields_follow_the_32_bit_wrap() {
        let mut u = None;
        assert_eq!(Unwrapped::update(&mut u, MS_WRAP - 10), MS_WRAP - 10);
        assert_eq!(Unwrapped::update(&mut u, 5), MS_WRAP - 10 + 15);
        assert_eq!(Unwrapped::update(&mut u, 7), MS_WRAP + 7);
    }

    #[test]
    fn a_64_bit_value_going_back_is_a_reset() {
        let mut u = None;
        let big = MS_WRAP + 100;
        assert_eq!(Unwrapped::update(&mut u, big), big);
        assert_eq!(Unwrapped::update(&mut u, 3), big);
        assert_eq!(Unwrapped::update(&mut u, 10), big + 7);
    }

    #[test]
    fn section_keys_are_checked() {
        let t: Table = toml::from_str("exclude_devices = ['loop*', '']").unwrap();
        let e = build(&t).err().unwrap();
        assert_eq!(e.key, "exclude_devices[1]");
        let t: Table = toml::from_str("exclude = []").unwrap();
        let e = build(&t).err().unwrap();
        assert!(e.reason.contains("unknown key"), "{e:?}");
        let t: Table = toml::from_str("enabled = false").unwrap();
        assert!(build(&t).unwrap().is_none());
    }
}
