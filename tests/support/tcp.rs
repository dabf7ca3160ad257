//! A real listening socket for the connections probe to watch.

use std::net::TcpListener;

/// Binds a loopback port and accepts and holds every connection (so each
/// stays ESTABLISHED) until the test process exits; returns the port.
pub fn holding_listener() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in l.incoming().flatten() {
            held.push(c);
        }
    });
    port
}
