//! Memory Seawall holds on purpose, counted exactly: ingest bodies being read and the events
//! held in output queues, retry buffers and batches in flight. Every such buffer carries a
//! [`Lease`] for its bytes, released when the buffer is freed, so the count is exact at every
//! instant (`seawall_buffered_bytes`) and `global_health.memory_threshold` is enforced at
//! admission: a body that would take the process past it is refused before it is read.
//!
//! ```
//! use seawall::memory::Budget;
//! use seawall::metrics::Metrics;
//!
//! let budget = Budget::new(&Metrics::new());
//! budget.set_limit(Some(1000));
//! let lease = budget.try_reserve(600).unwrap();
//! assert!(budget.try_reserve(600).is_err(), "600 + 600 would pass the limit");
//! let text = lease.hold(b"{}\n".to_vec());
//! assert_eq!(budget.held(), 3, "the lease shrank to what it holds");
//! drop(text);
//! assert_eq!(budget.held(), 0);
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use prometheus_client::metrics::gauge::Gauge;

use crate::metrics::Metrics;

/// No limit.
const UNLIMITED: u64 = u64::MAX;

/// The count of held bytes and the limit that admission enforces.
#[derive(Debug)]
pub struct Budget {
    /// `seawall_buffered_bytes`: the exact count itself.
    held: Gauge,
    /// `global_health.memory_threshold` when the memory check is on, else [`UNLIMITED`].
    limit: AtomicU64,
    /// Process memory outside the held buffers (runtime, connections, code), as the last
    /// memory check measured it.
    other: AtomicU64,
}

/// A body or events did not fit: admitting them would pass the memory threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{wanted} more bytes would pass the memory threshold ({limit} bytes)")]
pub struct OverBudget {
    /// Bytes asked for.
    pub wanted: u64,
    /// The threshold.
    pub limit: u64,
}

impl Budget {
    /// An unlimited budget, registering `seawall_buffered_bytes` in `metrics`.
    pub fn new(metrics: &Metrics) -> Arc<Budget> {
        let held = Gauge::default();
        metrics.register(
            "buffered_bytes",
            "Bytes held in Seawall's own buffers: ingest bodies being read, output queues, retry \
             buffers and batches in flight",
            held.clone(),
        );
        Arc::new(Budget {
            held,
            limit: AtomicU64::new(UNLIMITED),
            other: AtomicU64::new(0),
        })
    }

    /// Sets the threshold admission enforces (`None`: none).
    pub fn set_limit(&self, limit: Option<u64>) {
        self.limit
            .store(limit.unwrap_or(UNLIMITED), Ordering::Relaxed);
    }

    /// Bytes held right now.
    pub fn held(&self) -> u64 {
        u64::try_from(self.held.get()).unwrap_or(0)
    }

    /// Records a measurement of the whole process's memory (`process` bytes): what is not
    /// held here counts against the threshold at admission until the next measurement.
    pub fn observe_process(&self, process: u64) {
        let other = process.saturating_sub(self.held());
        self.other.store(other, Ordering::Relaxed);
    }

    /// Reserves `bytes` for a buffer about to be filled, or refuses when the process's memory
    /// (last measured outside the buffers, plus the buffers now, plus `bytes`) would pass the
    /// threshold.
    pub fn try_reserve(self: &Arc<Self>, bytes: u64) -> Result<Lease, OverBudget> {
        let mut lease = self.lease(0);
        lease.grow(bytes)?;
        Ok(lease)
    }

    /// A lease of `bytes` that is never refused: for copies of events already admitted.
    pub fn lease(self: &Arc<Self>, bytes: u64) -> Lease {
        self.add(bytes);
        Lease {
            budget: self.clone(),
            bytes,
        }
    }

    /// `data` as shared bytes counted while any handle to them lives.
    pub fn hold(self: &Arc<Self>, data: Vec<u8>) -> Bytes {
        self.lease(0).hold(data)
    }

    fn add(&self, bytes: u64) -> u64 {
        let delta = i64::try_from(bytes).unwrap_or(i64::MAX);
        let before = self.held.inc_by(delta);
        u64::try_from(before).unwrap_or(0).saturating_add(bytes)
    }

    fn sub(&self, bytes: u64) {
        self.held.dec_by(i64::try_from(bytes).unwrap_or(i64::MAX));
    }
}

/// Bytes counted in a [`Budget`] until dropped.
#[derive(Debug)]
pub struct Lease {
    budget: Arc<Budget>,
    bytes: u64,
}

impl Lease {
    /// Bytes this lease counts.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Counts `more` bytes too, unless that would pass the threshold (then nothing changes).
    pub fn grow(&mut self, more: u64) -> Result<(), OverBudget> {
        let now = self.budget.add(more);
        let limit = self.budget.limit.load(Ordering::Relaxed);
        let other = self.budget.other.load(Ordering::Relaxed);
        if limit != UNLIMITED && now.saturating_add(other) > limit {
            self.budget.sub(more);
            return Err(OverBudget {
                wanted: more,
                limit,
            });
        }
        self.bytes += more;
        Ok(())
    }

    /// Ends the reservation in `data`, which it then counts exactly (its capacity) for as long
    /// as any handle to the returned bytes lives.
    pub fn hold(mut self, data: Vec<u8>) -> Bytes {
        let size = data.capacity() as u64;
        if size > self.bytes {
            self.budget.add(size - self.bytes);
        } else {
            self.budget.sub(self.bytes - size);
        }
        self.bytes = size;
        Bytes::from_owner(Held { data, _lease: self })
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.budget.sub(self.bytes);
    }
}

/// A buffer and the lease counting it.
struct Held {
    data: Vec<u8>,
    _lease: Lease,
}

impl AsRef<[u8]> for Held {
    fn as_ref(&self) -> &[u8] {
        &self.data
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_handle_keeps_the_bytes_counted_until_the_last_is_dropped() {
        let metrics = Metrics::new();
        let budget = Budget::new(&metrics);
        let text = budget.hold(Vec::from(&b"{\"a\":1}\n{\"b\":2}\n"[..]));
        let first = text.slice(..8);
        drop(text);
        assert_eq!(budget.held(), 16, "a slice keeps the whole buffer");
        assert!(metrics.encode().contains("seawall_buffered_bytes 16"));
        drop(first);
        assert_eq!(budget.held(), 0);
    }

    #[test]
    fn admission_counts_the_process_outside_the_buffers() {
        let budget = Budget::new(&Metrics::new());
        budget.set_limit(Some(1000));
        let held = budget.lease(300);
        budget.observe_process(800);
        // 500 outside the buffers + 300 held: 200 left.
        assert!(budget.try_reserve(200).is_ok());
        let err = budget.try_reserve(201).unwrap_err();
        assert_eq!(
            err,
            OverBudget {
                wanted: 201,
                limit: 1000
            }
        );
        assert_eq!(budget.held(), 300, "a refusal leaves nothing counted");
        drop(held);
        budget.set_limit(None);
        assert!(budget.try_reserve(u64::MAX / 2).is_ok());
    }
}
