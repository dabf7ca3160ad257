//! Counters one part of the agent writes and another reads, kept here so
//! that neither imports the other: the exporter's dropped batches (read by
//! the `export-queue` source), and the local server's loopback accepts and
//! the exporter's collector connections (read by the connections probe).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Shared between the exporter (writer) and the `export-queue` source
/// (reader).
#[derive(Debug, Clone, Default)]
pub struct ExportCounters {
    dropped_batches: Arc<AtomicU64>,
}

impl ExportCounters {
    pub fn add_dropped(&self, n: u64) {
        if n > 0 {
            self.dropped_batches.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Batches dropped since start because the queue was over its caps.
    pub fn dropped_batches(&self) -> u64 {
        self.dropped_batches.load(Ordering::Relaxed)
    }
}

/// Connections accepted from this host's loopback: each is an active and a
/// passive open in `/proc/net/snmp` that the connections probe must not
/// take for a client of a watched service (a push every few seconds would
/// otherwise make it dump every socket every cycle).
pub static LOOPBACK_ACCEPTED: AtomicU64 = AtomicU64::new(0);

/// TCP connections one client of the agent opened and still holds, counted
/// as `/proc/net/snmp` counts them so the connections probe can tell them
/// from a client of a watched service: each is an active open (and a
/// passive one when the peer listens on loopback), and stays in
/// `CurrEstab` while it lives, with the peer's end too on loopback.
#[derive(Debug, Default)]
pub struct ConnTally {
    pub connected: AtomicU64,
    pub loopback_connected: AtomicU64,
    /// Established sockets of the open connections (both ends of a
    /// loopback one). Added and taken off in pairs, so it never wraps.
    pub established: AtomicU64,
}

impl ConnTally {
    pub const fn new() -> Self {
        ConnTally {
            connected: AtomicU64::new(0),
            loopback_connected: AtomicU64::new(0),
            established: AtomicU64::new(0),
        }
    }
}

/// The exporter's connections to the collector. Without them, the first
/// export (and every reconnect) would cost the probe a dump of every
/// socket.
pub static EXPORT_TCP: ConnTally = ConnTally::new();
