//! The syncer: one thread per disk buffer that `fsync`s the open segment, at once when
//! `sync: always` has appends waiting (requests that arrived meanwhile share the sync), or
//! every `sync_interval`. Nothing with `sync: none`.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::log::Log;
use crate::config::SyncPolicy;

/// Starts the syncer of `log` (none for `sync: none`); it ends after [`Log::close`], with a last
/// sync.
pub(crate) fn spawn(log: Arc<Log>, interval: Duration) -> std::io::Result<Option<JoinHandle<()>>> {
    let every = match log.policy {
        SyncPolicy::None => return Ok(None),
        SyncPolicy::Always => None,
        SyncPolicy::Interval => Some(interval),
    };
    let name = format!("seawall-sync-{}", log.pipeline);
    let handle = std::thread::Builder::new().name(name).spawn(move || loop {
        let closed = log.wait(every);
        // A failure is counted, logged and sheds ingest (`Log::sync`); the next sync retries.
        let _ = log.sync();
        if closed {
            return;
        }
    })?;
    Ok(Some(handle))
}
