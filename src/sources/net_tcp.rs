//! TCP sockets from `/proc/net/tcp` and `/proc/net/tcp6` (proc(5); the
//! format is `tcp4_seq_show`/`tcp6_seq_show` in net/ipv4/tcp_ipv4.c and
//! net/ipv6/tcp_ipv6.c).
//!
//! Addresses are printed as the in-memory 32-bit words of the network-order
//! address, so on the little-endian hosts the agent targets each word's hex
//! must be read back little-endian; ports are printed in host order.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::ParseError;

/// `st` column values (include/net/tcp_states.h).
pub const TCP_ESTABLISHED: u8 = 0x01;
pub const TCP_LISTEN: u8 = 0x0A;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpSocket {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub state: u8,
    pub uid: u32,
    pub inode: u64,
}

pub fn parse_net_tcp(text: &str) -> Result<Vec<TcpSocket>, ParseError> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |what: &str| ParseError(format!("line {}: {what}: {line:?}", n + 1));
        let f: Vec<&str> = line.split_ascii_whitespace().collect();
        // sl local rem st tx:rx tr:when retrnsmt uid timeout inode
        if f.len() < 10 {
            return Err(bad("fewer than 10 columns"));
        }
        let local = parse_addr(f[1]).ok_or_else(|| bad("bad local address"))?;
        let remote = parse_addr(f[2]).ok_or_else(|| bad("bad remote address"))?;
        let state = u8::from_str_radix(f[3], 16).map_err(|_| bad("bad state"))?;
        let uid = f[7].parse().map_err(|_| bad("bad uid"))?;
        let inode = f[9].parse().map_err(|_| bad("bad inode"))?;
        out.push(TcpSocket {
            local,
            remote,
            state,
            uid,
            inode,
        });
    }
    Ok(out)
}

fn parse_addr(s: &str) -> Option<SocketAddr> {
    let (ip, port) = s.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |h: &str| u32::from_str_radix(h, 16).ok().map(u32::to_le_bytes);
    let ip = match ip.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(ip)?)),
        32 => {
            let mut bytes = [0u8; 16];
            for (i, chunk) in bytes.chunks_mut(4).enumerate() {
                chunk.copy_from_slice(&word(ip.get(i * 8..i * 8 + 8)?)?);
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// The TCP line of `/proc/net/sockstat`: sockets hashed in the network
/// namespace (`inuse`: listening and connected), and allocated on the
/// host (`alloc`). Any socket that starts or stops listening moves one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SockstatTcp {
    pub inuse: u64,
    pub alloc: u64,
}

/// `TCP: inuse 2 orphan 0 tw 2 alloc 3 mem 150` (net/ipv4/proc.c
/// `sockstat_seq_show`); `None` without that line.
pub fn parse_sockstat_tcp(text: &str) -> Option<SockstatTcp> {
    let line = text.lines().find_map(|l| l.strip_prefix("TCP:"))?;
    let mut words = line.split_whitespace();
    let (mut inuse, mut alloc) = (None, None);
    while let (Some(key), Some(value)) = (words.next(), words.next()) {
        match key {
            "inuse" => inuse = value.parse().ok(),
            "alloc" => alloc = value.parse().ok(),
            _ => {}
        }
    }
    Some(SockstatTcp {
        inuse: inuse?,
        alloc: alloc?,
    })
}

/// Whether `paths.proc` is a live procfs (it has `self/net`), for which
/// sock_diag answers; a fixture tree is not. Asked once, when a source is
/// built: the answer does not change, and the path walk is not free.
pub fn is_live(paths: &crate::host::HostPaths) -> bool {
    paths.proc_path("self/net").exists()
}

/// TCP sockets in the given states (`1 << TCP_LISTEN`, …) of the host at
/// `paths`: over sock_diag when `live` ([`is_live`]), else from the
/// `net/tcp{,6}` files (fixture trees). Both show the agent's own network
/// namespace.
#[cfg(target_os = "linux")]
pub fn tcp_sockets(paths: &crate::host::HostPaths, live: bool, states: u32) -> Vec<TcpSocket> {
    if live && let Ok(s) = super::sock_diag::tcp_sockets(states) {
        return s;
    }
    let mut out = Vec::new();
    for file in ["net/tcp", "net/tcp6"] {
        let Ok(text) = paths.read_proc(file) else {
            continue;
        };
        let Ok(sockets) = parse_net_tcp(&text) else {
            continue;
        };
        out.extend(sockets.into_iter().filter(|s| {
            1u32.checked_shl(u32::from(s.state))
                .is_some_and(|bit| states & bit != 0)
        }));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockstat_tcp_counts() {
        // This machine's /proc/net/sockstat (kernel 6.18).
        let text = "sockets: used 12\n\
                    TCP: inuse 2 orphan 0 tw 2 alloc 3 mem 150\n\
                    UDP: inuse 0 mem 0\n\
                    UDPLITE: inuse 0\n\
                    RAW: inuse 0\n\
                    FRAG: inuse 0 memory 0\n";
        assert_eq!(
            parse_sockstat_tcp(text),
            Some(SockstatTcp { inuse: 2, alloc: 3 })
        );
        assert_eq!(parse_sockstat_tcp("UDP: inuse 0 mem 0\n"), None);
        assert_eq!(parse_sockstat_tcp("TCP: inuse x orphan 0 alloc 3\n"), None);
        assert_eq!(parse_sockstat_tcp("TCP: inuse 1 orphan 0\n"), None);
        assert_eq!(parse_sockstat_tcp(""), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_new_listener_moves_the_live_sockstat_counts() {
        let read =
            || parse_sockstat_tcp(&std::fs::read_to_string("/proc/net/sockstat").unwrap()).unwrap();
        // Other tests open and close sockets at the same time; a close
        // there could cancel this listener out once, not five times.
        let mut seen = Vec::new();
        for _ in 0..5 {
            let before = read();
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let after = read();
            drop(l);
            if after != before {
                return;
            }
            seen.push((before, after));
        }
        panic!("a new listener never moved the counts: {seen:?}");
    }

    // Captured from a Linux 6.x host (tcp) and written to the same format (tcp6).
    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:07E8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1062 1 000000003e790254 100 0 0 10 0
   1: 0100007F:D75C 0100007F:9983 01 00000000:00000000 03:00000D81 00000000  1000        0 0 3 0000000012b13aae
";
    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:2BCB 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000   999        0 48213 1 0000000000000000 100 0 0 10 0
   1: 00000000000000000000000001000000:1F90 00000000000000000000000001000000:C350 01 00000000:00000000 00:00000000 00000000     0        0 48999 1 0000000000000000 20 4 0 10 -1
";

    #[test]
    fn ipv4() {
        let s = parse_net_tcp(TCP).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].local, "0.0.0.0:2024".parse().unwrap());
        assert_eq!(s[0].state, TCP_LISTEN);
        assert_eq!(s[0].inode, 1062);
        assert_eq!(s[1].local, "127.0.0.1:55132".parse().unwrap());
        assert_eq!(s[1].remote, "127.0.0.1:39299".parse().unwrap());
        assert_eq!(s[1].state, TCP_ESTABLISHED);
        assert_eq!(s[1].uid, 1000);
    }

    #[test]
    fn ipv6() {
        let s = parse_net_tcp(TCP6).unwrap();
        assert_eq!(s[0].local, "[::]:11211".parse().unwrap());
        assert_eq!(s[0].uid, 999);
        assert_eq!(s[1].local, "[::1]:8080".parse().unwrap());
        assert_eq!(s[1].remote, "[::1]:50000".parse().unwrap());
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse_net_tcp("header\n 0: zz:zz 00000000:0000 0A 0 0 0 0 0 1\n").is_err());
        assert!(parse_net_tcp("header\n 0: 0100007F:1F90\n").is_err());
        assert!(parse_net_tcp("header only\n").unwrap().is_empty());
    }
}
