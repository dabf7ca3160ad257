//! Pressure stall information (Documentation/accounting/psi.rst):
//! `/proc/pressure/{cpu,memory,io}`, each `some` and `full` lines with
//! `total=` the cumulative stall time in microseconds, reported as
//! `unamentis.server.pressure.stall_seconds{resource, stall}`.
//!
//! The hostmetrics receiver's PSI scraper is in development, in no
//! Collector distribution, and names one metric per file and line; no
//! semantic convention exists, so the name is the agent's own. The
//! system-wide `full` line of `cpu` is always zero (the kernel defines it
//! only for cgroups) and is left out. Kernels without PSI (no
//! CONFIG_PSI, or booted with `psi=0`: the files then fail with
//! EOPNOTSUPP) report the source unavailable and no point.
//!
//! Section `[families.pressure]`: `enabled` (default true).

use toml::Table;

use super::{Builder, Family, OnOff, SectionError, Settings, section, when};
use crate::host::HostPaths;
use crate::point::Point;
use crate::semconv::{self, attr};
use crate::sources::snapshot::FamilySample;
use crate::sources::{ParseError, Snapshot, Source, SourceError};

pub const FAMILY: Family = Family {
    name: "pressure",
    build: Settings::Section(build),
};

fn build(t: &Table) -> Result<Option<Builder>, SectionError> {
    let cfg: OnOff = section(t)?;
    Ok(when(cfg.enabled, move |paths| {
        Box::new(PressureSource {
            paths: paths.clone(),
            missing: false,
        })
    }))
}

/// The `total=` of a PSI file's `some` and `full` lines, in µs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub some_us: Option<u64>,
    pub full_us: Option<u64>,
}

pub fn parse_pressure(text: &str) -> Result<Totals, ParseError> {
    let mut t = Totals::default();
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let slot = match f.next() {
            Some("some") => &mut t.some_us,
            Some("full") => &mut t.full_us,
            _ => continue,
        };
        let total = f
            .find_map(|kv| kv.strip_prefix("total="))
            .ok_or_else(|| ParseError(format!("{line:?}: no total=")))?;
        *slot = Some(
            total
                .parse()
                .map_err(|_| ParseError(format!("total={total:?} is not microseconds")))?,
        );
    }
    if t.some_us.is_none() {
        return Err(ParseError("no `some` line".into()));
    }
    Ok(t)
}

pub const RESOURCES: [&str; 3] = ["cpu", "memory", "io"];

#[derive(Debug, Clone, Default, PartialEq)]
pub struct PressureStats {
    pub resources: Vec<(&'static str, Totals)>,
}

struct PressureSource {
    paths: HostPaths,
    /// The last sample found no PSI.
    missing: bool,
}

impl Source for PressureSource {
    fn name(&self) -> &'static str {
        FAMILY.name
    }

    fn sample(&mut self, snap: &mut Snapshot) -> Result<(), SourceError> {
        let mut stats = PressureStats::default();
        let mut err = None;
        for r in RESOURCES {
            let file = format!("pressure/{r}");
            match self.paths.read_proc(&file) {
                Ok(text) => match parse_pressure(&text) {
                    Ok(mut t) => {
                        if r == "cpu" {
                            t.full_us = None;
                        }
                        stats.resources.push((r, t));
                    }
                    Err(e) => err = Some(e.in_file(&format!("/proc/{file}"))),
                },
                Err(e) => {
                    // EOPNOTSUPP: PSI compiled in but off (`psi=0`).
                    let off = e.kind() == std::io::ErrorKind::Unsupported
                        || e.source.raw_os_error() == Some(95);
                    err = Some(if off {
                        SourceError::Unavailable(format!(
                            "{e} (pressure stall information is off: boot with psi=1)"
                        ))
                    } else {
                        e.into()
                    });
                }
            }
        }
        self.missing = matches!(err, Some(SourceError::Unavailable(_)));
        if !stats.resources.is_empty() {
            snap.put(stats);
        }
        err.map_or(Ok(()), Err)
    }

    fn hint(&self) -> Option<&'static str> {
        self.missing.then_some(
            "pressure stall information needs a kernel with CONFIG_PSI=y (4.20+), not booted with psi=0",
        )
    }
}

impl FamilySample for PressureStats {
    fn points(&self, _snap: &Snapshot, out: &mut Vec<Point>) {
        for (r, t) in &self.resources {
            for (stall, us) in [("some", t.some_us), ("full", t.full_us)] {
                if let Some(us) = us {
                    out.push(
                        Point::new(&semconv::PRESSURE_STALL_SECONDS, us as f64 / 1e6)
                            .with(attr::RESOURCE, *r)
                            .with(attr::STALL, stall),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn some_and_full_totals() {
        // Captured on a 6.1 kernel.
        let t = parse_pressure(
            "some avg10=7.29 avg60=2.47 avg300=3.61 total=3553753142\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
        )
        .unwrap();
        assert_eq!(
            t,
            Totals {
                some_us: Some(3553753142),
                full_us: Some(0)
            }
        );
        // Before 5.13 the cpu file has no full line.
        let t = parse_pressure("some avg10=0.00 avg60=0.00 avg300=0.00 total=12\n").unwrap();
        assert_eq!(t.full_us, None);
    }

    #[test]
    fn malformed() {
        assert!(parse_pressure("").is_err());
        assert!(parse_pressure("some avg10=0.00\n").is_err());
        assert!(parse_pressure("some total=x\n").is_err());
    }
}
