//! The bounded export queue: encoded OTLP export requests kept in
//! collection order until the collector accepts them, capped in bytes and
//! in age, modelled on the Collector's exporterhelper sending queue.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// One collection cycle's export request, encoded.
#[derive(Debug)]
struct Batch {
    seq: u64,
    collected: Instant,
    bytes: Vec<u8>,
}

/// A run of the oldest batches, ready to send as one request.
#[derive(Debug, PartialEq, Eq)]
pub struct Head {
    /// Sequence number of the newest batch in it, for [`Queue::ack`].
    pub last_seq: u64,
    pub batches: usize,
    pub bytes: Vec<u8>,
}

#[derive(Debug)]
pub struct Queue {
    batches: VecDeque<Batch>,
    bytes: usize,
    max_bytes: usize,
    max_age: Duration,
    next_seq: u64,
}

impl Queue {
    pub fn new(max_bytes: usize, max_age: Duration) -> Self {
        Queue {
            batches: VecDeque::new(),
            bytes: 0,
            max_bytes,
            max_age,
            next_seq: 0,
        }
    }

    /// Appends a batch, then drops the oldest ones while the queue is over
    /// its byte cap or they are older than the age cap. The newest batch is
    /// always kept, whatever the caps, so a cap smaller than one batch still
    /// exports. Returns how many were dropped.
    pub fn push(&mut self, bytes: Vec<u8>, now: Instant) -> usize {
        self.bytes += bytes.len();
        self.batches.push_back(Batch {
            seq: self.next_seq,
            collected: now,
            bytes,
        });
        self.next_seq += 1;
        let mut dropped = self.expire(now);
        while self.bytes > self.max_bytes && self.batches.len() > 1 {
            self.pop_front();
            dropped += 1;
        }
        dropped
    }

    /// Drops the batches older than the age cap (never the newest).
    pub fn expire(&mut self, now: Instant) -> usize {
        let mut dropped = 0;
        while self.batches.len() > 1
            && self
                .batches
                .front()
                .is_some_and(|b| now.saturating_duration_since(b.collected) > self.max_age)
        {
            self.pop_front();
            dropped += 1;
        }
        dropped
    }

    fn pop_front(&mut self) {
        if let Some(b) = self.batches.pop_front() {
            self.bytes -= b.bytes.len();
        }
    }

    /// The oldest batches, at least one and then as many as fit in
    /// `max_bytes`, concatenated. Concatenated protobuf messages decode as
    /// one message whose repeated fields are appended, and an
    /// `ExportMetricsServiceRequest` is a single repeated field: the result
    /// is one valid request holding every batch's resource metrics, oldest
    /// first, each with its original timestamps.
    pub fn head(&self, max_bytes: usize) -> Option<Head> {
        let first = self.batches.front()?;
        let mut head = Head {
            last_seq: first.seq,
            batches: 1,
            bytes: first.bytes.clone(),
        };
        for b in self.batches.iter().skip(1) {
            if head.bytes.len() + b.bytes.len() > max_bytes {
                break;
            }
            head.bytes.extend_from_slice(&b.bytes);
            head.last_seq = b.seq;
            head.batches += 1;
        }
        Some(head)
    }

    /// Removes the delivered batches: every one up to `last_seq` still
    /// queued (some may have been dropped while the request was in flight).
    pub fn ack(&mut self, last_seq: u64) -> usize {
        let mut n = 0;
        while self.batches.front().is_some_and(|b| b.seq <= last_seq) {
            self.pop_front();
            n += 1;
        }
        n
    }

    pub fn len(&self) -> usize {
        self.batches.len()
    }

    pub fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }

    /// Bytes of encoded requests held (the quantity the cap bounds).
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn batch(tag: u8, len: usize) -> Vec<u8> {
        vec![tag; len]
    }

    #[test]
    fn keeps_order_and_drops_the_oldest_beyond_the_byte_cap() {
        let t = Instant::now();
        // Room for three 10-byte batches.
        let mut q = Queue::new(30, HOUR);
        for tag in 1..=3 {
            assert_eq!(q.push(batch(tag, 10), t), 0);
        }
        assert_eq!(q.bytes(), 30);
        assert_eq!(q.push(batch(4, 10), t), 1, "batch 1 goes");
        assert_eq!(q.push(batch(5, 15), t), 2, "45 bytes: batches 2 and 3 go");
        assert_eq!((q.len(), q.bytes()), (2, 25));
        let head = q.head(usize::MAX).unwrap();
        assert_eq!(head.batches, 2);
        assert_eq!(head.bytes, [batch(4, 10), batch(5, 15)].concat());
    }

    #[test]
    fn the_newest_batch_is_kept_even_over_the_cap() {
        let t = Instant::now();
        let mut q = Queue::new(0, HOUR);
        assert_eq!(q.push(batch(1, 10), t), 0);
        assert_eq!(q.push(batch(2, 10), t), 1);
        assert_eq!(q.len(), 1);
        assert_eq!(q.head(0).unwrap().bytes, batch(2, 10));
    }

    #[test]
    fn batches_older_than_the_age_cap_go() {
        let t0 = Instant::now();
        let mut q = Queue::new(usize::MAX, Duration::from_secs(60));
        q.push(batch(1, 1), t0);
        q.push(batch(2, 1), t0 + Duration::from_secs(30));
        // At 61 s batch 1 is 61 s old and goes; batch 2 (31 s) stays.
        assert_eq!(q.push(batch(3, 1), t0 + Duration::from_secs(61)), 1);
        assert_eq!(q.head(usize::MAX).unwrap().bytes, vec![2, 3]);
        // Expiry alone, long after: everything but the newest.
        assert_eq!(q.expire(t0 + Duration::from_secs(1000)), 1);
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn head_takes_at_least_one_and_then_what_fits() {
        let t = Instant::now();
        let mut q = Queue::new(usize::MAX, HOUR);
        for tag in 1..=4 {
            q.push(batch(tag, 10), t);
        }
        let h = q.head(5).unwrap();
        assert_eq!((h.batches, h.last_seq, h.bytes.len()), (1, 0, 10));
        let h = q.head(25).unwrap();
        assert_eq!((h.batches, h.last_seq, h.bytes.len()), (2, 1, 20));
        assert_eq!(q.ack(h.last_seq), 2);
        assert_eq!(
            q.head(usize::MAX).unwrap().bytes,
            [batch(3, 10), batch(4, 10)].concat()
        );
    }

    #[test]
    fn ack_after_the_head_was_dropped_removes_only_what_is_left() {
        let t = Instant::now();
        let mut q = Queue::new(20, HOUR);
        q.push(batch(1, 10), t);
        q.push(batch(2, 10), t);
        let h = q.head(usize::MAX).unwrap();
        assert_eq!(h.last_seq, 1);
        // While that request is in flight, batch 3 pushes batch 1 out.
        assert_eq!(q.push(batch(3, 10), t), 1);
        assert_eq!(q.ack(h.last_seq), 1, "only batch 2 was still queued");
        assert_eq!(q.head(usize::MAX).unwrap().bytes, batch(3, 10));
        assert_eq!(q.bytes(), 10);
    }

    #[test]
    fn concatenated_requests_decode_as_one_request_in_order() {
        use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
        use opentelemetry_proto::tonic::metrics::v1::ResourceMetrics;
        use prost::Message;
        let req = |url: &str| ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                schema_url: url.into(),
                ..Default::default()
            }],
        };
        let t = Instant::now();
        let mut q = Queue::new(usize::MAX, HOUR);
        for url in ["a", "b", "c"] {
            q.push(req(url).encode_to_vec(), t);
        }
        let merged =
            ExportMetricsServiceRequest::decode(&q.head(usize::MAX).unwrap().bytes[..]).unwrap();
        let urls: Vec<_> = merged
            .resource_metrics
            .iter()
            .map(|r| r.schema_url.as_str())
            .collect();
        assert_eq!(urls, ["a", "b", "c"]);
    }
}
