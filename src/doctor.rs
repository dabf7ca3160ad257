//! `unamentis-agent doctor`: builds every source the configuration asks
//! for, samples twice a short window apart (so sources that need two
//! readings, like RAPL watts, are exercised), and says for each source
//! whether it is available, why not, and how to fix it.

use std::time::Duration;

use crate::config::Config;
use crate::families::gpu::GpuStats;
use crate::families::services::ServicesSample;
use crate::pipeline::Pipeline;
use crate::snapshot::{Sampler, SourceStatus};
use crate::sources::SourceError;

#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub source: &'static str,
    /// `available`, `unavailable` (no hardware or permission) or `failed`.
    pub status: &'static str,
    pub reason: Option<String>,
    pub fix: Option<&'static str>,
}

impl Row {
    fn from_status(s: &SourceStatus) -> Row {
        let (status, reason) = match &s.error {
            None => ("available", None),
            Some(SourceError::Unavailable(why)) => ("unavailable", Some(why.clone())),
            Some(SourceError::Failed(why)) => ("failed", Some(why.clone())),
        };
        Row {
            source: s.name,
            status,
            reason,
            fix: s.hint,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The x86 CPU reports the `hypervisor` flag: a virtual machine, where
    /// power and thermal sensors are normally not exposed.
    pub virtual_machine: bool,
    pub rows: Vec<Row>,
    /// What this host's estimates rest on (per-service GPU power).
    pub notes: Vec<String>,
}

/// How `service.power_watts{domain=gpu}` is split on this host.
pub fn gpu_split_note(gpu: &crate::families::gpu::GpuStats) -> String {
    let how = match gpu.backend {
        "nvml" => {
            "by each process's share of SM utilization (NVML per-process samples), \
             else of the GPU memory it holds"
        }
        "nvidia-smi" => {
            "by each process's share of the GPU memory it holds (nvidia-smi reports no \
             per-process utilization; NVML would)"
        }
        "powermetrics-tasks" => "by each task's GPU time (powermetrics tasks sampler)",
        "powermetrics" => {
            "not split: powermetrics' tasks sampler did not run here, so all of it goes to \
             other"
        }
        _ => "not split: this backend lists no GPU processes, so all of it goes to other",
    };
    format!(
        "per-service GPU power ({} backend, {} GPU(s)): {how}",
        gpu.backend,
        gpu.devices.len()
    )
}

/// Whether `/proc/cpuinfo` carries the x86 `hypervisor` CPUID flag.
pub fn is_virtual(cpuinfo: &str) -> bool {
    cpuinfo.lines().any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.trim() == "flags" && v.split_ascii_whitespace().any(|f| f == "hypervisor")
        })
    })
}

/// Samples every source twice, `window` apart; one row per source.
pub fn check(cfg: &Config, window: Duration) -> Report {
    let mut sampler = Sampler::new(Pipeline::new(cfg).build());
    sampler.sample();
    std::thread::sleep(window);
    let snap = sampler.sample();
    let mut rows: Vec<Row> = snap.sources.iter().map(Row::from_status).collect();
    // The services source is up while a value of one service is absent:
    // say which and why (its hint says how to fix a denied read).
    let io_notes: Vec<String> = snap
        .get::<ServicesSample>()
        .into_iter()
        .flat_map(|s| &s.services)
        .filter_map(|s| {
            Some(format!(
                "disk I/O of {}: {}",
                s.name,
                s.disk_io_note.as_ref()?
            ))
        })
        .collect();
    if let Some(row) = rows
        .iter_mut()
        .find(|r| r.source == "services" && r.reason.is_none())
        && !io_notes.is_empty()
    {
        row.reason = Some(io_notes.join("; "));
    }
    let notes = snap
        .get::<GpuStats>()
        .filter(|g| g.backend != "ioreg")
        .map(gpu_split_note)
        .into_iter()
        .collect();
    let virtual_machine = cfg
        .host_paths()
        .read_proc("cpuinfo")
        .is_ok_and(|t| is_virtual(&t));
    Report {
        virtual_machine,
        rows,
        notes,
    }
}

pub fn table(report: &Report) -> String {
    let rows = &report.rows;
    let w = rows
        .iter()
        .map(|r| r.source.len())
        .max()
        .unwrap_or(0)
        .max(6);
    let mut out = String::new();
    if report.virtual_machine {
        out.push_str(
            "host: a virtual machine (the CPU reports the hypervisor flag): power and thermal \
             sensors are normally not exposed to guests.\n\n",
        );
    }
    out.push_str(&format!("{:<w$}  {:<11}  reason\n", "source", "status"));
    for r in rows {
        out.push_str(&format!(
            "{:<w$}  {:<11}  {}\n",
            r.source,
            r.status,
            r.reason.as_deref().unwrap_or("-")
        ));
        if let Some(fix) = r.fix {
            out.push_str(&format!("{:<w$}  {:<11}  fix: {fix}\n", "", ""));
        }
    }
    for n in &report.notes {
        out.push_str(&format!("\nestimate: {n}\n"));
    }
    let down = rows.iter().filter(|r| r.status != "available").count();
    out.push_str(&format!(
        "\n{} of {} sources available; a metric whose source is unavailable is absent, never 0.\n",
        rows.len() - down,
        rows.len()
    ));
    out
}

pub fn json(report: &Report) -> serde_json::Value {
    let sources: Vec<serde_json::Value> = report
        .rows
        .iter()
        .map(|r| {
            serde_json::json!({
                "source": r.source,
                "available": r.status == "available",
                "status": r.status,
                "reason": r.reason,
                "fix": r.fix,
            })
        })
        .collect();
    serde_json::json!({
        "virtual_machine": report.virtual_machine,
        "sources": sources,
        "estimates": report.notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(error: Option<SourceError>, hint: Option<&'static str>) -> SourceStatus {
        SourceStatus {
            name: "rapl",
            up: error.is_none(),
            duration: Duration::ZERO,
            error,
            hint,
        }
    }

    fn unavailable(why: &str) -> Option<SourceError> {
        Some(SourceError::Unavailable(why.into()))
    }

    #[test]
    fn rows_split_kind_and_reason() {
        let r = Row::from_status(&status(unavailable("no RAPL zones"), Some("load it")));
        assert_eq!(r.status, "unavailable");
        assert_eq!(r.reason.as_deref(), Some("no RAPL zones"));
        assert_eq!(r.fix, Some("load it"));
        let r = Row::from_status(&status(Some(SourceError::Failed("x: bad".into())), None));
        assert_eq!((r.status, r.reason.as_deref()), ("failed", Some("x: bad")));
        let r = Row::from_status(&status(None, None));
        assert_eq!((r.status, r.reason.as_deref()), ("available", None));
        let report = Report {
            virtual_machine: true,
            rows: vec![
                r,
                Row::from_status(&status(unavailable("no"), Some("do it"))),
            ],
            notes: vec!["per-service GPU power: x".into()],
        };
        let t = table(&report);
        assert!(
            t.contains("fix: do it") && t.contains("1 of 2 sources available"),
            "{t}"
        );
        assert!(t.starts_with("host: a virtual machine"), "{t}");
        assert!(t.contains("estimate: per-service GPU power: x"), "{t}");
        assert_eq!(json(&report)["estimates"][0], "per-service GPU power: x");
    }

    #[test]
    fn the_gpu_note_names_what_the_split_rests_on() {
        let mut g = crate::families::gpu::GpuStats {
            backend: "nvml",
            ..Default::default()
        };
        assert!(gpu_split_note(&g).contains("SM utilization"));
        g.backend = "nvidia-smi";
        assert!(gpu_split_note(&g).contains("memory it holds"));
        g.backend = "amdgpu";
        assert!(gpu_split_note(&g).contains("all of it goes to other"));
    }

    #[test]
    fn hypervisor_flag() {
        assert!(is_virtual(
            "processor\t: 0\nflags\t\t: fpu vme hypervisor lahf_lm\n"
        ));
        assert!(!is_virtual(
            "flags\t\t: fpu vme lahf_lm\nmodel name\t: hypervisor-x\n"
        ));
    }
}
