//! The tower layer: classification, typed rejections, and cancellation safety (the permit
//! lives in the response future).
#![cfg(feature = "tower")]

use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use seawall_breaker::tower::CircuitBreakerLayer;
use seawall_breaker::{CircuitBreaker, Clock, Config, ManualClock, Outcome, State};
use tower_layer::Layer;
use tower_service::Service;

/// Answers each request with the status it is given, after `polls_needed` polls; counts calls.
#[derive(Clone)]
struct Upstream {
    calls: Arc<AtomicUsize>,
    polls_needed: usize,
}

struct Slow {
    status: u16,
    left: usize,
}

impl Future for Slow {
    type Output = Result<u16, &'static str>;
    fn poll(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Self::Output> {
        if self.left == 0 {
            return Poll::Ready(if self.status == 0 {
                Err("connect refused")
            } else {
                Ok(self.status)
            });
        }
        self.left -= 1;
        Poll::Pending
    }
}

impl Service<u16> for Upstream {
    type Response = u16;
    type Error = &'static str;
    type Future = Slow;
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }
    fn call(&mut self, status: u16) -> Slow {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Slow {
            status,
            left: self.polls_needed,
        }
    }
}

fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

fn classify(r: Result<&u16, &&'static str>) -> Outcome {
    match r {
        Ok(429) | Ok(503) => Outcome::Failure,
        Ok(s) if *s >= 400 && *s < 500 => Outcome::Ignore,
        Ok(_) => Outcome::Success,
        Err(_) => Outcome::Failure,
    }
}

fn setup(
    polls_needed: usize,
) -> (
    CircuitBreaker,
    ManualClock,
    Arc<AtomicUsize>,
    impl Service<u16, Response = u16, Error = seawall_breaker::CallError<&'static str>>,
) {
    let clock = ManualClock::new();
    let cb = CircuitBreaker::new(
        Config::builder()
            .clock(Clock::manual(&clock))
            .failure_threshold(2)
            .half_open_max_calls(1)
            .jitter(0.0)
            .build()
            .unwrap(),
    );
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = CircuitBreakerLayer::new(cb.clone(), classify).layer(Upstream {
        calls: calls.clone(),
        polls_needed,
    });
    (cb, clock, calls, svc)
}

#[test]
fn classified_failures_trip_and_rejections_do_not_reach_the_service() {
    let (cb, _clock, calls, mut svc) = setup(0);
    assert_eq!(block_on(svc.call(404)).unwrap(), 404); // ignored
    assert_eq!(block_on(svc.call(503)).unwrap(), 503);
    assert!(block_on(svc.call(0)).unwrap_err().rejected().is_none()); // transport error
    assert_eq!(cb.state(), State::Open);
    let err = block_on(svc.call(200)).unwrap_err();
    assert_eq!(
        err.rejected().unwrap().retry_after(),
        Duration::from_secs(30)
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "the rejected call never reached the upstream"
    );
}

#[test]
fn dropping_a_response_future_frees_the_half_open_slot() {
    let (cb, clock, calls, mut svc) = setup(5);
    cb.trip(seawall_breaker::Reason::Manual);
    clock.advance(Duration::from_secs(30));
    let mut probe = Box::pin(svc.call(200));
    let mut cx = Context::from_waker(Waker::noop());
    assert!(probe.as_mut().poll(&mut cx).is_pending());
    assert!(
        block_on(svc.call(200)).unwrap_err().rejected().is_some(),
        "slot is taken"
    );
    drop(probe); // the caller went away mid-call
    assert_eq!(block_on(svc.call(200)).unwrap(), 200, "slot was freed");
    assert_eq!(cb.state(), State::Closed);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}
