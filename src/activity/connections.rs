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
//! established hash table, sized by memory: ~2.7 ms a cycle measured on a
//! host with 262,144 buckets and 20 sockets (the same as reading
//! `/proc/net/tcp`); `activity.connections = false` saves it.
//!
//! Not activity: connections the agent itself holds (its sockets, from
//! `/proc/self/fd`, and the server ends of connections it opened) and
//! connections from `[activity] ignore_sources` (health checkers).
//!
//! Limits: a connection opened and closed between two cycles is not seen,
//! and requests on a kept-alive connection are not either; services that
//! can should push (`POST /v1/activity`).

use std::collections::{BTreeSet, HashSet};
use std::net::{IpAddr, SocketAddr};

use super::{Activity, Kind, Probe, ServiceActivity};
use crate::config::Config;
use crate::snapshot::Snapshot;
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
    activity: Activity,
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    paths: crate::host::HostPaths,
}

impl ConnectionsProbe {
    pub fn new(cfg: &Config, activity: Activity) -> Self {
        let ollama = super::ollama::target_service(cfg);
        let ollama_port = ollama_local_port(&cfg.ollama.url);
        let (names, ports) = cfg
            .effective_services()
            .into_iter()
            .filter_map(|s| {
                let mut ports: Vec<u16> = s.port.iter().chain(&s.ports).copied().collect();
                if ports.is_empty() && ollama.as_deref() == Some(s.name.as_str()) {
                    ports.extend(ollama_port);
                }
                (!ports.is_empty()).then_some((s.name, ports))
            })
            .unzip();
        ConnectionsProbe {
            names,
            ports,
            ignore: cfg
                .activity
                .ignore_sources
                .iter()
                .filter_map(|a| a.trim().parse().ok().map(canonical))
                .collect(),
            prev: None,
            activity,
            paths: cfg.host_paths(),
        }
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

/// The port of `ollama.url` when it names this host.
fn ollama_local_port(url: &str) -> Option<u16> {
    let rest = url.strip_prefix("http://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let (host, port) = crate::sources::http_get::split_authority(url, authority).ok()?;
    let local = host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    local.then_some(port.unwrap_or(80))
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
        snap.activity.get_or_insert_with(Default::default).services = services;
        Ok(())
    }
}

#[cfg(target_os = "linux")]
mod imp {
    use std::collections::HashSet;

    use super::{ConnectionsProbe, Established};
    use crate::sources::SourceError;
    use crate::sources::net_tcp::{TCP_ESTABLISHED, TcpSocket, parse_net_tcp};
    use crate::sources::process::parse_socket_link;
    use crate::sources::sock_diag;

    /// Established sockets of the agent's network namespace: over
    /// sock_diag on a live procfs (no text to format and parse), else from
    /// `net/tcp{,6}` (fixture trees, or sock_diag refused). The agent's own
    /// sockets are the socket inodes in `/proc/self/fd`.
    pub fn established(p: &ConnectionsProbe) -> Result<Vec<Established>, SourceError> {
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
        if p.paths.proc_path("self/net").exists()
            && let Ok(sockets) = sock_diag::tcp_sockets(1 << TCP_ESTABLISHED)
        {
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
