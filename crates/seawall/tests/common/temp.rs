//! Fresh paths under the system temp directory, unique per process and call, for file outputs
//! and browser profiles.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

/// A path no other call returns, with nothing at it: `seawall-{tag}-{pid}-{n}`.
pub fn temp_path(tag: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let path = std::env::temp_dir().join(format!(
        "seawall-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&path);
    let _ = std::fs::remove_file(&path);
    path
}

/// A fresh empty directory at [`temp_path`].
pub fn temp_dir(tag: &str) -> PathBuf {
    let dir = temp_path(tag);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
