//! The real binary on a fixture host whose RAPL `energy_uj` files the test
//! advances between cycles, seen through a real OTLP/gRPC receiver.
//!
//! Joules are compared exactly. Watts are Δenergy / Δt with the agent's own
//! Δt (its sample spacing), which is not exported. The fixture's batteries
//! draw a constant 18.069736 W, so the battery's exported joules grow by
//! exactly 18.069736 W × the battery source's Δt: that recovers the agent's
//! Δt from the data points. The RAPL read of a cycle precedes the battery
//! read by less than the cycle's summed `agent.collection.duration`, so the
//! RAPL Δt differs from the battery Δt by at most the larger of the two
//! cycles' sums (plus the sampler's sub-microsecond bookkeeping between
//! sources, and its one-time "source down" log lines, which is why the
//! first export is never used as a baseline): the watts tolerance comes
//! from exported points too, not from a guess about the machine's speed.
#![cfg(target_os = "linux")]

mod support;

use std::time::Duration;

use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use support::agent::Agent;
use support::fixtures::{host_copy, set};
use support::otlp_receiver::{Received, Receiver, find_value, metrics, points, value};
use unamentis_agent::semconv;

/// Guards against hangs only.
const LIMIT: Duration = Duration::from_secs(30);
const PKG: &str = "sys/class/powercap/intel-rapl:0/energy_uj";
const CORE: &str = "sys/class/powercap/intel-rapl:0:0/energy_uj";
const PKG0: u64 = 65_997_277_274;
const CORE0: u64 = 30_123_456_789;
const MAX: u64 = 262_143_328_850;
const BATTERY_W: f64 = 11.873 + 0.512 * 12.103;

fn joules(r: &Received, domain: &str) -> Option<f64> {
    find_value(r, semconv::ENERGY_JOULES.name, Some(("domain", domain)))
}

/// Summed sampling time of every source in the cycle of this export.
fn cycle_duration(r: &Received) -> f64 {
    metrics(r)
        .into_iter()
        .filter(|m| m.name == semconv::AGENT_COLLECTION_DURATION.name)
        .flat_map(|m| points(m).iter().map(value))
        .sum()
}

/// Waits until an export shows `domain` at `total_j` joules; returns
/// every export so far.
async fn wait_for_joules(rx: &Receiver, domain: &str, total_j: f64) -> Vec<Received> {
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let got = rx.received();
        if got.iter().any(|r| joules(r, domain) == Some(total_j)) {
            return got;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no export with {domain} = {total_j} J; last: {:?}",
            got.last().and_then(|r| joules(r, domain))
        );
        let n = got.len();
        rx.wait_for(n + 1, LIMIT).await;
    }
}

/// Checks the export where `domain` first reached `new_j` (from `old_j`
/// in the export before it): its watts are (new − old) over the agent's Δt.
fn check_step(exports: &[Received], domain: &str, watts_metric: &str, old_j: f64, new_j: f64) {
    let i = exports
        .iter()
        .position(|r| joules(r, domain) == Some(new_j))
        .unwrap();
    assert!(i > 1, "{domain} changed before the second export");
    let (prev, cur) = (&exports[i - 1], &exports[i]);
    assert_eq!(joules(prev, domain), Some(old_j), "{domain}: export before");
    let battery_dt =
        (joules(cur, "battery").unwrap() - joules(prev, "battery").unwrap()) / BATTERY_W;
    let slack = cycle_duration(prev).max(cycle_duration(cur));
    assert!(battery_dt > slack, "Δt {battery_dt} s vs slack {slack} s");
    let delta_j = new_j - old_j;
    let (lo, hi) = (
        delta_j / (battery_dt + slack),
        delta_j / (battery_dt - slack),
    );
    let w = find_value(cur, watts_metric, None).expect("watts point");
    assert!(
        w >= lo && w <= hi,
        "{domain}: {w} W not in [{lo}, {hi}] for {delta_j} J over {battery_dt} s ± {slack} s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rapl_watts_and_joules_through_otlp() {
    let host = host_copy("intel-laptop");
    let root = host.path();
    let rx = Receiver::grpc().await;
    let arg = |sub: &str| root.join(sub).to_string_lossy().into_owned();
    let (sys, proc_, hroot) = (arg("sys"), arg("proc"), arg("root"));
    let mut agent = Agent::spawn(
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &rx.endpoint()),
            ("UNAMENTIS_AGENT_INTERVAL", "300ms"),
        ],
        &[
            "run",
            "--host-sys",
            &sys,
            "--host-proc",
            &proc_,
            "--host-root",
            &hroot,
        ],
    );
    let first = rx.wait_for(1, LIMIT).await.remove(0);
    assert_eq!(joules(&first, "package"), Some(0.0));
    assert_eq!(joules(&first, "cpu"), Some(0.0));
    let name = |m: &semconv::Metric| m.name;
    let bw = find_value(&first, name(&semconv::POWER_BATTERY_WATTS), None).unwrap();
    assert!((bw - BATTERY_W).abs() < 1e-9, "{bw}");
    assert_eq!(
        find_value(&first, name(&semconv::THERMAL_TEMPERATURE), None),
        Some(52.0)
    );
    assert_eq!(
        find_value(&first, name(&semconv::THERMAL_PRESSURE), None),
        Some(0.0)
    );
    assert_eq!(
        find_value(&first, name(&semconv::THERMAL_THROTTLE_EVENTS), None),
        Some(15.0)
    );
    assert_eq!(
        find_value(
            &first,
            name(&semconv::THERMAL_FAN_RPM),
            Some(("fan", "thinkpad.fan1"))
        ),
        Some(2650.0)
    );
    assert_eq!(
        find_value(&first, name(&semconv::POWER_DRAM_WATTS), None),
        None
    );
    for counter in [&semconv::ENERGY_JOULES, &semconv::THERMAL_THROTTLE_EVENTS] {
        let m = metrics(&first)
            .into_iter()
            .find(|m| m.name == counter.name)
            .unwrap();
        match &m.data {
            Some(Data::Sum(s)) => assert!(s.is_monotonic, "{}", m.name),
            other => panic!("{} arrived as {other:?}", m.name),
        }
    }
    // The first cycle logs each source's state once; start from the second.
    rx.wait_for(2, LIMIT).await;

    // (package, core) energy_uj per step; the third step takes the package
    // to just below max_energy_range_uj, the fourth across the wrap.
    let steps = [
        (PKG0 + 7_000_000, CORE0 + 2_500_000),
        (PKG0 + 19_345_678, CORE0 + 2_500_001),
        (MAX - 1_000_000, CORE0 + 2_500_001),
        (3_000_000, CORE0 + 5_000_000),
    ];
    let (mut pkg_uj, mut core_uj) = (0u64, 0u64);
    let (mut prev_pkg, mut prev_core) = (PKG0, CORE0);
    for (pkg, core) in steps {
        let (old_p, old_c) = (pkg_uj, core_uj);
        pkg_uj += if pkg >= prev_pkg {
            pkg - prev_pkg
        } else {
            (MAX - prev_pkg) + pkg
        };
        core_uj += core - prev_core;
        (prev_pkg, prev_core) = (pkg, core);
        set(root, PKG, pkg);
        set(root, CORE, core);
        let j = |uj: u64| uj as f64 / 1e6;
        wait_for_joules(&rx, "package", j(pkg_uj)).await;
        let exports = wait_for_joules(&rx, "cpu", j(core_uj)).await;
        check_step(
            &exports,
            "package",
            name(&semconv::POWER_PACKAGE_WATTS),
            j(old_p),
            j(pkg_uj),
        );
        if core_uj != old_c {
            check_step(
                &exports,
                "cpu",
                name(&semconv::POWER_CPU_WATTS),
                j(old_c),
                j(core_uj),
            );
        }
    }
    // Across the wrap: 1 J up to the range, 3 J after it.
    assert_eq!(
        pkg_uj,
        7_000_000 + 12_345_678 + (MAX - 1_000_000 - PKG0 - 19_345_678) + 4_000_000
    );

    agent.signal("TERM");
    assert!(agent.wait(LIMIT).success(), "{}", agent.log_text());
    // Counters never went backwards in any export.
    let all = rx.received();
    for domain in ["package", "cpu", "battery"] {
        let seq: Vec<f64> = all.iter().filter_map(|r| joules(r, domain)).collect();
        assert!(seq.windows(2).all(|w| w[0] <= w[1]), "{domain}: {seq:?}");
    }
}
