//! Dividing each GPU's power among the services that hold it.
//!
//! Per GPU and interval, the GPU's power goes to its processes:
//! - by their share of the SM utilization summed over all its processes
//!   (NVML's per-process samples since the previous read), when any
//!   process was busy;
//! - else by their share of the GPU memory held: a resident model keeps
//!   the card out of its deepest power state even when no kernel runs;
//! - else (no process, or no memory figure) to nobody.
//!
//! A service receives the shares of its processes; `other` receives the
//! rest, so the services plus `other` equal the GPU's power exactly, per
//! GPU and summed over GPUs. A backend that lists no processes (amdgpu
//! sysfs; the Apple GPU when powermetrics' `tasks` sampler did not run)
//! gives every watt to `other` and no service a GPU figure. The Apple GPU
//! with the `tasks` sampler splits by each task's GPU time, which stands
//! in for SM utilization (it has no per-process memory figure).

use std::collections::HashMap;

use crate::families::gpu::{GpuProcess, GpuStats};

/// What a GPU's split rested on in one interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Basis {
    SmUtilization,
    Memory,
    Nobody,
}

/// The shares of one GPU's power by pid, summing to 1 (or empty for
/// [`Basis::Nobody`]). `procs` are that GPU's processes.
pub fn process_shares(procs: &[&GpuProcess]) -> (Basis, Vec<(u32, f64)>) {
    let sampled = !procs.is_empty() && procs.iter().all(|p| p.sm_util.is_some());
    let busy: u64 = procs.iter().filter_map(|p| p.sm_util).sum();
    if sampled && busy > 0 {
        let shares = procs
            .iter()
            .filter_map(|p| {
                let w = p.sm_util?;
                (w > 0).then(|| (p.pid, w as f64 / busy as f64))
            })
            .collect();
        return (Basis::SmUtilization, shares);
    }
    let held: u64 = procs.iter().map(|p| p.used_bytes).sum();
    if held > 0 {
        let shares = procs
            .iter()
            .filter(|p| p.used_bytes > 0)
            .map(|p| (p.pid, p.used_bytes as f64 / held as f64))
            .collect();
        return (Basis::Memory, shares);
    }
    (Basis::Nobody, Vec::new())
}

/// One interval's GPU power and energy by service, in the order of the
/// `services` given to [`split`], and `other`'s.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GpuSplit {
    /// `None` for a service that is down, or when the backend lists no
    /// processes.
    pub watts: Vec<Option<f64>>,
    pub joules: Vec<Option<f64>>,
    pub other_watts: Option<f64>,
    pub other_joules: Option<f64>,
    /// Each GPU's basis, by GPU index.
    pub basis: Vec<(u32, Basis)>,
}

/// Splits every GPU's interval among `services` (each one's pids; `None`
/// when the service is down). `None` when no GPU gave power or energy.
pub fn split(gpu: &GpuStats, services: &[Option<&[u32]>]) -> Option<GpuSplit> {
    if gpu.intervals.is_empty() {
        return None;
    }
    let owner: HashMap<u32, usize> = services
        .iter()
        .enumerate()
        .filter_map(|(i, pids)| Some(pids.as_ref()?.iter().map(move |&p| (p, i))))
        .flatten()
        .collect();
    let lists = gpu.lists_processes();
    let per_service = |any: bool| {
        services
            .iter()
            .map(|s| (lists && any && s.is_some()).then_some(0.0))
            .collect::<Vec<Option<f64>>>()
    };
    let any_watts = gpu.intervals.iter().any(|i| i.watts.is_some());
    let any_joules = gpu.intervals.iter().any(|i| i.joules.is_some());
    let mut out = GpuSplit {
        watts: per_service(any_watts),
        joules: per_service(any_joules),
        other_watts: any_watts.then_some(0.0),
        other_joules: any_joules.then_some(0.0),
        basis: Vec::with_capacity(gpu.intervals.len()),
    };
    for iv in &gpu.intervals {
        let procs: Vec<&GpuProcess> = gpu
            .processes
            .iter()
            .filter(|p| p.gpu_index == iv.gpu_index)
            .collect();
        let (basis, shares) = if lists {
            process_shares(&procs)
        } else {
            (Basis::Nobody, Vec::new())
        };
        out.basis.push((iv.gpu_index, basis));
        let mut service_share = vec![0.0; services.len()];
        for (pid, share) in shares {
            if let Some(&i) = owner.get(&pid) {
                service_share[i] += share;
            }
        }
        for (value, slots, other) in [
            (iv.watts, &mut out.watts, &mut out.other_watts),
            (iv.joules, &mut out.joules, &mut out.other_joules),
        ] {
            let Some(v) = value else { continue };
            let mut taken = 0.0;
            for (slot, share) in slots.iter_mut().zip(&service_share) {
                if let Some(x) = slot {
                    *x += v * share;
                    taken += v * share;
                }
            }
            // Other is what the services did not take, so that services
            // plus other add up to the GPU's figure.
            if let Some(o) = other {
                *o += (v - taken).max(0.0);
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::families::gpu::GpuInterval;

    const GIB: u64 = 1 << 30;

    fn proc(gpu: u32, pid: u32, gib: u64, sm: Option<u64>) -> GpuProcess {
        GpuProcess {
            pid,
            gpu_index: gpu,
            used_bytes: gib * GIB,
            sm_util: sm,
        }
    }

    fn stats(processes: Vec<GpuProcess>, intervals: &[(u32, f64, f64)]) -> GpuStats {
        GpuStats {
            backend: "nvml",
            devices: vec![],
            processes,
            energy_joules: None,
            intervals: intervals
                .iter()
                .map(|&(gpu_index, w, j)| GpuInterval {
                    gpu_index,
                    watts: Some(w),
                    joules: Some(j),
                })
                .collect(),
        }
    }

    #[test]
    fn busy_gpu_splits_by_sm_utilization() {
        // A at 60 % SM with 1 GiB, B at 20 % with 3 GiB, on a 100 W card.
        let g = stats(
            vec![proc(0, 10, 1, Some(60)), proc(0, 20, 3, Some(20))],
            &[(0, 100.0, 500.0)],
        );
        let s = split(&g, &[Some(&[10]), Some(&[20])]).unwrap();
        assert_eq!(s.watts, vec![Some(75.0), Some(25.0)]);
        assert_eq!(s.joules, vec![Some(375.0), Some(125.0)]);
        assert_eq!(s.other_watts, Some(0.0));
        assert_eq!(s.basis, vec![(0, Basis::SmUtilization)]);
    }

    #[test]
    fn idle_gpu_splits_by_memory_and_unwatched_memory_goes_to_other() {
        let g = stats(
            vec![proc(0, 10, 1, Some(0)), proc(0, 20, 3, Some(0))],
            &[(0, 100.0, 100.0)],
        );
        let s = split(&g, &[Some(&[10]), Some(&[20])]).unwrap();
        assert_eq!(s.watts, vec![Some(25.0), Some(75.0)]);
        assert_eq!(s.basis, vec![(0, Basis::Memory)]);
        // A third, unwatched process holding 4 GiB.
        let g = stats(
            vec![
                proc(0, 10, 1, Some(0)),
                proc(0, 20, 3, Some(0)),
                proc(0, 30, 4, Some(0)),
            ],
            &[(0, 100.0, 100.0)],
        );
        let s = split(&g, &[Some(&[10]), Some(&[20])]).unwrap();
        assert_eq!(s.watts, vec![Some(12.5), Some(37.5)]);
        assert_eq!(s.other_watts, Some(50.0));
    }

    #[test]
    fn nobody_on_the_gpu_gives_everything_to_other() {
        let g = stats(vec![], &[(0, 42.0, 4.2)]);
        let s = split(&g, &[Some(&[10]), None]).unwrap();
        assert_eq!(
            s.watts,
            vec![Some(0.0), None],
            "a down service: no estimate"
        );
        assert_eq!(s.other_watts, Some(42.0));
        assert_eq!(s.other_joules, Some(4.2));
        assert_eq!(s.basis, vec![(0, Basis::Nobody)]);
    }

    #[test]
    fn several_gpus_add_up_per_service() {
        // GPU 0 busy (A only), GPU 1 idle with B's and A's memory.
        let g = stats(
            vec![
                proc(0, 10, 1, Some(30)),
                proc(0, 20, 1, Some(0)),
                proc(1, 10, 1, Some(0)),
                proc(1, 21, 3, Some(0)),
            ],
            &[(0, 200.0, 0.0), (1, 40.0, 0.0)],
        );
        // B's service holds two pids.
        let s = split(&g, &[Some(&[10]), Some(&[20, 21])]).unwrap();
        assert_eq!(s.watts, vec![Some(200.0 + 10.0), Some(30.0)]);
        assert_eq!(s.other_watts, Some(0.0));
    }

    #[test]
    fn a_process_that_vanished_mid_interval_goes_to_other() {
        // pid 10 was busy (its samples came back) but no service holds it
        // any more: its share is other's.
        let g = stats(
            vec![proc(0, 10, 0, Some(50)), proc(0, 20, 2, Some(50))],
            &[(0, 80.0, 8.0)],
        );
        let s = split(&g, &[Some(&[]), Some(&[20])]).unwrap();
        assert_eq!(s.watts, vec![Some(0.0), Some(40.0)]);
        assert_eq!(s.other_watts, Some(40.0));
    }

    #[test]
    fn without_per_process_utilization_memory_decides() {
        // nvidia-smi: memory only, even if some process is busy.
        let g = stats(
            vec![proc(0, 10, 1, None), proc(0, 20, 1, Some(90))],
            &[(0, 10.0, 1.0)],
        );
        let s = split(&g, &[Some(&[10]), Some(&[20])]).unwrap();
        assert_eq!(s.watts, vec![Some(5.0), Some(5.0)]);
        assert_eq!(s.basis, vec![(0, Basis::Memory)]);
    }

    #[test]
    fn a_backend_without_process_lists_gives_all_to_other() {
        let mut g = stats(vec![], &[(0, 30.0, 3.0)]);
        g.backend = "amdgpu";
        let s = split(&g, &[Some(&[10])]).unwrap();
        assert_eq!(s.watts, vec![None]);
        assert_eq!(s.other_watts, Some(30.0));
    }

    #[test]
    fn the_first_read_has_watts_but_no_energy_yet() {
        let mut g = stats(vec![proc(0, 10, 1, Some(0))], &[(0, 30.0, 0.0)]);
        g.intervals[0].joules = None;
        let s = split(&g, &[Some(&[10])]).unwrap();
        assert_eq!(s.watts, vec![Some(30.0)]);
        assert_eq!(s.joules, vec![None]);
        assert_eq!(s.other_joules, None);
        g.intervals.clear();
        assert_eq!(split(&g, &[Some(&[10])]), None);
    }

    proptest::proptest! {
        #[test]
        fn services_plus_other_equal_the_gpus_watts(
            procs in proptest::collection::vec(
                (0u32..3, 1u32..12, 0u64..8, proptest::option::of(0u64..400)),
                0..12,
            ),
            watts in proptest::collection::vec(0.0f64..700.0, 1..4),
            owners in proptest::collection::vec(proptest::collection::vec(1u32..12, 0..4), 0..4),
            down in proptest::collection::vec(proptest::bool::ANY, 4),
        ) {
            // One entry per (gpu, pid), as the backends give them.
            let mut seen = std::collections::BTreeSet::new();
            let processes: Vec<GpuProcess> = procs
                .into_iter()
                .filter(|(g, p, _, _)| seen.insert((*g, *p)))
                .map(|(g, p, gib, sm)| proc(g, p, gib, sm))
                .collect();
            let intervals: Vec<(u32, f64, f64)> =
                watts.iter().enumerate().map(|(i, w)| (i as u32, *w, *w)).collect();
            let g = stats(processes, &intervals);
            // A pid belongs to one service at most.
            let mut claimed = std::collections::BTreeSet::new();
            let owned: Vec<Vec<u32>> = owners
                .iter()
                .map(|ps| ps.iter().copied().filter(|p| claimed.insert(*p)).collect())
                .collect();
            let services: Vec<Option<&[u32]>> = owned
                .iter()
                .zip(&down)
                .map(|(ps, d)| (!d).then_some(ps.as_slice()))
                .collect();
            let s = split(&g, &services).unwrap();
            let total: f64 = watts.iter().sum();
            let named: f64 = s.watts.iter().flatten().sum();
            let other = s.other_watts.unwrap();
            proptest::prop_assert!((named + other - total).abs() <= 1e-9 * total.max(1.0),
                "{named} + {other} != {total}");
            proptest::prop_assert!(s.watts.iter().flatten().all(|w| *w >= 0.0) && other >= 0.0);
        }
    }
}
