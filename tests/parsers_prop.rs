//! Property tests: every procfs parser survives arbitrary input, and the
//! ones with structure round-trip values written in the kernel's format.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use proptest::prelude::*;
use unamentis_agent::sources::cpu::{parse_cpu_list, parse_loadavg, parse_stat};
use unamentis_agent::sources::memory::parse_meminfo;
use unamentis_agent::sources::net_tcp::parse_net_tcp;
use unamentis_agent::sources::process::{parse_cmdline, parse_pid_stat};

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

proptest! {
    #[test]
    fn parsers_never_panic(text in "\\PC{0,400}") {
        let _ = parse_pid_stat(&text);
        let _ = parse_net_tcp(&text);
        let _ = parse_stat(&text);
        let _ = parse_meminfo(&text);
        let _ = parse_loadavg(&text);
        let _ = parse_cpu_list(&text);
        let _ = parse_cmdline(text.as_bytes());
    }

    #[test]
    fn pid_stat_round_trips_any_comm(
        pid in 1u32..4_194_304,
        // comm: up to 15 bytes of anything but NUL and newline, parentheses
        // and spaces included.
        comm in "[^\\x00\\n]{0,15}",
        ppid in 0u32..4_194_304,
        utime in any::<u32>(), stime in any::<u32>(),
        threads in 1u32..100_000, start in any::<u64>(), rss in 0i64..i64::MAX,
    ) {
        let line = format!(
            "{pid} ({comm}) S {ppid} 1 1 0 -1 4194560 100 0 0 0 {utime} {stime} 0 0 20 0 {threads} 0 {start} 1000 {rss} 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n"
        );
        let s = parse_pid_stat(&line).unwrap();
        prop_assert_eq!(s.pid, pid);
        prop_assert_eq!(&s.comm, &comm);
        prop_assert_eq!(s.ppid, ppid);
        prop_assert_eq!(s.cpu_ticks(), u64::from(utime) + u64::from(stime));
        prop_assert_eq!(s.num_threads, threads);
        prop_assert_eq!(s.starttime, start);
        prop_assert_eq!(s.rss_pages, rss as u64);
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
}
