//! Many handles, one fetch: connections to the same host (however its URL is spelled) share
//! one cached flag set, fetched once however many readers arrive at the same time.
//!
//! `cargo run -p seawall-flags --example shared_handles`

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use seawall_flags::{fetcher, FlagCache, FlagSet};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), seawall_flags::Error> {
    let fetches = Arc::new(AtomicUsize::new(0));
    let counted = fetches.clone();
    // A stand-in for the flag service: a little slow, and counting its calls.
    let cache = FlagCache::builder(fetcher::from_fn(move |host: String| {
        counted.fetch_add(1, Ordering::SeqCst);
        async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let telemetry = if host == "example.com" {
                "false"
            } else {
                "true"
            };
            Ok(FlagSet::new([("seawall.telemetry.enabled", telemetry)]))
        }
    }))
    .ttl(Duration::from_secs(900))
    .build()?;

    // Three connections to one host, spelled three ways: one entry.
    let handles = [
        cache.acquire("https://example.com/sql/1.0")?,
        cache.acquire("HTTPS://Example.com:443")?,
        cache.acquire("example.com")?,
    ];
    // All read at once: they wait for the same single fetch.
    let flag = "seawall.telemetry.enabled";
    let values = tokio::join!(
        handles[0].get_bool(flag, true),
        handles[1].get_bool(flag, true),
        handles[2].get_bool(flag, true),
    );
    println!(
        "values: {values:?}, fetches: {}",
        fetches.load(Ordering::SeqCst)
    );
    assert_eq!(values, (false, false, false));
    assert_eq!(fetches.load(Ordering::SeqCst), 1);

    // Within the TTL, reads come from the cache.
    assert!(!handles[0].get_bool(flag, true).await);
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
    for host in cache.snapshot().hosts {
        println!(
            "{}: {} handles, flags {:?}",
            host.host, host.handles, host.flags
        );
    }
    Ok(())
}
