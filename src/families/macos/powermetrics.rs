//! `powermetrics -f plist` output: the NUL-separated stream of XML property
//! lists, one per sample interval, and what one document says about power,
//! energy, temperatures, fans and thermal pressure.
//!
//! Platform-independent (tested on Linux); the child process that produces
//! the stream lives in `child.rs`. Format: docs/FORMATS.md, macOS
//! powermetrics (keys as asitop, green-metrics-tool and the
//! osquery-extension fixture show them).
//!
//! Units: Apple Silicon `processor.*_power` are mW averaged over the sample,
//! `*_energy` are mJ over the sample; Intel Macs give `package_watts` (W) and
//! `package_joules` (J over the sample). `elapsed_ns` is the real interval.

use std::time::{Duration, Instant};

use crate::sources::ParseError;

/// A stream that never terminates a document is dropped after this much.
const MAX_DOCUMENT: usize = 8 << 20;

/// Reassembles documents from arbitrary reads of the stream.
#[derive(Debug, Default)]
pub struct PlistStream {
    buf: Vec<u8>,
    /// Documents dropped because they grew past [`MAX_DOCUMENT`].
    pub oversized: u64,
}

impl PlistStream {
    /// Feeds bytes read from the pipe; returns every document completed by
    /// them, in order. A document is complete at its NUL separator, or as
    /// soon as it ends with `</plist>` (powermetrics writes the NUL before
    /// the *next* document, which would delay each sample by one interval).
    /// Empty and whitespace-only chunks are skipped; anything else is
    /// returned and left to the plist parser to accept or reject.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for part in bytes.split_inclusive(|&b| b == 0) {
            let (data, terminated) = match part.split_last() {
                Some((0, data)) => (data, true),
                _ => (part, false),
            };
            self.buf.extend_from_slice(data);
            if terminated {
                self.take_into(&mut out);
            }
        }
        if self.buf.trim_ascii().ends_with(b"</plist>") {
            self.take_into(&mut out);
        }
        // The newline after `</plist>` may come in a read of its own: kept,
        // it would count as pending data and put whitespace before the next
        // document's XML declaration.
        if self.buf.iter().all(u8::is_ascii_whitespace) {
            self.buf.clear();
        }
        if self.buf.len() > MAX_DOCUMENT {
            self.buf = Vec::new();
            self.oversized += 1;
        }
        out
    }

    fn take_into(&mut self, out: &mut Vec<Vec<u8>>) {
        let doc = std::mem::take(&mut self.buf);
        if !doc.trim_ascii().is_empty() {
            out.push(doc);
        }
    }

    /// Bytes of an unfinished document held back.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

/// Power and energy of one domain over one sample.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DomainReading {
    /// Average power over the sample, W.
    pub watts: Option<f64>,
    /// Energy used during the sample, J.
    pub joules: Option<f64>,
}

/// What one powermetrics document says. Every value is optional: samplers,
/// platforms and macOS versions differ in what they print.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PowermetricsSample {
    /// The real sample interval (`elapsed_ns`).
    pub elapsed: Option<Duration>,
    pub cpu: DomainReading,
    pub gpu: DomainReading,
    pub ane: DomainReading,
    pub dram: DomainReading,
    pub package: DomainReading,
    /// True when the GPU figures are the Apple Silicon GPU's own
    /// (`gpu_power`/`gpu_energy`), i.e. per device.
    pub apple_gpu: bool,
    /// GPU busy share, (1 − `gpu.idle_ratio`) × 100.
    pub gpu_busy_percent: Option<f64>,
    /// Intel Macs only (`smc.cpu_die`), °C.
    pub cpu_die_celsius: Option<f64>,
    /// Intel Macs only (`smc.fan`), RPM.
    pub fan_rpm: Option<f64>,
    /// `thermal_pressure` on the registry's 0–3 scale.
    pub pressure: Option<u8>,
    /// Per-task GPU time, (pid, ms of GPU per s), from the `tasks` sampler
    /// run with `--show-process-gpu`; `None` when the document has no task
    /// with a GPU figure (the sampler was not run).
    pub gpu_tasks: Option<Vec<(u32, f64)>>,
}

/// The `tasks` array's GPU time per pid (`gputime_ms_per_s`). Tasks
/// without the key, or with a pid or value that is not a number, are
/// skipped; `None` when no task has it.
fn gpu_tasks(root: &Dict) -> Option<Vec<(u32, f64)>> {
    let tasks = root.get("tasks")?.as_array()?;
    let mut out = Vec::new();
    let mut any = false;
    for t in tasks.iter().filter_map(plist::Value::as_dictionary) {
        let Some(ms) = nonneg(t, "gputime_ms_per_s") else {
            continue;
        };
        any = true;
        let Some(pid) = number(t, "pid").filter(|p| *p >= 0.0 && *p <= f64::from(u32::MAX)) else {
            continue;
        };
        out.push((pid as u32, ms));
    }
    any.then_some(out)
}

/// The registry's thermal.pressure mapping of the OSThermalPressureLevel
/// names (libkern/OSThermalNotification.h): Nominal 0, Moderate 1, Heavy 2,
/// Trapping and Sleeping 3 (conventional mapping onto NSProcessInfo's
/// nominal/fair/serious/critical by convention: Apple documents none).
/// Unknown names: absent.
pub fn pressure_level(name: &str) -> Option<u8> {
    match name.trim() {
        "Nominal" => Some(0),
        "Moderate" => Some(1),
        "Heavy" => Some(2),
        "Trapping" | "Sleeping" => Some(3),
        _ => None,
    }
}

/// The same mapping for the numeric OSThermalPressureLevel that
/// `notify_get_state("com.apple.system.thermalpressurelevel")` returns
/// without root on macOS (0–4; iOS's 10–50 scale is not used on macOS).
pub fn pressure_from_os_level(level: u64) -> Option<u8> {
    match level {
        0..=3 => Some(level as u8),
        4 => Some(3),
        _ => None,
    }
}

type Dict = plist::Dictionary;

fn number(d: &Dict, key: &str) -> Option<f64> {
    let v = d.get(key)?;
    let x = v
        .as_real()
        .or_else(|| v.as_signed_integer().map(|i| i as f64))
        .or_else(|| v.as_unsigned_integer().map(|u| u as f64))?;
    x.is_finite().then_some(x)
}

/// A power or energy figure: finite and not negative.
fn nonneg(d: &Dict, key: &str) -> Option<f64> {
    number(d, key).filter(|x| *x >= 0.0)
}

/// Watts and joules of a domain from an energy figure (J over the sample)
/// and/or a power figure (W). Energy wins when both are there: watts are
/// then exactly joules / elapsed, so the counter and the gauge agree.
fn domain(energy_j: Option<f64>, power_w: Option<f64>, elapsed: Option<f64>) -> DomainReading {
    match (energy_j, power_w, elapsed) {
        (Some(j), _, Some(s)) => DomainReading {
            watts: Some(j / s),
            joules: Some(j),
        },
        (Some(j), w, None) => DomainReading {
            watts: w,
            joules: Some(j),
        },
        (None, Some(w), s) => DomainReading {
            watts: Some(w),
            joules: s.map(|s| w * s),
        },
        (None, None, _) => DomainReading::default(),
    }
}

/// Parses one document of the stream.
pub fn parse_document(doc: &[u8]) -> Result<PowermetricsSample, ParseError> {
    let value = plist::Value::from_reader_xml(doc)
        .map_err(|e| ParseError(format!("powermetrics plist: {e}")))?;
    let root = value
        .as_dictionary()
        .ok_or_else(|| ParseError("powermetrics plist: top level is not a dict".into()))?;
    let empty = Dict::new();
    let processor = root
        .get("processor")
        .and_then(plist::Value::as_dictionary)
        .unwrap_or(&empty);
    let gpu = root
        .get("gpu")
        .and_then(plist::Value::as_dictionary)
        .unwrap_or(&empty);
    let smc = root
        .get("smc")
        .and_then(plist::Value::as_dictionary)
        .unwrap_or(&empty);

    let elapsed = number(root, "elapsed_ns")
        .filter(|ns| *ns > 0.0)
        .map(|ns| Duration::from_nanos(ns as u64));
    let secs = elapsed.map(|d| d.as_secs_f64()).filter(|s| *s > 0.0);
    let mj = |d: &Dict, k: &str| nonneg(d, k).map(|v| v / 1000.0);

    let cpu = domain(
        mj(processor, "cpu_energy"),
        mj(processor, "cpu_power"),
        secs,
    );
    // gpu_energy sits in `processor` on some macOS versions and in the
    // gpu_power sampler's `gpu` dict on others.
    let gpu_energy = mj(processor, "gpu_energy").or_else(|| mj(gpu, "gpu_energy"));
    let gpu_power = mj(processor, "gpu_power").or_else(|| mj(gpu, "gpu_power"));
    let apple_gpu = gpu_energy.is_some() || gpu_power.is_some();
    let gpu_reading = domain(gpu_energy, gpu_power, secs);
    let ane = domain(
        mj(processor, "ane_energy"),
        mj(processor, "ane_power"),
        secs,
    );
    let dram = domain(
        mj(processor, "dram_energy"),
        mj(processor, "dram_power"),
        secs,
    );

    // Package: Apple Silicon combined_power (CPU + GPU + ANE, mW) or the
    // early-macOS-12 package_energy (mJ); Intel package_joules (J) /
    // package_watts (W); else the sum of the parts combined_power is.
    let mut package = domain(
        mj(processor, "package_energy").or_else(|| nonneg(processor, "package_joules")),
        mj(processor, "combined_power").or_else(|| nonneg(processor, "package_watts")),
        secs,
    );
    if package.watts.is_none() && package.joules.is_none() && cpu.watts.is_some() {
        let sum = |f: fn(&DomainReading) -> Option<f64>| {
            let parts = [&cpu, &gpu_reading, &ane];
            parts.iter().try_fold(0.0, |acc, d| {
                // A part that is not measured at all counts as 0 only when
                // its sampler is absent; one with only watts keeps joules
                // unknown.
                match (f(d), d.watts.is_none() && d.joules.is_none()) {
                    (Some(v), _) => Some(acc + v),
                    (None, true) => Some(acc),
                    (None, false) => None,
                }
            })
        };
        package = DomainReading {
            watts: sum(|d| d.watts),
            joules: sum(|d| d.joules),
        };
    }

    let gpu_busy_percent = number(gpu, "idle_ratio")
        .filter(|r| (0.0..=1.0).contains(r))
        .map(|r| (1.0 - r) * 100.0);
    // A die sensor outside this range is a bogus SMC read, not a reading.
    let cpu_die_celsius = number(smc, "cpu_die").filter(|t| (-40.0..=150.0).contains(t));
    let fan_rpm = nonneg(smc, "fan");
    let pressure = root
        .get("thermal_pressure")
        .and_then(plist::Value::as_string)
        .and_then(pressure_level);

    Ok(PowermetricsSample {
        elapsed,
        cpu,
        gpu: gpu_reading,
        ane,
        dram,
        package,
        apple_gpu,
        gpu_busy_percent,
        cpu_die_celsius,
        fan_rpm,
        pressure,
        gpu_tasks: gpu_tasks(root),
    })
}

/// Energy domains accumulated into `energy.joules{domain}`.
pub const ENERGY_DOMAINS: [&str; 4] = ["cpu", "gpu", "package", "dram"];

/// Cumulative joules per domain since the agent started. Only ever adds
/// non-negative finite amounts, so the counters never go backwards; a
/// domain appears once it has been measured and stays.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EnergyTotals {
    totals: Vec<(&'static str, f64)>,
}

impl EnergyTotals {
    pub fn add(&mut self, domain: &'static str, joules: f64) {
        if !joules.is_finite() || joules < 0.0 {
            return;
        }
        match self.totals.iter_mut().find(|(d, _)| *d == domain) {
            Some((_, t)) => *t += joules,
            None => self.totals.push((domain, joules)),
        }
    }

    pub fn get(&self, domain: &str) -> Option<f64> {
        self.totals
            .iter()
            .find(|(d, _)| *d == domain)
            .map(|(_, t)| *t)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&'static str, f64)> + '_ {
        self.totals.iter().copied()
    }
}

/// What the reader thread shares with the source: the latest sample and
/// the energy of every sample seen, so no interval is lost between two
/// collection cycles or across child restarts.
#[derive(Debug, Default)]
pub struct PowermetricsState {
    pub latest: Option<PowermetricsSample>,
    /// When `latest` arrived, to tell a live child from a dead one.
    pub latest_at: Option<Instant>,
    /// Counts of documents parsed, for freshness checks by the source.
    pub documents: u64,
    pub bad_documents: u64,
    pub energy: EnergyTotals,
    /// Why the child is not delivering (exit status, parse error), cleared
    /// by the next good document.
    pub last_error: Option<String>,
}

impl PowermetricsState {
    /// Takes one document of the stream.
    pub fn ingest(&mut self, doc: &[u8]) {
        match parse_document(doc) {
            Ok(sample) => {
                for (name, d) in ENERGY_DOMAINS.iter().zip([
                    &sample.cpu,
                    &sample.gpu,
                    &sample.package,
                    &sample.dram,
                ]) {
                    if let Some(j) = d.joules {
                        self.energy.add(name, j);
                    }
                }
                self.latest = Some(sample);
                self.latest_at = Some(Instant::now());
                self.documents += 1;
                self.last_error = None;
            }
            Err(e) => {
                self.bad_documents += 1;
                self.last_error = Some(e.0);
            }
        }
    }
}

/// Restart delays for a child that keeps dying: `initial`, doubling up to
/// `max`; back to `initial` after a run that stayed up `stable` long.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    stable: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration, stable: Duration) -> Self {
        Backoff {
            initial,
            max,
            stable,
            next: initial,
        }
    }

    /// The delay before the next start, after a run that lasted `ran`.
    pub fn after_exit(&mut self, ran: Duration) -> Duration {
        if ran >= self.stable {
            self.next = self.initial;
        }
        let delay = self.next;
        self.next = self.next.saturating_mul(2).min(self.max);
        delay
    }
}

/// Sampler lists to try, most complete first. An unknown sampler name makes
/// powermetrics abort: `smc` exists only on Intel Macs,
/// `ane_power` only on Apple Silicon with a recent macOS. The first set adds
/// `tasks` (run with `--show-process-gpu`, see [`sampler_args`]) for the
/// per-task GPU time that divides the Apple GPU's power among services.
pub const SAMPLER_SETS: [&str; 5] = [
    "tasks,cpu_power,gpu_power,ane_power,thermal",
    "cpu_power,gpu_power,ane_power,thermal,smc",
    "cpu_power,gpu_power,ane_power,thermal",
    "cpu_power,gpu_power,thermal,smc",
    "cpu_power,gpu_power,thermal",
];

/// powermetrics' arguments for a sampler set, one sample every `ms`.
pub fn sampler_args(samplers: &str, ms: &str) -> Vec<String> {
    let mut args: Vec<String> = ["--samplers", samplers, "-i", ms, "-f", "plist"]
        .into_iter()
        .map(str::to_owned)
        .collect();
    if samplers.split(',').any(|s| s == "tasks") {
        args.push("--show-process-gpu".into());
    }
    args
}

/// Which sampler set to run: moves to the next set when a child exits
/// before delivering a single document, stays once one delivered.
#[derive(Debug, Clone, Default)]
pub struct SamplerPlan {
    index: usize,
    settled: bool,
}

impl SamplerPlan {
    pub fn current(&self) -> &'static str {
        SAMPLER_SETS[self.index]
    }

    /// Records how a run ended: `documents` parsed during it.
    pub fn run_ended(&mut self, documents: u64) {
        if documents > 0 {
            self.settled = true;
        } else if !self.settled {
            // The last set is kept: beyond it the cause is not the samplers.
            self.index = (self.index + 1).min(SAMPLER_SETS.len() - 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const APPLE: &[u8] =
        include_bytes!("../../../tests/fixtures/macos/powermetrics-apple-m2.plist");
    const APPLE_ENERGY: &[u8] =
        include_bytes!("../../../tests/fixtures/macos/powermetrics-apple-energy.plist");
    const INTEL: &[u8] = include_bytes!("../../../tests/fixtures/macos/powermetrics-intel.plist");
    const OSQUERY: &[u8] =
        include_bytes!("../../../tests/fixtures/macos/powermetrics-osquery-trimmed.plist");

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-9 * b.abs().max(1.0))
    }

    #[test]
    fn apple_silicon_power_keys_are_milliwatts_energy_keys_millijoules() {
        let s = parse_document(APPLE).unwrap();
        // elapsed_ns 1023685416; cpu_energy 10160 mJ, cpu_power 9924.35 mW.
        assert_eq!(s.elapsed, Some(Duration::from_nanos(1_023_685_416)));
        let secs = 1.023685416;
        assert!(close(s.cpu.joules, 10.160), "{s:?}");
        assert!(close(s.cpu.watts, 10.160 / secs), "{s:?}");
        // gpu_energy 284 mJ in the gpu dict.
        assert!(close(s.gpu.joules, 0.284), "{s:?}");
        assert!(close(s.gpu.watts, 0.284 / secs), "{s:?}");
        assert!(s.apple_gpu);
        assert!(close(s.ane.joules, 0.0));
        // combined_power 10193.95 mW, no package energy: joules = W × s.
        assert!(close(s.package.watts, 10.19395), "{s:?}");
        assert!(close(s.package.joules, 10.19395 * secs), "{s:?}");
        assert_eq!(s.dram, DomainReading::default());
        // gpu idle_ratio 0.901357.
        assert!(close(s.gpu_busy_percent, (1.0 - 0.901357) * 100.0));
        assert_eq!(s.pressure, Some(2)); // Heavy
        assert_eq!(s.cpu_die_celsius, None);
        assert_eq!(s.fan_rpm, None);
    }

    #[test]
    fn early_macos12_energy_only_document_with_dram_and_package() {
        let s = parse_document(APPLE_ENERGY).unwrap();
        // elapsed_ns 2000000000; cpu 7200, gpu 300, ane 40, dram 500,
        // package 8000 mJ; no *_power keys at all.
        assert!(close(s.cpu.watts, 3.6));
        assert!(close(s.gpu.watts, 0.15));
        assert!(close(s.ane.watts, 0.02));
        assert!(close(s.dram.watts, 0.25));
        assert!(close(s.dram.joules, 0.5));
        assert!(close(s.package.watts, 4.0));
        assert!(close(s.package.joules, 8.0));
        assert_eq!(s.pressure, Some(0)); // Nominal
    }

    #[test]
    fn trimmed_osquery_sample_sums_nothing_it_does_not_have() {
        let s = parse_document(OSQUERY).unwrap();
        let secs = 3.01730475;
        assert!(close(s.cpu.watts, 9.92435));
        assert!(close(s.cpu.joules, 9.92435 * secs));
        assert!(close(s.gpu.watts, 0.169958));
        assert!(close(s.ane.watts, 0.0));
        assert!(close(s.package.watts, 10.0943));
        assert_eq!(s.pressure, None); // no thermal sampler in that capture
    }

    #[test]
    fn intel_mac_package_watts_joules_die_temperature_and_fan() {
        let s = parse_document(INTEL).unwrap();
        // package_joules 9.36 J over elapsed_ns 5004000000; package_watts 1.87.
        assert!(close(s.package.joules, 9.36));
        assert!(close(s.package.watts, 9.36 / 5.004));
        assert_eq!(s.cpu, DomainReading::default());
        assert!(!s.apple_gpu);
        assert_eq!(s.cpu_die_celsius, Some(52.81));
        assert_eq!(s.fan_rpm, Some(1299.69));
        assert_eq!(s.pressure, Some(1)); // Moderate
    }

    #[test]
    fn parts_are_summed_when_no_package_figure_is_printed() {
        let doc = br#"<?xml version="1.0" encoding="UTF-8"?>
<plist version="1.0"><dict>
<key>elapsed_ns</key><integer>500000000</integer>
<key>processor</key><dict>
<key>cpu_power</key><real>1500</real>
<key>gpu_power</key><integer>500</integer>
</dict></dict></plist>"#;
        let s = parse_document(doc).unwrap();
        assert!(close(s.package.watts, 2.0));
        assert!(close(s.package.joules, 1.0));
    }

    #[test]
    fn pressure_names_map_to_the_registry_scale() {
        for (name, level) in [
            ("Nominal", Some(0)),
            ("Moderate", Some(1)),
            ("Heavy", Some(2)),
            ("Trapping", Some(3)),
            ("Sleeping", Some(3)),
            ("Critical", None),
            ("", None),
        ] {
            assert_eq!(pressure_level(name), level, "{name}");
        }
        assert_eq!(
            (0..=5).map(pressure_from_os_level).collect::<Vec<_>>(),
            vec![Some(0), Some(1), Some(2), Some(3), Some(3), None]
        );
        assert_eq!(pressure_from_os_level(10), None);
    }

    #[test]
    fn negative_and_garbage_values_are_absent() {
        let doc = br#"<plist version="1.0"><dict>
<key>elapsed_ns</key><integer>0</integer>
<key>thermal_pressure</key><string>Critical</string>
<key>processor</key><dict><key>cpu_power</key><real>-5</real>
<key>gpu_power</key><string>lots</string></dict>
<key>smc</key><dict><key>cpu_die</key><real>-273</real></dict>
</dict></plist>"#;
        let s = parse_document(doc).unwrap();
        assert_eq!(s, PowermetricsSample::default());
    }

    /// The shape `powermetrics --samplers tasks,gpu_power --show-process-gpu
    /// -f plist` prints: one dict per task with its pid and, with the flag,
    /// `gputime_ms_per_s` (kernel_task and idle tasks carry 0).
    const TASKS: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0"><dict>
<key>elapsed_ns</key><integer>5002131000</integer>
<key>tasks</key><array>
<dict><key>pid</key><integer>412</integer><key>name</key><string>ollama</string><key>cputime_ms_per_s</key><real>12.5</real><key>gputime_ms_per_s</key><real>600.0</real></dict>
<dict><key>pid</key><integer>977</integer><key>name</key><string>python3.11</string><key>gputime_ms_per_s</key><real>200.0</real></dict>
<dict><key>pid</key><integer>0</integer><key>name</key><string>kernel_task</string><key>gputime_ms_per_s</key><real>0</real></dict>
<dict><key>pid</key><integer>501</integer><key>name</key><string>no-gpu-key</string></dict>
<dict><key>pid</key><string>x</string><key>gputime_ms_per_s</key><real>9</real></dict>
</array>
<key>gpu</key><dict><key>gpu_power</key><real>4000</real><key>idle_ratio</key><real>0.2</real></dict>
</dict></plist>"#;

    #[test]
    fn tasks_give_each_pids_gpu_time() {
        let s = parse_document(TASKS.as_bytes()).unwrap();
        assert_eq!(
            s.gpu_tasks,
            Some(vec![(412, 600.0), (977, 200.0), (0, 0.0)])
        );
        assert!(s.apple_gpu);
        assert_eq!(s.gpu.watts, Some(4.0));
        // Without the tasks sampler (or without --show-process-gpu): none.
        assert_eq!(parse_document(APPLE).unwrap().gpu_tasks, None);
        let no_flag = TASKS.replace("gputime_ms_per_s", "cputime_ms_per_s");
        assert_eq!(parse_document(no_flag.as_bytes()).unwrap().gpu_tasks, None);
    }

    #[test]
    fn the_tasks_set_asks_for_per_process_gpu_time() {
        assert_eq!(
            sampler_args(SAMPLER_SETS[0], "5000"),
            [
                "--samplers",
                "tasks,cpu_power,gpu_power,ane_power,thermal",
                "-i",
                "5000",
                "-f",
                "plist",
                "--show-process-gpu"
            ]
        );
        assert!(!sampler_args(SAMPLER_SETS[1], "5000").contains(&"--show-process-gpu".to_owned()));
    }

    #[test]
    fn garbage_documents_are_errors_not_panics() {
        assert!(parse_document(b"not a plist").is_err());
        assert!(parse_document(&APPLE[..APPLE.len() / 2]).is_err());
        assert!(parse_document(b"<plist version=\"1.0\"><array/></plist>").is_err());
    }

    fn stream_of(docs: &[&[u8]]) -> Vec<u8> {
        docs.join(&0u8)
    }

    #[test]
    fn stream_splits_on_nul_and_emits_a_document_at_its_end() {
        let mut st = PlistStream::default();
        let bytes = stream_of(&[APPLE, INTEL]);
        let docs = st.push(&bytes);
        assert_eq!(docs, vec![APPLE.to_vec(), INTEL.to_vec()]);
        assert_eq!(st.pending(), 0);
        // The NUL that starts the next document is a separator, not a doc.
        assert!(st.push(b"\0").is_empty());
        assert_eq!(st.push(b"\n\0  \0"), Vec::<Vec<u8>>::new());
    }

    #[test]
    fn garbage_before_a_separator_is_one_bad_document() {
        let mut state = PowermetricsState::default();
        let mut st = PlistStream::default();
        let mut bytes = b"<?xml version=\"1.0\"?><plist><dict><key>elapsed_ns".to_vec();
        bytes.push(0);
        bytes.extend_from_slice(APPLE);
        for doc in st.push(&bytes) {
            state.ingest(&doc);
        }
        assert_eq!((state.documents, state.bad_documents), (1, 1));
        assert!(state.last_error.is_none(), "a good document clears it");
        assert!(close(state.energy.get("cpu"), 10.160));
    }

    #[test]
    fn energy_accumulates_per_document_and_never_decreases() {
        let mut state = PowermetricsState::default();
        state.ingest(APPLE);
        state.ingest(APPLE_ENERGY);
        state.ingest(b"garbage");
        assert!(close(state.energy.get("cpu"), 10.160 + 7.2));
        assert!(close(state.energy.get("gpu"), 0.284 + 0.3));
        assert!(close(state.energy.get("dram"), 0.5));
        assert!(close(
            state.energy.get("package"),
            10.19395 * 1.023685416 + 8.0
        ));
        assert_eq!(state.energy.get("ane"), None);
        let mut t = EnergyTotals::default();
        t.add("cpu", 1.0);
        t.add("cpu", -5.0);
        t.add("cpu", f64::NAN);
        assert_eq!(t.get("cpu"), Some(1.0));
    }

    #[test]
    fn backoff_doubles_to_the_cap_and_resets_after_a_stable_run() {
        let s = Duration::from_secs;
        let mut b = Backoff::new(s(1), s(60), s(120));
        let delays: Vec<_> = (0..9).map(|_| b.after_exit(s(2))).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60, 60].map(s).to_vec());
        assert_eq!(b.after_exit(s(120)), s(1));
        assert_eq!(b.after_exit(s(1)), s(2));
    }

    #[test]
    fn sampler_plan_drops_samplers_until_a_run_delivers() {
        let mut p = SamplerPlan::default();
        assert_eq!(p.current(), "tasks,cpu_power,gpu_power,ane_power,thermal");
        p.run_ended(0);
        assert_eq!(p.current(), "cpu_power,gpu_power,ane_power,thermal,smc");
        p.run_ended(0);
        assert_eq!(p.current(), "cpu_power,gpu_power,ane_power,thermal");
        p.run_ended(3);
        p.run_ended(0);
        assert_eq!(p.current(), "cpu_power,gpu_power,ane_power,thermal");
        let mut q = SamplerPlan::default();
        for _ in 0..10 {
            q.run_ended(0);
        }
        assert_eq!(q.current(), "cpu_power,gpu_power,thermal");
    }

    proptest! {
        #[test]
        fn two_documents_split_anywhere_give_the_same_samples(
            a in 0usize..=10_000,
            b in 0usize..=10_000,
            trailing_nul in any::<bool>(),
        ) {
            let mut bytes = stream_of(&[APPLE, INTEL]);
            if trailing_nul {
                bytes.push(0);
            }
            let (mut i, mut j) = (a % (bytes.len() + 1), b % (bytes.len() + 1));
            if i > j {
                std::mem::swap(&mut i, &mut j);
            }
            let mut st = PlistStream::default();
            let mut docs = st.push(&bytes[..i]);
            docs.extend(st.push(&bytes[i..j]));
            docs.extend(st.push(&bytes[j..]));
            prop_assert_eq!(docs.len(), 2);
            prop_assert_eq!(parse_document(&docs[0]).unwrap(), parse_document(APPLE).unwrap());
            prop_assert_eq!(parse_document(&docs[1]).unwrap(), parse_document(INTEL).unwrap());
            prop_assert_eq!(st.pending(), 0);
        }

        #[test]
        fn arbitrary_bytes_never_panic(chunks in proptest::collection::vec(
            proptest::collection::vec(any::<u8>(), 0..200), 0..8)) {
            let mut st = PlistStream::default();
            let mut state = PowermetricsState::default();
            for c in &chunks {
                for doc in st.push(c) {
                    state.ingest(&doc);
                }
            }
            for (_, j) in state.energy.iter() {
                prop_assert!(j.is_finite() && j >= 0.0);
            }
        }
    }
}
