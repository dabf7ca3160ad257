//! The GPU source against a fake `libnvidia-ml.so` (tests/fixtures/nvml,
//! compiled here), recorded and hanging fake `nvidia-smi` programs, and
//! amdgpu sysfs fixture trees; and the mapping of it all to points.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use support::fake_nvml;
use unamentis_agent::config::GpuConfig;
use unamentis_agent::families::gpu::{self, Backend, GpuProcess, GpuSource, GpuStats, smi};
use unamentis_agent::families::models::{LoadedModel, OllamaStats};
use unamentis_agent::host::HostPaths;
use unamentis_agent::semconv::{self, attr};
use unamentis_agent::snapshot::{AttrValue, Point, Snapshot};
use unamentis_agent::sources::{Source, SourceError};

const MIB: u64 = 1024 * 1024;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// A host whose sysfs has no DRM card.
fn empty_host(dir: &Path) -> HostPaths {
    std::fs::create_dir_all(dir.join("sys")).unwrap();
    HostPaths::under(dir)
}

fn config(nvml: Option<&Path>, smi: &Path) -> GpuConfig {
    GpuConfig {
        nvml_library: nvml.map(Path::to_path_buf),
        nvidia_smi: smi.to_path_buf(),
        nvidia_smi_timeout: unamentis_agent::config::Dur(Duration::from_secs(5)),
        ..GpuConfig::default()
    }
}

fn sample(src: &mut GpuSource) -> (Result<(), SourceError>, Snapshot) {
    let mut snap = Snapshot::default();
    let r = src.sample(&mut snap);
    (r, snap)
}

/// A fake nvidia-smi: prints `gpu_out` for --query-gpu and `apps_out` for
/// --query-compute-apps (after checking the arguments), exits `status`.
fn fake_smi(dir: &Path, gpu_out: &Path, apps_out: Option<&Path>, status: i32) -> PathBuf {
    let apps = apps_out.map_or("".into(), |p| format!("cat '{}'", p.display()));
    let script = format!(
        "#!/bin/sh\n\
         [ \"$2\" = '--format=csv,noheader,nounits' ] || exit 9\n\
         case \"$1\" in\n\
           '{gpu_q}') cat '{gpu}' ;;\n\
           '{apps_q}') {apps} ;;\n\
           *) echo \"Field \\\"$1\\\" is not a valid field to query.\"; exit 2 ;;\n\
         esac\n\
         exit {status}\n",
        gpu_q = smi::QUERY_GPU,
        apps_q = smi::QUERY_APPS,
        gpu = gpu_out.display(),
    );
    write_script(&dir.join("nvidia-smi"), &script)
}

/// Written by a child shell, not by this process: a file this process
/// held open for writing could leak, through a fork by another test
/// thread, into a child and make executing it fail with ETXTBSY.
fn write_script(path: &Path, text: &str) -> PathBuf {
    let ok = std::process::Command::new("sh")
        .args([
            "-c",
            "printf '%s' \"$1\" > \"$2\" && chmod 755 \"$2\"",
            "sh",
            text,
        ])
        .arg(path)
        .status()
        .unwrap()
        .success();
    assert!(ok, "writing {}", path.display());
    path.to_path_buf()
}

fn point<'a>(
    pts: &'a [Point],
    metric: &semconv::Metric,
    key: &str,
    val: AttrValue,
) -> Option<&'a Point> {
    pts.iter().find(|p| {
        std::ptr::eq(p.metric, metric) && p.attrs.iter().any(|(k, v)| *k == key && *v == val)
    })
}

fn uuid(u: &str) -> AttrValue {
    AttrValue::from(u)
}

const RTX: &str = "GPU-10fb0fbd-2696-43f3-467f-d280d906a107";
const H100: &str = "GPU-1c5e4b2a-9f3d-7e61-0a2b-3c4d5e6f7a8b";

#[test]
fn fake_nvml_answers_every_value_and_is_loaded_once() {
    let dir = tempfile::tempdir().unwrap();
    let lib = fake_nvml::build(dir.path(), &[]);
    let mut src = GpuSource::new(
        &config(Some(&lib), Path::new("/nonexistent/nvidia-smi")),
        empty_host(dir.path()),
    );
    let (r, snap) = sample(&mut src);
    r.unwrap();
    let g = snap.get::<GpuStats>().unwrap();
    assert_eq!(g.backend, "nvml");
    assert_eq!(g.devices.len(), 2);
    let d0 = &g.devices[0];
    assert_eq!(
        (d0.index, d0.name.as_str(), d0.vendor, d0.uuid.as_deref()),
        (0, "NVIDIA GeForce RTX 4090", "nvidia", Some(RTX))
    );
    assert_eq!(d0.pci_bus_id.as_deref(), Some("0000:01:00.0"));
    assert_eq!(d0.vram_used_bytes, Some(752 * MIB));
    assert_eq!(d0.vram_total_bytes, Some(24564 * MIB));
    assert_eq!(d0.utilization_percent, Some(19.0));
    assert_eq!(d0.temperature_celsius, Some(44.0));
    assert_eq!(d0.power_watts, Some(14.53));
    let d1 = &g.devices[1];
    assert_eq!(d1.pci_bus_id.as_deref(), Some("0000:18:00.0"));
    assert_eq!((d1.power_watts, d1.energy_counter_mj), (None, None));
    // 4242 is listed as compute and graphics: counted once. 5151's memory
    // is NVML_VALUE_NOT_AVAILABLE: left out.
    assert_eq!(
        g.processes,
        vec![
            GpuProcess {
                pid: 777,
                gpu_index: 0,
                used_bytes: 64 * MIB,
                sm_util: Some(0)
            },
            GpuProcess {
                pid: 4242,
                gpu_index: 0,
                used_bytes: 512 * MIB,
                sm_util: Some(0)
            },
        ]
    );

    let pts = snap.points();
    let p = point(&pts, &semconv::GPU_VRAM_USED_MB, attr::GPU_UUID, uuid(RTX)).unwrap();
    assert_eq!(p.value, 752.0);
    assert_eq!(
        p.attrs,
        vec![
            (attr::GPU_INDEX, AttrValue::Int(0)),
            (attr::GPU_NAME, "NVIDIA GeForce RTX 4090".into()),
            (attr::GPU_VENDOR, "nvidia".into()),
            (attr::GPU_UUID, RTX.into()),
            (attr::GPU_PCI_BUS_ID, "0000:01:00.0".into()),
        ]
    );
    let v = |m, u| point(&pts, m, attr::GPU_UUID, uuid(u)).map(|p| p.value);
    assert_eq!(v(&semconv::GPU_VRAM_TOTAL_MB, H100), Some(81559.0));
    assert_eq!(v(&semconv::GPU_VRAM_USED_MB, H100), Some(0.0));
    assert_eq!(v(&semconv::GPU_UTILIZATION_PERCENT, RTX), Some(19.0));
    assert_eq!(v(&semconv::GPU_TEMPERATURE, H100), Some(31.0));
    assert_eq!(v(&semconv::POWER_GPU_WATTS, RTX), Some(14.53));
    assert_eq!(
        v(&semconv::POWER_GPU_WATTS, H100),
        None,
        "NOT_SUPPORTED is absent"
    );
    let index_of_h100 = point(&pts, &semconv::GPU_TEMPERATURE, attr::GPU_UUID, uuid(H100))
        .and_then(|p| p.attrs.iter().find(|(k, _)| *k == attr::GPU_INDEX))
        .map(|(_, v)| v.clone());
    assert_eq!(index_of_h100, Some(AttrValue::Int(1)));

    // Energy: the RTX counter gains 2500 mJ per read; the H100 has none.
    let energy = |s: &Snapshot| s.get::<GpuStats>().and_then(|g| g.energy_joules);
    assert_eq!(energy(&snap), Some(0.0));
    let (_, snap2) = sample(&mut src);
    assert_eq!(energy(&snap2), Some(2.5));
    let (_, snap3) = sample(&mut src);
    assert_eq!(energy(&snap3), Some(5.0));
    let e = point(
        &snap3.points(),
        &semconv::ENERGY_JOULES,
        attr::DOMAIN,
        "gpu".into(),
    )
    .map(|p| p.value);
    assert_eq!(e, Some(5.0));

    assert_eq!(
        fake_nvml::calls(dir.path()),
        vec!["init"],
        "loaded once for three samples"
    );
    drop(src);
    assert_eq!(fake_nvml::calls(dir.path()), vec!["init", "shutdown"]);
}

#[test]
fn nvml_without_a_driver_is_tried_once_then_nvidia_smi_answers() {
    let dir = tempfile::tempdir().unwrap();
    let lib = fake_nvml::build(dir.path(), &["FAKE_NVML_NO_DRIVER"]);
    let smi = fake_smi(
        dir.path(),
        &fixtures().join("nvidia-smi/two-gpus.csv"),
        Some(&fixtures().join("nvidia-smi/compute-apps.csv")),
        0,
    );
    let mut src = GpuSource::new(&config(Some(&lib), &smi), empty_host(dir.path()));
    for _ in 0..3 {
        let (r, snap) = sample(&mut src);
        r.unwrap();
        let g = snap.get::<GpuStats>().cloned().unwrap();
        assert_eq!(g.backend, "nvidia-smi");
        assert_eq!(g.devices.len(), 2);
        assert_eq!(g.devices[0].uuid.as_deref(), Some(H100));
        assert_eq!(g.devices[1].vram_used_bytes, Some(752 * MIB));
        assert_eq!(g.devices[1].power_watts, Some(14.53));
        // compute-apps: 4242 on both GPUs; 5151's [N/A] memory left out.
        assert_eq!(
            g.processes,
            vec![
                GpuProcess {
                    pid: 4242,
                    gpu_index: 1,
                    used_bytes: 8960 * MIB,
                    sm_util: None
                },
                GpuProcess {
                    pid: 4242,
                    gpu_index: 0,
                    used_bytes: 1024 * MIB,
                    sm_util: None
                },
            ]
        );
    }
    assert_eq!(fake_nvml::calls(dir.path()), vec!["init"]);
}

#[test]
fn recorded_unavailable_fields_are_absent() {
    let text =
        std::fs::read_to_string(fixtures().join("nvidia-smi/unavailable-fields.csv")).unwrap();
    let d = smi::parse_query_gpu(&text);
    assert_eq!(d.len(), 3, "the WARNING line is skipped");
    assert_eq!(d[0].name, "NVIDIA GB10");
    assert_eq!(d[0].pci_bus_id.as_deref(), Some("000f:01:00.0"));
    assert_eq!((d[0].vram_used_bytes, d[0].vram_total_bytes), (None, None));
    assert_eq!(d[0].power_watts, Some(11.2));
    assert_eq!((d[1].utilization_percent, d[1].power_watts), (None, None));
    assert_eq!(d[1].vram_total_bytes, Some(4096 * MIB));
    assert_eq!(d[2].pci_bus_id.as_deref(), Some("0000:b3:00.0"));
    assert_eq!(
        (d[2].utilization_percent, d[2].power_watts),
        (Some(0.0), None)
    );
    for f in ["no-devices.txt", "no-driver.txt"] {
        let text = std::fs::read_to_string(fixtures().join("nvidia-smi").join(f)).unwrap();
        assert!(smi::parse_query_gpu(&text).is_empty(), "{f}");
    }
}

#[test]
fn nvidia_smi_failures_give_no_data() {
    let dir = tempfile::tempdir().unwrap();
    // Non-zero exit, even with rows on stdout.
    let smi = fake_smi(
        dir.path(),
        &fixtures().join("nvidia-smi/two-gpus.csv"),
        None,
        15,
    );
    let mut b = smi::SmiBackend::new(smi, Duration::from_secs(5));
    let e = b.read().unwrap_err();
    // 15: the GPU fell off the bus, a driver that is there and broken.
    assert!(matches!(e, SourceError::Failed(_)), "{e}");
    assert!(e.to_string().contains("exited with"), "{e}");
    // Exit 0 with only a message: no GPU.
    let smi = fake_smi(
        dir.path(),
        &fixtures().join("nvidia-smi/no-devices.txt"),
        None,
        0,
    );
    let mut b = smi::SmiBackend::new(smi, Duration::from_secs(5));
    let e = b.read().unwrap_err();
    assert!(matches!(e, SourceError::Unavailable(_)), "{e}");
    assert!(e.to_string().contains("No devices were found"), "{e}");
    // Without a driver (exit 9): nothing to read, not broken.
    let smi = fake_smi(
        dir.path(),
        &fixtures().join("nvidia-smi/no-driver.txt"),
        None,
        9,
    );
    let e = smi::SmiBackend::new(smi, Duration::from_secs(5))
        .read()
        .unwrap_err();
    assert!(matches!(e, SourceError::Unavailable(_)), "{e}");
    assert!(e.to_string().contains("NVIDIA driver"), "{e}");
    // Not installed: asked once, then no process per cycle. A program
    // that appears later is not picked up (like NVML, loaded once).
    let later = dir.path().join("later/nvidia-smi");
    let mut b = smi::SmiBackend::new(later.clone(), Duration::from_secs(5));
    let missing = |b: &mut smi::SmiBackend| match b.read() {
        Err(SourceError::Unavailable(why)) => why.contains("cannot run"),
        _ => false,
    };
    assert!(missing(&mut b));
    std::fs::create_dir(dir.path().join("later")).unwrap();
    fake_smi(
        &dir.path().join("later"),
        &fixtures().join("nvidia-smi/two-gpus.csv"),
        None,
        0,
    );
    assert!(later.exists());
    assert!(missing(&mut b));
    assert_eq!(
        smi::SmiBackend::new(later, Duration::from_secs(5))
            .read()
            .map(|r| r.devices.len()),
        Ok(2)
    );
}

#[test]
fn a_hanging_nvidia_smi_is_killed_and_reaped() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    // Prints half a row, then hangs; `exec` keeps the pid, so the pid the
    // script wrote is the process the timeout must kill.
    let smi = write_script(
        &dir.path().join("nvidia-smi"),
        &format!(
            "#!/bin/sh\necho $$ > '{}'\nprintf '0, NVIDIA H1'\nexec sleep 30\n",
            pid_file.display()
        ),
    );
    let mut b = smi::SmiBackend::new(smi, Duration::from_millis(300));
    let e = b.read().unwrap_err();
    assert!(matches!(e, SourceError::Failed(_)), "{e}");
    assert!(e.to_string().contains("no answer within 300ms"), "{e}");
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    let proc_dir = PathBuf::from(format!("/proc/{}", pid.trim()));
    // Killed and reaped: no process, not even a zombie, is left.
    assert!(!proc_dir.exists(), "nvidia-smi {} still exists", pid.trim());
}

fn amdgpu_host() -> HostPaths {
    HostPaths::under(fixtures().join("hosts/amdgpu-mixed"))
}

#[test]
fn amdgpu_cards_from_sysfs() {
    let mut b = gpu::amdgpu::AmdgpuBackend::new(amdgpu_host());
    let r = b.read().unwrap();
    let ids: Vec<_> = r.devices.iter().map(|d| d.pci_bus_id.as_deref()).collect();
    // card1 (i915), card0-DP-1 and renderD128 are not amdgpu cards.
    assert_eq!(
        ids,
        vec![
            Some("0000:03:00.0"),
            Some("0000:c4:00.0"),
            Some("0000:83:00.0"),
            Some("0000:0a:00.0")
        ]
    );
    let [dgpu, apu, mi210, junk] = &r.devices[..] else {
        panic!("{:?}", r.devices)
    };
    assert_eq!(
        (dgpu.index, dgpu.name.as_str(), dgpu.vendor),
        (0, "AMD GPU 0x73bf", "amd")
    );
    assert_eq!(dgpu.vram_total_bytes, Some(17_163_091_968));
    assert_eq!(dgpu.vram_used_bytes, Some(1_234_567_168));
    assert_eq!(dgpu.utilization_percent, Some(37.0));
    assert_eq!(
        dgpu.temperature_celsius,
        Some(44.0),
        "temp1 (edge), not junction"
    );
    assert_eq!(dgpu.power_watts, Some(27.0));
    assert_eq!(dgpu.uuid, None);

    assert_eq!((apu.index, apu.vram_total_bytes), (1, Some(512 * MIB)));
    assert_eq!(apu.vram_used_bytes, Some(134 * MIB));
    assert_eq!(apu.utilization_percent, Some(3.0));
    assert_eq!(apu.temperature_celsius, Some(39.0));
    assert_eq!(
        apu.power_watts,
        Some(8.123),
        "power1_input when there is no power1_average"
    );

    assert_eq!(
        (mi210.index, mi210.name.as_str()),
        (2, "AMD Instinct MI210")
    );
    assert_eq!(mi210.uuid.as_deref(), Some("1e0a6b3f2c4d5e6f"));
    assert_eq!(mi210.vram_used_bytes, Some(12 * MIB));
    // Suspended: its sensors are not read, so it is not woken.
    assert_eq!(
        (
            mi210.utilization_percent,
            mi210.temperature_celsius,
            mi210.power_watts
        ),
        (None, None, None)
    );

    assert_eq!(junk.vram_total_bytes, Some(24560 * MIB));
    assert_eq!(
        (junk.vram_used_bytes, junk.utilization_percent),
        (None, None)
    );
    assert_eq!((junk.temperature_celsius, junk.power_watts), (None, None));
}

#[test]
fn the_chain_falls_through_to_amdgpu_and_then_to_nothing() {
    let nothing = Path::new("/nonexistent/unamentis");
    let mut src = GpuSource::new(
        &config(
            Some(&nothing.join("libnvidia-ml.so")),
            &nothing.join("nvidia-smi"),
        ),
        amdgpu_host(),
    );
    let (r, snap) = sample(&mut src);
    r.unwrap();
    let g = snap.get::<GpuStats>().cloned().unwrap();
    assert_eq!((g.backend, g.devices.len()), ("amdgpu", 4));
    assert!(g.processes.is_empty());
    // Power readings exist but no interval has passed yet.
    assert_eq!(g.energy_joules, Some(0.0));

    let dir = tempfile::tempdir().unwrap();
    let mut src = GpuSource::new(
        &config(
            Some(&nothing.join("libnvidia-ml.so")),
            &nothing.join("nvidia-smi"),
        ),
        empty_host(dir.path()),
    );
    let (r, snap) = sample(&mut src);
    let Err(SourceError::Unavailable(why)) = r else {
        panic!("{r:?}")
    };
    assert_eq!(why, "no GPU found (tried nvml, nvidia-smi, amdgpu)");
    assert!(snap.get::<GpuStats>().is_none());
    assert!(snap.points().is_empty());
}

/// A GPU stack that is there but broken is reported failed, naming the
/// backend and why; one that is absent stays unavailable.
#[test]
fn a_broken_driver_is_failed_not_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let lib = fake_nvml::build(dir.path(), &["FAKE_NVML_VERSION_MISMATCH"]);
    let smi = fake_smi(
        dir.path(),
        &fixtures().join("nvidia-smi/two-gpus.csv"),
        None,
        15,
    );
    let mut src = GpuSource::new(&config(Some(&lib), &smi), empty_host(dir.path()));
    let (r, snap) = sample(&mut src);
    let Err(SourceError::Failed(why)) = r else {
        panic!("{r:?}")
    };
    assert!(
        why.starts_with(
            "nvml: cannot load NVML: RM detects a driver/library version mismatch; nvidia-smi: "
        ),
        "{why}"
    );
    assert!(why.contains("exited with"), "{why}");
    assert!(
        !why.contains("amdgpu"),
        "an absent backend is not a failure: {why}"
    );
    assert!(snap.get::<GpuStats>().is_none());
    // Broken NVML, but nvidia-smi answers: up.
    let smi = fake_smi(
        dir.path(),
        &fixtures().join("nvidia-smi/two-gpus.csv"),
        None,
        0,
    );
    let mut src = GpuSource::new(&config(Some(&lib), &smi), empty_host(dir.path()));
    let (r, snap) = sample(&mut src);
    r.unwrap();
    assert_eq!(
        snap.get::<GpuStats>().cloned().unwrap().backend,
        "nvidia-smi"
    );
}

#[test]
fn nvml_with_no_gpu_falls_through() {
    let dir = tempfile::tempdir().unwrap();
    let lib = fake_nvml::build(dir.path(), &["FAKE_NVML_NO_DEVICES"]);
    let mut src = GpuSource::new(
        &config(Some(&lib), Path::new("/nonexistent/nvidia-smi")),
        amdgpu_host(),
    );
    let (r, snap) = sample(&mut src);
    r.unwrap();
    assert_eq!(snap.get::<GpuStats>().cloned().unwrap().backend, "amdgpu");
}

fn models(vram: &[(&str, u64)]) -> OllamaStats {
    OllamaStats {
        models: vram
            .iter()
            .map(|(n, v)| LoadedModel {
                name: (*n).into(),
                size_bytes: 2 * v + 1,
                size_vram_bytes: *v,
                expires_at: None,
            })
            .collect(),
    }
}

#[test]
fn ollama_estimates_vram_only_without_a_gpu_backend() {
    let ollama = models(&[
        ("mistral:latest", 4096 * MIB),
        ("phi3:mini", 0),
        ("qwen2:7b", 1024 * MIB),
    ]);
    let alone = Snapshot::default().with(ollama.clone());
    let pts = alone.points();
    let est: Vec<_> = pts
        .iter()
        .filter(|p| std::ptr::eq(p.metric, &semconv::GPU_VRAM_USED_MB))
        .collect();
    assert_eq!(est.len(), 1);
    assert_eq!(est[0].value, 5120.0);
    assert_eq!(
        est[0].attrs,
        vec![
            (attr::GPU_INDEX, AttrValue::Int(0)),
            (attr::GPU_NAME, "ollama-estimate".into()),
            (attr::GPU_VENDOR, "ollama-estimate".into()),
        ]
    );
    let m = |metric, model: &str| point(&pts, metric, attr::MODEL, model.into()).map(|p| p.value);
    assert_eq!(m(&semconv::MODEL_LOADED, "phi3:mini"), Some(1.0));
    assert_eq!(m(&semconv::MODEL_VRAM_MB, "phi3:mini"), Some(0.0));
    assert_eq!(m(&semconv::MODEL_VRAM_MB, "mistral:latest"), Some(4096.0));
    assert_eq!(
        pts.iter()
            .filter(|p| std::ptr::eq(p.metric, &semconv::MODEL_LOADED))
            .count(),
        3
    );

    // With a GPU backend, only the real device points remain.
    let with_gpu = Snapshot::default().with(ollama).with(GpuStats {
        backend: "amdgpu",
        devices: vec![gpu::GpuDevice {
            name: "AMD GPU 0x73bf".into(),
            vendor: "amd",
            vram_used_bytes: Some(MIB),
            ..Default::default()
        }],
        ..Default::default()
    });
    let vram: Vec<_> = with_gpu
        .points()
        .into_iter()
        .filter(|p| std::ptr::eq(p.metric, &semconv::GPU_VRAM_USED_MB))
        .collect();
    assert_eq!(vram.len(), 1);
    assert_eq!(vram[0].attrs[2], (attr::GPU_VENDOR, "amd".into()));

    // Models on the CPU only, or none: no estimate.
    for o in [models(&[("phi3:mini", 0)]), models(&[])] {
        let s = Snapshot::default().with(o);
        assert!(
            !s.points()
                .iter()
                .any(|p| std::ptr::eq(p.metric, &semconv::GPU_VRAM_USED_MB))
        );
    }
}

#[test]
fn gpu_points_use_only_registered_attributes() {
    let dir = tempfile::tempdir().unwrap();
    let lib = fake_nvml::build(dir.path(), &[]);
    let mut src = GpuSource::new(
        &config(Some(&lib), Path::new("/nonexistent/nvidia-smi")),
        empty_host(dir.path()),
    );
    let (_, mut snap) = sample(&mut src);
    snap.put(models(&[("a:b", MIB)]));
    let mut amd = GpuSource::new(
        &config(None, Path::new("/nonexistent/nvidia-smi")),
        amdgpu_host(),
    );
    let mut pts = snap.points();
    if let (Ok(()), s) = sample(&mut amd) {
        pts.extend(s.points());
    }
    assert!(pts.len() > 10);
    for p in &pts {
        for (k, _) in &p.attrs {
            assert!(
                p.metric.attributes.contains(k),
                "{} has unregistered attribute {k}",
                p.metric.name
            );
        }
    }
}

/// On a real NVIDIA host: `cargo test -- --ignored nvml`. NVML and
/// nvidia-smi must see the same GPUs and VRAM use within 1 %.
#[test]
#[ignore = "needs an NVIDIA GPU, its driver and nvidia-smi"]
fn nvml_agrees_with_nvidia_smi_on_a_real_gpu() {
    let mut nvml = gpu::nvml::NvmlBackend::new(None);
    let n = nvml.read().expect("NVML answers on this host");
    let text = smi::run(
        &PathBuf::from("nvidia-smi"),
        &[smi::QUERY_GPU, "--format=csv,noheader,nounits"],
        Duration::from_secs(10),
    )
    .expect("nvidia-smi answers on this host");
    let s = smi::parse_query_gpu(&text);
    println!(
        "NVML: {:#?}\nprocesses: {:?}\nnvidia-smi: {:#?}",
        n.devices, n.processes, s
    );
    assert_eq!(n.devices.len(), s.len(), "device count");
    for (a, b) in n.devices.iter().zip(&s) {
        assert_eq!(a.uuid, b.uuid, "same enumeration order");
        assert_eq!(a.pci_bus_id, b.pci_bus_id);
        let total = a.vram_total_bytes.expect("NVML total") as f64;
        let smi_total = b.vram_total_bytes.expect("nvidia-smi total") as f64;
        assert!(
            (total - smi_total).abs() <= 0.01 * smi_total,
            "{total} vs {smi_total}"
        );
        let used = a.vram_used_bytes.expect("NVML used") as f64;
        let smi_used = b.vram_used_bytes.expect("nvidia-smi used") as f64;
        // Both round differently (nvidia-smi prints whole MiB): 1 % of the
        // total, as a small used value makes a relative error meaningless.
        assert!(
            (used - smi_used).abs() <= 0.01 * smi_total,
            "{used} vs {smi_used}"
        );
    }
}

/// On a real NVIDIA host: `cargo test -- --ignored --nocapture pmon`.
/// NVML's per-process SM utilization (what splits GPU power between
/// services) beside `nvidia-smi pmon`'s view of the same second: every
/// process pmon sees busy must be in NVML's list with a sampled weight.
#[test]
#[ignore = "needs an NVIDIA GPU, its driver and nvidia-smi"]
fn nvml_process_utilization_beside_nvidia_smi_pmon_on_a_real_gpu() {
    let mut nvml = gpu::nvml::NvmlBackend::new(None);
    nvml.read().expect("NVML answers on this host");
    let pmon = std::process::Command::new("nvidia-smi")
        .args(["pmon", "-c", "1", "-s", "u"])
        .output()
        .expect("nvidia-smi pmon runs");
    let n = nvml.read().expect("NVML answers again");
    let text = String::from_utf8_lossy(&pmon.stdout);
    println!(
        "nvidia-smi pmon:\n{text}\nNVML processes: {:#?}",
        n.processes
    );
    // `# gpu pid type sm mem enc dec command`; `-` where nothing was seen.
    for line in text.lines().filter(|l| !l.trim_start().starts_with('#')) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (Some(gpu), Some(pid), Some(sm)) = (
            f.first().and_then(|v| v.parse::<u32>().ok()),
            f.get(1).and_then(|v| v.parse::<u32>().ok()),
            f.get(3).and_then(|v| v.parse::<u32>().ok()),
        ) else {
            continue;
        };
        if sm == 0 {
            continue;
        }
        let seen = n
            .processes
            .iter()
            .find(|p| p.pid == pid && p.gpu_index == gpu)
            .unwrap_or_else(|| panic!("pmon: pid {pid} at {sm} % on GPU {gpu}, NVML lists it not"));
        assert!(seen.sm_util.is_some(), "NVML gave no utilization for {pid}");
    }
}

/// One GPU source cycle bracketed by two instants, like the agent's own
/// `Instant::now()` inside it.
struct Timed {
    before: std::time::Instant,
    after: std::time::Instant,
    result: Result<(), SourceError>,
    gpu: Option<GpuStats>,
}

fn timed(src: &mut GpuSource) -> Timed {
    let before = std::time::Instant::now();
    let (result, snap) = sample(src);
    Timed {
        before,
        after: std::time::Instant::now(),
        result,
        gpu: snap.get::<GpuStats>().cloned(),
    }
}

/// Joules of `watts` between two cycles: (least, most) for the Δt the
/// source saw, which lies between the brackets.
fn joules_between(watts: f64, prev: &Timed, next: &Timed) -> (f64, f64) {
    (
        watts * (next.before - prev.after).as_secs_f64(),
        watts * (next.after - prev.before).as_secs_f64(),
    )
}

fn energy(t: &Timed) -> f64 {
    t.gpu.as_ref().unwrap().energy_joules.unwrap()
}

fn assert_within(got: f64, (lo, hi): (f64, f64)) {
    // The bounds come from f64 seconds; allow rounding, not time.
    assert!(
        got >= lo - 1e-9 && got <= hi + 1e-9,
        "{got} not in [{lo}, {hi}]"
    );
}

/// A card that leaves (hot unplug, driver unbind) and comes back: while it
/// is gone the total is kept, and the time it was away adds nothing, both
/// when another card stays and when it was the last one.
#[test]
fn a_hot_unplugged_gpu_keeps_the_energy_total_and_its_absence_adds_nothing() {
    let dir = support::fixtures::host_copy("amdgpu-mixed");
    let drm = dir.path().join("sys/class/drm");
    // Two powered cards: card0 (dGPU, power1_average 27 W) and card2
    // (APU, power1_input 8.123 W).
    for gone in ["card3", "card4"] {
        std::fs::remove_dir_all(drm.join(gone)).unwrap();
    }
    let (dgpu, apu) = (27.0, 8.123);
    let away = dir.path().join("unplugged");
    let unplug = |card: &str| std::fs::rename(drm.join(card), away.join(card)).unwrap();
    let replug = |card: &str| std::fs::rename(away.join(card), drm.join(card)).unwrap();
    std::fs::create_dir(&away).unwrap();
    let mut src = GpuSource::with_backends(vec![Box::new(gpu::amdgpu::AmdgpuBackend::new(
        HostPaths::under(dir.path()),
    ))]);

    let t0 = timed(&mut src);
    assert_eq!(t0.gpu.as_ref().unwrap().devices.len(), 2);
    assert_eq!(
        energy(&t0),
        0.0,
        "a device seen the first time adds nothing"
    );
    let t1 = timed(&mut src);
    let (lo, hi) = joules_between(dgpu + apu, &t0, &t1);
    assert_within(energy(&t1), (lo, hi));

    // The dGPU leaves; the APU goes on alone.
    unplug("card0");
    let t2 = timed(&mut src);
    let devices = &t2.gpu.as_ref().unwrap().devices;
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0].pci_bus_id.as_deref(), Some("0000:c4:00.0"));
    let (lo, hi) = joules_between(apu, &t1, &t2);
    assert_within(energy(&t2) - energy(&t1), (lo, hi));
    std::thread::sleep(Duration::from_millis(300));
    // Back: the dGPU counts again only from its next reading.
    replug("card0");
    let t3 = timed(&mut src);
    assert_eq!(t3.gpu.as_ref().unwrap().devices.len(), 2);
    let (lo, hi) = joules_between(apu, &t2, &t3);
    assert_within(energy(&t3) - energy(&t2), (lo, hi));

    // Every card leaves: the source is down, no GPU point, nothing lost.
    unplug("card0");
    unplug("card2");
    let t4 = timed(&mut src);
    assert!(t4.result.is_err());
    assert!(t4.gpu.as_ref().is_none());
    std::thread::sleep(Duration::from_millis(300));
    replug("card0");
    replug("card2");
    let t5 = timed(&mut src);
    assert!(t5.result.is_ok());
    assert_eq!(
        energy(&t5),
        energy(&t3),
        "the cards' absence must add no energy"
    );
    let t6 = timed(&mut src);
    let (lo, hi) = joules_between(dgpu + apu, &t5, &t6);
    assert_within(energy(&t6) - energy(&t5), (lo, hi));
}
