//! Which service holds the GPU's watts, through the real binary and OTLP:
//! the fake NVML reports real processes of this test (by pid) on a 100 W
//! card, with the per-process SM utilization and memory the test writes.

mod support;

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use support::agent::{Agent, command};
use support::fake_nvml;
use support::otlp_receiver::{Received, Receiver, attr, metrics, points, value};

/// Guards against hangs only; nothing asserts on elapsed time.
const LIMIT: Duration = Duration::from_secs(30);
const INTERVAL_MS: u64 = 200;

/// A process whose executable name is `name`: a copy of `sleep`, so that
/// a `process` matcher finds it and nothing else.
struct Named(Child);

impl Named {
    fn start(dir: &Path, name: &str) -> Named {
        let exe = dir.join(name);
        std::fs::copy("/bin/sleep", &exe).unwrap();
        Named(Command::new(&exe).arg("600").spawn().unwrap())
    }
    fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Named {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn scenario(path: &Path, procs: &[(u32, u64, u32)]) {
    // No energy counter: the interval's power is the reading, 100 W.
    let mut text = String::from("power 0 100000\nnoenergy 0\n");
    for (pid, mib, sm) in procs {
        text.push_str(&format!("proc 0 {pid} {mib} {sm}\n"));
    }
    // Written whole, then renamed: the fake reads it at every call.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// `service.power_watts{domain=gpu}` by service in one export.
fn gpu_watts(r: &Received) -> Vec<(String, f64)> {
    let mut out: Vec<(String, f64)> = metrics(r)
        .into_iter()
        .filter(|m| m.name == "unamentis.server.service.power_watts")
        .flat_map(|m| points(m).iter())
        .filter(|p| attr(p, "domain").as_deref() == Some("gpu"))
        .map(|p| (attr(p, "unamentis.service").unwrap(), value(p)))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn split_is(r: &Received, want: &[(&str, f64)]) -> bool {
    let got = gpu_watts(r);
    got.len() == want.len()
        && got
            .iter()
            .zip(want)
            .all(|((n, w), (wn, ww))| n == wn && (w - ww).abs() < 1e-9)
}

/// `name{unamentis.service=svc, domain=gpu}` in one export.
fn service_gpu(r: &Received, name: &str, svc: &str) -> Option<f64> {
    metrics(r)
        .into_iter()
        .filter(|m| m.name == name)
        .flat_map(|m| points(m).iter())
        .find(|p| {
            attr(p, "unamentis.service").as_deref() == Some(svc)
                && attr(p, "domain").as_deref() == Some("gpu")
        })
        .map(value)
}

/// Waits for an export that `ok` accepts (a phase change reaches the next
/// cycle's read).
async fn wait_export(
    rx: &Receiver,
    agent: &Agent,
    what: &str,
    ok: impl Fn(&Received) -> bool,
) -> Received {
    let start = Instant::now();
    loop {
        if let Some(r) = rx.received().into_iter().rev().find(|r| ok(r)) {
            return r;
        }
        let last = rx.received().last().map(gpu_watts);
        assert!(
            start.elapsed() < LIMIT,
            "no export with {what}; last split: {last:?}\nlog:\n{}",
            agent.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_split(rx: &Receiver, agent: &Agent, want: &[(&str, f64)]) -> Received {
    wait_export(rx, agent, &format!("{want:?}"), |r| split_is(r, want)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gpu_watts_go_to_the_services_by_sm_time_then_by_memory_held() {
    let dir = tempfile::tempdir().unwrap();
    let lib = fake_nvml::build(dir.path(), &[]);
    let a = Named::start(dir.path(), "gpuwork-a");
    let b = Named::start(dir.path(), "gpuwork-b");
    let c = Named::start(dir.path(), "gpuwork-c");
    let scen = dir.path().join("scenario");
    const GIB: u64 = 1024;
    // A at 60 % SM holding 1 GiB, B at 20 % holding 3 GiB.
    scenario(&scen, &[(a.pid(), GIB, 60), (b.pid(), 3 * GIB, 20)]);

    let cfg = dir.path().join("agent.toml");
    std::fs::write(
        &cfg,
        format!(
            "interval = \"{INTERVAL_MS}ms\"\n\
             default_services = false\n\
             [gpu]\nnvml_library = {lib:?}\nnvidia_smi = \"/nonexistent/nvidia-smi\"\n\
             [ollama]\nenabled = false\n\
             [activity]\nconnections = false\nollama = false\nidle_after = \"1s\"\n\
             [[service]]\nname = \"svc-a\"\nprocess = [\"gpuwork-a\"]\n\
             [[service]]\nname = \"svc-b\"\nprocess = [\"gpuwork-b\"]\n"
        ),
    )
    .unwrap();
    let rx = Receiver::grpc().await;
    let mut cmd = command();
    cmd.args(["--config", cfg.to_str().unwrap(), "run"])
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", rx.endpoint())
        .env("FAKE_NVML_SCENARIO", &scen);
    let agent = Agent::start(cmd);
    let started = Instant::now();

    // Busy: by SM share, 60/80 and 20/80 of 100 W.
    let busy = wait_split(
        &rx,
        &agent,
        &[("other", 0.0), ("svc-a", 75.0), ("svc-b", 25.0)],
    )
    .await;
    let gpu_total: f64 = metrics(&busy)
        .into_iter()
        .filter(|m| m.name == "unamentis.server.power.gpu_watts")
        .flat_map(|m| points(m).iter())
        .map(value)
        .sum();
    assert_eq!(gpu_total, 100.0, "the card's own reading, summed over GPUs");

    // Idle: nobody busy, by memory held, 1/4 and 3/4.
    scenario(&scen, &[(a.pid(), GIB, 0), (b.pid(), 3 * GIB, 0)]);
    wait_split(
        &rx,
        &agent,
        &[("other", 0.0), ("svc-a", 25.0), ("svc-b", 75.0)],
    )
    .await;

    // A third, unwatched process holding 4 GiB: its half is other's.
    scenario(
        &scen,
        &[
            (a.pid(), GIB, 0),
            (b.pid(), 3 * GIB, 0),
            (c.pid(), 4 * GIB, 0),
        ],
    );
    let third = [("other", 50.0), ("svc-a", 12.5), ("svc-b", 37.5)];
    wait_split(&rx, &agent, &third).await;
    // Nothing was used: once idle_after (1 s) has passed, each service's
    // GPU energy counts as its idle energy too.
    let idle_of = |r: &Received, svc: &str| {
        service_gpu(r, "unamentis.server.service.idle_energy.joules", svc).unwrap_or(0.0)
    };
    let last = wait_export(&rx, &agent, "idle GPU energy", |r| {
        split_is(r, &third) && idle_of(r, "svc-a") > 0.0 && idle_of(r, "svc-b") > 0.0
    })
    .await;

    // Energy by domain: the gpu counters of the services plus other add up
    // to the host's GPU energy counter in the same export.
    let sum_where = |name: &str, domain: &str| -> f64 {
        metrics(&last)
            .into_iter()
            .filter(|m| m.name == name)
            .flat_map(|m| points(m).iter())
            .filter(|p| attr(p, "domain").as_deref() == Some(domain))
            .map(value)
            .sum()
    };
    let host = sum_where("unamentis.server.energy.joules", "gpu");
    let split = sum_where("unamentis.server.service.energy.joules", "gpu");
    assert!(host > 0.0);
    assert!(
        (host - split).abs() <= 1e-6 * host,
        "services + other {split} J vs the GPU's {host} J"
    );
    for svc in ["svc-a", "svc-b"] {
        let total = service_gpu(&last, "unamentis.server.service.energy.joules", svc).unwrap();
        let idle = idle_of(&last, svc);
        assert!(idle <= total + 1e-9, "{svc}: idle {idle} J of {total} J");
    }

    // At most one per-process utilization query per GPU per cycle: the
    // fake logs each size query. Cycles cannot outnumber the intervals
    // elapsed (plus the early first export).
    let elapsed = started.elapsed();
    let calls = std::fs::read_to_string(scen.with_extension("calls")).unwrap_or_default();
    let count = |gpu: &str| {
        calls
            .lines()
            .filter(|l| *l == format!("util {gpu}"))
            .count()
    };
    let cycles_at_most = (elapsed.as_millis() as u64 / INTERVAL_MS + 2) as usize;
    assert!(count("0") > 0, "the utilization query was made");
    assert!(
        count("0") <= cycles_at_most && count("1") <= cycles_at_most,
        "{} / {} queries in at most {cycles_at_most} cycles",
        count("0"),
        count("1")
    );
    drop(agent);
}
