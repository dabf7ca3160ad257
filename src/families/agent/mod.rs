//! The `agent` family: the agent's own health. Every source's read time
//! and state (`agent.collection.duration`, `agent.source.up`, from the
//! sampler's statuses), and the export queue as a source: how many batches
//! it had to drop. The exporter (`crate::export`) counts into
//! [`ExportCounters`]; this source only reads the counter, knowing nothing
//! of OTLP.

pub use crate::counters::ExportCounters;
use crate::point::Point;
use crate::semconv::{self, attr};
use crate::sources::snapshot::{FamilySample, Snapshot, SourceStatus};
use crate::sources::{Source, SourceError};

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
        snap.put(ExportQueueStats {
            dropped_batches: self.counters.dropped_batches(),
        });
        Ok(())
    }
}

impl FamilySample for ExportQueueStats {
    fn points(&self, _snap: &Snapshot, out: &mut Vec<Point>) {
        let q = self;
        out.push(Point::new(
            &semconv::AGENT_EXPORT_DROPPED_BATCHES,
            q.dropped_batches as f64,
        ));
    }
}

/// Each source's read time and state this cycle.
pub fn source_points(sources: &[SourceStatus], out: &mut Vec<Point>) {
    for s in sources {
        let duration = s.duration.as_secs_f64();
        out.push(
            Point::new(&semconv::AGENT_COLLECTION_DURATION, duration).with(attr::SOURCE, s.name),
        );
        let up = if s.up { 1.0 } else { 0.0 };
        out.push(Point::new(&semconv::AGENT_SOURCE_UP, up).with(attr::SOURCE, s.name));
    }
}
