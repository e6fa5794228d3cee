//! Fake global-health probes: a resident-memory reading the test sets, a constant one, and
//! readings scripted check by check.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use seawall::health::Probes;

/// A resident-memory probe reading what the test last set.
#[derive(Clone)]
pub struct Memory(Arc<AtomicU64>);

impl Memory {
    /// A probe reading `bytes` until [`Memory::set`] says otherwise.
    pub fn new(bytes: u64) -> Self {
        Memory(Arc::new(AtomicU64::new(bytes)))
    }

    /// The probe reads `bytes` from its next check on.
    pub fn set(&self, bytes: u64) {
        self.0.store(bytes, Ordering::SeqCst);
    }

    /// Probes with this memory reading and the daemon's own queue reading.
    pub fn probes(&self) -> Probes {
        let rss = self.0.clone();
        Probes {
            memory: Some(Arc::new(move || Some(rss.load(Ordering::SeqCst)))),
            queue: None,
        }
    }
}

/// Probes whose memory always reads `bytes` (and the daemon's own queue reading).
pub fn constant_memory(bytes: u64) -> Probes {
    Memory::new(bytes).probes()
}

/// Probes reading `(memory, queue fill)` pairs in turn, one pair per check (memory is read
/// first, queue second), the last pair over and over once the script has run out.
pub fn scripted(readings: &[(u64, f64)]) -> Probes {
    let script: Arc<[(u64, f64)]> = readings.into();
    let next = Arc::new(AtomicUsize::new(0));
    let at = |i: usize, script: &[(u64, f64)]| script[i.min(script.len() - 1)];
    let memory = {
        let (script, next) = (script.clone(), next.clone());
        move || Some(at(next.load(Ordering::SeqCst), &script).0)
    };
    let queue = move || {
        // The queue probe is read second: move on to the next pair.
        Some(at(next.fetch_add(1, Ordering::SeqCst), &script).1)
    };
    Probes {
        memory: Some(Arc::new(memory)),
        queue: Some(Arc::new(queue)),
    }
}
