//! The macOS `Source` impls: thin over the tested parsers and supervisor.
//! Compiled only for macOS (checked by the aarch64-apple-darwin build).

use std::ffi::{CStr, OsString, c_char, c_int};
use std::process::Command;
use std::time::{Duration, Instant};

use super::child::{ArgsFor, Supervisor};
use super::ioreg::{parse_accelerators, parse_battery_xml};
use super::powermetrics::{Backoff, pressure_from_os_level};
use crate::families::power::{BatteryState, PowerStats};
use crate::sources::Snapshot;
use crate::sources::command::{CommandError, run_with_timeout};
use crate::sources::energy::Trapezoid;
use crate::sources::{Source, SourceError};

// Absolute paths: a launchd daemon runs with a minimal PATH.
const POWERMETRICS: &str = "/usr/bin/powermetrics";
const IOREG: &str = "/usr/sbin/ioreg";
const IOREG_TIMEOUT: Duration = Duration::from_secs(5);
const NEEDS_ROOT: &str = "powermetrics needs root (run the agent as a launchd daemon)";

fn ioreg(args: &[&str]) -> Result<Vec<u8>, SourceError> {
    run_with_timeout(Command::new(IOREG).args(args), IOREG_TIMEOUT).map_err(|e| match e {
        CommandError::Spawn(e) => SourceError::Unavailable(format!("{IOREG}: {e}")),
        e => SourceError::Failed(format!("{IOREG}: {e}")),
    })
}

// ------------------------------------------------------------ powermetrics

pub struct PowermetricsSource {
    supervisor: Option<Supervisor>,
    unavailable: Option<String>,
    interval: Duration,
    pressure: NotifyPressure,
    /// The Apple GPU's energy total at the previous cycle.
    gpu_joules: Option<f64>,
}

impl PowermetricsSource {
    pub fn new(interval: Duration) -> Self {
        let pressure = NotifyPressure::new();
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return PowermetricsSource {
                supervisor: None,
                unavailable: Some(NEEDS_ROOT.into()),
                interval,
                pressure,
                gpu_joules: None,
            };
        }
        let ms = interval.as_millis().max(100).to_string();
        let args: ArgsFor = Box::new(move |samplers| {
            super::powermetrics::sampler_args(samplers, &ms)
                .into_iter()
                .map(OsString::from)
                .collect()
        });
        let backoff = Backoff::new(
            Duration::from_secs(1),
            Duration::from_secs(300),
            Duration::from_secs(120),
        );
        match Supervisor::start(POWERMETRICS.into(), args, backoff) {
            Ok(s) => PowermetricsSource {
                supervisor: Some(s),
                unavailable: None,
                interval,
                pressure,
                gpu_joules: None,
            },
            Err(e) => PowermetricsSource {
                supervisor: None,
                unavailable: Some(format!("cannot start the powermetrics reader: {e}")),
                interval,
                pressure,
                gpu_joules: None,
            },
        }
    }
}

impl Source for PowermetricsSource {
    fn name(&self) -> &'static str {
        "powermetrics"
    }

    fn sample(&mut self, snap: &mut Snapshot) -> Result<(), SourceError> {
        let interval = self.interval;
        // The OS's own level first; powermetrics' (the same value) wins.
        super::apply_pressure(snap, self.pressure.level());
        let Some(sup) = &self.supervisor else {
            let why = self
                .unavailable
                .clone()
                .unwrap_or_else(|| NEEDS_ROOT.into());
            return Err(SourceError::Unavailable(why));
        };
        let st = sup.state();
        super::apply_energy(snap, &st.energy);
        // The Apple GPU's energy since the previous cycle, stale or not.
        let gpu_total = st.energy.get("gpu");
        let gpu_joules = gpu_total.zip(self.gpu_joules).map(|(now, prev)| now - prev);
        self.gpu_joules = gpu_total.or(self.gpu_joules);
        // A sample older than a few intervals is from a dead child.
        let fresh = st
            .latest_at
            .is_some_and(|t| t.elapsed() <= interval * 3 + Duration::from_secs(2));
        match (&st.latest, fresh) {
            (Some(sample), true) => {
                super::apply_sample(snap, sample, gpu_joules);
                Ok(())
            }
            _ => Err(match &st.last_error {
                Some(e) => SourceError::Failed(e.clone()),
                None => {
                    SourceError::Unavailable("waiting for the first powermetrics sample".into())
                }
            }),
        }
    }
}

/// Thermal pressure without root: the OSThermalPressureLevel published on
/// the `com.apple.system.thermalpressurelevel` notify key (docs/FORMATS.md,
/// macOS thermal pressure without root).
struct NotifyPressure {
    token: Option<c_int>,
}

const NOTIFY_STATUS_OK: u32 = 0;
const PRESSURE_KEY: &CStr = c"com.apple.system.thermalpressurelevel";

// libSystem's notify(3) API, always linked on macOS.
unsafe extern "C" {
    fn notify_register_check(name: *const c_char, out_token: *mut c_int) -> u32;
    fn notify_get_state(token: c_int, state64: *mut u64) -> u32;
    fn notify_cancel(token: c_int) -> u32;
}

impl NotifyPressure {
    fn new() -> Self {
        let mut token: c_int = 0;
        // SAFETY: a NUL-terminated name and a valid out pointer.
        let rc = unsafe { notify_register_check(PRESSURE_KEY.as_ptr(), &mut token) };
        NotifyPressure {
            token: (rc == NOTIFY_STATUS_OK).then_some(token),
        }
    }

    fn level(&self) -> Option<u8> {
        let token = self.token?;
        let mut state: u64 = 0;
        // SAFETY: a token from notify_register_check and a valid out pointer.
        let rc = unsafe { notify_get_state(token, &mut state) };
        if rc == NOTIFY_STATUS_OK {
            pressure_from_os_level(state)
        } else {
            None
        }
    }
}

impl Drop for NotifyPressure {
    fn drop(&mut self) {
        if let Some(t) = self.token {
            // SAFETY: cancels the registration made in new().
            unsafe { notify_cancel(t) };
        }
    }
}

// ----------------------------------------------------------------- battery

#[derive(Default)]
pub struct BatterySource {
    energy: Trapezoid,
}

impl Source for BatterySource {
    fn name(&self) -> &'static str {
        "battery"
    }

    fn sample(&mut self, snap: &mut Snapshot) -> Result<(), SourceError> {
        let read = ioreg(&["-r", "-c", "AppleSmartBattery", "-a"]).and_then(|xml| {
            parse_battery_xml(&xml).map_err(|e| SourceError::Failed(e.to_string()))
        });
        match read {
            Ok(Some(b)) => {
                let watts = b.discharge_watts();
                let joules = self
                    .energy
                    .update(Some(watts), Instant::now())
                    .unwrap_or(0.0);
                let state = BatteryState {
                    charge_percent: b.charge_percent(),
                    time_left_s: b.time_left_s(),
                    ac_online: b.external_connected,
                };
                super::apply_battery(snap, watts, joules, state);
                Ok(())
            }
            Ok(None) => {
                self.energy.gap();
                Err(SourceError::Unavailable("no battery".into()))
            }
            Err(e) => {
                self.energy.gap();
                // The counter stays where it was: it never goes backwards.
                if let Some(total) = self.energy.total().filter(|t| *t > 0.0) {
                    snap.get_or_default::<PowerStats>().battery.joules = Some(total);
                }
                Err(e)
            }
        }
    }
}

// --------------------------------------------------------------------- gpu

pub struct AppleGpuSource {
    memsize: Option<u64>,
}

impl Default for AppleGpuSource {
    fn default() -> Self {
        Self::new()
    }
}

impl AppleGpuSource {
    pub fn new() -> Self {
        AppleGpuSource {
            memsize: hw_memsize(),
        }
    }
}

fn hw_memsize() -> Option<u64> {
    let mut value: u64 = 0;
    let mut len = std::mem::size_of::<u64>();
    // SAFETY: a NUL-terminated name, an out buffer of `len` bytes, no new value.
    let rc = unsafe {
        libc::sysctlbyname(
            c"hw.memsize".as_ptr(),
            (&mut value as *mut u64).cast(),
            &mut len,
            std::ptr::null_mut(),
            0,
        )
    };
    (rc == 0 && len == std::mem::size_of::<u64>() && value > 0).then_some(value)
}

impl Source for AppleGpuSource {
    fn name(&self) -> &'static str {
        "apple-gpu"
    }

    fn sample(&mut self, snap: &mut Snapshot) -> Result<(), SourceError> {
        let text = ioreg(&["-r", "-d", "1", "-w", "0", "-c", "IOAccelerator"])?;
        let gpus = parse_accelerators(&String::from_utf8_lossy(&text));
        if gpus.is_empty() {
            return Err(SourceError::Unavailable(
                "no IOAccelerator publishes PerformanceStatistics".into(),
            ));
        }
        super::apply_accelerators(snap, gpus, self.memsize);
        Ok(())
    }
}
