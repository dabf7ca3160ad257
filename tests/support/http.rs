//! A bare HTTP/1.1 client over tokio's TcpStream (`Connection: close`), so
//! tests see exactly the status and body the agent's server sends.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub struct Reply {
    pub status: u16,
    pub head: String,
    pub body: String,
}

/// Sends one request; `headers` are extra `Name: value` lines.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[&str],
    body: &[u8],
) -> Reply {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for h in headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    exchange(addr, &[head.as_bytes(), body]).await
}

/// Writes `parts` (a request head, then pieces of its body) one write
/// each and reads the reply to the end.
pub async fn exchange(addr: SocketAddr, parts: &[&[u8]]) -> Reply {
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    conn.write_all(parts[0]).await.unwrap();
    for part in &parts[1..] {
        // A server may answer (413) before reading the whole body.
        if conn.write_all(part).await.is_err() {
            break;
        }
    }
    let mut raw = Vec::new();
    let _ = conn.read_to_end(&mut raw).await;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {text:?}"));
    Reply {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

pub async fn post_json(addr: SocketAddr, path: &str, token: Option<&str>, body: &str) -> Reply {
    let auth = token.map(|t| format!("Authorization: Bearer {t}"));
    let mut headers = vec!["Content-Type: application/json"];
    if let Some(a) = &auth {
        headers.push(a);
    }
    request(addr, "POST", path, &headers, body.as_bytes()).await
}
