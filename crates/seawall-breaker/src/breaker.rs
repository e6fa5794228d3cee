//! The circuit breaker: a lock-free admission and accounting path over a packed state word,
//! and a locked slow path for the rare state transitions.

use std::fmt;
use std::future::Future;
use std::sync::atomic::Ordering::*;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use crate::clock::saturating_nanos;
use crate::config::Config;
use crate::permit::{Outcome, OwnedPermit, Permit, Rejected, Ticket, TicketKind, STARTED_MASK};
use crate::snapshot::{Counts, Snapshot};
use crate::state::{
    Mode, Reason, State, Word, IN_FLIGHT_ONE, OPEN_NORMAL, STATE_MASK, STATE_MODE_MASK, SUCCESS_ONE,
};
use crate::striped::StripedCounter;
use crate::sync::{AtomicU32, AtomicU64, Mutex, MutexGuard};
use crate::transition::{Listener, Transition};
use crate::window::Rolling;

/// Milliseconds of a clock reading, truncated to the width a ticket keeps.
fn millis(nanos: u64) -> u32 {
    (nanos / 1_000_000) as u32 & STARTED_MASK
}

/// A deadline that never arrives.
const NEVER: u64 = u64::MAX;
/// The retry hint given while half-open probe slots are all taken.
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
    /// Outcomes over the rolling window, only when a rate threshold is configured.
    window: Option<Rolling>,
    /// Whether permits time their calls (a slow-call threshold is configured).
    track_slow: bool,
    slow_call_nanos: u64,
    rejected: StripedCounter,
    would_reject: StripedCounter,
    config: Config,
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
            window: config.tracks_window().then(|| Rolling::new(config.window)),
            track_slow: config.tracks_slow_calls(),
            slow_call_nanos: saturating_nanos(config.slow_call_duration),
            rejected: StripedCounter::default(),
            would_reject: StripedCounter::default(),
            control: Mutex::new(Control {
                reason: None,
                since: now,
                trips_in_a_row: 0,
                trips: 0,
                transitions: 0,
                rng,
                listeners: Arc::from(Vec::new()),
            }),
            config,
        };
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
        match f() {
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
        match fut.await {
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

    /// Rejects every call until [`reset`](Self::reset) (reason `manual`).
    pub fn force_open(&self) {
        self.inner.set_mode(Mode::ForcedOpen, Reason::Manual);
    }

    /// Admits every call and never trips, still counting outcomes (reason `manual`).
    pub fn disable(&self) {
        self.inner.set_mode(Mode::Disabled, Reason::Manual);
    }

    /// Back to closed in normal mode with cleared counters (reason `manual`).
    pub fn reset(&self) {
        self.inner.reset();
    }

    /// Switches the administrative mode. Entering `Normal` from `ForcedOpen` or `Disabled`
    /// closes the breaker; switching between `Normal` and `MetricsOnly` keeps the state.
    pub fn set_mode(&self, mode: Mode) {
        if mode == Mode::Normal && matches!(self.mode(), Mode::ForcedOpen | Mode::Disabled) {
            self.inner.reset();
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

    /// The policy.
    pub fn config(&self) -> &Config {
        &self.inner.config
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
        self.config.clock.now_nanos()
    }

    fn lock(&self) -> MutexGuard<'_, Control> {
        // Listeners run outside the lock, so a panic cannot leave Control half-written.
        self.control.lock().unwrap_or_else(PoisonError::into_inner)
    }

    #[inline(always)]
    fn ticket(&self, w: Word, kind: TicketKind) -> Ticket {
        let started = if self.track_slow {
            self.start_time()
        } else {
            0
        };
        Ticket::new(w.generation(), kind, started)
    }

    /// The clock reading that times a call; out of line so that the common policy (no
    /// slow-call tracking) keeps admission small enough to inline.
    #[inline(never)]
    fn start_time(&self) -> u32 {
        millis(self.now())
    }

    // ----- admission -------------------------------------------------------------------

    #[inline(always)]
    pub(crate) fn acquire(&self) -> Result<Ticket, Rejected> {
        let w = self.word.load(Acquire);
        if w & STATE_MASK == 0 {
            return Ok(self.ticket(Word(w), TicketKind::Closed));
        }
        if w & STATE_MODE_MASK == OPEN_NORMAL {
            // Open and enforcing: reject inline while the open period lasts.
            let now = self.now();
            let until = self.open_until.load(Acquire);
            if now < until {
                self.rejected.increment();
                return Err(Rejected {
                    retry_after_nanos: until - now,
                    forced: false,
                });
            }
        }
        self.acquire_slow(Word(w))
    }

    #[cold]
    fn acquire_slow(&self, mut w: Word) -> Result<Ticket, Rejected> {
        loop {
            match w.state() {
                State::Closed => return Ok(self.ticket(w, TicketKind::Closed)),
                State::Open if w.mode() == Mode::ForcedOpen => {
                    self.rejected.increment();
                    return Err(Rejected {
                        retry_after_nanos: saturating_nanos(self.config.open_timeout),
                        forced: true,
                    });
                }
                State::Open => {
                    let now = self.now();
                    let until = self.open_until.load(Acquire);
                    if now < until {
                        return self.refuse(w, Duration::from_nanos(until - now));
                    }
                    self.to_half_open(w.generation(), now);
                }
                State::HalfOpen => {
                    let now = self.now();
                    let deadline = self.probe_deadline.load(Acquire);
                    if now >= deadline {
                        self.expire_probes(w.generation(), now);
                    } else if w.in_flight() + w.successes() < self.config.half_open_max_calls {
                        let next = w.0 + IN_FLIGHT_ONE;
                        match self.word.compare_exchange(w.0, next, AcqRel, Acquire) {
                            Ok(_) => {
                                if deadline == NEVER {
                                    self.start_probe_clock(w.generation(), now);
                                }
                                return Ok(self.ticket(w, TicketKind::Probe));
                            }
                            Err(actual) => {
                                w = Word(actual);
                                continue;
                            }
                        }
                    } else {
                        return self.refuse(w, PROBES_BUSY_HINT);
                    }
                }
            }
            w = self.load();
        }
    }

    /// Rejects, or in `MetricsOnly` admits a call whose outcome is not counted.
    fn refuse(&self, w: Word, retry_after: Duration) -> Result<Ticket, Rejected> {
        if w.mode() == Mode::MetricsOnly {
            self.would_reject.increment();
            return Ok(Ticket::new(w.generation(), TicketKind::Shadow, 0));
        }
        self.rejected.increment();
        Err(Rejected {
            retry_after_nanos: saturating_nanos(retry_after),
            forced: false,
        })
    }

    // ----- outcomes --------------------------------------------------------------------

    #[inline(always)]
    pub(crate) fn record(&self, t: Ticket, outcome: Outcome) {
        if t.kind() == TicketKind::Closed && self.window.is_none() && !self.track_slow {
            match outcome {
                Outcome::Success => {
                    // The hot path: two loads, and a store only after a failure streak.
                    if self.load().generation() == t.generation()
                        && self.consecutive_failures.load(Relaxed) != 0
                    {
                        self.consecutive_failures.store(0, Relaxed);
                    }
                    return;
                }
                Outcome::Ignore => return,
                _ => {}
            }
        }
        self.record_slow(t, outcome);
    }

    #[inline(never)]
    fn record_slow(&self, t: Ticket, outcome: Outcome) {
        match t.kind() {
            TicketKind::Closed if outcome != Outcome::Ignore => self.record_closed(t, outcome),
            TicketKind::Closed | TicketKind::Shadow => {}
            TicketKind::Probe => self.record_probe(t, outcome),
        }
    }

    fn is_slow(&self, t: Ticket, now: u64) -> bool {
        let elapsed_ms = millis(now).wrapping_sub(t.started_ms()) & STARTED_MASK;
        self.track_slow && u64::from(elapsed_ms) * 1_000_000 >= self.slow_call_nanos
    }

    fn record_closed(&self, t: Ticket, outcome: Outcome) {
        if self.load().generation() != t.generation() {
            return; // admitted before the last transition: stale
        }
        let now = self.now();
        let slow = self.is_slow(t, now);
        let (failure, hint) = match outcome {
            Outcome::Success => (false, None),
            Outcome::Failure => (true, None),
            Outcome::FailureWithRetryAfter(d) => (true, Some(d).filter(|d| !d.is_zero())),
            Outcome::Ignore => return,
        };
        let streak = if failure {
            self.consecutive_failures.fetch_add(1, AcqRel) + 1
        } else {
            self.consecutive_failures.store(0, Relaxed);
            0
        };
        let totals = self.window.as_ref().map(|w| w.record(now, failure, slow));
        let cfg = &self.config;
        let over = |count: u64, threshold: Option<f64>| match (totals, threshold) {
            (Some(t), Some(th)) => {
                t.calls >= u64::from(cfg.minimum_calls) && count as f64 >= th * t.calls as f64
            }
            _ => false,
        };
        let reason = if hint.is_some() {
            Some(Reason::RetryAfter)
        } else if streak >= cfg.failure_threshold {
            Some(Reason::ConsecutiveFailures)
        } else if failure && over(totals.map_or(0, |t| t.failures), cfg.failure_rate_threshold) {
            Some(Reason::FailureRate)
        } else if slow && over(totals.map_or(0, |t| t.slow), cfg.slow_call_rate_threshold) {
            Some(Reason::SlowCallRate)
        } else {
            None
        };
        if let Some(reason) = reason {
            self.trip(t.generation(), State::Closed, reason, now, hint);
        }
    }

    fn record_probe(&self, t: Ticket, outcome: Outcome) {
        let now = self.now();
        match outcome {
            Outcome::Ignore => {
                self.update_probes(t.generation(), |w| w.0 - IN_FLIGHT_ONE);
            }
            Outcome::Success if self.is_slow(t, now) => {
                self.trip(
                    t.generation(),
                    State::HalfOpen,
                    Reason::SlowCallRate,
                    now,
                    None,
                );
            }
            Outcome::Success => {
                let after =
                    self.update_probes(t.generation(), |w| w.0 - IN_FLIGHT_ONE + SUCCESS_ONE);
                if after.is_some_and(|w| w.successes() >= self.config.half_open_max_calls) {
                    self.close(t.generation(), now);
                }
            }
            Outcome::Failure => {
                self.trip(
                    t.generation(),
                    State::HalfOpen,
                    Reason::HalfOpenFailure,
                    now,
                    None,
                );
            }
            Outcome::FailureWithRetryAfter(d) => {
                let hint = Some(d).filter(|d| !d.is_zero());
                let reason = if hint.is_some() {
                    Reason::RetryAfter
                } else {
                    Reason::HalfOpenFailure
                };
                self.trip(t.generation(), State::HalfOpen, reason, now, hint);
            }
        }
    }

    /// Lock-free update of a half-open round's probe counts, only while the word is still of
    /// `generation` and has a probe in flight. Returns the new word.
    fn update_probes(&self, generation: u32, f: impl Fn(Word) -> u64) -> Option<Word> {
        let mut cur = self.load();
        loop {
            if cur.generation() != generation
                || cur.state() != State::HalfOpen
                || cur.in_flight() == 0
            {
                return None;
            }
            let next = f(cur);
            match self.word.compare_exchange(cur.0, next, AcqRel, Acquire) {
                Ok(_) => return Some(Word(next)),
                Err(actual) => cur = Word(actual),
            }
        }
    }

    // ----- transitions (locked) --------------------------------------------------------

    /// Timed transitions that are due.
    fn advance(&self) {
        let w = self.load();
        match w.state() {
            State::Open if w.mode() != Mode::ForcedOpen => {
                let now = self.now();
                if now >= self.open_until.load(Acquire) {
                    self.to_half_open(w.generation(), now);
                }
            }
            State::HalfOpen => {
                let now = self.now();
                if now >= self.probe_deadline.load(Acquire) {
                    self.expire_probes(w.generation(), now);
                }
            }
            _ => {}
        }
    }

    fn open_period(&self, ctl: &mut Control, hint: Option<Duration>) -> Duration {
        let cfg = &self.config;
        let factor = 1u32 << ctl.trips_in_a_row.min(31);
        let base = cfg
            .open_timeout
            .checked_mul(factor)
            .unwrap_or(Duration::MAX)
            .min(cfg.open_timeout_max);
        let jittered = if cfg.jitter > 0.0 {
            base.mul_f64(1.0 + cfg.jitter * ctl.rng.f64())
        } else {
            base
        };
        let floor = hint.map_or(Duration::ZERO, |h| h.min(cfg.retry_after_max));
        jittered.max(floor)
    }

    /// Opens the breaker if it is still in `from` at `generation`.
    fn trip(&self, generation: u32, from: State, reason: Reason, now: u64, hint: Option<Duration>) {
        let mut ctl = self.lock();
        let cur = self.load();
        if cur.generation() != generation
            || cur.state() != from
            || matches!(cur.mode(), Mode::Disabled | Mode::ForcedOpen)
        {
            return;
        }
        let open_for = self.open_period(&mut ctl, hint);
        self.open_until
            .store(now.saturating_add(saturating_nanos(open_for)), Release);
        self.consecutive_failures.store(0, Relaxed);
        let swapped = self.publish(cur, State::Open, cur.mode());
        ctl.trips_in_a_row = ctl.trips_in_a_row.saturating_add(1);
        ctl.trips += 1;
        self.notify(ctl, swapped, reason, now, Some(open_for));
    }

    fn to_half_open(&self, generation: u32, now: u64) {
        let ctl = self.lock();
        let cur = self.load();
        if cur.generation() != generation
            || cur.state() != State::Open
            || cur.mode() == Mode::ForcedOpen
            || now < self.open_until.load(Acquire)
        {
            return;
        }
        self.probe_deadline.store(NEVER, Release);
        let swapped = self.publish(cur, State::HalfOpen, cur.mode());
        self.notify(ctl, swapped, Reason::OpenTimeoutElapsed, now, None);
    }

    fn start_probe_clock(&self, generation: u32, now: u64) {
        let _ctl = self.lock();
        let cur = self.load();
        if cur.generation() == generation
            && cur.state() == State::HalfOpen
            && self.probe_deadline.load(Acquire) == NEVER
        {
            let deadline = now.saturating_add(saturating_nanos(self.config.half_open_timeout));
            self.probe_deadline.store(deadline, Release);
        }
    }

    fn expire_probes(&self, generation: u32, now: u64) {
        // The deadline belongs to `generation` (it is only set under the lock for the current
        // generation), so `trip` re-checking the generation is enough.
        self.trip(
            generation,
            State::HalfOpen,
            Reason::HalfOpenTimeout,
            now,
            None,
        );
    }

    fn close(&self, generation: u32, now: u64) {
        let mut ctl = self.lock();
        let cur = self.load();
        if cur.generation() != generation
            || cur.state() != State::HalfOpen
            || cur.successes() < self.config.half_open_max_calls
        {
            return;
        }
        self.clear_counts();
        ctl.trips_in_a_row = 0;
        let swapped = self.publish(cur, State::Closed, cur.mode());
        self.notify(ctl, swapped, Reason::ProbesSucceeded, now, None);
    }

    fn reset(&self) {
        let mut ctl = self.lock();
        let cur = self.load();
        self.clear_counts();
        ctl.trips_in_a_row = 0;
        if cur.state() == State::Closed && cur.mode() == Mode::Normal {
            return;
        }
        let swapped = self.publish(cur, State::Closed, Mode::Normal);
        self.notify(ctl, swapped, Reason::Manual, self.now(), None);
    }

    fn set_mode(&self, mode: Mode, reason: Reason) {
        let ctl = self.lock();
        let cur = self.load();
        if cur.mode() == mode {
            return;
        }
        let state = match mode {
            Mode::ForcedOpen => State::Open,
            Mode::Disabled => State::Closed,
            Mode::Normal | Mode::MetricsOnly => match cur.mode() {
                Mode::ForcedOpen | Mode::Disabled => State::Closed,
                _ => cur.state(),
            },
        };
        if mode == Mode::ForcedOpen {
            self.open_until.store(NEVER, Release);
        }
        if state == State::Closed {
            self.clear_counts();
        }
        if state == State::HalfOpen {
            self.probe_deadline.store(NEVER, Release);
        }
        let swapped = self.publish(cur, state, mode);
        self.notify(ctl, swapped, reason, self.now(), None);
    }

    fn clear_counts(&self) {
        self.consecutive_failures.store(0, Relaxed);
        if let Some(w) = &self.window {
            w.clear();
        }
    }

    /// Replaces the word with the next generation's; returns (replaced, new). Called under the lock, where only the
    /// lock-free probe counters can change under us, so the loop ends.
    fn publish(&self, mut cur: Word, state: State, mode: Mode) -> (Word, Word) {
        loop {
            let next = cur.next(state, mode);
            match self.word.compare_exchange(cur.0, next.0, AcqRel, Acquire) {
                Ok(_) => return (cur, next),
                Err(actual) => cur = Word(actual),
            }
        }
    }

    /// Records the transition and calls the listeners after releasing the lock.
    fn notify(
        &self,
        mut ctl: MutexGuard<'_, Control>,
        (prev, next): (Word, Word),
        reason: Reason,
        now: u64,
        open_for: Option<Duration>,
    ) {
        ctl.reason = Some(reason);
        ctl.since = now;
        ctl.transitions += 1;
        let listeners = ctl.listeners.clone();
        drop(ctl);
        if listeners.is_empty() {
            return;
        }
        let event = Transition {
            from: prev.state(),
            to: next.state(),
            mode: next.mode(),
            reason,
            at: Duration::from_nanos(now),
            open_for,
            generation: next.generation(),
        };
        for listener in listeners.iter() {
            listener(&event);
        }
    }

    fn snapshot(&self) -> Snapshot {
        self.advance();
        let ctl = self.lock();
        let w = self.load();
        let now = self.now();
        let totals = self
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
                trips: ctl.trips,
                transitions: ctl.transitions,
            },
        }
    }
}
