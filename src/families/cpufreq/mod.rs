//! Current CPU frequency per logical CPU, `system.cpu.frequency` (the
//! hostmetrics receiver's name, Hz): cpufreq's `scaling_cur_freq` (kHz,
//! Documentation/admin-guide/pm/cpufreq.rst) where a cpufreq driver is
//! loaded, else the `cpu MHz` lines of `/proc/cpuinfo` (x86; virtual
//! machines and hosts without a cpufreq driver). A CPU neither gives has
//! no point.
//!
//! Section `[families.cpufreq]`: `enabled` (default true).

use toml::Table;

use super::{Builder, Family, OnOff, SectionError, Settings, section, when};
use crate::host::HostPaths;
use crate::point::Point;
use crate::semconv::{self, attr};
use crate::sources::snapshot::FamilySample;
use crate::sources::{ParseError, Snapshot, Source, SourceError};

pub const FAMILY: Family = Family {
    name: "cpufreq",
    build: Settings::Section(build),
};

fn build(t: &Table) -> Result<Option<Builder>, SectionError> {
    let cfg: OnOff = section(t)?;
    Ok(when(cfg.enabled, move |paths| {
        Box::new(CpufreqSource {
            paths: paths.clone(),
        })
    }))
}

/// `(processor, MHz)` from the `processor` and `cpu MHz` lines of
/// `/proc/cpuinfo`; architectures that print no `cpu MHz` give none.
pub fn parse_cpuinfo_mhz(text: &str) -> Result<Vec<(u32, f64)>, ParseError> {
    let mut out = Vec::new();
    let mut cpu = None;
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        if k == "processor" {
            cpu = Some(
                v.parse::<u32>()
                    .map_err(|_| ParseError(format!("processor {v:?}")))?,
            );
        } else if k == "cpu MHz"
            && let Some(c) = cpu
        {
            let mhz: f64 = v
                .parse()
                .map_err(|_| ParseError(format!("cpu MHz {v:?} of processor {c}")))?;
            out.push((c, mhz));
        }
    }
    Ok(out)
}

/// `cpuN` directory names under `/sys/devices/system/cpu`.
fn cpu_number(name: &str) -> Option<u32> {
    name.strip_prefix("cpu")?.parse().ok()
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct CpufreqStats {
    /// `(cpu, Hz)`, by CPU number.
    pub cpus: Vec<(u32, f64)>,
}

struct CpufreqSource {
    paths: HostPaths,
}

impl CpufreqSource {
    fn read_sysfs(&self) -> Vec<(u32, f64)> {
        let dir = self.paths.sys_path("devices/system/cpu");
        let Ok(names) = crate::host::list_dir(&dir) else {
            return Vec::new();
        };
        let mut out: Vec<(u32, f64)> = names
            .iter()
            .filter_map(|name| {
                let n = cpu_number(name)?;
                let khz = self
                    .paths
                    .read_sys(format!(
                        "devices/system/cpu/cpu{n}/cpufreq/scaling_cur_freq"
                    ))
                    .ok()?;
                let khz: f64 = khz.trim().parse().ok()?;
                Some((n, khz * 1e3))
            })
            .collect();
        out.sort_by_key(|c| c.0);
        out
    }
}

impl Source for CpufreqSource {
    fn name(&self) -> &'static str {
        FAMILY.name
    }

    fn sample(&mut self, snap: &mut Snapshot) -> Result<(), SourceError> {
        let mut cpus = self.read_sysfs();
        if cpus.is_empty() {
            let text = self.paths.read_proc("cpuinfo")?;
            cpus = parse_cpuinfo_mhz(&text)
                .map_err(|e| e.in_file("/proc/cpuinfo"))?
                .into_iter()
                .map(|(c, mhz)| (c, mhz * 1e6))
                .collect();
        }
        if cpus.is_empty() {
            return Err(SourceError::Unavailable(
                "no cpufreq scaling_cur_freq and no `cpu MHz` in /proc/cpuinfo".into(),
            ));
        }
        snap.put(CpufreqStats { cpus });
        Ok(())
    }
}

impl FamilySample for CpufreqStats {
    fn points(&self, _snap: &Snapshot, out: &mut Vec<Point>) {
        for (cpu, hz) in &self.cpus {
            out.push(
                Point::new(&semconv::SYSTEM_CPU_FREQUENCY, *hz)
                    .with(attr::CPU, format!("cpu{cpu}").as_str()),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpuinfo_mhz_per_processor() {
        // Excerpt of an x86 capture: one block per logical CPU.
        let text = "processor\t: 0\nvendor_id\t: GenuineIntel\ncpu MHz\t\t: 2600.000\n\nprocessor\t: 1\ncpu MHz\t\t: 1199.874\n";
        assert_eq!(
            parse_cpuinfo_mhz(text).unwrap(),
            [(0, 2600.0), (1, 1199.874)]
        );
        // arm64 prints no MHz.
        assert!(
            parse_cpuinfo_mhz("processor\t: 0\nBogoMIPS\t: 48.00\n")
                .unwrap()
                .is_empty()
        );
        assert!(parse_cpuinfo_mhz("processor\t: 0\ncpu MHz\t: fast\n").is_err());
    }
}
