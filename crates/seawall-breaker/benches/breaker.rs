//! Seawall's circuit breaker against its peers, side by side in one run.
//!
//! Implementations: `seawall-breaker`, `failsafe` 1.3, `recloser` 1.4 and
//! `tower-resilience-circuitbreaker` 0.14, each with a 5-consecutive-failures policy (or its
//! equivalent) and a one-hour open period, used at its fastest correct API.
//!
//! Scenarios (criterion groups), each reported as time per call (per thread for `_2t`):
//! 1. `closed_success_1t`: admit a call and record a success, one thread.
//! 2. `open_reject_1t`: the breaker was tripped open by failures; the call is rejected.
//! 3. `closed_success_2t`: as 1, two threads hammering one shared breaker.
//! 4. `open_reject_2t`: as 2, two threads on one shared breaker.
//! 5. `tower_closed`, `tower_open`: a tower `Layer` around a trivial always-ready service,
//!    driven by `poll_ready` + `call` + one poll of the response future with a no-op waker,
//!    against the bare service.
//!
//! Before criterion runs, the binary counts heap allocations per call (through a counting
//! global allocator) for every implementation in scenarios 1, 2 and 5 and prints them. It
//! panics if Seawall's plain API allocates on either hot path.
//!
//! `tower-resilience-circuitbreaker` has no plain-call API: in scenarios 1-4 it is measured
//! through its `Service` around the same no-op inner service, inside a current-thread tokio
//! runtime (its mutex and timer need one under contention).
//!
//! Run: `cargo bench -p seawall-breaker --features tower --bench breaker`.

use std::alloc::System;
use std::future::{poll_fn, Future};
use std::hint::black_box;
use std::pin::pin;
use std::sync::Barrier;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};
use tower_layer::Layer;
use tower_service::Service;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Every breaker trips after this many consecutive failures.
const THRESHOLD: u32 = 5;
/// Long enough that a tripped breaker stays open for the whole run.
const OPEN_FOR: Duration = Duration::from_secs(3600);

// ----- the trivial inner service ---------------------------------------------------------

/// Always ready; answers `Ok(())` to `true` and `Err(())` to `false` at once.
#[derive(Clone, Copy, Debug)]
struct Echo;

impl Service<bool> for Echo {
    type Response = ();
    type Error = ();
    type Future = std::future::Ready<Result<(), ()>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, ok: bool) -> Self::Future {
        std::future::ready(if ok { Ok(()) } else { Err(()) })
    }
}

/// One tower call without a runtime: `poll_ready`, `call`, one poll of the future (all the
/// services measured here complete at once when uncontended).
#[inline]
fn tower_call<S: Service<bool>>(svc: &mut S, req: bool) -> Result<S::Response, S::Error> {
    let mut cx = Context::from_waker(Waker::noop());
    match svc.poll_ready(&mut cx) {
        Poll::Ready(Ok(())) => {}
        Poll::Ready(Err(e)) => return Err(e),
        Poll::Pending => panic!("the benchmarked service should be ready at once"),
    }
    match pin!(svc.call(req)).poll(&mut cx) {
        Poll::Ready(r) => r,
        Poll::Pending => panic!("the benchmarked future should complete at once"),
    }
}

// ----- implementations under test ---------------------------------------------------------

/// A handle on one breaker in a given state, doing one kind of call. Clones share the
/// breaker; each thread of a two-thread run gets its own clone.
trait Contender: Clone + Send + 'static {
    /// Makes one call; `true` if the breaker admitted it.
    fn call(&mut self) -> bool;

    /// Makes `iters` calls and returns how long they took and how many were admitted.
    fn run(&mut self, iters: u64) -> (Duration, u64) {
        let mut admitted = 0u64;
        let start = Instant::now();
        for _ in 0..iters {
            admitted += u64::from(black_box(self.call()));
        }
        (start.elapsed(), admitted)
    }
}

#[derive(Clone)]
struct Seawall {
    cb: seawall_breaker::CircuitBreaker,
}

impl Seawall {
    fn new() -> Self {
        let config = seawall_breaker::Config::builder()
            .failure_threshold(THRESHOLD)
            .open_timeout(OPEN_FOR)
            .open_timeout_max(OPEN_FOR)
            .build()
            .expect("valid config");
        Seawall {
            cb: seawall_breaker::CircuitBreaker::new(config),
        }
    }

    fn tripped() -> Self {
        let s = Self::new();
        for _ in 0..THRESHOLD {
            s.cb.try_acquire().expect("closed").failure();
        }
        s
    }

    fn forced_open() -> Self {
        let s = Self::new();
        s.cb.force_open();
        s
    }
}

impl Contender for Seawall {
    #[inline]
    fn call(&mut self) -> bool {
        match self.cb.try_acquire() {
            Ok(permit) => {
                permit.success();
                true
            }
            Err(rejected) => {
                black_box(rejected);
                false
            }
        }
    }
}

type FailsafePolicy = failsafe::failure_policy::ConsecutiveFailures<failsafe::backoff::Constant>;

#[derive(Clone)]
struct Failsafe {
    cb: failsafe::StateMachine<FailsafePolicy, ()>,
}

impl Failsafe {
    fn new() -> Self {
        let policy = failsafe::failure_policy::consecutive_failures(
            THRESHOLD,
            failsafe::backoff::constant(OPEN_FOR),
        );
        Failsafe {
            cb: failsafe::Config::new().failure_policy(policy).build(),
        }
    }

    fn tripped() -> Self {
        use failsafe::CircuitBreaker as _;
        let s = Self::new();
        for _ in 0..THRESHOLD {
            let _ = s.cb.call(|| Err::<(), ()>(()));
        }
        s
    }
}

impl Contender for Failsafe {
    #[inline]
    fn call(&mut self) -> bool {
        use failsafe::CircuitBreaker as _;
        // `call` is `is_call_permitted` + `on_success`, the crate's own fast path.
        black_box(self.cb.call(|| Ok::<(), ()>(()))).is_ok()
    }
}

#[derive(Clone)]
struct Recloser {
    cb: std::sync::Arc<recloser::Recloser>,
}

impl Recloser {
    /// No consecutive-failures policy in recloser: a 5-call ring that trips at a 100 % failure
    /// rate is the equivalent.
    fn new() -> Self {
        let cb = recloser::Recloser::custom()
            .closed_len(THRESHOLD as usize)
            .error_rate_closed(1.0)
            .open_wait(OPEN_FOR)
            .build();
        Recloser {
            cb: std::sync::Arc::new(cb),
        }
    }

    fn tripped() -> Self {
        let s = Self::new();
        // The ring must fill before it reports a rate, so it may take one more failure.
        for _ in 0..=THRESHOLD {
            let _ = s.cb.call(|| Err::<(), ()>(()));
        }
        s
    }
}

impl Contender for Recloser {
    #[inline]
    fn call(&mut self) -> bool {
        black_box(self.cb.call(|| Ok::<(), ()>(()))).is_ok()
    }
}

type TrSvc = tower_resilience_circuitbreaker::CircuitBreaker<
    Echo,
    tower_resilience_circuitbreaker::DefaultClassifier,
>;

#[derive(Clone)]
struct TowerResilience {
    svc: TrSvc,
}

fn current_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("tokio runtime")
}

impl TowerResilience {
    fn new() -> Self {
        let layer = tower_resilience_circuitbreaker::CircuitBreakerLayer::builder()
            .consecutive_failures(THRESHOLD as usize)
            .wait_duration_in_open(OPEN_FOR)
            .build()
            .expect("valid config");
        TowerResilience {
            svc: layer.layer(Echo),
        }
    }

    fn tripped() -> Self {
        let mut s = Self::new();
        current_thread_runtime().block_on(async {
            for _ in 0..THRESHOLD {
                let _ = s.svc_call(false).await;
            }
        });
        assert!(s.svc.is_open(), "tower-resilience should have tripped");
        s
    }

    async fn svc_call(&mut self, req: bool) -> bool {
        poll_fn(|cx| self.svc.poll_ready(cx)).await.is_ok()
            && black_box(self.svc.call(req).await).is_ok()
    }
}

impl Contender for TowerResilience {
    /// Only for completeness: `run` is what the benchmarks use.
    fn call(&mut self) -> bool {
        current_thread_runtime().block_on(self.svc_call(true))
    }

    /// All `iters` calls inside one `block_on`, so the runtime costs nothing per call.
    fn run(&mut self, iters: u64) -> (Duration, u64) {
        current_thread_runtime().block_on(async {
            let mut admitted = 0u64;
            let start = Instant::now();
            for _ in 0..iters {
                admitted += u64::from(self.svc_call(true).await);
            }
            (start.elapsed(), admitted)
        })
    }
}

/// A tower service driven without a runtime by [`tower_call`].
#[derive(Clone)]
struct Tower<S>(S);

impl<S> Contender for Tower<S>
where
    S: Service<bool> + Clone + Send + 'static,
{
    #[inline]
    fn call(&mut self) -> bool {
        black_box(tower_call(&mut self.0, true)).is_ok()
    }
}

type SeawallTower =
    Tower<seawall_breaker::tower::CircuitBreakerService<Echo, seawall_breaker::tower::FailOnError>>;

fn seawall_tower(open: bool) -> SeawallTower {
    let mut t = Tower(
        seawall_breaker::tower::CircuitBreakerLayer::fail_on_error(Seawall::new().cb).layer(Echo),
    );
    if open {
        for _ in 0..THRESHOLD {
            let _ = tower_call(&mut t.0, false);
        }
    }
    t
}

fn tower_resilience_tower(open: bool) -> Tower<TrSvc> {
    if open {
        Tower(TowerResilience::tripped().svc)
    } else {
        Tower(TowerResilience::new().svc)
    }
}

// ----- allocation counts -------------------------------------------------------------------

const ALLOC_WARMUP: u64 = 1_000;
const ALLOC_CALLS: u64 = 10_000;

/// Allocations per call over `ALLOC_CALLS` calls after a warm-up, less what an empty run
/// allocates (tower-resilience builds a runtime per run). Checks that every call was admitted
/// (`expect_admitted`) or every call rejected.
fn allocs_per_call(mut c: impl Contender, expect_admitted: bool) -> f64 {
    let allocations = |c: &mut dyn FnMut() -> u64| {
        let region = Region::new(GLOBAL);
        let admitted = c();
        (region.change().allocations, admitted)
    };
    c.run(ALLOC_WARMUP);
    let (fixed, _) = allocations(&mut || c.run(0).1);
    let (total, admitted) = allocations(&mut || c.run(ALLOC_CALLS).1);
    let expected = if expect_admitted { ALLOC_CALLS } else { 0 };
    assert_eq!(
        admitted, expected,
        "the breaker was not in the expected state"
    );
    total.saturating_sub(fixed) as f64 / ALLOC_CALLS as f64
}

fn report_allocations() {
    let rows = [
        (
            "closed_success_1t",
            "seawall",
            allocs_per_call(Seawall::new(), true),
        ),
        (
            "closed_success_1t",
            "failsafe",
            allocs_per_call(Failsafe::new(), true),
        ),
        (
            "closed_success_1t",
            "recloser",
            allocs_per_call(Recloser::new(), true),
        ),
        (
            "closed_success_1t",
            "tower_resilience",
            allocs_per_call(TowerResilience::new(), true),
        ),
        (
            "open_reject_1t",
            "seawall",
            allocs_per_call(Seawall::tripped(), false),
        ),
        (
            "open_reject_1t",
            "seawall_forced",
            allocs_per_call(Seawall::forced_open(), false),
        ),
        (
            "open_reject_1t",
            "failsafe",
            allocs_per_call(Failsafe::tripped(), false),
        ),
        (
            "open_reject_1t",
            "recloser",
            allocs_per_call(Recloser::tripped(), false),
        ),
        (
            "open_reject_1t",
            "tower_resilience",
            allocs_per_call(TowerResilience::tripped(), false),
        ),
        ("tower_closed", "bare", allocs_per_call(Tower(Echo), true)),
        (
            "tower_closed",
            "seawall",
            allocs_per_call(seawall_tower(false), true),
        ),
        (
            "tower_closed",
            "tower_resilience",
            allocs_per_call(tower_resilience_tower(false), true),
        ),
        (
            "tower_open",
            "seawall",
            allocs_per_call(seawall_tower(true), false),
        ),
        (
            "tower_open",
            "tower_resilience",
            allocs_per_call(tower_resilience_tower(true), false),
        ),
    ];
    println!("allocations per call ({ALLOC_CALLS} calls after {ALLOC_WARMUP} warm-up calls):");
    for (scenario, name, per_call) in rows {
        println!("  {scenario:<18} {name:<17} {per_call:.2}");
    }
    let seawall: Vec<f64> = rows
        .iter()
        .filter(|(_, name, _)| name.starts_with("seawall"))
        .map(|r| r.2)
        .collect();
    assert!(
        seawall.iter().all(|&a| a == 0.0),
        "Seawall allocated on a hot path: {rows:?}"
    );
}

// ----- criterion ---------------------------------------------------------------------------

fn one_thread<C: Contender>(g: &mut BenchmarkGroup<'_, WallTime>, name: &str, c: C) {
    let mut c = c;
    g.bench_function(name, |b| b.iter_custom(|iters| c.run(iters).0));
}

/// Two threads, one shared breaker: each does `iters` calls after a common start; the
/// slower thread's time is reported, so the result is time per call per thread.
fn two_threads<C: Contender>(g: &mut BenchmarkGroup<'_, WallTime>, name: &str, c: C) {
    g.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let barrier = Barrier::new(2);
            std::thread::scope(|s| {
                let handles: Vec<_> = (0..2)
                    .map(|_| {
                        let mut mine = c.clone();
                        let barrier = &barrier;
                        s.spawn(move || {
                            barrier.wait();
                            mine.run(iters).0
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().expect("bench thread panicked"))
                    .max()
                    .unwrap_or_default()
            })
        })
    });
}

fn benches(c: &mut Criterion) {
    report_allocations();

    let mut g = c.benchmark_group("closed_success_1t");
    one_thread(&mut g, "seawall", Seawall::new());
    one_thread(&mut g, "failsafe", Failsafe::new());
    one_thread(&mut g, "recloser", Recloser::new());
    one_thread(&mut g, "tower_resilience", TowerResilience::new());
    g.finish();

    let mut g = c.benchmark_group("open_reject_1t");
    one_thread(&mut g, "seawall", Seawall::tripped());
    one_thread(&mut g, "seawall_forced", Seawall::forced_open());
    one_thread(&mut g, "failsafe", Failsafe::tripped());
    one_thread(&mut g, "recloser", Recloser::tripped());
    one_thread(&mut g, "tower_resilience", TowerResilience::tripped());
    g.finish();

    let mut g = c.benchmark_group("closed_success_2t");
    two_threads(&mut g, "seawall", Seawall::new());
    two_threads(&mut g, "failsafe", Failsafe::new());
    two_threads(&mut g, "recloser", Recloser::new());
    two_threads(&mut g, "tower_resilience", TowerResilience::new());
    g.finish();

    let mut g = c.benchmark_group("open_reject_2t");
    two_threads(&mut g, "seawall", Seawall::tripped());
    two_threads(&mut g, "seawall_forced", Seawall::forced_open());
    two_threads(&mut g, "failsafe", Failsafe::tripped());
    two_threads(&mut g, "recloser", Recloser::tripped());
    two_threads(&mut g, "tower_resilience", TowerResilience::tripped());
    g.finish();

    let mut g = c.benchmark_group("tower_closed");
    one_thread(&mut g, "bare", Tower(Echo));
    one_thread(&mut g, "seawall", seawall_tower(false));
    one_thread(&mut g, "tower_resilience", tower_resilience_tower(false));
    g.finish();

    let mut g = c.benchmark_group("tower_open");
    one_thread(&mut g, "seawall", seawall_tower(true));
    one_thread(&mut g, "tower_resilience", tower_resilience_tower(true));
    g.finish();
}

criterion_group!(breaker, benches);
criterion_main!(breaker);
