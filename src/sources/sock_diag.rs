//! TCP sockets over netlink sock_diag (`NETLINK_SOCK_DIAG`, the interface
//! `ss` uses; linux/inet_diag.h, sock_diag(7)).
//!
//! Reading `/proc/net/tcp` walks every bucket of the established-connections
//! hash table, which the kernel sizes by memory (262,144 buckets on a
//! 24 GiB host: ~1.5 ms a read with a handful of sockets). Asking sock_diag
//! for LISTEN sockets only walks the listening table instead. A dump of
//! other states still walks the whole table, once per request: the legacy
//! `TCPDIAG_GETSOCK` request dumps IPv4 and IPv6 in one walk (the kernel
//! runs it with family `AF_UNSPEC`), where `SOCK_DIAG_BY_FAMILY` needs a
//! walk per family. Kernels that refuse it get the two requests.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::ParseError;
use super::net_tcp::TcpSocket;

const SOCK_DIAG_BY_FAMILY: u16 = 20;
/// linux/inet_diag.h `TCPDIAG_GETSOCK`; its replies carry the same type.
const TCPDIAG_GETSOCK: u16 = 18;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
const IPPROTO_TCP: u8 = 6;
pub const AF_INET: u8 = 2;
pub const AF_INET6: u8 = 10;

/// A dump request: nlmsghdr (16 bytes, host byte order) then `body`.
fn dump_request(kind: u16, seq: u32, body: &[u8]) -> Vec<u8> {
    let len = 16 + body.len();
    let mut b = Vec::with_capacity(len);
    b.extend_from_slice(&(len as u32).to_ne_bytes());
    b.extend_from_slice(&kind.to_ne_bytes());
    b.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    b.extend_from_slice(&seq.to_ne_bytes());
    b.extend_from_slice(&0u32.to_ne_bytes());
    b.extend_from_slice(body);
    b
}

/// inet_diag_req_v2 (56 bytes): family, protocol, ext, pad, states, and
/// the socket id (network order, zero: any).
pub fn request(family: u8, states: u32, seq: u32) -> Vec<u8> {
    let mut body = vec![family, IPPROTO_TCP, 0, 0];
    body.extend_from_slice(&states.to_ne_bytes());
    body.extend_from_slice(&[0u8; 48]);
    dump_request(SOCK_DIAG_BY_FAMILY, seq, &body)
}

/// The legacy inet_diag_req (60 bytes: family, src_len, dst_len, ext,
/// socket id, states, dbs), for both families at once.
pub fn request_both_families(states: u32, seq: u32) -> Vec<u8> {
    let mut body = vec![0u8; 52];
    body.extend_from_slice(&states.to_ne_bytes());
    body.extend_from_slice(&0u32.to_ne_bytes());
    dump_request(TCPDIAG_GETSOCK, seq, &body)
}

/// Parses one `recv` buffer of replies. Returns the sockets and whether the
/// dump is complete (`NLMSG_DONE`).
pub fn parse_replies(buf: &[u8], out: &mut Vec<TcpSocket>) -> Result<bool, ParseError> {
    let mut at = 0;
    while at + 16 <= buf.len() {
        let u32_at = |o: usize| u32::from_ne_bytes([buf[o], buf[o + 1], buf[o + 2], buf[o + 3]]);
        let len = u32_at(at) as usize;
        let kind = u16::from_ne_bytes([buf[at + 4], buf[at + 5]]);
        if len < 16 || at + len > buf.len() {
            return Err(ParseError(format!(
                "netlink message of length {len} at {at}"
            )));
        }
        match kind {
            NLMSG_DONE => return Ok(true),
            NLMSG_ERROR => {
                // nlmsgerr.error is a negative errno; i64 because a
                // hostile i32::MIN cannot be negated in i32 (found by
                // fuzzing).
                let errno = if len >= 20 {
                    -i64::from(u32_at(at + 16) as i32)
                } else {
                    0
                };
                return Err(ParseError(format!("sock_diag answered errno {errno}")));
            }
            SOCK_DIAG_BY_FAMILY | TCPDIAG_GETSOCK => {
                out.push(parse_diag_msg(&buf[at + 16..at + len])?)
            }
            _ => {}
        }
        at += (len + 3) & !3;
    }
    Ok(false)
}

/// inet_diag_msg: family, state, timer, retrans, inet_diag_sockid (sport,
/// dport big-endian; src, dst 16 bytes; if; cookie), expires, rqueue,
/// wqueue, uid, inode.
fn parse_diag_msg(m: &[u8]) -> Result<TcpSocket, ParseError> {
    if m.len() < 72 {
        return Err(ParseError(format!("inet_diag_msg of {} bytes", m.len())));
    }
    let u32_at = |o: usize| u32::from_ne_bytes([m[o], m[o + 1], m[o + 2], m[o + 3]]);
    let addr = |o: usize| -> IpAddr {
        if m[0] == AF_INET {
            IpAddr::V4(Ipv4Addr::new(m[o], m[o + 1], m[o + 2], m[o + 3]))
        } else {
            let mut b = [0u8; 16];
            b.copy_from_slice(&m[o..o + 16]);
            IpAddr::V6(Ipv6Addr::from(b))
        }
    };
    Ok(TcpSocket {
        local: SocketAddr::new(addr(8), u16::from_be_bytes([m[4], m[5]])),
        remote: SocketAddr::new(addr(24), u16::from_be_bytes([m[6], m[7]])),
        state: m[1],
        uid: u32_at(64),
        inode: u64::from(u32_at(68)),
    })
}

/// TCP sockets of the agent's network namespace in the states of
/// `states` (a bit per TCP state, `1 << TCP_LISTEN`), IPv4 and IPv6.
#[cfg(target_os = "linux")]
pub fn tcp_sockets(states: u32) -> std::io::Result<Vec<TcpSocket>> {
    if states & !(1 << super::net_tcp::TCP_LISTEN) != 0 {
        WALKS.set(WALKS.get() + 1);
    }
    dump_all(&[request_both_families(states, 1)])
        .or_else(|_| dump_all(&[request(AF_INET, states, 1), request(AF_INET6, states, 2)]))
}

/// Dumps asked on this thread that walk the established-connections table
/// (any state but LISTEN): what the connections probe's gates save. Per
/// thread, so a test reads its own.
#[cfg(target_os = "linux")]
pub fn established_table_walks() -> u64 {
    WALKS.get()
}

/// The sockets the requests list, in order, on this thread's netlink
/// socket. The socket (and its receive buffer) stays open between cycles:
/// creating and closing one costs about as much as a small dump. A dump
/// that fails closes it, so no reply of a broken dump is read as the next
/// one's.
#[cfg(target_os = "linux")]
fn dump_all(requests: &[Vec<u8>]) -> std::io::Result<Vec<TcpSocket>> {
    use std::os::fd::AsRawFd;
    SOCKET.with_borrow_mut(|held| {
        let (sock, mut buf) = match held.take() {
            Some(s) => s,
            None => (open_socket()?, vec![0u8; 32 * 1024]),
        };
        let mut out = Vec::new();
        for req in requests {
            dump(sock.as_raw_fd(), req, &mut buf, &mut out)?;
        }
        *held = Some((sock, buf));
        Ok(out)
    })
}

#[cfg(target_os = "linux")]
thread_local! {
    static WALKS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    static SOCKET: std::cell::RefCell<Option<(std::os::fd::OwnedFd, Vec<u8>)>> =
        const { std::cell::RefCell::new(None) };
}

#[cfg(target_os = "linux")]
fn open_socket() -> std::io::Result<std::os::fd::OwnedFd> {
    // SAFETY: plain socket(2); the fd is owned below and closed on drop.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            libc::NETLINK_SOCK_DIAG,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh, valid descriptor we own.
    Ok(unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) })
}

/// Sends one dump request and reads its replies into `out`.
#[cfg(target_os = "linux")]
fn dump(
    raw: std::os::fd::RawFd,
    req: &[u8],
    buf: &mut [u8],
    out: &mut Vec<TcpSocket>,
) -> std::io::Result<()> {
    use std::io::{Error, ErrorKind};
    // SAFETY: a zeroed sockaddr_nl is valid (kernel as the peer).
    let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    addr.nl_family = libc::AF_NETLINK as u16;
    // SAFETY: req and addr outlive the call; lengths are theirs.
    let sent = unsafe {
        libc::sendto(
            raw,
            req.as_ptr().cast(),
            req.len(),
            0,
            (&raw const addr).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as u32,
        )
    };
    if sent < 0 {
        return Err(Error::last_os_error());
    }
    loop {
        // SAFETY: buf is valid for buf.len() bytes.
        let n = unsafe { libc::recv(raw, buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            return Err(Error::last_os_error());
        }
        let done = parse_replies(&buf[..n as usize], out)
            .map_err(|e| Error::new(ErrorKind::InvalidData, e.0))?;
        if done || n == 0 {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(
        family: u8,
        state: u8,
        local: ([u8; 16], u16),
        remote: ([u8; 16], u16),
        uid: u32,
        inode: u32,
    ) -> Vec<u8> {
        let mut m = vec![family, state, 0, 0];
        m.extend_from_slice(&local.1.to_be_bytes());
        m.extend_from_slice(&remote.1.to_be_bytes());
        m.extend_from_slice(&local.0);
        m.extend_from_slice(&remote.0);
        m.extend_from_slice(&[0u8; 12]); // if, cookie
        m.extend_from_slice(&[0u8; 12]); // expires, rqueue, wqueue
        m.extend_from_slice(&uid.to_ne_bytes());
        m.extend_from_slice(&inode.to_ne_bytes());
        let mut h = ((16 + m.len()) as u32).to_ne_bytes().to_vec();
        h.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        h.extend_from_slice(&[0u8; 10]);
        h.extend(m);
        h
    }

    fn done() -> Vec<u8> {
        let mut h = 20u32.to_ne_bytes().to_vec();
        h.extend_from_slice(&NLMSG_DONE.to_ne_bytes());
        h.extend_from_slice(&[0u8; 14]);
        h
    }

    #[test]
    fn request_layout() {
        let r = request(AF_INET6, 1 << 10, 7);
        assert_eq!(r.len(), 72);
        assert_eq!(&r[16..18], &[AF_INET6, IPPROTO_TCP]);
        assert_eq!(u32::from_ne_bytes([r[20], r[21], r[22], r[23]]), 1 << 10);
    }

    #[test]
    fn request_both_families_layout() {
        let r = request_both_families(1 << 1, 7);
        assert_eq!(r.len(), 76);
        assert_eq!(u16::from_ne_bytes([r[4], r[5]]), TCPDIAG_GETSOCK);
        // inet_diag_req: the socket id (48 bytes) comes before the states.
        assert_eq!(u32::from_ne_bytes([r[68], r[69], r[70], r[71]]), 1 << 1);
    }

    #[test]
    fn replies_ipv4_and_ipv6() {
        let mut v4 = [0u8; 16];
        v4[..4].copy_from_slice(&[127, 0, 0, 1]);
        let mut v6 = [0u8; 16];
        v6[15] = 1;
        let mut buf = reply(AF_INET, 10, (v4, 8766), ([0; 16], 0), 1000, 4242);
        buf.extend(reply(AF_INET6, 1, (v6, 3000), (v6, 50000), 0, 99));
        buf.extend(done());
        let mut out = Vec::new();
        assert!(parse_replies(&buf, &mut out).unwrap());
        assert_eq!(out[0].local, "127.0.0.1:8766".parse().unwrap());
        assert_eq!((out[0].state, out[0].uid, out[0].inode), (10, 1000, 4242));
        assert_eq!(out[1].local, "[::1]:3000".parse().unwrap());
        assert_eq!(out[1].remote, "[::1]:50000".parse().unwrap());
    }

    #[test]
    fn truncated_and_error_replies() {
        let mut out = Vec::new();
        let mut bad = reply(AF_INET, 10, ([0; 16], 1), ([0; 16], 0), 0, 1);
        bad.truncate(40);
        assert!(parse_replies(&bad, &mut out).is_err());
        let mut err = 36u32.to_ne_bytes().to_vec();
        err.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        err.extend_from_slice(&[0u8; 10]);
        err.extend_from_slice(&(-13i32).to_ne_bytes());
        err.extend_from_slice(&[0u8; 16]);
        assert!(parse_replies(&err, &mut out).unwrap_err().0.contains("13"));
        // fuzz/artifacts/sock_diag/crash-0053920b…: error field i32::MIN.
        err[16..20].copy_from_slice(&i32::MIN.to_ne_bytes());
        assert!(
            parse_replies(&err, &mut out)
                .unwrap_err()
                .0
                .contains("2147483648")
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn live_listeners_include_a_socket_we_open() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let socks = tcp_sockets(1 << super::super::net_tcp::TCP_LISTEN).unwrap();
        assert!(
            socks
                .iter()
                .any(|s| s.local.port() == port && s.state == 10),
            "{socks:?}"
        );
        assert!(socks.iter().all(|s| s.state == 10));
    }

    /// One legacy dump lists what the two per-family dumps list: our own
    /// IPv4 and IPv6 loopback connections, both ends.
    #[cfg(target_os = "linux")]
    #[test]
    fn the_socket_is_kept_and_every_dump_is_new() {
        use std::os::fd::AsRawFd;
        let listen = 1 << super::super::net_tcp::TCP_LISTEN;
        let held = || SOCKET.with_borrow(|s| s.as_ref().map(|(fd, _)| fd.as_raw_fd()));
        tcp_sockets(listen).unwrap();
        let fd = held().expect("kept after a dump");
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let socks = tcp_sockets(listen).unwrap();
        assert!(socks.iter().any(|s| s.local.port() == port), "{socks:?}");
        assert_eq!(held(), Some(fd), "the same socket");
        drop(l);
        let socks = tcp_sockets(listen).unwrap();
        assert!(!socks.iter().any(|s| s.local.port() == port), "{socks:?}");
    }

    #[test]
    fn one_walk_lists_both_families_like_two() {
        use std::net::{TcpListener, TcpStream};
        let mut held = Vec::new();
        let mut ours = Vec::new();
        for addr in ["127.0.0.1:0", "[::1]:0"] {
            let Ok(l) = TcpListener::bind(addr) else {
                continue; // no IPv6 on this host
            };
            let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
            let (s, _) = l.accept().unwrap();
            ours.push((c.local_addr().unwrap(), c.peer_addr().unwrap()));
            ours.push((s.local_addr().unwrap(), s.peer_addr().unwrap()));
            held.push((l, c, s));
        }
        let est = 1 << super::super::net_tcp::TCP_ESTABLISHED;
        let pairs = |v: Vec<TcpSocket>| -> Vec<(SocketAddr, SocketAddr)> {
            v.into_iter().map(|s| (s.local, s.remote)).collect()
        };
        let one = pairs(dump_all(&[request_both_families(est, 1)]).unwrap());
        let two = pairs(dump_all(&[request(AF_INET, est, 1), request(AF_INET6, est, 2)]).unwrap());
        for pair in &ours {
            assert!(one.contains(pair), "{pair:?} not in {one:?}");
            assert!(two.contains(pair), "{pair:?} not in {two:?}");
        }
        let v6 = one.iter().filter(|(l, _)| l.is_ipv6()).count();
        assert_eq!(v6 > 0, held.len() == 2, "{one:?}");
    }
}
