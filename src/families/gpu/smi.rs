//! `nvidia-smi` CSV queries, the fallback when NVML cannot be loaded (a
//! static build, a library path the loader does not see). Each call costs
//! tens of milliseconds of CPU, and a sick driver can make it hang: the
//! child is killed and reaped after a timeout.
//!
//! Output format: `--format=csv,noheader,nounits`, one line per GPU, fields
//! separated by ", ". Unreadable values are `[N/A]`, `[Not Supported]` or
//! `N/A`, which `nounits` leaves in place (docs/FORMATS.md, nvidia-smi).

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::{Backend, GpuDevice, GpuProcess, GpuReading, normalize_pci_bus_id};
use crate::sources::SourceError;
use crate::sources::command::{CommandError, find_program, run_with_timeout};

const MIB: u64 = 1024 * 1024;

pub const QUERY_GPU: &str = "--query-gpu=index,name,uuid,pci.bus_id,memory.used,memory.total,utilization.gpu,temperature.gpu,power.draw";
pub const QUERY_APPS: &str = "--query-compute-apps=gpu_uuid,pid,used_memory";
const FORMAT: &str = "--format=csv,noheader,nounits";

/// A value nvidia-smi could not read.
fn field(s: &str) -> Option<&str> {
    let s = s.trim();
    match s {
        "" | "[N/A]" | "N/A" | "[Not Supported]" | "[Unknown Error]" => None,
        _ if s.starts_with("[") && s.ends_with(']') => None,
        _ => Some(s),
    }
}

fn number(s: &str) -> Option<f64> {
    field(s)?.parse::<f64>().ok().filter(|v| v.is_finite())
}

fn mib_bytes(s: &str) -> Option<u64> {
    let v = number(s)?;
    (v >= 0.0).then_some((v * MIB as f64) as u64)
}

/// Parses the output of [`QUERY_GPU`]. Lines whose first field is not an
/// index (`No devices were found`, `WARNING: …`, driver errors) are skipped.
pub fn parse_query_gpu(text: &str) -> Vec<GpuDevice> {
    let mut out = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        // A name could hold a comma: the first field and the last seven are
        // fixed, the name is what lies between.
        if fields.len() < 9 {
            continue;
        }
        let Ok(index) = fields[0].parse::<u32>() else {
            continue;
        };
        let tail = &fields[fields.len() - 7..];
        let name = fields[1..fields.len() - 7].join(", ");
        out.push(GpuDevice {
            index,
            name: field(&name).unwrap_or("NVIDIA GPU").to_owned(),
            vendor: "nvidia",
            uuid: field(tail[0]).map(str::to_owned),
            pci_bus_id: field(tail[1]).and_then(normalize_pci_bus_id),
            vram_used_bytes: mib_bytes(tail[2]),
            vram_total_bytes: mib_bytes(tail[3]),
            utilization_percent: number(tail[4]).filter(|v| (0.0..=100.0).contains(v)),
            temperature_celsius: number(tail[5]),
            power_watts: number(tail[6]).filter(|v| *v >= 0.0),
            energy_counter_mj: None,
        });
    }
    out
}

/// Parses the output of [`QUERY_APPS`] into (GPU UUID, pid, bytes); a
/// process whose memory is `[N/A]` (WDDM, some vGPUs) is left out.
pub fn parse_query_compute_apps(text: &str) -> Vec<(String, u32, u64)> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.split(',').map(str::trim);
            let uuid = field(f.next()?)?.to_owned();
            let pid = f.next()?.parse::<u32>().ok()?;
            let bytes = mib_bytes(f.next()?)?;
            Some((uuid, pid, bytes))
        })
        .collect()
}

pub struct SmiBackend {
    program: PathBuf,
    timeout: Duration,
    /// Set when the program does not exist: a host without it is not
    /// asked again (no fork per cycle), like NVML's single load.
    missing: Option<SourceError>,
}

impl SmiBackend {
    pub fn new(program: PathBuf, timeout: Duration) -> Self {
        SmiBackend {
            program,
            timeout,
            missing: None,
        }
    }
}

impl Backend for SmiBackend {
    fn name(&self) -> &'static str {
        "nvidia-smi"
    }

    fn read(&mut self) -> Result<GpuReading, SourceError> {
        if let Some(why) = &self.missing {
            return Err(why.clone());
        }
        // Looked up before spawning: on a host without it, a spawn is a
        // fork whose exec fails.
        let Some(program) = find_program(&self.program, std::env::var_os("PATH").as_deref()) else {
            let e = SourceError::Unavailable(format!(
                "cannot run {}: not found{}",
                self.program.display(),
                if self.program.components().count() == 1 {
                    " on PATH"
                } else {
                    ""
                }
            ));
            self.missing = Some(e.clone());
            return Err(e);
        };
        let text = match run_command(&program, &[QUERY_GPU, FORMAT], self.timeout) {
            Ok(text) => text,
            Err(e) => {
                let not_installed =
                    matches!(&e, CommandError::Spawn(io) if io.kind() == ErrorKind::NotFound);
                let e = command_error(&self.program, e);
                if not_installed {
                    self.missing = Some(e.clone());
                }
                return Err(e);
            }
        };
        let devices = parse_query_gpu(&text);
        if devices.is_empty() {
            let first = text.lines().next().unwrap_or("").trim();
            let why = format!("no GPU listed ({first:?})");
            return Err(if no_devices(&text) {
                SourceError::Unavailable(why)
            } else {
                SourceError::Failed(why)
            });
        }
        // Per-process memory is a bonus: without it the devices still count.
        let processes = run(&program, &[QUERY_APPS, FORMAT], self.timeout)
            .map(|t| {
                parse_query_compute_apps(&t)
                    .into_iter()
                    .filter_map(|(uuid, pid, used_bytes)| {
                        let d = devices.iter().find(|d| d.uuid.as_deref() == Some(&uuid))?;
                        // nvidia-smi has no per-process utilization
                        // query: the split of GPU power is by memory.
                        Some(GpuProcess {
                            pid,
                            gpu_index: d.index,
                            used_bytes,
                            sm_util: None,
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(GpuReading { devices, processes })
    }
}

/// nvidia-smi's answer on a host whose driver sees no GPU.
fn no_devices(text: &str) -> bool {
    text.lines().any(|l| l.trim() == "No devices were found")
}

/// nvidia-smi's exit statuses (its manual, RETURN VALUE) that mean there
/// is nothing to read here: 4 no permission, 9 driver not loaded, 12 NVML
/// library not found; 6 (an object not found) with "No devices were
/// found". The others (15 fallen off the bus, 14 infoROM corrupted, 255
/// an internal driver error, …) are a driver that is there and broken.
fn absent(code: Option<i32>, stdout: &[u8]) -> bool {
    match code {
        Some(4 | 9 | 12) => true,
        Some(6) => no_devices(&String::from_utf8_lossy(stdout)),
        _ => false,
    }
}

fn command_error(program: &Path, e: CommandError) -> SourceError {
    let name = program.display();
    match e {
        CommandError::Spawn(e)
            if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::PermissionDenied) =>
        {
            SourceError::Unavailable(format!("cannot run {name}: {e}"))
        }
        CommandError::Status(status, out) if absent(status.code(), &out) => {
            SourceError::Unavailable(format!("{name}: {}", CommandError::Status(status, out)))
        }
        e => SourceError::Failed(format!("{name}: {e}")),
    }
}

fn run_command(program: &Path, args: &[&str], timeout: Duration) -> Result<String, CommandError> {
    let mut cmd = Command::new(program);
    cmd.args(args);
    run_with_timeout(&mut cmd, timeout).map(|out| String::from_utf8_lossy(&out).into_owned())
}

/// Runs `program args` and returns its stdout when it exits 0 within
/// `timeout`; otherwise it is killed and reaped, and the reason returned:
/// `Unavailable` when it is not installed or says there is no driver or
/// GPU, `Failed` for a timeout or any other error.
pub fn run(program: &Path, args: &[&str], timeout: Duration) -> Result<String, SourceError> {
    run_command(program, args, timeout).map_err(|e| command_error(program, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_gpus_one_without_power() {
        let text = "0, NVIDIA H100 80GB HBM3, GPU-1c5e4b2a-9f3d-7e61-0a2b-3c4d5e6f7a8b, 00000000:18:00.0, 0, 81559, 0, 31, 69.57\n\
                    1, NVIDIA GeForce GTX 1050 Ti, GPU-10fb0fbd-2696-43f3-467f-d280d906a107, 00000000:01:00.0, 752, 4096, 19, 44, [N/A]\n";
        let d = parse_query_gpu(text);
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].name, "NVIDIA H100 80GB HBM3");
        assert_eq!(d[0].pci_bus_id.as_deref(), Some("0000:18:00.0"));
        assert_eq!(d[0].vram_used_bytes, Some(0));
        assert_eq!(d[0].vram_total_bytes, Some(81559 * MIB));
        assert_eq!(d[0].utilization_percent, Some(0.0));
        assert_eq!(d[0].power_watts, Some(69.57));
        assert_eq!(d[1].index, 1);
        assert_eq!(d[1].vram_used_bytes, Some(752 * MIB));
        assert_eq!(d[1].temperature_celsius, Some(44.0));
        assert_eq!(d[1].power_watts, None, "[N/A] is absent, not 0");
    }

    #[test]
    fn every_unavailable_spelling_is_absent() {
        let text = "0, NVIDIA GB10, GPU-aaaa, 0000000F:01:00.0, [N/A], [Not Supported], N/A, , [Unknown Error]\n";
        let d = &parse_query_gpu(text)[0];
        assert_eq!(d.pci_bus_id.as_deref(), Some("000f:01:00.0"));
        assert_eq!(
            (
                d.vram_used_bytes,
                d.vram_total_bytes,
                d.utilization_percent,
                d.temperature_celsius,
                d.power_watts
            ),
            (None, None, None, None, None)
        );
    }

    #[test]
    fn non_data_lines_are_skipped() {
        for text in [
            "No devices were found\n",
            "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running.\n",
            "Unable to determine the device handle for GPU0000:01:00.0: GPU has fallen off the bus.\n",
            "Field \"xyz\" is not a valid field to query.\n",
            "",
        ] {
            assert!(parse_query_gpu(text).is_empty(), "{text}");
        }
        let mixed = "WARNING: infoROM is corrupted at gpu 0000:01:00.0\n0, Quadro RTX 6000, GPU-x, 00000000:01:00.0, 1, 2, 3, 4, 5.5\n";
        assert_eq!(parse_query_gpu(mixed).len(), 1);
    }

    #[test]
    fn a_name_with_a_comma_keeps_the_columns_in_place() {
        let d =
            &parse_query_gpu("3, Tesla, the one, GPU-x, 00000000:02:00.0, 10, 20, 30, 40, 50.5\n")
                [0];
        assert_eq!((d.index, d.name.as_str()), (3, "Tesla, the one"));
        assert_eq!(d.vram_total_bytes, Some(20 * MIB));
        assert_eq!(d.power_watts, Some(50.5));
    }

    #[test]
    fn exit_statuses_without_a_driver_or_gpu_are_absent() {
        for code in [4, 9, 12] {
            assert!(absent(Some(code), b""), "{code}");
        }
        assert!(absent(Some(6), b"No devices were found\n"));
        for (code, out) in [
            (Some(6), &b"Unable to find the GPU\n"[..]),
            (Some(15), b"GPU has fallen off the bus.\n"),
            (Some(255), b""),
            (None, b""),
        ] {
            assert!(!absent(code, out), "{code:?}");
        }
        assert!(no_devices("No devices were found\n"));
        assert!(!no_devices("0, x, GPU-a, 0:1:0.0, 1, 2, 3, 4, 5\n"));
    }

    #[test]
    fn compute_apps() {
        let text = "GPU-a, 4242, 1024\nGPU-b, 17, [N/A]\nGPU-a, 99, 3\n";
        assert_eq!(
            parse_query_compute_apps(text),
            vec![
                ("GPU-a".into(), 4242, 1024 * MIB),
                ("GPU-a".into(), 99, 3 * MIB)
            ]
        );
        assert!(parse_query_compute_apps("").is_empty());
    }
}
