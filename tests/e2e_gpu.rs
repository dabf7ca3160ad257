//! The real binary, GPU and Ollama metrics through the real OTLP path: a
//! fake NVML library and a fake Ollama, then a host with neither.

mod support;

use std::time::Duration;

use support::agent::Agent;
use support::fake_nvml;
use support::fake_ollama::{Answer, FakeOllama, ps_body};
use support::otlp_receiver::{Received, Receiver, attr, find_value, metrics, points};

/// Guards against hangs only; nothing asserts on elapsed time.
const LIMIT: Duration = Duration::from_secs(30);
const MIB: u64 = 1024 * 1024;
const RTX: &str = "GPU-10fb0fbd-2696-43f3-467f-d280d906a107";
const H100: &str = "GPU-1c5e4b2a-9f3d-7e61-0a2b-3c4d5e6f7a8b";

fn names(r: &Received) -> Vec<String> {
    metrics(r).iter().map(|m| m.name.clone()).collect()
}

fn source_up(r: &Received, source: &str) -> Option<f64> {
    find_value(
        r,
        "unamentis.server.agent.source.up",
        Some(("source", source)),
    )
}

/// A port nothing listens on.
fn closed_port_url() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("http://127.0.0.1:{port}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_nvml_and_fake_ollama_reach_the_collector() {
    let dir = tempfile::tempdir().unwrap();
    let lib = fake_nvml::build(dir.path(), &[]);
    let ollama = FakeOllama::start(Answer::Json(ps_body(&[
        ("mistral:latest", 5_137_025_024, 5_137_025_024),
        ("phi3:mini", 2_300 * MIB, 0),
    ])));
    let rx = Receiver::grpc().await;
    let mut agent = Agent::spawn(
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &rx.endpoint()),
            ("UNAMENTIS_AGENT_INTERVAL", "1s"),
            ("UNAMENTIS_AGENT_GPU_NVML_LIBRARY", lib.to_str().unwrap()),
            ("UNAMENTIS_AGENT_GPU_NVIDIA_SMI", "/nonexistent/nvidia-smi"),
            ("UNAMENTIS_AGENT_OLLAMA_URL", &ollama.url()),
        ],
        &["run"],
    );
    let got = rx.wait_for(2, LIMIT).await;
    let first = &got[0];
    assert_eq!(
        source_up(first, "gpu"),
        Some(1.0),
        "log:\n{}",
        agent.log_text()
    );
    assert_eq!(source_up(first, "ollama"), Some(1.0));

    let gpu_point = |name: &str, uuid: &str| {
        metrics(first)
            .into_iter()
            .filter(|m| m.name == name)
            .flat_map(|m| points(m).iter())
            .find(|p| attr(p, "gpu.uuid").as_deref() == Some(uuid))
            .cloned()
    };
    let p = gpu_point("unamentis.server.gpu.vram_used_mb", RTX).expect("vram of GPU 0");
    assert_eq!(support::otlp_receiver::value(&p), 752.0);
    assert_eq!(
        attr(&p, "gpu.name").as_deref(),
        Some("NVIDIA GeForce RTX 4090")
    );
    assert_eq!(attr(&p, "gpu.vendor").as_deref(), Some("nvidia"));
    assert_eq!(attr(&p, "gpu.pci_bus_id").as_deref(), Some("0000:01:00.0"));
    let index = p
        .attributes
        .iter()
        .find(|kv| kv.key == "gpu.index")
        .unwrap();
    assert_eq!(
        index.value.as_ref().and_then(|v| v.value.clone()),
        Some(opentelemetry_proto::tonic::common::v1::any_value::Value::IntValue(0)),
        "gpu.index is an int attribute"
    );
    let v =
        |name: &str, uuid: &str| gpu_point(name, uuid).map(|p| support::otlp_receiver::value(&p));
    assert_eq!(v("unamentis.server.gpu.vram_total_mb", H100), Some(81559.0));
    assert_eq!(
        v("unamentis.server.gpu.utilization_percent", RTX),
        Some(19.0)
    );
    assert_eq!(v("unamentis.server.gpu.temperature", H100), Some(31.0));
    assert_eq!(v("unamentis.server.power.gpu_watts", RTX), Some(14.53));
    assert_eq!(v("unamentis.server.power.gpu_watts", H100), None);

    // The fake's energy counter gains 2.5 J per read, one read per cycle.
    let energy =
        |r: &Received| find_value(r, "unamentis.server.energy.joules", Some(("domain", "gpu")));
    assert_eq!(energy(first), Some(0.0));
    assert_eq!(energy(&got[1]), Some(2.5));

    let model = |name: &str, model: &str| find_value(first, name, Some(("model", model)));
    assert_eq!(
        model("unamentis.server.model.loaded", "mistral:latest"),
        Some(1.0)
    );
    assert_eq!(
        model("unamentis.server.model.loaded", "phi3:mini"),
        Some(1.0)
    );
    assert_eq!(
        model("unamentis.server.model.vram_mb", "mistral:latest"),
        Some(5_137_025_024.0 / MIB as f64)
    );
    assert_eq!(
        model("unamentis.server.model.vram_mb", "phi3:mini"),
        Some(0.0)
    );
    assert_eq!(
        find_value(
            first,
            "unamentis.server.gpu.vram_used_mb",
            Some(("gpu.vendor", "ollama-estimate"))
        ),
        None,
        "no estimate when NVML answers"
    );
    assert!(ollama.heads().iter().all(|h| h.starts_with("GET /api/ps ")));

    agent.signal("TERM");
    assert!(agent.wait(LIMIT).success(), "{}", agent.log_text());
    assert_eq!(fake_nvml::calls(dir.path()), vec!["init", "shutdown"]);
}

/// Environment of an agent on a host without any GPU: no NVML, no
/// nvidia-smi, an empty sysfs.
fn no_gpu_env(
    sys: &std::path::Path,
    ollama_url: &str,
    endpoint: &str,
) -> Vec<(&'static str, String)> {
    vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.to_owned()),
        ("UNAMENTIS_AGENT_INTERVAL", "60s".into()),
        (
            "UNAMENTIS_AGENT_GPU_NVML_LIBRARY",
            "/nonexistent/libnvidia-ml.so".into(),
        ),
        (
            "UNAMENTIS_AGENT_GPU_NVIDIA_SMI",
            "/nonexistent/nvidia-smi".into(),
        ),
        ("UNAMENTIS_AGENT_HOST_SYS", sys.display().to_string()),
        ("UNAMENTIS_AGENT_OLLAMA_URL", ollama_url.to_owned()),
    ]
}

/// Starts the agent on a host without any GPU and returns its first
/// export, checked to report the gpu source down.
async fn first_export_without_gpu(ollama_url: &str) -> (Agent, Received) {
    let sys = tempfile::tempdir().unwrap();
    let rx = Receiver::grpc().await;
    let env = no_gpu_env(sys.path(), ollama_url, &rx.endpoint());
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let agent = Agent::spawn(&env, &["run"]);
    let first = rx.wait_for(1, LIMIT).await.remove(0);
    assert_eq!(
        source_up(&first, "gpu"),
        Some(0.0),
        "log:\n{}",
        agent.log_text()
    );
    (agent, first)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_with_nothing_has_no_gpu_metrics_and_gpu_down() {
    let (mut agent, first) = first_export_without_gpu(&closed_port_url()).await;
    assert_eq!(source_up(&first, "ollama"), Some(0.0));
    for name in names(&first) {
        assert!(
            !name.starts_with("unamentis.server.gpu.")
                && !name.starts_with("unamentis.server.model.")
                && name != "unamentis.server.power.gpu_watts",
            "{name} must be absent"
        );
    }
    assert_eq!(
        find_value(
            &first,
            "unamentis.server.energy.joules",
            Some(("domain", "gpu"))
        ),
        None
    );
    // The rest of the host is still there.
    assert!(find_value(&first, "unamentis.server.memory.total_mb", None).is_some());
    agent.signal("TERM");
    assert!(agent.wait(LIMIT).success(), "{}", agent.log_text());
    let log = agent.log_text();
    assert!(
        !log.contains("NVML"),
        "no NVML line above debug level:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_gpu_ollama_estimates_the_vram() {
    let ollama = FakeOllama::start(Answer::Json(ps_body(&[
        ("mistral:latest", 5_137_025_024, 5_137_025_024),
        ("llama3.1:8b", 6_000 * MIB, 2_880 * MIB),
    ])));
    let (mut agent, first) = first_export_without_gpu(&ollama.url()).await;
    assert_eq!(source_up(&first, "ollama"), Some(1.0));
    let vram: Vec<_> = metrics(&first)
        .into_iter()
        .filter(|m| m.name == "unamentis.server.gpu.vram_used_mb")
        .flat_map(|m| points(m).iter())
        .collect();
    assert_eq!(vram.len(), 1);
    assert_eq!(
        attr(vram[0], "gpu.vendor").as_deref(),
        Some("ollama-estimate")
    );
    assert_eq!(
        support::otlp_receiver::value(vram[0]),
        (5_137_025_024 + 2_880 * MIB) as f64 / MIB as f64
    );
    assert!(!names(&first).contains(&"unamentis.server.gpu.vram_total_mb".to_owned()));
    agent.signal("TERM");
    assert!(agent.wait(LIMIT).success(), "{}", agent.log_text());
}
