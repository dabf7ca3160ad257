//! AMD GPUs through the amdgpu driver's sysfs files
//! (`/sys/class/drm/cardN/device/`, see docs/FORMATS.md, amdgpu, and the
//! kernel's Documentation/gpu/amdgpu/thermal.rst): `mem_info_vram_used` /
//! `mem_info_vram_total` in bytes, `gpu_busy_percent` 0–100, and the card's
//! hwmon: `temp1_input` (edge, m°C), `power1_average` else `power1_input`
//! (µW; a GPU exposes one of them, `_input` since Linux 6.6).

use std::path::Path;

use super::{Backend, GpuDevice, GpuReading};
use crate::host::HostPaths;
use crate::sources::SourceError;

pub struct AmdgpuBackend {
    paths: HostPaths,
}

impl AmdgpuBackend {
    pub fn new(paths: HostPaths) -> Self {
        AmdgpuBackend { paths }
    }
}

/// `cardN` (not `card0-DP-1`, not `renderD128`) → N.
fn card_number(name: &str) -> Option<u32> {
    name.strip_prefix("card")?.parse().ok()
}

/// `KEY=value` lines of a sysfs `uevent` file.
pub fn uevent_value<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .map(str::trim)
}

/// A sysfs integer; an unreadable file (EPERM while the GPU resets, a file
/// this board lacks) or junk is absent.
pub fn parse_int(text: &str) -> Option<i64> {
    text.trim().parse().ok()
}

impl AmdgpuBackend {
    fn read_int(&self, rel: &Path) -> Option<i64> {
        parse_int(&self.paths.read_sys(rel).ok()?)
    }

    fn is_amdgpu(&self, dev: &Path) -> Option<String> {
        let by_link = std::fs::read_link(self.paths.sys_path(dev.join("driver")))
            .ok()
            .and_then(|l| l.file_name().map(|n| n == "amdgpu"));
        let uevent = self
            .paths
            .read_sys(dev.join("uevent"))
            .ok()
            .unwrap_or_default();
        let by_uevent = uevent_value(&uevent, "DRIVER").map(|d| d == "amdgpu");
        if by_link.or(by_uevent) != Some(true) {
            return None;
        }
        Some(uevent)
    }

    fn card(&self, index: u32, card: &str) -> Option<GpuDevice> {
        let dev = Path::new("class/drm").join(card).join("device");
        let uevent = self.is_amdgpu(&dev)?;
        let text = |f: &str| {
            self.paths
                .read_sys(dev.join(f))
                .ok()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
        };
        let pci_bus_id = uevent_value(&uevent, "PCI_SLOT_NAME")
            .map(str::to_owned)
            .or_else(|| {
                let link = std::fs::read_link(self.paths.sys_path(&dev)).ok()?;
                Some(link.file_name()?.to_string_lossy().into_owned())
            })
            .and_then(|id| super::normalize_pci_bus_id(&id));
        let name = text("product_name")
            .or_else(|| text("device").map(|id| format!("AMD GPU {id}")))
            .unwrap_or_else(|| "AMD GPU".into());
        let bytes = |f: &str| {
            self.read_int(&dev.join(f))
                .and_then(|v| u64::try_from(v).ok())
        };
        // Sensor reads wake a runtime-suspended GPU (pm_runtime_get_sync):
        // a sleeping card keeps sleeping and its sensors are absent.
        let awake = text("power/runtime_status").as_deref() != Some("suspended");
        let mut d = GpuDevice {
            index,
            name,
            vendor: "amd",
            uuid: text("unique_id"),
            pci_bus_id,
            vram_used_bytes: bytes("mem_info_vram_used"),
            vram_total_bytes: bytes("mem_info_vram_total").filter(|t| *t > 0),
            ..Default::default()
        };
        if awake {
            d.utilization_percent = self
                .read_int(&dev.join("gpu_busy_percent"))
                .filter(|v| (0..=100).contains(v))
                .map(|v| v as f64);
            if let Some(hwmon) = self.hwmon_dir(&dev) {
                d.temperature_celsius = self
                    .read_int(&hwmon.join("temp1_input"))
                    .map(|m| m as f64 / 1000.0);
                d.power_watts = self
                    .read_int(&hwmon.join("power1_average"))
                    .or_else(|| self.read_int(&hwmon.join("power1_input")))
                    .filter(|uw| *uw >= 0)
                    .map(|uw| uw as f64 / 1e6);
            }
        }
        Some(d)
    }

    /// The card's first `device/hwmon/hwmonM` directory (M is not stable).
    fn hwmon_dir(&self, dev: &Path) -> Option<std::path::PathBuf> {
        let rel = dev.join("hwmon");
        let mut dirs: Vec<String> = crate::host::list_dir(&self.paths.sys_path(&rel))
            .ok()?
            .into_iter()
            .filter(|n| n.starts_with("hwmon"))
            .collect();
        dirs.sort();
        Some(rel.join(dirs.first()?))
    }
}

impl Backend for AmdgpuBackend {
    fn name(&self) -> &'static str {
        "amdgpu"
    }

    fn read(&mut self) -> Result<GpuReading, SourceError> {
        let drm = self.paths.sys_path("class/drm");
        let entries = crate::host::list_dir(&drm).map_err(|e| {
            let why = format!("{}: {e}", drm.display());
            match e.kind() {
                // No DRM at all (a server without graphics, a container
                // without /sys mounted): no card to read.
                std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied => {
                    SourceError::Unavailable(why)
                }
                _ => SourceError::Failed(why),
            }
        })?;
        let mut cards: Vec<(u32, String)> = entries
            .into_iter()
            .filter_map(|name| Some((card_number(&name)?, name)))
            .collect();
        cards.sort();
        let mut reading = GpuReading::default();
        for (_, card) in cards {
            let index = reading.devices.len() as u32;
            if let Some(d) = self.card(index, &card) {
                reading.devices.push(d);
            }
        }
        if reading.devices.is_empty() {
            return Err(SourceError::Unavailable(format!(
                "no amdgpu card under {}",
                drm.display()
            )));
        }
        Ok(reading)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn card_names() {
        assert_eq!(card_number("card0"), Some(0));
        assert_eq!(card_number("card12"), Some(12));
        for n in ["card0-DP-1", "renderD128", "card", "version"] {
            assert_eq!(card_number(n), None, "{n}");
        }
    }

    #[test]
    fn uevent_and_ints() {
        let ue = "DRIVER=amdgpu\nPCI_CLASS=30000\nPCI_SLOT_NAME=0000:03:00.0\n";
        assert_eq!(uevent_value(ue, "DRIVER"), Some("amdgpu"));
        assert_eq!(uevent_value(ue, "PCI_SLOT_NAME"), Some("0000:03:00.0"));
        assert_eq!(uevent_value(ue, "PCI"), None);
        assert_eq!(parse_int("17163091968\n"), Some(17_163_091_968));
        assert_eq!(parse_int("-273150\n"), Some(-273_150));
        assert_eq!(parse_int(""), None);
    }
}
