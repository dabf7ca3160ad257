//! Loopback ports for tests: a real listening socket for the connections
//! probe to watch, and a port nothing listens on.

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

/// A loopback port that was free a moment ago (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
