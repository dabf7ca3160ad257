//! The gRPC channel's TCP connector: hyper-util's `HttpConnector` set up as
//! tonic sets up its own (`TCP_NODELAY`, any scheme; TLS and the connect
//! timeout are tonic's, around it), with one addition: each connection it
//! opens is counted in a [`ConnTally`] while it lives.
//!
//! The connections probe skips its dump of every established socket while
//! the kernel's TCP counters moved only by the agent's own connections.
//! The exporter's connection is long-lived: uncounted, its first connect
//! (and every reconnect) moved `ActiveOpens`, `PassiveOpens` (a loopback
//! collector) and `CurrEstab`, and cost a dump of the whole established
//! hash table (about a millisecond on a host with 262,144 buckets).
//!
//! Only a connect that succeeded is counted. A failed one (refused, or a
//! first address of several that did not answer) is an active open the
//! probe cannot explain, so it dumps: the safe side.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll};

use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tower_service::Service;

use crate::counters::ConnTally;

#[derive(Clone)]
pub struct CountingConnector {
    http: HttpConnector,
    tally: &'static ConnTally,
}

impl CountingConnector {
    pub fn new(tally: &'static ConnTally) -> Self {
        let mut http = HttpConnector::new();
        // As tonic's own connector: `https://` too (TLS wraps this
        // stream), and no Nagle delay on small requests.
        http.enforce_http(false);
        http.set_nodelay(true);
        CountingConnector { http, tally }
    }
}

type ConnectError = <HttpConnector as Service<http::Uri>>::Error;

impl Service<http::Uri> for CountingConnector {
    type Response = Counted;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<Counted, ConnectError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.http.poll_ready(cx)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let connecting = self.http.call(uri);
        let tally = self.tally;
        Box::pin(async move { Ok(Counted::new(connecting.await?, tally)) })
    }
}

/// A connected stream, counted in its tally's `established` until dropped.
pub struct Counted {
    io: TokioIo<TcpStream>,
    tally: &'static ConnTally,
    /// Its established sockets on this host: 2 when the peer is on
    /// loopback (the collector's end is this host's too), else 1.
    ends: u64,
}

impl Counted {
    fn new(io: TokioIo<TcpStream>, tally: &'static ConnTally) -> Self {
        let loopback = io
            .inner()
            .peer_addr()
            .is_ok_and(|a| a.ip().to_canonical().is_loopback());
        tally.connected.fetch_add(1, Relaxed);
        if loopback {
            tally.loopback_connected.fetch_add(1, Relaxed);
        }
        let ends = if loopback { 2 } else { 1 };
        tally.established.fetch_add(ends, Relaxed);
        Counted { io, tally, ends }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.tally.established.fetch_sub(self.ends, Relaxed);
    }
}

impl hyper::rt::Read for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(t: &ConnTally) -> (u64, u64, u64) {
        (
            t.connected.load(Relaxed),
            t.loopback_connected.load(Relaxed),
            t.established.load(Relaxed),
        )
    }

    #[tokio::test]
    async fn a_connection_counts_while_it_lives_and_a_refused_one_not_at_all() {
        static T: ConnTally = ConnTally::new();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let uri: http::Uri = format!("http://{}", listener.local_addr().unwrap())
            .parse()
            .unwrap();
        let mut c = CountingConnector::new(&T);
        let conn = c.call(uri.clone()).await.unwrap();
        // One active and one passive open (the listener is this host's),
        // and both ends established.
        assert_eq!(tally(&T), (1, 1, 2));
        let (_server_end, _) = listener.accept().await.unwrap();
        drop(conn);
        assert_eq!(tally(&T), (1, 1, 0));
        drop(listener);
        assert!(c.call(uri).await.is_err());
        assert_eq!(tally(&T), (1, 1, 0), "a refused connect is not counted");
    }
}
