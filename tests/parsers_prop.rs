//! Property tests: every parser of external data survives arbitrary input,
//! and the ones with structure round-trip values written in the format of
//! whoever writes them (the kernel, nvidia-smi, Ollama, a pushing client).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use proptest::prelude::*;
use unamentis_agent::activity::Kind;
use unamentis_agent::activity::connections::{TcpCounters, parse_netstat, parse_snmp_tcp};
use unamentis_agent::families::cpu::{
    CpuTimes, parse_cpu_list, parse_loadavg, parse_per_cpu, parse_stat,
};
use unamentis_agent::families::filesystem::{Mount, parse_mountinfo, parse_mounts};
use unamentis_agent::families::gpu::{amdgpu, smi};
use unamentis_agent::families::memory::{parse_meminfo, parse_meminfo_states};
use unamentis_agent::families::models::{LoadedModel, parse_ps};
use unamentis_agent::server::{MAX_COUNT, PushEvent, parse_push};
use unamentis_agent::sources::cgroup::{
    glob_match, parse_cgroup_mounts, parse_cpu_stat_usage_usec, parse_cpuacct_usage,
    parse_memory_v1, parse_memory_v2, parse_procs,
};
use unamentis_agent::sources::http_get::parse_response;
use unamentis_agent::sources::net_tcp::parse_net_tcp;
use unamentis_agent::sources::process::{
    ProcIo, parse_cmdline, parse_container_identity, parse_pid_stat, parse_proc_io,
};
use unamentis_agent::sources::sysfs;

/// The kernel prints each 32-bit word of the address as it sits in memory,
/// read as a little-endian integer (tcp4_seq_show / tcp6_seq_show).
fn kernel_addr(a: &SocketAddr) -> String {
    let words: Vec<u32> = match a.ip() {
        IpAddr::V4(ip) => vec![u32::from_le_bytes(ip.octets())],
        IpAddr::V6(ip) => ip
            .octets()
            .chunks(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    };
    let hex: String = words.iter().map(|w| format!("{w:08X}")).collect();
    format!("{hex}:{:04X}", a.port())
}

fn socket_addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>())
            .prop_map(|(o, p)| SocketAddr::new(IpAddr::V4(Ipv4Addr::from(o)), p)),
        (any::<[u8; 16]>(), any::<u16>())
            .prop_map(|(o, p)| SocketAddr::new(IpAddr::V6(Ipv6Addr::from(o)), p)),
    ]
}

/// What nvidia-smi prints for a value it cannot read (docs/FORMATS.md, nvidia-smi).
const SMI_ABSENT: [&str; 4] = ["[N/A]", "N/A", "[Not Supported]", "[Unknown Error]"];

/// A value as nvidia-smi prints it, or one of its absent spellings.
fn smi_field<T: std::fmt::Display>(v: &Option<T>, absent: usize) -> String {
    match v {
        Some(v) => v.to_string(),
        None => SMI_ABSENT[absent % SMI_ABSENT.len()].to_owned(),
    }
}

/// The kernel's mangle(): space, tab, newline and backslash as octal.
fn mangle(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match c {
            ' ' | '\t' | '\n' | '\\' => out.push_str(&format!("\\{:03o}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

fn cpu_times() -> impl Strategy<Value = CpuTimes> {
    any::<[u64; 8]>().prop_map(CpuTimes::from)
}

/// A `cpu` line with `columns` of the ten columns (4..=10: old kernels
/// lack the trailing ones) and what the parser must read from it.
fn cpu_line(label: &str, t: &CpuTimes, columns: usize, guest: (u64, u64)) -> (String, CpuTimes) {
    let all = [
        t.user, t.nice, t.system, t.idle, t.iowait, t.irq, t.softirq, t.steal, guest.0, guest.1,
    ];
    let mut want = [0u64; 8];
    want[..columns.min(8)].copy_from_slice(&all[..columns.min(8)]);
    let cols: Vec<String> = all[..columns].iter().map(u64::to_string).collect();
    let times = CpuTimes {
        user: want[0],
        nice: want[1],
        system: want[2],
        idle: want[3],
        iowait: want[4],
        irq: want[5],
        softirq: want[6],
        steal: want[7],
    };
    (format!("{label} {}\n", cols.join(" ")), times)
}

proptest! {
    #[test]
    fn parsers_never_panic(text in "\\PC{0,400}") {
        let _ = parse_pid_stat(&text);
        let _ = parse_proc_io(&text);
        let _ = parse_container_identity(&text);
        let _ = parse_net_tcp(&text);
        let _ = parse_stat(&text);
        let _ = parse_meminfo(&text);
        let _ = parse_loadavg(&text);
        let _ = parse_cpu_list(&text);
        let _ = parse_cmdline(text.as_bytes());
        let _ = parse_per_cpu(&text);
        let _ = parse_meminfo_states(&text);
        let _ = parse_snmp_tcp(&text);
        let _ = parse_netstat(&text);
        let _ = parse_mounts(&text);
        let _ = parse_cgroup_mounts(&text);
        let _ = parse_cpu_stat_usage_usec(&text);
        let _ = parse_cpuacct_usage(&text);
        let _ = parse_memory_v1(&text);
        let _ = parse_memory_v2(&text);
        let _ = parse_procs(&text);
        let _ = glob_match(&text, &text.chars().rev().collect::<String>());
        let _ = amdgpu::uevent_value(&text, "PCI_SLOT_NAME");
        let _ = smi::parse_query_gpu(&text);
        let _ = smi::parse_query_compute_apps(&text);
        let _ = sysfs::parse_value::<i64>(&text);
        let _ = parse_push(text.as_bytes());
        let _ = parse_ps(text.as_bytes());
        let _ = parse_response(text.as_bytes());
    }

    #[test]
    fn pid_stat_round_trips_any_comm(
        pid in 1u32..4_194_304,
        // comm: up to 15 bytes of anything but NUL and newline, parentheses
        // and spaces included.
        comm in "[^\\x00\\n]{0,15}",
        ppid in 0u32..4_194_304,
        utime in any::<u32>(), stime in any::<u32>(),
        cutime in any::<u32>(), cstime in any::<u32>(),
        threads in 1u32..100_000, start in any::<u64>(), rss in 0i64..i64::MAX,
    ) {
        let line = format!(
            "{pid} ({comm}) S {ppid} 1 1 0 -1 4194560 100 0 0 0 {utime} {stime} {cutime} {cstime} 20 0 {threads} 0 {start} 1000 {rss} 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n"
        );
        let s = parse_pid_stat(&line).unwrap();
        prop_assert_eq!(s.pid, pid);
        prop_assert_eq!(&s.comm, &comm);
        prop_assert_eq!(s.ppid, ppid);
        prop_assert_eq!(s.cpu_ticks(), u64::from(utime) + u64::from(stime));
        prop_assert_eq!(s.child_ticks(), u64::from(cutime) + u64::from(cstime));
        prop_assert_eq!(s.num_threads, threads);
        prop_assert_eq!(s.starttime, start);
        prop_assert_eq!(s.rss_pages, rss as u64);
    }

    #[test]
    fn proc_io_round_trips(v in any::<[u64; 7]>()) {
        let [rchar, wchar, syscr, syscw, read_bytes, write_bytes, cancelled] = v;
        let text = format!(
            "rchar: {rchar}\nwchar: {wchar}\nsyscr: {syscr}\nsyscw: {syscw}\nread_bytes: {read_bytes}\nwrite_bytes: {write_bytes}\ncancelled_write_bytes: {cancelled}\n"
        );
        prop_assert_eq!(parse_proc_io(&text).unwrap(), ProcIo { read_bytes, write_bytes });
    }

    #[test]
    fn net_tcp_round_trips(rows in prop::collection::vec(
        (socket_addr(), socket_addr(), 1u8..=12, any::<u32>(), any::<u64>()), 0..20)
    ) {
        let mut text = String::from("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n");
        for (i, (l, r, st, uid, inode)) in rows.iter().enumerate() {
            text.push_str(&format!(
                "{i:4}: {} {} {st:02X} 00000000:00000000 00:00000000 00000000 {uid:5} 0 {inode} 1 0000000000000000 100 0 0 10 0\n",
                kernel_addr(l), kernel_addr(r)
            ));
        }
        let parsed = parse_net_tcp(&text).unwrap();
        prop_assert_eq!(parsed.len(), rows.len());
        for (p, (l, r, st, uid, inode)) in parsed.iter().zip(&rows) {
            prop_assert_eq!(p.local, *l);
            prop_assert_eq!(p.remote, *r);
            prop_assert_eq!(p.state, *st);
            prop_assert_eq!(p.uid, *uid);
            prop_assert_eq!(p.inode, *inode);
        }
    }

    #[test]
    fn cpu_list_round_trips(cpus in prop::collection::btree_set(0u32..1024, 0..64)) {
        let list: Vec<String> = cpus.iter().map(u32::to_string).collect();
        let parsed = parse_cpu_list(&list.join(",")).unwrap();
        prop_assert_eq!(parsed, cpus.into_iter().collect::<Vec<_>>());
    }

    #[test]
    fn meminfo_round_trips_every_field(
        kb in any::<[u64; 6]>(),
        has_available in any::<bool>(),
        has_sreclaimable in any::<bool>(),
        noise in prop::collection::vec(("[A-Z][A-Za-z_()]{1,15}", any::<u32>()), 0..8),
    ) {
        let [total, free, available, buffers, cached, sreclaimable] = kb;
        let mut lines = vec![
            format!("MemTotal:       {total:>8} kB"),
            format!("MemFree:        {free:>8} kB"),
            format!("Buffers:        {buffers:>8} kB"),
            format!("Cached:         {cached:>8} kB"),
        ];
        if has_available {
            lines.push(format!("MemAvailable:   {available:>8} kB"));
        }
        if has_sreclaimable {
            lines.push(format!("SReclaimable:   {sreclaimable:>8} kB"));
        }
        // Other keys, some without a unit like HugePages_Total.
        for (key, v) in &noise {
            if !["MemTotal", "MemFree", "MemAvailable", "Buffers", "Cached", "SReclaimable"].contains(&key.as_str()) {
                lines.push(format!("{key}: {v}"));
            }
        }
        let turn = noise.len() % lines.len();
        lines.rotate_left(turn);
        let text = lines.join("\n") + "\n";
        let bytes = |kib: u64| kib.saturating_mul(1024);

        let m = parse_meminfo(&text).unwrap();
        prop_assert_eq!(m.total_bytes, bytes(total));
        let avail = if has_available {
            bytes(available)
        } else {
            bytes(free).saturating_add(bytes(buffers)).saturating_add(bytes(cached))
        };
        prop_assert_eq!(m.available_bytes, avail.min(bytes(total)));

        let s = parse_meminfo_states(&text).unwrap();
        prop_assert_eq!(s.total, bytes(total));
        prop_assert_eq!(s.free, bytes(free));
        prop_assert_eq!(s.buffers, bytes(buffers));
        prop_assert_eq!(s.cached, bytes(cached));
        prop_assert_eq!(s.slab_reclaimable, has_sreclaimable.then(|| bytes(sreclaimable)));
    }

    #[test]
    fn loadavg_round_trips(hundredths in any::<[u32; 3]>(), running in 0u32..10_000, last_pid in 1u32..4_194_304) {
        // The kernel prints %lu.%02lu.
        let f: Vec<String> = hundredths.iter().map(|h| format!("{}.{:02}", h / 100, h % 100)).collect();
        let text = format!("{} {} {} {running}/{} {last_pid}\n", f[0], f[1], f[2], running + 100);
        let got = parse_loadavg(&text).unwrap();
        for (g, h) in got.iter().zip(hundredths) {
            // Division of two exact integers rounds like parsing the decimal.
            prop_assert_eq!(*g, f64::from(h) / 100.0);
        }
    }

    #[test]
    fn proc_stat_cpu_lines_round_trip(
        total in cpu_times(),
        cpus in prop::collection::btree_map(0u32..4096, (cpu_times(), 4usize..=10), 0..16),
        columns in 4usize..=10,
        guest in any::<(u64, u64)>(),
    ) {
        let (mut text, want_total) = cpu_line("cpu", &total, columns, guest);
        let mut want_per_cpu = Vec::new();
        for (n, (t, cols)) in &cpus {
            let (line, want) = cpu_line(&format!("cpu{n}"), t, *cols, guest);
            text.push_str(&line);
            want_per_cpu.push((*n, want));
        }
        text.push_str("intr 1234 0 9 0\nctxt 99\nbtime 1700000000\nprocesses 5\nprocs_running 1\nsoftirq 1 2 3\n");
        let s = parse_stat(&text).unwrap();
        prop_assert_eq!(s.total, want_total);
        prop_assert_eq!(s.logical_cpus as usize, cpus.len());
        prop_assert_eq!(parse_per_cpu(&text).unwrap(), want_per_cpu);
    }

    #[test]
    fn nvidia_smi_gpu_rows_round_trip(rows in prop::collection::vec((
        any::<u32>(),
        prop::collection::vec("[A-Za-z0-9-]{1,8}( [A-Za-z0-9-]{1,8}){0,2}", 1..3),
        (prop::option::of("[0-9a-f]{8}"), prop::option::of((any::<u16>(), any::<u8>(), 0u8..32, 0u8..8))),
        (prop::option::of(0u64..1 << 32), prop::option::of(0u64..1 << 32)),
        (prop::option::of(0u32..=100), prop::option::of(-40i32..150), prop::option::of(0u32..10_000_000)),
        any::<usize>(),
    ), 0..8)) {
        let mut text = String::new();
        for (index, name, (uuid, pci), (used, total), (util, temp, power), absent) in &rows {
            let uuid = uuid.as_ref().map(|u| format!("GPU-{u}-1111-2222-3333-444455556666"));
            let pci = pci.map(|(d, b, dev, f)| format!("{d:08X}:{b:02X}:{dev:02X}.{f}"));
            let power = power.map(|p| format!("{}.{:02}", p / 100, p % 100));
            text.push_str(&format!(
                "{index}, {}, {}, {}, {}, {}, {}, {}, {}\n",
                name.join(", "),
                smi_field(&uuid, *absent),
                smi_field(&pci, absent / 4),
                smi_field(used, absent / 16),
                smi_field(total, absent / 64),
                smi_field(util, absent / 256),
                smi_field(temp, absent / 1024),
                smi_field(&power, absent / 4096),
            ));
        }
        text.push_str("No devices were found\n");
        let got = smi::parse_query_gpu(&text);
        prop_assert_eq!(got.len(), rows.len());
        for (g, (index, name, (uuid, pci), (used, total), (util, temp, power), _)) in got.iter().zip(&rows) {
            prop_assert_eq!(g.index, *index);
            prop_assert_eq!(&g.name, &name.join(", "));
            prop_assert_eq!(g.vendor, "nvidia");
            prop_assert_eq!(g.uuid.clone(), uuid.as_ref().map(|u| format!("GPU-{u}-1111-2222-3333-444455556666")));
            prop_assert_eq!(g.pci_bus_id.clone(), pci.map(|(d, b, dev, f)| format!("{d:04x}:{b:02x}:{dev:02x}.{f}")));
            prop_assert_eq!(g.vram_used_bytes, used.map(|m| m << 20));
            prop_assert_eq!(g.vram_total_bytes, total.map(|m| m << 20));
            prop_assert_eq!(g.utilization_percent, util.map(f64::from));
            prop_assert_eq!(g.temperature_celsius, temp.map(f64::from));
            prop_assert_eq!(g.power_watts, power.map(|p| f64::from(p) / 100.0));
            prop_assert_eq!(g.energy_counter_mj, None);
        }
    }

    #[test]
    fn nvidia_smi_compute_apps_round_trip(rows in prop::collection::vec(
        ("[0-9a-f]{8}", any::<u32>(), prop::option::of(0u64..1 << 32), any::<usize>()), 0..8)
    ) {
        let text: String = rows
            .iter()
            .map(|(uuid, pid, mib, absent)| format!("GPU-{uuid}, {pid}, {}\n", smi_field(mib, *absent)))
            .collect();
        // A process whose memory nvidia-smi cannot read is left out.
        let want: Vec<(String, u32, u64)> = rows
            .iter()
            .filter_map(|(uuid, pid, mib, _)| Some((format!("GPU-{uuid}"), *pid, (*mib)? << 20)))
            .collect();
        prop_assert_eq!(smi::parse_query_compute_apps(&text), want);
    }

    #[test]
    fn activity_push_round_trips(
        service in "\\PC{0,40}",
        kind in prop::option::of(0usize..3),
        count in prop::option::of(any::<u64>()),
    ) {
        let mut body = serde_json::json!({ "service": service });
        let kinds = [("request", Kind::Request), ("inference", Kind::Inference), ("connection", Kind::Connection)];
        if let Some(k) = kind {
            body["kind"] = kinds[k].0.into();
        }
        if let Some(c) = count {
            body["count"] = c.into();
        }
        let got = parse_push(body.to_string().as_bytes());
        let count = count.unwrap_or(1);
        if (1..=MAX_COUNT).contains(&count) {
            prop_assert_eq!(got.unwrap(), PushEvent {
                service,
                kind: kind.map_or(Kind::Request, |k| kinds[k].1),
                count,
            });
        } else {
            prop_assert!(got.unwrap_err().contains("count must be"));
        }
    }

    #[test]
    fn ollama_ps_round_trips(models in prop::collection::vec((
        prop::option::of("[a-z0-9.:-]{0,20}"),
        prop::option::of("[a-z0-9.:-]{0,20}"),
        prop::option::of(any::<u64>()),
        prop::option::of(any::<u64>()),
        prop::option::of("20[0-9]{2}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-5][0-9]\\.[0-9]{1,9}[+-][01][0-9]:00"),
    ), 0..6)) {
        let json: Vec<serde_json::Value> = models
            .iter()
            .map(|(name, model, size, vram, expires)| {
                // Fields this agent does not read, as Ollama sends them.
                let mut m = serde_json::json!({
                    "digest": "a80c4f17acd5",
                    "details": { "family": "llama", "quantization_level": "Q4_0" },
                    "context_length": 4096,
                });
                let fields = [("name", name.clone().map(Into::into)), ("model", model.clone().map(Into::into)),
                    ("size", size.map(Into::into)), ("size_vram", vram.map(Into::into)),
                    ("expires_at", expires.clone().map(Into::into))];
                for (k, v) in fields {
                    if let Some(v) = v {
                        m[k] = v;
                    }
                }
                m
            })
            .collect();
        let body = serde_json::json!({ "models": json }).to_string();
        let want: Vec<LoadedModel> = models
            .iter()
            .filter_map(|(name, model, size, vram, expires)| {
                let name = name.clone().filter(|n| !n.is_empty()).or(model.clone())?;
                (!name.is_empty()).then(|| LoadedModel {
                    name,
                    size_bytes: size.unwrap_or(0),
                    size_vram_bytes: vram.unwrap_or(0),
                    expires_at: expires.clone(),
                })
            })
            .collect();
        prop_assert_eq!(parse_ps(body.as_bytes()).unwrap().models, want);
    }

    #[test]
    fn snmp_tcp_counters_round_trip(v in any::<[u64; 15]>(), max_conn in -1i64..1000) {
        const NAMES: [&str; 15] = ["RtoAlgorithm", "RtoMin", "RtoMax", "MaxConn", "ActiveOpens", "PassiveOpens", "AttemptFails", "EstabResets", "CurrEstab", "InSegs", "OutSegs", "RetransSegs", "InErrs", "OutRsts", "InCsumErrors"];
        // The parser reads the values as i64 (MaxConn is -1).
        let v = v.map(|x| x >> 1);
        let values: Vec<String> = v
            .iter()
            .enumerate()
            .map(|(i, x)| if i == 3 { max_conn.to_string() } else { x.to_string() })
            .collect();
        let text = format!(
            "Ip: Forwarding DefaultTTL\nIp: 1 64\nIcmp: InMsgs\nIcmp: 3\nTcp: {}\nTcp: {}\nUdp: InDatagrams NoPorts\nUdp: {} 0\n",
            NAMES.join(" "),
            values.join(" "),
            v[0],
        );
        prop_assert_eq!(parse_snmp_tcp(&text), Some(TcpCounters {
            active_opens: v[4],
            passive_opens: v[5],
            curr_estab: v[8],
            estab_resets: v[7],
        }));
    }

    #[test]
    fn sysfs_integers_round_trip_with_whitespace(
        v in any::<i64>(),
        before in "[ \t\n]{0,3}",
        after in "[ \t\n]{0,3}",
    ) {
        let text = format!("{before}{v}{after}");
        prop_assert_eq!(sysfs::parse_value::<i64>(&text), Some(v));
        prop_assert_eq!(amdgpu::parse_int(&text), Some(v));
        prop_assert_eq!(sysfs::parse_value::<u64>(&text), u64::try_from(v).ok());
        prop_assert_eq!(sysfs::parse_value::<u32>(&text), u32::try_from(v).ok());
    }

    #[test]
    fn mounts_round_trip_escaped_fields(mounts in prop::collection::vec(
        ("[^\\x00]{1,20}", "/[^\\x00]{0,20}", "[a-z0-9.]{1,10}"), 0..10)
    ) {
        let text: String = mounts
            .iter()
            .map(|(dev, mp, t)| format!("{} {} {t} rw,relatime 0 0\n", mangle(dev), mangle(mp)))
            .collect();
        // A later mount over the same point hides the earlier one.
        let mut want: Vec<Mount> = Vec::new();
        for (dev, mp, t) in &mounts {
            want.retain(|m| &m.mountpoint != mp);
            want.push(Mount { device: dev.clone(), mountpoint: mp.clone(), fstype: t.clone(), mode: "rw", block_device: None });
        }
        prop_assert_eq!(parse_mounts(&text), want);
    }

    #[test]
    fn mountinfo_round_trips_escaped_fields(mounts in prop::collection::vec(
        ("[^\\x00]{1,20}", "/[^\\x00]{0,20}", "[a-z0-9.]{1,10}", prop::bool::ANY, 0u8..3, 0u32..300),
        0..10)
    ) {
        // proc(5): id parent maj:min root point options [optional fields] - fstype source super.
        let text: String = mounts
            .iter()
            .enumerate()
            .map(|(i, (dev, mp, t, ro, tags, minor))| {
                let opts = if *ro { "ro,relatime" } else { "rw,relatime" };
                let tags: String = (0..*tags).map(|k| format!(" shared:{k}")).collect();
                format!(
                    "{} 1 8:{minor} / {} {opts}{tags} - {t} {} rw,errors=remount-ro\n",
                    i + 20,
                    mangle(mp),
                    mangle(dev)
                )
            })
            .collect();
        let mut want: Vec<Mount> = Vec::new();
        for (dev, mp, t, ro, _, minor) in &mounts {
            want.retain(|m| &m.mountpoint != mp);
            want.push(Mount {
                device: dev.clone(),
                mountpoint: mp.clone(),
                fstype: t.clone(),
                mode: if *ro { "ro" } else { "rw" },
                block_device: Some(format!("8:{minor}")),
            });
        }
        prop_assert_eq!(parse_mountinfo(&text), want);
    }

    #[test]
    fn cgroup_mountinfo_round_trips_escaped_points(mounts in prop::collection::vec(
        ("/[^\\x00]{0,20}", "/[^\\x00]{0,20}", prop::bool::ANY, prop::collection::vec("[a-z_=]{1,8}", 0..4)),
        0..8)
    ) {
        // proc(5): id parent maj:min root point options [optional fields] - fstype source super.
        let text: String = mounts
            .iter()
            .enumerate()
            .map(|(i, (root, mp, v2, opts))| {
                let fstype = if *v2 { "cgroup2" } else { "cgroup" };
                let optional = if i % 2 == 0 { " shared:9 master:1" } else { "" };
                let sup: Vec<&str> = std::iter::once("rw").chain(opts.iter().map(String::as_str)).collect();
                format!(
                    "{} 1 0:{i} {} {} rw,relatime{optional} - {fstype} {fstype} {}\n",
                    20 + i,
                    mangle(root),
                    mangle(mp),
                    sup.join(",")
                )
            })
            .collect();
        let got = parse_cgroup_mounts(&text);
        prop_assert_eq!(got.len(), mounts.len());
        for (g, (root, mp, v2, opts)) in got.iter().zip(&mounts) {
            prop_assert_eq!(&g.root, root);
            prop_assert_eq!(g.mount_point.to_str().unwrap(), mp.as_str());
            prop_assert_eq!(g.v2, *v2);
            prop_assert_eq!(&g.options[1..], &opts[..]);
        }
    }

    #[test]
    fn cgroup_counters_round_trip(usec in any::<u64>(), ns in any::<u64>(), anon in 0u64..1 << 50, mapped in 0u64..1 << 50) {
        let cpu = format!("usage_usec {usec}\nuser_usec 1\nsystem_usec 2\n");
        prop_assert_eq!(parse_cpu_stat_usage_usec(&cpu), Some(usec));
        prop_assert_eq!(parse_cpuacct_usage(&format!("{ns}\n")), Some(ns));
        let v2 = format!("anon {anon}\nfile 9\nshmem 7\nfile_mapped {mapped}\nanon_thp 0\n");
        prop_assert_eq!(parse_memory_v2(&v2), Some(anon + mapped));
        let v1 = format!("rss 5\nmapped_file 6\ntotal_rss {anon}\ntotal_shmem 3\ntotal_mapped_file {mapped}\n");
        prop_assert_eq!(parse_memory_v1(&v1), Some(anon + mapped));
    }

    #[test]
    fn globs_match_what_they_were_made_from(
        name in "[a-z0-9@.\\-]{0,24}",
        cuts in prop::collection::vec((0usize..24, 0usize..6, prop::bool::ANY), 0..3),
    ) {
        // Replace runs of the name by `*` or single characters by `?`.
        let mut pattern: Vec<char> = name.chars().collect();
        for (at, len, star) in cuts {
            if at >= pattern.len() {
                continue;
            }
            let end = (at + len.max(1)).min(pattern.len());
            if star {
                pattern.splice(at..end, ['*']);
            } else if pattern[at] != '*' {
                pattern[at] = '?';
            }
        }
        let pattern: String = pattern.into_iter().collect();
        prop_assert!(glob_match(&pattern, &name), "{} vs {}", pattern, name);
        let slashed = format!("{pattern}/");
        prop_assert!(!glob_match(&slashed, &name));
    }
}
