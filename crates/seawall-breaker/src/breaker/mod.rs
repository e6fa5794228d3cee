//! The circuit breaker: a lock-free admission and accounting path over a packed state word,
//! and a locked slow path for the rare state transitions.
//!
//! - this file: the public [`CircuitBreaker`], the shared state (`Inner`) and snapshots;
//! - `admit.rs`: who may call (closed fast path, rejection while open, bounded probes);
//! - `record.rs`: what a verdict changes (streaks, windows, probe rounds);
//! - `transitions.rs`: the locked state changes and the listeners they notify.

use std::fmt;
use std::future::Future;
use std::sync::atomic::Ordering::*;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use crate::clock::{saturating_nanos, Clock};
use crate::config::Config;
use crate::permit::{Outcome, OwnedPermit, Permit, Rejected, Ticket, TicketKind, STARTED_MASK};
use crate::snapshot::{Counts, Snapshot};
use crate::state::{
    Mode, Reason, State, Word, IN_FLIGHT_ONE, OPEN_NORMAL, STATE_MASK, STATE_MODE_MASK, SUCCESS_ONE,
};
use crate::striped::StripedCounter;
use crate::sync::{AtomicBool, AtomicU32, AtomicU64, Mutex, MutexGuard};
use crate::transition::{Listener, Transition};
use crate::window::Rolling;

mod admit;
mod fleet;
mod policy;
mod record;
mod transitions;

use policy::{Policy, PolicyCell};

/// Milliseconds of a clock reading, truncated to the width a ticket keeps.
fn millis(nanos: u64) -> u32 {
    (nanos / 1_000_000) as u32 & STARTED_MASK
}

/// A callback told the length of the current run of failures (see
/// [`CircuitBreaker::on_failure_streak`]).
pub type StreakWatcher = Box<dyn Fn(u32) + Send + Sync>;

/// A deadline that never arrives.
const NEVER: u64 = u64::MAX;
/// The retry hint given while half-open probe slots are all taken, or while probes are held
/// for another replica's round.
const PROBES_BUSY_HINT: Duration = Duration::from_secs(1);

/// A circuit breaker. Cheap to clone: clones share one breaker.
///
/// ```
/// use seawall_breaker::{CircuitBreaker, Config, State};
///
/// let cb = CircuitBreaker::new(Config::builder().failure_threshold(2).build().unwrap());
/// for _ in 0..2 {
///     let permit = cb.try_acquire().expect("closed breakers admit calls");
///     permit.failure();
/// }
/// assert_eq!(cb.state(), State::Open);
/// let rejected = cb.try_acquire().unwrap_err();
/// assert!(rejected.retry_after().as_secs() >= 29);
/// ```
#[derive(Clone)]
pub struct CircuitBreaker {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    /// State, mode, half-open probe counts and generation; see [`Word`].
    word: AtomicU64,
    /// When the open period ends (clock nanoseconds); meaningful while `Open`.
    open_until: AtomicU64,
    /// When unresolved half-open probes time out; `NEVER` until the round's first probe.
    probe_deadline: AtomicU64,
    /// Failures since the last success, while closed.
    consecutive_failures: AtomicU32,
    /// While set, no probe starts here: an ended open period does not go half-open and a
    /// half-open round admits no new probe (another replica probes for the fleet).
    probes_held: AtomicBool,
    /// The policy and what is derived from it; replaced whole by `reconfigure`.
    policy: PolicyCell,
    /// Whether outcomes of closed calls need only the failure streak (no window, no timing):
    /// the policy's answer, kept where the success fast path reads it with one load.
    simple: AtomicBool,
    /// Whether permits time their calls (a slow-call threshold is set): read on admission.
    timed: AtomicBool,
    /// Whether verdicts add to `successes` and `failures` (the policy's `count_outcomes`).
    counted: AtomicBool,
    /// The breaker's time; kept across reconfigurations.
    clock: Clock,
    rejected: StripedCounter,
    would_reject: StripedCounter,
    /// Calls reported a success, ever, while `counted`.
    successes: StripedCounter,
    /// Calls reported a failure, ever, while `counted`.
    failures: StripedCounter,
    /// Told of every change of `consecutive_failures` while closed (see
    /// [`CircuitBreaker::on_failure_streak`]).
    streak_watcher: std::sync::OnceLock<StreakWatcher>,
    control: Mutex<Control>,
}

/// State only the transition path touches, under the lock.
struct Control {
    reason: Option<Reason>,
    since: u64,
    /// Trips since the breaker last closed: the exponent of the open-period backoff.
    trips_in_a_row: u32,
    trips: u64,
    transitions: u64,
    rng: fastrand::Rng,
    listeners: Arc<[Listener]>,
}

/// Why [`CircuitBreaker::call`] did not return a value.
#[derive(Debug, thiserror::Error)]
pub enum CallError<E> {
    /// The breaker refused the call; the function was not run.
    #[error(transparent)]
    Rejected(Rejected),
    /// The call ran and failed.
    #[error("{0}")]
    Failed(E),
}

impl<E> CallError<E> {
    /// The rejection, when the breaker refused the call.
    pub fn rejected(&self) -> Option<&Rejected> {
        match self {
            CallError::Rejected(r) => Some(r),
            CallError::Failed(_) => None,
        }
    }
}

impl CircuitBreaker {
    /// A closed breaker with the given policy.
    pub fn new(config: Config) -> Self {
        let now = config.clock.now_nanos();
        let rng = match config.seed {
            Some(seed) => fastrand::Rng::with_seed(seed),
            None => fastrand::Rng::new(),
        };
        let inner = Inner {
            word: AtomicU64::new(Word::new(State::Closed, Mode::Normal, 0).0),
            open_until: AtomicU64::new(NEVER),
            probe_deadline: AtomicU64::new(NEVER),
            consecutive_failures: AtomicU32::new(0),
            probes_held: AtomicBool::new(false),
            simple: AtomicBool::new(false),
            timed: AtomicBool::new(false),
            counted: AtomicBool::new(false),
            clock: config.clock.clone(),
            policy: PolicyCell::new(Policy::new(config, None)),
            rejected: StripedCounter::default(),
            would_reject: StripedCounter::default(),
            successes: StripedCounter::default(),
            failures: StripedCounter::default(),
            streak_watcher: std::sync::OnceLock::new(),
            control: Mutex::new(Control {
                reason: None,
                since: now,
                trips_in_a_row: 0,
                trips: 0,
                transitions: 0,
                rng,
                listeners: Arc::from(Vec::new()),
            }),
        };
        inner.publish_policy_flags();
        CircuitBreaker {
            inner: Arc::new(inner),
        }
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }

    /// Asks to make one call. Closed: always admitted. Open: rejected with the time left.
    /// Half-open: admitted as a probe while fewer than `half_open_max_calls` are unresolved
    /// or succeeded in this round.
    #[inline]
    pub fn try_acquire(&self) -> Result<Permit<'_>, Rejected> {
        let inner = &*self.inner;
        inner.acquire().map(|t| Permit::new(inner, t))
    }

    /// Whether a call would be admitted now, without taking a permit or counting anything:
    /// for work that must wait before the call (reading a client's upload, say) and should
    /// not even start when the answer is no. The call itself still asks
    /// [`try_acquire`](Self::try_acquire), which may refuse it if the state moved meanwhile.
    ///
    /// ```
    /// use seawall_breaker::{CircuitBreaker, Config};
    /// let cb = CircuitBreaker::new(Config::default());
    /// assert!(cb.check().is_ok());
    /// cb.force_open();
    /// assert!(cb.check().unwrap_err().is_forced());
    /// ```
    pub fn check(&self) -> Result<(), Rejected> {
        self.inner.check()
    }

    /// Like [`try_acquire`](Self::try_acquire), but the permit owns a handle to the breaker
    /// so it can live in a `'static` future.
    pub fn try_acquire_owned(&self) -> Result<OwnedPermit, Rejected> {
        self.inner
            .acquire()
            .map(|t| OwnedPermit::new(self.clone(), t))
    }

    /// Runs `f` if the breaker admits it: `Ok` counts as success, `Err` as failure.
    ///
    /// ```
    /// use seawall_breaker::{CallError, CircuitBreaker, Config};
    ///
    /// let cb = CircuitBreaker::new(Config::default());
    /// let r: Result<u32, CallError<&str>> = cb.call(|| Ok(42));
    /// assert_eq!(r.unwrap(), 42);
    /// ```
    pub fn call<T, E>(&self, f: impl FnOnce() -> Result<T, E>) -> Result<T, CallError<E>> {
        let permit = self.try_acquire().map_err(CallError::Rejected)?;
        settle(permit, f())
    }

    /// Awaits `fut` if the breaker admits it: `Ok` counts as success, `Err` as failure. If the
    /// returned future is dropped before it completes, the call counts as ignored.
    ///
    /// ```
    /// use seawall_breaker::{CallError, CircuitBreaker, Config};
    ///
    /// # futures_lite_block_on(async {
    /// let cb = CircuitBreaker::new(Config::default());
    /// let r: Result<&str, CallError<()>> = cb.call_async(async { Ok("pong") }).await;
    /// assert_eq!(r.unwrap(), "pong");
    /// # });
    /// # fn futures_lite_block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     use std::task::{Context, Poll, Waker};
    /// #     let mut f = std::pin::pin!(f);
    /// #     let mut cx = Context::from_waker(Waker::noop());
    /// #     loop { if let Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; } }
    /// # }
    /// ```
    pub async fn call_async<T, E, F>(&self, fut: F) -> Result<T, CallError<E>>
    where
        F: Future<Output = Result<T, E>>,
    {
        let permit = self.try_acquire().map_err(CallError::Rejected)?;
        settle(permit, fut.await)
    }

    /// The current state. Reading is truthful: an open period that has ended shows (and
    /// becomes) half-open even with no traffic.
    pub fn state(&self) -> State {
        self.inner.advance();
        self.inner.load().state()
    }

    /// The current administrative mode.
    pub fn mode(&self) -> Mode {
        self.inner.load().mode()
    }

    /// Performs any transition that is due by time (open → half-open, half-open timeout).
    /// A daemon calls this every `check_interval` so gauges and logs move without traffic.
    pub fn tick(&self) {
        self.inner.advance();
    }

    /// State, reason, open time left and counters, read together.
    pub fn snapshot(&self) -> Snapshot {
        self.inner.snapshot()
    }

    /// Rejects every call until [`reset`](Self::reset) (reason `manual`). Counted as a trip
    /// unless the breaker was open already.
    pub fn force_open(&self) {
        self.inner.set_mode(Mode::ForcedOpen, Reason::Manual);
    }

    /// Admits every call and never trips, still counting outcomes (reason `manual`).
    pub fn disable(&self) {
        self.inner.set_mode(Mode::Disabled, Reason::Manual);
    }

    /// Back to closed in normal mode (reason `manual`), with the counts that decide the next
    /// trip cleared: consecutive failures, the rolling window, the back-off of repeated trips.
    /// The lifetime totals of [`Counts`] (`rejected`, `would_reject`, `successes`, `failures`,
    /// `trips`, `transitions`) are kept: like the monitoring counters fed from them, they never
    /// go down.
    ///
    /// ```
    /// use seawall_breaker::{CircuitBreaker, Config};
    ///
    /// let cb = CircuitBreaker::new(Config::default());
    /// cb.force_open();
    /// assert!(cb.try_acquire().is_err());
    /// cb.reset();
    /// let counts = cb.snapshot().counts;
    /// assert_eq!((counts.trips, counts.rejected), (1, 1));
    /// assert!(cb.try_acquire().is_ok());
    /// ```
    pub fn reset(&self) {
        self.inner.reset(Reason::Manual);
    }

    /// Switches the administrative mode. Entering `Normal` from `ForcedOpen` or `Disabled`
    /// closes the breaker; switching between `Normal` and `MetricsOnly` keeps the state.
    pub fn set_mode(&self, mode: Mode) {
        if mode == Mode::Normal && matches!(self.mode(), Mode::ForcedOpen | Mode::Disabled) {
            self.inner.reset(Reason::Manual);
        } else {
            self.inner.set_mode(mode, Reason::Manual);
        }
    }

    /// Opens a closed or half-open breaker now for the configured open period, with `reason`
    /// (e.g. [`Reason::GlobalHealth`]). No effect when open, forced open or disabled.
    pub fn trip(&self, reason: Reason) {
        let inner = &*self.inner;
        let w = inner.load();
        if w.state() != State::Open {
            inner.trip(w.generation(), w.state(), reason, inner.now(), None);
        }
    }

    /// Adds a listener called on every state change, outside the breaker's lock.
    ///
    /// ```
    /// use seawall_breaker::{CircuitBreaker, Config, State};
    /// use std::sync::{Arc, Mutex};
    ///
    /// let cb = CircuitBreaker::new(Config::builder().failure_threshold(1).build().unwrap());
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let log = seen.clone();
    /// cb.on_state_change(move |t| log.lock().unwrap().push((t.from, t.to, t.reason.as_str())));
    /// cb.try_acquire().unwrap().failure();
    /// assert_eq!(seen.lock().unwrap()[0], (State::Closed, State::Open, "consecutive_failures"));
    /// ```
    pub fn on_state_change(&self, listener: impl Fn(&Transition) + Send + Sync + 'static) {
        self.add_listener(Arc::new(listener));
    }

    /// Adds an already shared listener.
    pub fn add_listener(&self, listener: Listener) {
        let mut ctl = self.inner.lock();
        let mut all: Vec<Listener> = ctl.listeners.iter().cloned().collect();
        all.push(listener);
        ctl.listeners = Arc::from(all);
    }

    /// The policy (the one set by [`reconfigure`](Self::reconfigure), if called since).
    pub fn config(&self) -> Config {
        self.inner.policy().config.clone()
    }

    /// Whether two handles share one breaker.
    pub fn ptr_eq(&self, other: &CircuitBreaker) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    pub(crate) fn handle_count(&self) -> usize {
        Arc::strong_count(&self.inner)
    }
}

impl fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = self.inner.load();
        f.debug_struct("CircuitBreaker")
            .field("state", &w.state())
            .field("mode", &w.mode())
            .field("generation", &w.generation())
            .finish()
    }
}

impl Inner {
    #[inline]
    fn load(&self) -> Word {
        Word(self.word.load(Acquire))
    }

    #[inline]
    fn now(&self) -> u64 {
        self.clock.now_nanos()
    }

    fn lock(&self) -> MutexGuard<'_, Control> {
        // Listeners run outside the lock, so a panic cannot leave Control half-written.
        self.control.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn snapshot(&self) -> Snapshot {
        self.advance();
        let ctl = self.lock();
        let w = self.load();
        let now = self.now();
        let totals = self
            .policy()
            .window
            .as_ref()
            .map(|win| win.totals(now))
            .unwrap_or_default();
        let open_remaining = (w.state() == State::Open && w.mode() != Mode::ForcedOpen)
            .then(|| Duration::from_nanos(self.open_until.load(Acquire).saturating_sub(now)));
        Snapshot {
            state: w.state(),
            mode: w.mode(),
            reason: ctl.reason,
            since_change: Duration::from_nanos(now.saturating_sub(ctl.since)),
            open_remaining,
            generation: w.generation(),
            counts: Counts {
                consecutive_failures: self.consecutive_failures.load(Relaxed),
                window_calls: totals.calls,
                window_failures: totals.failures,
                window_slow_calls: totals.slow,
                half_open_in_flight: w.in_flight(),
                half_open_successes: w.successes(),
                rejected: self.rejected.sum(),
                would_reject: self.would_reject.sum(),
                successes: self.successes.sum(),
                failures: self.failures.sum(),
                trips: ctl.trips,
                transitions: ctl.transitions,
            },
        }
    }
}

/// Reports a call's result to its permit: `Ok` a success, `Err` a failure.
fn settle<T, E>(permit: Permit<'_>, result: Result<T, E>) -> Result<T, CallError<E>> {
    match result {
        Ok(v) => {
            permit.success();
            Ok(v)
        }
        Err(e) => {
            permit.failure();
            Err(CallError::Failed(e))
        }
    }
}
