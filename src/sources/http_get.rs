//! A minimal HTTP/1.1 GET over `std::net::TcpStream`, for local plaintext
//! APIs (Ollama). A blocking reqwest client would keep a runtime thread
//! alive for the whole run and must not be built or dropped on an async
//! thread; one short-lived connection per cycle needs neither.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Bodies larger than this are refused: `/api/ps` is a few KiB.
const MAX_RESPONSE: usize = 4 << 20;

pub use crate::url::HttpUrl;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// TCP connects this client has attempted, and those that reached a
/// loopback listener: the connections probe subtracts the agent's own
/// connections from the kernel's TCP counters (`/proc/net/snmp`) to tell
/// whether anything else connected since the last cycle.
pub static CONNECTS: AtomicU64 = AtomicU64::new(0);
pub static LOOPBACK_CONNECTED: AtomicU64 = AtomicU64::new(0);

/// Why a GET failed. `refused`: every address refused the connection,
/// so nothing listens there (the server is not running), as opposed to a
/// server that is there but slow or answering badly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetError {
    pub refused: bool,
    pub message: String,
}

impl std::fmt::Display for GetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<String> for GetError {
    fn from(message: String) -> Self {
        GetError {
            refused: false,
            message,
        }
    }
}

/// GETs `base + path`; the whole exchange (resolve aside, connect, send,
/// receive) ends within `timeout`.
pub fn get(url: &HttpUrl, path: &str, timeout: Duration) -> Result<Response, GetError> {
    let deadline = Instant::now() + timeout;
    let stream = connect(url, deadline)?;
    Ok(exchange(stream, url, path, deadline, timeout)?)
}

fn connect(url: &HttpUrl, deadline: Instant) -> Result<TcpStream, GetError> {
    let addrs: Vec<SocketAddr> = (url.host.as_str(), url.port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {}: {e}", url.host))?
        .collect();
    let mut last_err = format!("{} resolves to no address", url.host);
    let mut refused = !addrs.is_empty();
    let mut stream = None;
    for addr in addrs {
        let left = remaining(deadline)?;
        CONNECTS.fetch_add(1, Ordering::Relaxed);
        match TcpStream::connect_timeout(&addr, left) {
            Ok(s) => {
                if addr.ip().is_loopback() {
                    LOOPBACK_CONNECTED.fetch_add(1, Ordering::Relaxed);
                }
                stream = Some(s);
                break;
            }
            Err(e) => {
                refused &= e.kind() == std::io::ErrorKind::ConnectionRefused;
                last_err = format!("connect {addr}: {e}");
            }
        }
    }
    stream.ok_or(GetError {
        refused,
        message: last_err,
    })
}

fn exchange(
    mut stream: TcpStream,
    url: &HttpUrl,
    path: &str,
    deadline: Instant,
    timeout: Duration,
) -> Result<Response, String> {
    let request = format!(
        "GET {}{path} HTTP/1.1\r\nHost: {}\r\nAccept: application/json\r\nConnection: close\r\nUser-Agent: unamentis-agent/{}\r\n\r\n",
        url.base,
        url.authority,
        env!("CARGO_PKG_VERSION")
    );
    stream
        .set_write_timeout(Some(remaining(deadline)?))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("send: {e}"))?;
    let mut raw = Vec::with_capacity(4096);
    let mut buf = [0u8; 8192];
    loop {
        stream
            .set_read_timeout(Some(remaining(deadline)?))
            .map_err(|e| e.to_string())?;
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                raw.extend_from_slice(&buf[..n]);
                if raw.len() > MAX_RESPONSE {
                    return Err(format!("response larger than {MAX_RESPONSE} bytes"));
                }
                // Stop as soon as a complete response is in: a server may
                // keep the connection open despite `Connection: close`.
                if let Ok(Some(resp)) = parse_response(&raw) {
                    return Ok(resp);
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(format!("no complete answer within {timeout:?}"));
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("receive: {e}")),
        }
    }
    // EOF: a body without a length ends with the connection.
    match parse_response(&raw)? {
        Some(resp) => Ok(resp),
        None => match split_head(&raw)? {
            Some((head, body)) if !head.chunked && head.length.is_none() => Ok(Response {
                status: head.status,
                body: body.to_vec(),
            }),
            _ => Err("connection closed before the response was complete".into()),
        },
    }
}

fn remaining(deadline: Instant) -> Result<Duration, String> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        Err("timed out".into())
    } else {
        Ok(left)
    }
}

struct Head {
    status: u16,
    length: Option<usize>,
    chunked: bool,
}

/// Status, framing headers and the bytes after the head, once the head is
/// complete.
fn split_head(raw: &[u8]) -> Result<Option<(Head, &[u8])>, String> {
    let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| "response head is not text")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.split(' ');
    let version = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/1.") {
        return Err(format!("not an HTTP/1.x response: {status_line:?}"));
    }
    let status = parts
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut h = Head {
        status,
        length: None,
        chunked: false,
    };
    for line in lines {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        if k.eq_ignore_ascii_case("content-length") {
            h.length = Some(v.parse().map_err(|_| format!("bad Content-Length {v:?}"))?);
        } else if k.eq_ignore_ascii_case("transfer-encoding") {
            h.chunked = v.to_ascii_lowercase().contains("chunked");
        }
    }
    Ok(Some((h, &raw[end + 4..])))
}

/// A complete response, `None` while more bytes are needed.
pub fn parse_response(raw: &[u8]) -> Result<Option<Response>, String> {
    let Some((head, rest)) = split_head(raw)? else {
        return Ok(None);
    };
    let status = head.status;
    let body = if head.chunked {
        match dechunk(rest)? {
            Some(b) => b,
            None => return Ok(None),
        }
    } else if let Some(n) = head.length {
        if rest.len() < n {
            return Ok(None);
        }
        rest[..n].to_vec()
    } else if status == 204 || status == 304 || (100..200).contains(&status) {
        Vec::new()
    } else {
        // Delimited by the end of the connection.
        return Ok(None);
    };
    Ok(Some(Response { status, body }))
}

/// RFC 9112 §7.1 chunked body; `None` until the last chunk has arrived.
fn dechunk(mut rest: &[u8]) -> Result<Option<Vec<u8>>, String> {
    let mut body = Vec::new();
    loop {
        let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") else {
            return Ok(None);
        };
        let size_line = std::str::from_utf8(&rest[..eol]).map_err(|_| "bad chunk size")?;
        let size_hex = size_line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_hex, 16)
            .map_err(|_| format!("bad chunk size {size_hex:?}"))?;
        // Also keeps `size + 2` below from overflowing on a hostile size.
        if size > MAX_RESPONSE {
            return Err(format!(
                "chunk of {size} bytes is larger than {MAX_RESPONSE}"
            ));
        }
        rest = &rest[eol + 2..];
        if size == 0 {
            // Trailers are ignored; the body is complete.
            return Ok(Some(body));
        }
        if rest.len() < size + 2 {
            return Ok(None);
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = HttpUrl::parse("http://localhost:11434").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.base.as_str()),
            ("localhost", 11434, "")
        );
        let u = HttpUrl::parse("http://[::1]:8080/ollama/").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.base.as_str()),
            ("::1", 8080, "/ollama")
        );
        assert_eq!(u.authority, "[::1]:8080");
        assert_eq!(HttpUrl::parse("http://gpu-box").unwrap().port, 80);
        for bad in [
            "https://x",
            "localhost:11434",
            "http://:1",
            "http://x:0",
            "http://x:y",
            "http://x/?q",
            "http://u:p@x:1",
            "http://local host:1",
            "http://x:1/a\r\nEvil: 1",
            "http://x\0:1",
        ] {
            assert!(HttpUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn framing() {
        let r = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
            .unwrap()
            .unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"{}"[..]));
        assert_eq!(
            parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n{}").unwrap(),
            None
        );
        let chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\n{\"a\r\n4;x=y\r\n\":1}\r\n0\r\n\r\n";
        let r = parse_response(chunked).unwrap().unwrap();
        assert_eq!(r.body, b"{\"a\":1}");
        assert_eq!(parse_response(&chunked[..chunked.len() - 7]).unwrap(), None);
        assert!(parse_response(b"SSH-2.0-OpenSSH\r\n\r\n").is_err());
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n").is_err());
    }

    #[test]
    fn a_chunk_size_near_usize_max_is_an_error() {
        for size in ["ffffffffffffffff", "fffffffffffffffe", "400001"] {
            let raw =
                format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{size}\r\nab\r\n");
            let e = parse_response(raw.as_bytes()).unwrap_err();
            assert!(e.contains("chunk"), "{size}: {e}");
        }
    }
}
