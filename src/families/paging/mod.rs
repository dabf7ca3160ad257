//! Swap and paging under the hostmetrics receiver's names:
//! `system.paging.usage` per swap area (`/proc/swaps`),
//! `system.paging.operations` and `system.paging.faults` (`/proc/vmstat`).
//!
//! The receiver's Linux scraper multiplies the vmstat counters by 4096
//! (its library treats them as pages and converts to bytes) although the
//! unit is `{operations}` / `{faults}`; here they are the kernel's counts
//! as read. `type=major` operations are pages swapped (`pswpin`,
//! `pswpout`), `type=minor` the block I/O of paging (`pgpgin`, `pgpgout`,
//! which the kernel counts in KiB); minor faults are `pgfault` minus
//! `pgmajfault`, as the receiver computes them.
//!
//! Section `[families.paging]`: `enabled` (default true).

mod parse;

use toml::Table;

pub use parse::{SwapArea, VmPaging, parse_swaps, parse_vmstat};

use super::{Builder, Family, OnOff, SectionError, Settings, section, when};
use crate::host::HostPaths;
use crate::point::Point;
use crate::semconv::{self, attr};
use crate::sources::snapshot::FamilySample;
use crate::sources::{Snapshot, Source, SourceError};

pub const FAMILY: Family = Family {
    name: "paging",
    build: Settings::Section(build),
};

fn build(t: &Table) -> Result<Option<Builder>, SectionError> {
    let cfg: OnOff = section(t)?;
    Ok(when(cfg.enabled, move |paths| {
        Box::new(PagingSource {
            paths: paths.clone(),
        })
    }))
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct PagingStats {
    /// `None` when `/proc/swaps` could not be read; empty with no swap.
    pub swaps: Option<Vec<SwapArea>>,
    pub vm: Option<VmPaging>,
}

struct PagingSource {
    paths: HostPaths,
}

impl Source for PagingSource {
    fn name(&self) -> &'static str {
        FAMILY.name
    }

    fn sample(&mut self, snap: &mut Snapshot) -> Result<(), SourceError> {
        // Each file stands alone: what one gives is kept when the other fails.
        let swaps = self
            .paths
            .read_proc("swaps")
            .map_err(SourceError::from)
            .and_then(|t| parse_swaps(&t).map_err(|e| e.in_file("/proc/swaps")));
        let vm = self
            .paths
            .read_proc("vmstat")
            .map_err(SourceError::from)
            .and_then(|t| parse_vmstat(&t).map_err(|e| e.in_file("/proc/vmstat")));
        let err = swaps.as_ref().err().or(vm.as_ref().err()).cloned();
        let stats = PagingStats {
            swaps: swaps.ok(),
            vm: vm.ok(),
        };
        if stats.swaps.is_some() || stats.vm.is_some() {
            snap.put(stats);
        }
        err.map_or(Ok(()), Err)
    }
}

const KIB: f64 = 1024.0;

impl FamilySample for PagingStats {
    fn points(&self, _snap: &Snapshot, out: &mut Vec<Point>) {
        for s in self.swaps.iter().flatten() {
            let free = s.size_kib.saturating_sub(s.used_kib);
            for (state, kib) in [("used", s.used_kib), ("free", free)] {
                out.push(
                    Point::new(&semconv::SYSTEM_PAGING_USAGE, kib as f64 * KIB)
                        .with(attr::DEVICE, s.name.as_str())
                        .with(attr::STATE, state),
                );
            }
        }
        let Some(v) = &self.vm else { return };
        for (dir, ty, n) in [
            ("page_in", "major", v.pswpin),
            ("page_out", "major", v.pswpout),
            ("page_in", "minor", v.pgpgin),
            ("page_out", "minor", v.pgpgout),
        ] {
            if let Some(n) = n {
                out.push(
                    Point::new(&semconv::SYSTEM_PAGING_OPERATIONS, n as f64)
                        .with(attr::DIRECTION, dir)
                        .with(attr::TYPE, ty),
                );
            }
        }
        if let Some(major) = v.pgmajfault {
            out.push(
                Point::new(&semconv::SYSTEM_PAGING_FAULTS, major as f64).with(attr::TYPE, "major"),
            );
            if let Some(all) = v.pgfault {
                out.push(
                    Point::new(
                        &semconv::SYSTEM_PAGING_FAULTS,
                        all.saturating_sub(major) as f64,
                    )
                    .with(attr::TYPE, "minor"),
                );
            }
        }
    }
}
