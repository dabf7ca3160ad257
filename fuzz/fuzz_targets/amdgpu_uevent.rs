//! Fuzzes an amdgpu card's sysfs `uevent` (DRIVER, PCI_SLOT_NAME) and the PCI bus id it names: any input must give a value or an error, never a
//! panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use unamentis_agent::families::gpu;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = gpu::amdgpu::uevent_value(text, "DRIVER");
    if let Some(slot) = gpu::amdgpu::uevent_value(text, "PCI_SLOT_NAME")
        && let Some(id) = gpu::normalize_pci_bus_id(slot)
    {
        // The normal form is a fixed point.
        assert_eq!(gpu::normalize_pci_bus_id(&id).as_deref(), Some(id.as_str()));
    }
});
