//! Process counts from `/proc/stat` (proc_stat(5)) under the hostmetrics
//! receiver's names: `system.processes.created` (`processes`, forks
//! since boot) and `system.processes.count` for `status` = `running`
//! (`procs_running`) and `blocked` (`procs_blocked`, waiting for I/O).
//!
//! The receiver also counts sleeping, stopped, zombie… processes by
//! reading every `/proc/<pid>/stat`; that walk costs more than the rest of
//! the cycle on a host with thousands of processes, so only the two
//! states the kernel counts itself are reported. Both are counts of
//! runnable / blocked tasks (threads), as the kernel keeps them.
//!
//! Section `[families.processes]`: `enabled` (default true).

use toml::Table;

use super::{Builder, Family, OnOff, SectionError, Settings, section, when};
use crate::host::HostPaths;
use crate::point::Point;
use crate::semconv::{self, attr};
use crate::sources::snapshot::FamilySample;
use crate::sources::{ParseError, Snapshot, Source, SourceError};

pub const FAMILY: Family = Family {
    name: "processes",
    build: Settings::Section(build),
};

fn build(t: &Table) -> Result<Option<Builder>, SectionError> {
    let cfg: OnOff = section(t)?;
    Ok(when(cfg.enabled, move |paths| {
        Box::new(ProcessesSource {
            paths: paths.clone(),
        })
    }))
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcessesStats {
    pub created: u64,
    pub running: u64,
    pub blocked: u64,
}

pub fn parse_stat_processes(text: &str) -> Result<ProcessesStats, ParseError> {
    let (mut created, mut running, mut blocked) = (None, None, None);
    for line in text.lines() {
        let Some((k, v)) = line.split_once(' ') else {
            continue;
        };
        let slot = match k {
            "processes" => &mut created,
            "procs_running" => &mut running,
            "procs_blocked" => &mut blocked,
            _ => continue,
        };
        *slot = Some(
            v.trim()
                .parse::<u64>()
                .map_err(|_| ParseError(format!("{k}: {v:?} is not a count")))?,
        );
    }
    match (created, running, blocked) {
        (Some(created), Some(running), Some(blocked)) => Ok(ProcessesStats {
            created,
            running,
            blocked,
        }),
        _ => Err(ParseError(
            "no processes, procs_running and procs_blocked lines".into(),
        )),
    }
}

struct ProcessesSource {
    paths: HostPaths,
}

impl Source for ProcessesSource {
    fn name(&self) -> &'static str {
        FAMILY.name
    }

    fn sample(&mut self, snap: &mut Snapshot) -> Result<(), SourceError> {
        let text = self.paths.read_proc("stat")?;
        let s = parse_stat_processes(&text).map_err(|e| e.in_file("/proc/stat"))?;
        snap.put(s);
        Ok(())
    }
}

impl FamilySample for ProcessesStats {
    fn points(&self, _snap: &Snapshot, out: &mut Vec<Point>) {
        out.push(Point::new(
            &semconv::SYSTEM_PROCESSES_CREATED,
            self.created as f64,
        ));
        for (status, n) in [("running", self.running), ("blocked", self.blocked)] {
            out.push(
                Point::new(&semconv::SYSTEM_PROCESSES_COUNT, n as f64).with(attr::STATUS, status),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_from_proc_stat() {
        let text = "cpu  1 2 3 4 5 6 7 8 9 10\nctxt 123\nbtime 1700000000\nprocesses 469775\nprocs_running 3\nprocs_blocked 1\n";
        assert_eq!(
            parse_stat_processes(text).unwrap(),
            ProcessesStats {
                created: 469775,
                running: 3,
                blocked: 1
            }
        );
        assert!(parse_stat_processes("cpu 1 2\n").is_err());
        assert!(parse_stat_processes("processes x\nprocs_running 1\nprocs_blocked 0\n").is_err());
    }
}
