//! A fake Ollama on a real loopback socket: answers every request with one
//! canned response (which a test may replace) and records the request heads
//! it saw.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Debug)]
pub enum Answer {
    /// 200 with Content-Length.
    Json(String),
    /// 200 with Transfer-Encoding: chunked, in chunks of the given size.
    Chunked(String, usize),
    Status(u16, String),
    /// Accepts, reads the request, and answers nothing for this long.
    Silent(Duration),
    /// Bytes as they are, then close.
    Raw(Vec<u8>),
}

pub struct FakeOllama {
    addr: SocketAddr,
    answer: Arc<Mutex<Answer>>,
    stop: Arc<AtomicBool>,
    heads: Arc<Mutex<Vec<String>>>,
}

impl FakeOllama {
    pub fn start(answer: Answer) -> FakeOllama {
        Self::start_on("127.0.0.1:0".parse().unwrap(), answer)
    }

    /// On a given address (a port a client was refused on before).
    pub fn start_on(addr: SocketAddr, answer: Answer) -> FakeOllama {
        let listener = TcpListener::bind(addr).unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let heads = Arc::new(Mutex::new(Vec::new()));
        let answer = Arc::new(Mutex::new(answer));
        let (stop2, heads2, answer2) = (stop.clone(), heads.clone(), answer.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let answer = answer2.lock().unwrap().clone();
                let (heads, stop) = (heads2.clone(), stop2.clone());
                std::thread::spawn(move || serve(conn, &answer, &heads, &stop));
            }
        });
        FakeOllama {
            addr,
            answer,
            stop,
            heads,
        }
    }

    /// Answers the next requests with `answer`.
    pub fn set_answer(&self, answer: Answer) {
        *self.answer.lock().unwrap() = answer;
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Request heads received so far.
    pub fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

impl Drop for FakeOllama {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve(mut conn: TcpStream, answer: &Answer, heads: &Mutex<Vec<String>>, stop: &AtomicBool) {
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 1024];
    while !raw.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
    }
    heads
        .lock()
        .unwrap()
        .push(String::from_utf8_lossy(&raw).into_owned());
    let reply: Vec<u8> = match answer {
        Answer::Json(body) => format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
        Answer::Chunked(body, size) => {
            let mut r = b"HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            for chunk in body.as_bytes().chunks(*size) {
                r.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                r.extend_from_slice(chunk);
                r.extend_from_slice(b"\r\n");
            }
            r.extend_from_slice(b"0\r\n\r\n");
            r
        }
        Answer::Status(code, body) => format!(
            "HTTP/1.1 {code} Oops\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
        Answer::Silent(d) => {
            let until = std::time::Instant::now() + *d;
            while std::time::Instant::now() < until && !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(10));
            }
            return;
        }
        Answer::Raw(bytes) => bytes.clone(),
    };
    let _ = conn.write_all(&reply);
}

/// An `/api/ps` body with the given (name, size, size_vram) models, in the
/// shape of Ollama's api/types.go ProcessModelResponse.
pub fn ps_body(models: &[(&str, u64, u64)]) -> String {
    let items: Vec<String> = models
        .iter()
        .map(|(name, size, vram)| {
            format!(
                r#"{{"name":"{name}","model":"{name}","size":{size},"digest":"2ae6f6dd7a3dd734790bbbf58b8909a606e0e7e97e94b7604e0aa7ae4490e6d8","details":{{"parent_model":"","format":"gguf","family":"llama","families":["llama"],"parameter_size":"7.2B","quantization_level":"Q4_0"}},"expires_at":"2024-06-04T14:38:31.83753-07:00","size_vram":{vram},"context_length":4096}}"#
            )
        })
        .collect();
    format!(r#"{{"models":[{}]}}"#, items.join(","))
}
