//! The cached read path (target ≤ 50 ns) and a cold-start stampede (10,000 tasks, one fetch).

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use seawall_flags::{fetcher, FlagCache, FlagSet};

const FLAG: &str = "seawall.circuit_breaker.enabled";

/// A cache whose fetcher answers 20 flags at once and counts its calls.
fn counting_cache() -> (FlagCache, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let fetcher = fetcher::from_fn(move |_host| {
        counter.fetch_add(1, Ordering::SeqCst);
        async {
            tokio::task::yield_now().await;
            let mut flags: Vec<(String, String)> = (0..19)
                .map(|i| (format!("seawall.flag.{i:02}"), "true".to_owned()))
                .collect();
            flags.push((FLAG.to_owned(), "false".to_owned()));
            Ok(FlagSet::new(flags))
        }
    });
    (FlagCache::builder(fetcher).build().unwrap(), calls)
}

fn cached_read(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let (cache, _) = counting_cache();
    let handle = cache.acquire("db.example").unwrap();
    assert!(!runtime.block_on(handle.get_bool(FLAG, true)));

    let mut group = c.benchmark_group("cached_read");
    group.bench_function("get_bool_now", |b| {
        b.iter(|| handle.get_bool_now(black_box(FLAG), black_box(true)))
    });
    group.bench_function("get_bool_async_polled_once", |b| {
        let mut cx = Context::from_waker(Waker::noop());
        b.iter(
            || match pin!(handle.get_bool(black_box(FLAG), true)).poll(&mut cx) {
                Poll::Ready(value) => value,
                Poll::Pending => panic!("a fresh read must not wait"),
            },
        )
    });
    group.finish();
}

fn cold_stampede(c: &mut Criterion) {
    const TASKS: usize = 10_000;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("cold_stampede");
    group.sample_size(10);
    group.bench_function("10k_tasks_one_fetch", |b| {
        b.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                let (cache, calls) = counting_cache();
                let started = Instant::now();
                runtime.block_on(async {
                    let readers: Vec<_> = (0..TASKS)
                        .map(|_| {
                            let cache = cache.clone();
                            tokio::spawn(async move {
                                let handle = cache.acquire("db.example").unwrap();
                                handle.get_bool(FLAG, true).await
                            })
                        })
                        .collect();
                    for reader in readers {
                        assert!(!reader.await.unwrap());
                    }
                });
                total += started.elapsed();
                assert_eq!(
                    calls.load(Ordering::SeqCst),
                    1,
                    "one fetch for {TASKS} readers"
                );
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, cached_read, cold_stampede);
criterion_main!(benches);
