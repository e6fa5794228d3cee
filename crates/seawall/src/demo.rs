//! `seawall demo`: a simulated dependency that degrades and recovers, called through a
//! circuit breaker, with each transition printed as it happens and a summary at the end.

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use seawall_breaker::{CircuitBreaker, Config, Outcome, Reason, State, Window};
use tokio::time::{interval, sleep, Instant, MissedTickBehavior};

/// Options of the demo.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// How long the demo runs (its phases scale with it).
    pub duration: Duration,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            duration: Duration::from_secs(60),
        }
    }
}

/// How the simulated dependency behaves in each part of the run.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Phase {
    name: &'static str,
    /// Share of calls answered with an overload error.
    error_rate: f64,
    /// Time to answer.
    latency: Duration,
    /// `Retry-After` the dependency sends with its overload errors.
    retry_after: Option<Duration>,
}

const PHASES: [(f64, Phase); 4] = [
    (
        0.0,
        Phase {
            name: "healthy",
            error_rate: 0.01,
            latency: Duration::from_millis(20),
            retry_after: None,
        },
    ),
    (
        0.25,
        Phase {
            name: "overloaded (529 storm)",
            error_rate: 0.9,
            latency: Duration::from_millis(5),
            retry_after: Some(Duration::from_secs(3)),
        },
    ),
    (
        0.55,
        Phase {
            name: "slow, recovering",
            error_rate: 0.3,
            latency: Duration::from_millis(300),
            retry_after: None,
        },
    ),
    (
        0.7,
        Phase {
            name: "recovered",
            error_rate: 0.01,
            latency: Duration::from_millis(20),
            retry_after: None,
        },
    ),
];

fn phase_at(progress: f64) -> Phase {
    PHASES
        .iter()
        .rev()
        .find(|(start, _)| progress >= *start)
        .map(|(_, p)| *p)
        .unwrap_or(PHASES[0].1)
}

/// What the run did.
#[derive(Default)]
struct Tally {
    attempted: AtomicU64,
    succeeded: AtomicU64,
    failed: AtomicU64,
    rejected: AtomicU64,
    trips: AtomicU64,
}

/// The policy the demo shows off: consecutive failures and a failure rate, short open periods
/// so that recovery is visible within a minute.
fn demo_policy() -> Config {
    Config::builder()
        .failure_threshold(5)
        .failure_rate_threshold(0.5)
        .window(Window::Time {
            duration: Duration::from_secs(5),
            buckets: 5,
        })
        .minimum_calls(20)
        .slow_call_rate_threshold(0.8)
        .slow_call_duration(Duration::from_millis(250))
        .open_timeout(Duration::from_secs(2))
        .open_timeout_max(Duration::from_secs(16))
        .half_open_max_calls(3)
        .half_open_timeout(Duration::from_secs(5))
        .retry_after_max(Duration::from_secs(10))
        .build()
        .expect("the demo policy is valid")
}

/// Runs the demo: about 50 calls a second against the simulated dependency for
/// `options.duration`, or until Ctrl-C.
pub async fn run(options: DemoOptions) -> io::Result<()> {
    let duration = options.duration.max(Duration::from_secs(4));
    let start = Instant::now();
    let breaker = CircuitBreaker::new(demo_policy());
    let tally = Arc::new(Tally::default());
    {
        let tally = tally.clone();
        breaker.on_state_change(move |t| {
            if t.to == State::Open {
                tally.trips.fetch_add(1, Ordering::Relaxed);
            }
            let open_for = t
                .open_for
                .map(|d| format!(", open for {:.1}s", d.as_secs_f64()))
                .unwrap_or_default();
            println!(
                "[{:>5.1}s] breaker {} -> {} ({}{})",
                start.elapsed().as_secs_f64(),
                t.from,
                t.to,
                t.reason,
                open_for
            );
        });
    }
    println!(
        "seawall demo: a dependency that degrades and recovers, called ~50 times a second through a breaker for {}s (Ctrl-C ends it early).",
        duration.as_secs()
    );
    let mut calls = interval(Duration::from_millis(20));
    calls.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut status = interval(Duration::from_secs(5));
    let mut phase = "";
    let deadline = sleep(duration);
    tokio::pin!(deadline);
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        tokio::select! {
            _ = &mut deadline => break,
            _ = &mut ctrl_c => { println!("interrupted"); break; }
            _ = status.tick() => print_status(start, &breaker, &tally),
            _ = calls.tick() => {
                let current = phase_at(start.elapsed().as_secs_f64() / duration.as_secs_f64());
                if current.name != phase {
                    phase = current.name;
                    println!("[{:>5.1}s] dependency is now {phase}", start.elapsed().as_secs_f64());
                }
                spawn_call(&breaker, &tally, current);
            }
        }
        breaker.tick();
    }
    print_summary(&breaker, &tally);
    io::stdout().flush()
}

fn spawn_call(breaker: &CircuitBreaker, tally: &Arc<Tally>, phase: Phase) {
    tally.attempted.fetch_add(1, Ordering::Relaxed);
    let permit = match breaker.try_acquire_owned() {
        Ok(p) => p,
        Err(_) => {
            tally.rejected.fetch_add(1, Ordering::Relaxed);
            return;
        }
    };
    let tally = tally.clone();
    tokio::spawn(async move {
        sleep(phase.latency).await;
        if fastrand::f64() < phase.error_rate {
            tally.failed.fetch_add(1, Ordering::Relaxed);
            permit.record(match phase.retry_after {
                Some(d) if fastrand::f64() < 0.2 => Outcome::FailureWithRetryAfter(d),
                _ => Outcome::Failure,
            });
        } else {
            tally.succeeded.fetch_add(1, Ordering::Relaxed);
            permit.success();
        }
    });
}

fn print_status(start: Instant, breaker: &CircuitBreaker, tally: &Tally) {
    let s = breaker.snapshot();
    println!(
        "[{:>5.1}s] state={} calls={} ok={} failed={} rejected={} (window: {} of {} calls failed)",
        start.elapsed().as_secs_f64(),
        s.state,
        tally.attempted.load(Ordering::Relaxed),
        tally.succeeded.load(Ordering::Relaxed),
        tally.failed.load(Ordering::Relaxed),
        tally.rejected.load(Ordering::Relaxed),
        s.counts.window_failures,
        s.counts.window_calls,
    );
}

fn print_summary(breaker: &CircuitBreaker, tally: &Tally) {
    let attempted = tally.attempted.load(Ordering::Relaxed);
    let rejected = tally.rejected.load(Ordering::Relaxed);
    let s = breaker.snapshot();
    println!("\nsummary");
    println!("  calls attempted        {attempted}");
    println!("  reached the dependency {}", attempted - rejected);
    println!(
        "    succeeded            {}",
        tally.succeeded.load(Ordering::Relaxed)
    );
    println!(
        "    failed               {}",
        tally.failed.load(Ordering::Relaxed)
    );
    println!(
        "  rejected at once       {rejected} ({:.0}% of calls never hit the struggling dependency)",
        100.0 * rejected as f64 / attempted.max(1) as f64
    );
    println!(
        "  trips                  {}",
        tally.trips.load(Ordering::Relaxed)
    );
    println!(
        "  final state            {}{}",
        s.state,
        s.reason
            .map(|r: Reason| format!(" ({r})"))
            .unwrap_or_default()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_follow_the_run() {
        assert_eq!(phase_at(0.0).name, "healthy");
        assert_eq!(phase_at(0.3).name, "overloaded (529 storm)");
        assert_eq!(phase_at(0.6).name, "slow, recovering");
        assert_eq!(phase_at(0.99).name, "recovered");
    }

    #[test]
    fn demo_policy_is_valid() {
        assert_eq!(demo_policy().half_open_max_calls(), 3);
    }
}
