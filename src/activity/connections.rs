//! The connections probe: established TCP connections whose local port is
//! one of a service's ports. A connection that was not there at the
//! previous cycle (by remote address and port) is activity, counted in
//! `activity.requests{probe=connections}`.
//!
//! Ports: the service's configured `port`/`ports`; the service the Ollama
//! probe credits also gets the port of `ollama.url` when it has none (the
//! built-in `ollama` service matches by name only). The ports a service's
//! processes happen to listen on besides those are not looked up: that is
//! a readlink per open fd of every member process each cycle.
//!
//! Sockets come from netlink sock_diag (asking for ESTABLISHED only), or
//! `/proc/net/tcp{,6}` where sock_diag is not available; one read a cycle.
//! The services source asks sock_diag for LISTEN sockets separately: the
//! two dumps walk different kernel tables, so sharing one would not save.
//! Cost: the established dump walks every bucket of the kernel's
//! established hash table, sized by memory, once for both families: ~1.2 ms
//! a cycle measured on a host with 262,144 buckets and 20 sockets (reading
//! `/proc/net/tcp` and `tcp6` walks it twice); `activity.connections =
//! false` saves it. Two checks make it rare (on a live procfs):
//! - While no socket listens on a watched port (a LISTEN dump, which walks
//!   only the listening table) and none did at the last look, with no
//!   connection on one then, there is no connection to list: none is
//!   accepted without a listener. So a host where the services are down
//!   never walks the table.
//! - Otherwise the last dump is reused while the kernel's TCP counters
//!   (`/proc/net/snmp`) moved only by the agent's own connections: its
//!   probes', its exporter's, the loopback clients of its server.
//!
//! Not activity: connections the agent itself holds (its sockets, from
//! `/proc/self/fd`, and the server ends of connections it opened) and
//! connections from `[activity] ignore_sources` (health checkers).
//!
//! Limits: a connection opened and closed between two cycles is not seen,
//! and requests on a kept-alive connection are not either; services that
//! can should push (`POST /v1/activity`). A connection whose listener
//! closed before the agent looked (a service that stopped listening and
//! still drains, at the agent's start or between two cycles) is not seen
//! until a listener is up on a watched port again.

use std::collections::{BTreeSet, HashSet};
use std::net::{IpAddr, SocketAddr};

use super::{Activity, ActivityStats, Kind, Probe, ServiceActivity};
use crate::config::{ActivityConfig, ServiceConfig};
use crate::host::HostPaths;
use crate::sources::Snapshot;
use crate::sources::{Source, SourceError};

/// One established connection on a service port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Conn {
    pub local_port: u16,
    pub remote: SocketAddr,
}

/// An established socket as the OS lists it. `own`: the agent holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Established {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub own: bool,
}

/// IPv4 clients of a dual-stack listener appear as `::ffff:a.b.c.d`.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn canonical_addr(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(canonical(a.ip()), a.port())
}

/// Each service's connections: sockets whose local port is one of its
/// ports, minus the agent's own (either end) and the ignored sources.
pub fn by_service(
    sockets: &[Established],
    ports: &[Vec<u16>],
    ignore: &[IpAddr],
) -> Vec<BTreeSet<Conn>> {
    let own_ends: HashSet<SocketAddr> = sockets
        .iter()
        .filter(|s| s.own)
        .map(|s| canonical_addr(s.local))
        .collect();
    let mut out = vec![BTreeSet::new(); ports.len()];
    for s in sockets {
        let remote = canonical_addr(s.remote);
        if s.own || own_ends.contains(&remote) || ignore.contains(&remote.ip()) {
            continue;
        }
        let port = s.local.port();
        for (set, svc_ports) in out.iter_mut().zip(ports) {
            if svc_ports.contains(&port) {
                set.insert(Conn {
                    local_port: port,
                    remote,
                });
            }
        }
    }
    out
}

pub struct ConnectionsProbe {
    names: Vec<String>,
    ports: Vec<Vec<u16>>,
    ignore: Vec<IpAddr>,
    prev: Option<Vec<BTreeSet<Conn>>>,
    /// The kernel's TCP counters at the last socket dump, with its result.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    gate: Option<Gate>,
    activity: Activity,
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    paths: crate::host::HostPaths,
    /// Whether `paths.proc` is a live procfs (it has `self/net`).
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    live: bool,
    /// At the last look no socket listened on a watched port and none of
    /// the connections was on one.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    quiet: bool,
}

impl ConnectionsProbe {
    /// `services`: the effective services; `ollama_url` gives the port of
    /// the service Ollama stands for when it names none of its own.
    pub fn new(
        section: &ActivityConfig,
        services: &[ServiceConfig],
        ollama_url: &str,
        paths: HostPaths,
        activity: Activity,
    ) -> Self {
        let ollama = super::ollama::target_service(services, ollama_url);
        let ollama_port = ollama_local_port(ollama_url);
        let (names, ports) = services
            .iter()
            .filter_map(|s| {
                let mut ports: Vec<u16> = s.port.iter().chain(&s.ports).copied().collect();
                if ports.is_empty() && ollama.as_deref() == Some(s.name.as_str()) {
                    ports.extend(ollama_port);
                }
                (!ports.is_empty()).then_some((s.name.clone(), ports))
            })
            .unzip();
        ConnectionsProbe {
            names,
            ports,
            ignore: section
                .ignore_sources
                .iter()
                .filter_map(|a| a.trim().parse().ok().map(canonical))
                .collect(),
            prev: None,
            gate: None,
            activity,
            live: crate::sources::net_tcp::is_live(&paths),
            paths,
            // Before the first look: a connection on a port nobody listens
            // on at start (a service that closed its listener and still
            // drains) is the limit below.
            quiet: true,
        }
    }

    /// Whether `port` is one of a service's.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    fn watches(&self, port: u16) -> bool {
        self.ports.iter().any(|p| p.contains(&port))
    }

    /// Counts this cycle's connections and records the new ones.
    pub fn observe(&mut self, sockets: &[Established]) -> Vec<ServiceActivity> {
        let now = by_service(sockets, &self.ports, &self.ignore);
        let mut out = Vec::with_capacity(now.len());
        for (i, set) in now.iter().enumerate() {
            let new = self
                .prev
                .as_ref()
                .and_then(|p| p.get(i))
                .map_or(0, |prev| set.difference(prev).count());
            if new > 0 {
                // The names come from the same configuration as the
                // activity's services.
                let _ = self.activity.record(
                    &self.names[i],
                    Kind::Connection,
                    new as u64,
                    Probe::Connections,
                );
            }
            out.push(ServiceActivity {
                name: self.names[i].clone(),
                connections: Some(set.len() as u64),
                ..Default::default()
            });
        }
        self.prev = Some(now);
        out
    }
}

/// The TCP counters of `/proc/net/snmp` (RFC 4022's tcpActiveOpens,
/// tcpPassiveOpens, tcpCurrEstab, tcpEstabResets; IPv4 and IPv6 share
/// them): the set of established connections can only change when one of
/// them does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpCounters {
    pub active_opens: u64,
    pub passive_opens: u64,
    pub curr_estab: u64,
    pub estab_resets: u64,
}

/// The `Tcp:` header and value lines of `/proc/net/snmp`.
pub fn parse_snmp_tcp(text: &str) -> Option<TcpCounters> {
    let mut lines = text.lines().filter(|l| l.starts_with("Tcp:"));
    let names: Vec<&str> = lines.next()?.split_whitespace().collect();
    let values: Vec<&str> = lines.next()?.split_whitespace().collect();
    let get = |name: &str| -> Option<u64> {
        let i = names.iter().position(|n| *n == name)?;
        // CurrEstab is a gauge, the others counters; all non-negative, but
        // the kernel prints MaxConn as -1, so parse signed.
        values.get(i)?.parse::<i64>().ok().map(|v| v.max(0) as u64)
    };
    Some(TcpCounters {
        active_opens: get("ActiveOpens")?,
        passive_opens: get("PassiveOpens")?,
        curr_estab: get("CurrEstab")?,
        estab_resets: get("EstabResets")?,
    })
}

/// What the last dump saw, to reuse while nothing changed.
#[derive(Debug, Clone)]
pub struct Gate {
    pub counters: TcpCounters,
    /// The agent's own connections then.
    pub own: Own,
    pub sockets: Vec<Established>,
}

/// The agent's own TCP connections, as `/proc/net/snmp` counts them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Own {
    /// Active opens: every connect it made.
    pub active: u64,
    /// Passive opens: its connects that reached a loopback listener, and
    /// the loopback clients of its server.
    pub passive: u64,
    /// Established sockets of its long-lived connections (the exporter's),
    /// both ends of a loopback one.
    pub established: u64,
}

impl Gate {
    /// True when every connection opened or closed since the dump was the
    /// agent's own (each of its connects is an active open, and one that
    /// reached a loopback listener a passive open too; the short ones
    /// closed again within the cycle, the exporter's stay established) and
    /// no connection was reset.
    pub fn unchanged(&self, now: &TcpCounters, own: Own) -> bool {
        let (was, mine) = (&self.counters, &self.own);
        now.active_opens.wrapping_sub(was.active_opens) == own.active.wrapping_sub(mine.active)
            && now.passive_opens.wrapping_sub(was.passive_opens)
                == own.passive.wrapping_sub(mine.passive)
            && now.curr_estab.wrapping_sub(was.curr_estab)
                == own.established.wrapping_sub(mine.established)
            && now.estab_resets == was.estab_resets
    }
}

/// The port of `ollama.url` when it names this host.
fn ollama_local_port(url: &str) -> Option<u16> {
    let u = crate::url::parse(url).ok()?;
    if u.scheme != Some(crate::url::Scheme::Http) {
        return None;
    }
    let (host, port) = u.host_port_or_default().ok()?;
    let local = host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    port.filter(|_| local)
}

impl Source for ConnectionsProbe {
    fn name(&self) -> &'static str {
        "connections"
    }

    fn sample(&mut self, snap: &mut Snapshot) -> Result<(), SourceError> {
        if self.ports.is_empty() {
            return Err(SourceError::Unavailable(
                "no service has a port to watch".into(),
            ));
        }
        let sockets = imp::established(self)?;
        let services = self.observe(&sockets);
        snap.get_or_default::<ActivityStats>().services = services;
        Ok(())
    }
}

#[cfg(target_os = "linux")]
pub use imp::own_connects;

#[cfg(target_os = "linux")]
mod imp {
    use std::collections::HashSet;

    use super::{ConnectionsProbe, Established, Gate, Own, parse_snmp_tcp};
    use crate::sources::SourceError;
    use crate::sources::net_tcp::{TCP_ESTABLISHED, TCP_LISTEN, TcpSocket, parse_net_tcp};
    use crate::sources::process::parse_socket_link;
    use crate::sources::sock_diag;

    /// Established sockets of the agent's network namespace: over
    /// sock_diag on a live procfs (no text to format and parse), else from
    /// `net/tcp{,6}` (fixture trees, or sock_diag refused). The agent's own
    /// sockets are the socket inodes in `/proc/self/fd`.
    pub fn established(p: &mut ConnectionsProbe) -> Result<Vec<Established>, SourceError> {
        let live = p.live;
        // A connection on a service's port was accepted from a listener
        // there. When none listens now, none did at the last look and no
        // connection was on one then, there is none now: no dump. The
        // LISTEN dump that tells walks only the listening table. The
        // limit: a listener that opened, accepted and closed between two
        // looks while its connection stays open is not seen until its
        // connection moves the counters below with a listener up again.
        let listening = if live {
            sock_diag::tcp_sockets(1 << TCP_LISTEN)
                .ok()
                .map(|l| l.iter().any(|s| p.watches(s.local.port())))
        } else {
            None
        };
        if listening == Some(false) && p.quiet {
            return Ok(Vec::new());
        }
        let sockets = gated(p, live)?;
        p.quiet = listening == Some(false) && !sockets.iter().any(|s| p.watches(s.local.port()));
        Ok(sockets)
    }

    /// The established sockets, from the last dump while the kernel's TCP
    /// counters say that nothing but the agent itself (its probes, its
    /// exporter, the loopback clients of its server) opened or closed a
    /// connection since (a dump walks the whole established-connections
    /// hash table, ~1.2 ms here).
    fn gated(p: &mut ConnectionsProbe, live: bool) -> Result<Vec<Established>, SourceError> {
        let own = own_connects();
        let counters = if live {
            p.paths
                .read_proc("net/snmp")
                .ok()
                .and_then(|t| parse_snmp_tcp(&t))
        } else {
            None
        };
        if let (Some(now), Some(g)) = (counters, &p.gate)
            && g.unchanged(&now, own)
        {
            return Ok(g.sockets.clone());
        }
        let sockets = dump(p, live)?;
        p.gate = counters.map(|counters| Gate {
            counters,
            own,
            sockets: sockets.clone(),
        });
        Ok(sockets)
    }

    /// The agent's own connections so far: its connects (the Ollama
    /// probe's and the exporter's), of which those to a loopback listener
    /// are a passive open too, and the loopback clients of its server (both
    /// at once).
    pub fn own_connects() -> Own {
        use crate::counters::{EXPORT_TCP, LOOPBACK_ACCEPTED};
        use crate::sources::http_get::{CONNECTS, LOOPBACK_CONNECTED};
        use std::sync::atomic::Ordering::Relaxed;
        let accepted = LOOPBACK_ACCEPTED.load(Relaxed);
        Own {
            active: CONNECTS.load(Relaxed) + EXPORT_TCP.connected.load(Relaxed) + accepted,
            passive: LOOPBACK_CONNECTED.load(Relaxed)
                + EXPORT_TCP.loopback_connected.load(Relaxed)
                + accepted,
            established: EXPORT_TCP.established.load(Relaxed),
        }
    }

    fn dump(p: &ConnectionsProbe, live: bool) -> Result<Vec<Established>, SourceError> {
        let own: HashSet<u64> = std::fs::read_dir(p.paths.proc_path("self/fd"))
            .map(|dir| {
                dir.filter_map(|e| {
                    let target = std::fs::read_link(e.ok()?.path()).ok()?;
                    parse_socket_link(target.to_str()?)
                })
                .collect()
            })
            .unwrap_or_default();
        let mark = |s: TcpSocket| Established {
            local: s.local,
            remote: s.remote,
            own: own.contains(&s.inode),
        };
        if live && let Ok(sockets) = sock_diag::tcp_sockets(1 << TCP_ESTABLISHED) {
            return Ok(sockets.into_iter().map(mark).collect());
        }
        let mut out = Vec::new();
        let mut read_any = false;
        for file in ["net/tcp", "net/tcp6"] {
            // tcp6 is missing on a kernel without IPv6.
            let text = match p.paths.read_proc(file) {
                Ok(t) => t,
                Err(e) if file == "net/tcp6" && e.kind() == std::io::ErrorKind::NotFound => {
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            read_any = true;
            let sockets = parse_net_tcp(&text).map_err(|e| e.in_file(file))?;
            out.extend(
                sockets
                    .into_iter()
                    .filter(|s| s.state == TCP_ESTABLISHED)
                    .map(mark),
            );
        }
        if !read_any {
            return Err(SourceError::Unavailable("no /proc/net/tcp".into()));
        }
        Ok(out)
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use std::process::Command;
    use std::time::Duration;

    use super::{ConnectionsProbe, Established, parse_netstat};
    use crate::sources::SourceError;
    use crate::sources::command::{CommandError, run_with_timeout};

    const NETSTAT_TIMEOUT: Duration = Duration::from_secs(2);

    /// `netstat -an -p tcp`: one short process per cycle (macOS has no
    /// procfs; its pcblist sysctl is an undocumented binary layout). The
    /// agent's own sockets cannot be told apart here.
    pub fn established(_: &ConnectionsProbe) -> Result<Vec<Established>, SourceError> {
        let out = run_with_timeout(
            Command::new("netstat").args(["-an", "-p", "tcp"]),
            NETSTAT_TIMEOUT,
        )
        .map_err(|e| match e {
            CommandError::Spawn(e) => SourceError::Unavailable(format!("netstat: {e}")),
            e => SourceError::Failed(format!("netstat: {e}")),
        })?;
        Ok(parse_netstat(&String::from_utf8_lossy(&out)))
    }
}

/// Established connections from BSD/macOS `netstat -an -p tcp`, where an
/// address is `ip.port` (`127.0.0.1.11434`, `::1.8080`, `fe80::1%lo0.22`).
pub fn parse_netstat(text: &str) -> Vec<Established> {
    let addr = |s: &str| -> Option<SocketAddr> {
        let (ip, port) = s.rsplit_once('.')?;
        let ip = ip.split('%').next()?;
        Some(SocketAddr::new(ip.parse().ok()?, port.parse().ok()?))
    };
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_ascii_whitespace().collect();
            if f.len() < 6 || !f[0].starts_with("tcp") || f[5] != "ESTABLISHED" {
                return None;
            }
            Some(Established {
                local: addr(f[3])?,
                remote: addr(f[4])?,
                own: false,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn est(local: &str, remote: &str, own: bool) -> Established {
        Established {
            local: local.parse().unwrap(),
            remote: remote.parse().unwrap(),
            own,
        }
    }

    #[test]
    fn counts_per_service_without_the_agent_and_ignored_sources() {
        let sockets = [
            // A client of piper (11402), both ends on this host.
            est("127.0.0.1:11402", "127.0.0.1:50001", false),
            est("127.0.0.1:50001", "127.0.0.1:11402", false),
            // The agent's own request to Ollama: its end, and Ollama's end.
            est("127.0.0.1:50002", "127.0.0.1:11434", true),
            est("127.0.0.1:11434", "127.0.0.1:50002", false),
            // A remote client over IPv4 on a dual-stack socket.
            est(
                "[::ffff:192.168.1.9]:11434",
                "[::ffff:192.168.1.20]:40000",
                false,
            ),
            // The health checker.
            est("192.168.1.9:11434", "10.0.0.5:33333", false),
            // Not a service port.
            est("127.0.0.1:22", "127.0.0.1:50003", false),
        ];
        let ports = vec![vec![11434], vec![11402, 11401], vec![8766]];
        let ignore = vec!["10.0.0.5".parse().unwrap()];
        let got = by_service(&sockets, &ports, &ignore);
        assert_eq!(
            got[0].iter().collect::<Vec<_>>(),
            vec![&Conn {
                local_port: 11434,
                remote: "192.168.1.20:40000".parse().unwrap()
            }]
        );
        assert_eq!(got[1].len(), 1);
        assert!(got[2].is_empty());
    }

    #[test]
    fn netstat_output() {
        let text = "Active Internet connections (including servers)
Proto Recv-Q Send-Q  Local Address          Foreign Address        (state)
tcp4       0      0  127.0.0.1.11434        127.0.0.1.52731        ESTABLISHED
tcp6       0      0  ::1.8080               ::1.52732              ESTABLISHED
tcp6       0      0  fe80::1%lo0.3000       fe80::1%lo0.52733      ESTABLISHED
tcp4       0      0  127.0.0.1.52731        127.0.0.1.11434        TIME_WAIT
tcp46      0      0  *.3000                 *.*                    LISTEN
udp4       0      0  *.5353                 *.*
";
        let got = parse_netstat(text);
        assert_eq!(got.len(), 3);
        assert_eq!(got[0], est("127.0.0.1:11434", "127.0.0.1:52731", false));
        assert_eq!(got[1].local, "[::1]:8080".parse().unwrap());
        assert_eq!(got[2].remote.port(), 52733);
    }

    #[test]
    fn ollama_url_port_only_when_local() {
        assert_eq!(ollama_local_port("http://localhost:11434"), Some(11434));
        assert_eq!(ollama_local_port("http://127.0.0.1:8080/x"), Some(8080));
        assert_eq!(ollama_local_port("http://[::1]"), Some(80));
        assert_eq!(ollama_local_port("http://gpu-box:11434"), None);
    }
}

#[cfg(test)]
mod gate_tests {
    use super::*;

    // The Tcp lines of /proc/net/snmp, captured on a Linux 6.x host.
    const SNMP: &str = "Ip: Forwarding DefaultTTL\nIp: 1 64\nTcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens AttemptFails EstabResets CurrEstab InSegs OutSegs RetransSegs InErrs OutRsts InCsumErrors\nTcp: 1 200 120000 -1 5120 2310 41 77 3 512340 498221 12 0 95 0\nUdp: InDatagrams\nUdp: 1\n";

    fn counters(a: u64, p: u64, c: u64, r: u64) -> TcpCounters {
        TcpCounters {
            active_opens: a,
            passive_opens: p,
            curr_estab: c,
            estab_resets: r,
        }
    }

    #[test]
    fn snmp_tcp_counters() {
        assert_eq!(parse_snmp_tcp(SNMP), Some(counters(5120, 2310, 3, 77)));
        assert_eq!(parse_snmp_tcp("Tcp: ActiveOpens\n"), None);
        assert_eq!(parse_snmp_tcp(""), None);
    }

    #[test]
    fn only_the_agents_own_connections_leave_the_gate_shut() {
        let own = |active, passive, established| Own {
            active,
            passive,
            established,
        };
        let g = Gate {
            counters: counters(100, 50, 4, 7),
            own: own(10, 3, 0),
            sockets: vec![],
        };
        // The agent made 2 connects, one to a local listener: nothing else.
        assert!(g.unchanged(&counters(102, 51, 4, 7), own(12, 4, 0)));
        assert!(g.unchanged(&counters(100, 50, 4, 7), own(10, 3, 0)));
        // The exporter connected to a loopback collector and stays: one
        // open each way, both ends established.
        assert!(g.unchanged(&counters(101, 51, 6, 7), own(11, 4, 2)));
        // ... and to a remote one: one end here.
        assert!(g.unchanged(&counters(101, 50, 5, 7), own(11, 3, 1)));
        // Someone connected to a local service (a passive open not ours).
        assert!(!g.unchanged(&counters(100, 51, 5, 7), own(10, 3, 0)));
        // An outbound connection of another process.
        assert!(!g.unchanged(&counters(101, 50, 4, 7), own(10, 3, 0)));
        // A connection closed, or was reset.
        assert!(!g.unchanged(&counters(100, 50, 3, 7), own(10, 3, 0)));
        assert!(!g.unchanged(&counters(100, 50, 4, 8), own(10, 3, 0)));
        // The exporter's connection closed while another one opened.
        let up = Gate {
            counters: counters(100, 50, 6, 7),
            own: own(10, 3, 2),
            sockets: vec![],
        };
        assert!(!up.unchanged(&counters(101, 51, 6, 7), own(10, 3, 0)));
        // The exporter's connection closed: its ends leave CurrEstab.
        assert!(up.unchanged(&counters(100, 50, 4, 7), own(10, 3, 0)));
    }
}
