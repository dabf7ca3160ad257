//! The agent's own export queue as a source: how many batches it had to
//! drop. The exporter (`crate::export`) counts into [`ExportCounters`]; this
//! source only reads the counter, knowing nothing of OTLP.

use super::{Source, SourceError};
pub use crate::counters::ExportCounters;
use crate::sources::Snapshot;

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
