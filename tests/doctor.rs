//! `unamentis-agent doctor` on fixture hosts and on this machine.
#![cfg(target_os = "linux")]

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use support::fixtures::host_copy;

fn doctor(root: Option<&Path>, extra: &[&str], mut cmd: Command) -> (bool, String) {
    cmd.arg("doctor").args(["--window", "50ms"]).args(extra);
    if let Some(root) = root {
        cmd.arg("--host-sys")
            .arg(root.join("sys"))
            .arg("--host-proc")
            .arg(root.join("proc"));
    }
    let out = cmd.output().expect("run doctor");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "exit {:?}: {text}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn sources(json: &str) -> Vec<serde_json::Value> {
    let v: serde_json::Value = serde_json::from_str(json).expect("doctor --json is JSON");
    v["sources"].as_array().unwrap().clone()
}

fn row<'a>(rows: &'a [serde_json::Value], name: &str) -> &'a serde_json::Value {
    rows.iter()
        .find(|r| r["source"] == name)
        .unwrap_or_else(|| panic!("no row {name}: {rows:?}"))
}

#[test]
fn laptop_fixture_has_power_and_thermal() {
    let dir = host_copy("intel-laptop");
    let (_, json) = doctor(Some(dir.path()), &["--json"], support::agent::command());
    let rows = sources(&json);
    for name in ["rapl", "battery", "thermal"] {
        assert_eq!(row(&rows, name)["available"], true, "{name}: {json}");
    }
    let hwmon = row(&rows, "hwmon");
    assert_eq!(hwmon["available"], false);
    assert!(hwmon["fix"].as_str().unwrap().contains("Nothing to fix"));
}

#[test]
fn vm_fixture_explains_every_missing_source() {
    let dir = host_copy("vm-2cpu");
    let (_, table) = doctor(Some(dir.path()), &[], support::agent::command());
    for (source, reason) in [
        ("rapl", "no RAPL zones"),
        ("battery", "no system battery"),
        ("thermal", "no thermal sensors"),
    ] {
        let line = table
            .lines()
            .find(|l| l.starts_with(source))
            .unwrap_or_else(|| panic!("{source}: {table}"));
        assert!(
            line.contains("unavailable") && line.contains(reason),
            "{line}"
        );
    }
    assert!(table.contains("fix: No RAPL zones"), "{table}");
}

/// This machine as it is: where it has no powercap class (a VM), doctor
/// says so; anywhere it exits 0 with a row per source.
#[test]
fn this_host() {
    let (_, json) = doctor(None, &["--json"], support::agent::command());
    let rows = sources(&json);
    assert!(rows.len() >= 6, "{json}");
    if !Path::new("/sys/class/powercap").exists() {
        let rapl = row(&rows, "rapl");
        assert_eq!(rapl["available"], false);
        assert!(rapl["reason"].as_str().unwrap().contains("no RAPL zones"));
    }
}

/// A real EACCES: energy_uj mode 0400 as the kernel has it since 5.10,
/// read by an unprivileged user (as root the test drops to nobody with
/// setpriv; root itself can read any file).
#[test]
fn root_only_energy_uj_gives_the_permission_fix() {
    let dir = host_copy("intel-laptop");
    let root = dir.path();
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).unwrap();
    for zone in ["intel-rapl:0", "intel-rapl:0:0", "intel-rapl:0:1"] {
        let f = root.join("sys/class/powercap").join(zone).join("energy_uj");
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o400)).unwrap();
    }
    let Some(cmd) = support::agent::unprivileged_command() else {
        eprintln!("skipped: running as root without setpriv to drop privileges");
        return;
    };
    let (_, json) = doctor(Some(root), &["--json"], cmd);
    let rapl = row(&sources(&json), "rapl").clone();
    assert_eq!(rapl["status"], "unavailable", "{json}");
    let reason = rapl["reason"].as_str().unwrap();
    assert!(reason.contains("intel-rapl:0/energy_uj"), "{reason}");
    assert!(
        reason.to_lowercase().contains("permission denied"),
        "{reason}"
    );
    assert!(rapl["fix"].as_str().unwrap().contains("udev"), "{rapl}");
}
