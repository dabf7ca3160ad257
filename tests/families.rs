//! The host families (`src/families/`) against the kernel's own files on
//! this machine, read in the same window as the agent's sample: a file
//! read before the sample bounds it from below, one read after from
//! above. A loopback transfer and an fsynced write must show in full in
//! the agent's deltas.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt;

use unamentis_agent::families::{self, Settings};
use unamentis_agent::host::HostPaths;
use unamentis_agent::snapshot::{Point, Sampler};

const MIB: u64 = 1024 * 1024;

/// One sample of every family with a `[families.<name>]` section (with
/// its defaults), as points.
fn sample() -> Vec<Point> {
    let empty = toml::Table::new();
    let sources = families::ALL
        .iter()
        .filter_map(|f| match f.build {
            Settings::Section(build) => build(&empty).unwrap(),
            Settings::Config(_) => None,
        })
        .flat_map(|make| make(&HostPaths::default()))
        .collect();
    Sampler::new(sources).sample().points()
}

fn value(points: &[Point], name: &str, with: &[(&str, &str)]) -> Option<f64> {
    let hits: Vec<f64> = points
        .iter()
        .filter(|p| p.metric.name == name)
        .filter(|p| {
            with.iter().all(|(k, v)| {
                p.attrs
                    .iter()
                    .any(|(pk, pv)| pk == k && pv.to_string() == *v)
            })
        })
        .map(|p| p.value)
        .collect();
    assert!(hits.len() <= 1, "{name} {with:?}: {hits:?}");
    hits.first().copied()
}

fn proc_file(rel: &str) -> String {
    std::fs::read_to_string(format!("/proc/{rel}")).unwrap()
}

/// Received bytes of `lo` in /proc/net/dev.
fn lo_rx_bytes() -> u64 {
    let text = proc_file("net/dev");
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("lo:"))
        .expect("a loopback interface");
    line.split_once(':')
        .unwrap()
        .1
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn a_loopback_transfer_shows_in_full_in_system_network_io() {
    const N: u64 = 8 * MIB;
    let rx = |p: &[Point]| {
        value(
            p,
            "system.network.io",
            &[("device", "lo"), ("direction", "receive")],
        )
        .expect("lo receive bytes")
    };
    let file_before = lo_rx_bytes();
    let a1 = rx(&sample());

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let reader = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut got = 0u64;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = s.read(&mut buf).unwrap();
            if n == 0 {
                break got;
            }
            got += n as u64;
        }
    });
    let mut s = TcpStream::connect(addr).unwrap();
    let chunk = vec![7u8; MIB as usize];
    for _ in 0..N / MIB {
        s.write_all(&chunk).unwrap();
    }
    drop(s);
    assert_eq!(reader.join().unwrap(), N);

    let a2 = rx(&sample());
    let file_after = lo_rx_bytes();
    assert!(a1 >= file_before as f64, "{a1} before {file_before}");
    assert!(a2 <= file_after as f64, "{a2} after {file_after}");
    // Payload plus TCP/IP headers: at least N, and no more than the file's
    // own delta over the wider window.
    assert!(a2 - a1 >= N as f64, "agent delta {} < {N}", a2 - a1);
    assert!(a2 - a1 <= (file_after - file_before) as f64);
}

/// The /proc/diskstats name of the block device holding `path`, and
/// whether it is a real block device (not tmpfs/overlay, major 0).
fn block_device_of(path: &std::path::Path) -> Option<String> {
    let dev = std::fs::metadata(path).ok()?.dev();
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    if major == 0 {
        return None;
    }
    let uevent = std::fs::read_to_string(format!("/sys/dev/block/{major}:{minor}/uevent")).ok()?;
    uevent
        .lines()
        .find_map(|l| l.strip_prefix("DEVNAME="))
        .map(str::to_owned)
}

fn sectors_written(device: &str) -> Option<u64> {
    proc_file("diskstats").lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.get(2) == Some(&device)).then(|| f[9].parse().unwrap())
    })
}

#[test]
fn an_fsynced_write_shows_in_full_in_system_disk_io() {
    const N: u64 = 16 * MIB;
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let Some(device) = block_device_of(dir.path()) else {
        eprintln!(
            "skipped: {} is not on a block device (tmpfs or overlay)",
            dir.path().display()
        );
        return;
    };
    let Some(before) = sectors_written(&device) else {
        eprintln!("skipped: {device} is not in /proc/diskstats");
        return;
    };
    let w = |p: &[Point]| {
        value(
            p,
            "system.disk.io",
            &[("device", &device), ("direction", "write")],
        )
        .unwrap_or_else(|| panic!("{device} write bytes"))
    };
    let a1 = w(&sample());
    let mut f = std::fs::File::create(dir.path().join("written")).unwrap();
    let chunk: Vec<u8> = (0..MIB).map(|i| (i * 31 % 251) as u8).collect();
    for _ in 0..N / MIB {
        f.write_all(&chunk).unwrap();
    }
    f.sync_all().unwrap();
    let a2 = w(&sample());
    let after = sectors_written(&device).unwrap();
    assert!(a1 >= (before * 512) as f64);
    assert!(a2 <= (after * 512) as f64);
    assert!(
        a2 - a1 >= N as f64,
        "{device}: agent delta {} < {N}",
        a2 - a1
    );
}

fn vmstat(key: &str) -> u64 {
    proc_file("vmstat")
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap()
}

#[test]
fn paging_and_processes_between_the_files_read_around_them() {
    let (maj0, all0, in0, created0) = (
        vmstat("pgmajfault"),
        vmstat("pgfault"),
        vmstat("pgpgin"),
        stat_processes(),
    );
    let p = sample();
    let (maj1, all1, in1, created1) = (
        vmstat("pgmajfault"),
        vmstat("pgfault"),
        vmstat("pgpgin"),
        stat_processes(),
    );
    let between = |v: f64, lo: u64, hi: u64, what: &str| {
        assert!(
            v >= lo as f64 && v <= hi as f64,
            "{what}: {v} not in [{lo}, {hi}]"
        )
    };
    let major = value(&p, "system.paging.faults", &[("type", "major")]).unwrap();
    between(major, maj0, maj1, "major faults");
    let minor = value(&p, "system.paging.faults", &[("type", "minor")]).unwrap();
    // minor = pgfault - pgmajfault, both read once by the agent.
    between(minor + major, all0, all1, "all faults");
    let pgin = value(
        &p,
        "system.paging.operations",
        &[("direction", "page_in"), ("type", "minor")],
    )
    .unwrap();
    between(pgin, in0, in1, "pgpgin");
    let created = value(&p, "system.processes.created", &[]).unwrap();
    between(created, created0, created1, "processes created");

    // Swap areas: every line of /proc/swaps, used + free = size.
    let swaps = proc_file("swaps");
    for line in swaps.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let size: f64 = f[2].parse::<f64>().unwrap() * 1024.0;
        let used = value(
            &p,
            "system.paging.usage",
            &[("device", f[0]), ("state", "used")],
        )
        .unwrap();
        let free = value(
            &p,
            "system.paging.usage",
            &[("device", f[0]), ("state", "free")],
        )
        .unwrap();
        assert_eq!(used + free, size, "{}", f[0]);
    }
    let areas = swaps
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .count();
    let points = p
        .iter()
        .filter(|x| x.metric.name == "system.paging.usage")
        .count();
    assert_eq!(
        points,
        2 * areas,
        "two states per swap area, none without swap"
    );
}

fn stat_processes() -> u64 {
    proc_file("stat")
        .lines()
        .find_map(|l| l.strip_prefix("processes ")?.trim().parse().ok())
        .unwrap()
}

fn psi_total(resource: &str, stall: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/pressure/{resource}")).ok()?;
    text.lines()
        .find(|l| l.starts_with(stall))?
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("total="))?
        .parse()
        .ok()
}

#[test]
fn pressure_stall_between_the_files_read_around_it() {
    let before: Vec<Option<u64>> = ["cpu", "memory", "io"]
        .iter()
        .flat_map(|r| ["some", "full"].map(|s| psi_total(r, s)))
        .collect();
    let p = sample();
    let after: Vec<Option<u64>> = ["cpu", "memory", "io"]
        .iter()
        .flat_map(|r| ["some", "full"].map(|s| psi_total(r, s)))
        .collect();
    let mut i = 0;
    for r in ["cpu", "memory", "io"] {
        for s in ["some", "full"] {
            let got = value(
                &p,
                "unamentis.server.pressure.stall_seconds",
                &[("resource", r), ("stall", s)],
            );
            match (before[i], after[i]) {
                // The system-wide cpu full line is zero by definition: left out.
                _ if r == "cpu" && s == "full" => assert_eq!(got, None),
                (Some(lo), Some(hi)) => {
                    let v = got.unwrap_or_else(|| panic!("{r} {s} missing"));
                    assert!(
                        v >= lo as f64 / 1e6 && v <= hi as f64 / 1e6,
                        "{r} {s}: {v} not in [{lo}, {hi}] µs"
                    );
                }
                // No PSI on this kernel: absent, never 0.
                _ => assert_eq!(got, None, "{r} {s}"),
            }
            i += 1;
        }
    }
}

#[test]
fn cpu_frequency_is_what_the_kernel_says() {
    let p = sample();
    let points: Vec<&Point> = p
        .iter()
        .filter(|x| x.metric.name == "system.cpu.frequency")
        .collect();
    if points.is_empty() {
        // Neither cpufreq nor `cpu MHz` (arm64 without a driver).
        assert!(!proc_file("cpuinfo").contains("cpu MHz"));
        return;
    }
    if !std::path::Path::new("/sys/devices/system/cpu/cpu0/cpufreq").exists() {
        let lines = proc_file("cpuinfo")
            .lines()
            .filter(|l| l.starts_with("cpu MHz"))
            .count();
        assert_eq!(points.len(), lines, "one point per `cpu MHz` line");
    }
    for pt in points {
        let cpu = pt.attrs[0].1.to_string();
        let n: u32 = cpu.strip_prefix("cpu").unwrap().parse().unwrap();
        let sysfs = format!("/sys/devices/system/cpu/cpu{n}/cpufreq/scaling_cur_freq");
        let (lo, hi) = match std::fs::read_to_string(&sysfs) {
            // A live frequency moves: bounded by the driver's own range.
            Ok(_) => {
                let r = |f: &str| -> f64 {
                    std::fs::read_to_string(format!("/sys/devices/system/cpu/cpu{n}/cpufreq/{f}"))
                        .unwrap()
                        .trim()
                        .parse::<f64>()
                        .unwrap()
                        * 1e3
                };
                (r("cpuinfo_min_freq"), r("cpuinfo_max_freq"))
            }
            Err(_) => {
                let info = proc_file("cpuinfo");
                let mhz: Vec<f64> = info
                    .split("\n\n")
                    .filter(|b| {
                        b.lines()
                            .any(|l| l.starts_with("processor") && l.ends_with(&format!(": {n}")))
                    })
                    .flat_map(|b| b.lines())
                    .filter_map(|l| {
                        l.strip_prefix("cpu MHz")?
                            .split(':')
                            .nth(1)?
                            .trim()
                            .parse()
                            .ok()
                    })
                    .collect();
                let m = mhz[0] * 1e6;
                // cpuinfo's MHz is re-read each time and may move a little.
                (m * 0.5, m * 2.0)
            }
        };
        assert!(
            pt.value >= lo && pt.value <= hi,
            "{cpu}: {} not in [{lo}, {hi}]",
            pt.value
        );
    }
}

/// `check-config` on a file holding `text`: (exit code, stderr).
fn check_config(text: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.toml");
    std::fs::write(&path, text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_unamentis-agent"))
        .args(["check-config", "--config"])
        .arg(&path)
        .env_remove("UNAMENTIS_AGENT_CONFIG")
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_bad_family_section_exits_2_naming_the_file_and_key() {
    for (text, key) in [
        ("[families.dsk]\n", "families.dsk"),
        // cpu's settings are top-level ([compat]): it has no section.
        ("[families.cpu]\nenabled = false\n", "families.cpu"),
        ("[families.disk]\nexclude = []\n", "families.disk.exclude"),
        (
            "[families.disk]\nexclude_devices = [\"loop*\", \" \"]\n",
            "families.disk.exclude_devices[1]",
        ),
        (
            "[families.network]\nconnections = \"yes\"\n",
            "families.network.connections",
        ),
        (
            "[families.pressure]\nenabled = 1\n",
            "families.pressure.enabled",
        ),
    ] {
        let (code, err) = check_config(text);
        assert_eq!(code, 2, "{text}: {err}");
        if key == "families.cpu" {
            assert!(err.contains("known: cpufreq, disk,"), "{err}");
        }
        assert!(
            err.contains("agent.toml") && err.contains(&format!("key {key}:")),
            "{text}: {err}"
        );
    }
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/unamentis-agent.toml"
    ))
    .unwrap();
    assert_eq!(
        check_config(&example).0,
        0,
        "the example holds every family section"
    );
}
