//! The agent's own export queue as a source: how many batches it had to
//! drop. The exporter (`crate::export`) counts into [`ExportCounters`]; this
//! source only reads the counter, knowing nothing of OTLP.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{Source, SourceError};
use crate::snapshot::Snapshot;

/// Counters shared between the exporter (writer) and this source.
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportQueueStats {
    /// Cumulative since start (a counter: never goes backwards).
    pub dropped_batches: u64,
}

pub struct ExportQueueSource {
    counters: ExportCounters,
}

impl ExportQueueSource {
    pub fn new(counters: ExportCounters) -> Self {
        ExportQueueSource { counters }
    }
}

impl Source for ExportQueueSource {
    fn name(&self) -> &'static str {
        "export_queue"
    }

    fn sample(&mut self, snap: &mut Snapshot) -> Result<(), SourceError> {
        snap.export_queue = Some(ExportQueueStats {
            dropped_batches: self.counters.dropped_batches(),
        });
        Ok(())
    }
}
