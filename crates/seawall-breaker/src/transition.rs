//! State-change events and the listeners that receive them.

use std::sync::Arc;
use std::time::Duration;

use crate::state::{Mode, Reason, State};

/// One state change, as given to listeners.
#[derive(Clone, Debug, PartialEq)]
pub struct Transition {
    /// The state before.
    pub from: State,
    /// The state after.
    pub to: State,
    /// The mode after (an operator's `force_open` shows as `Open` + [`Mode::ForcedOpen`]).
    pub mode: Mode,
    /// Why it happened.
    pub reason: Reason,
    /// When, on the breaker's clock.
    pub at: Duration,
    /// For a transition to `Open`: how long it will stay open (`None` when forced open).
    pub open_for: Option<Duration>,
    /// The generation entered; it increases by one with every transition, so listeners that
    /// receive events from several threads can order them.
    pub generation: u32,
}

/// A callback run on every state change, outside the breaker's lock: it may call back into
/// the breaker. Keep it short; it runs on the thread that caused the transition.
pub type Listener = Arc<dyn Fn(&Transition) + Send + Sync>;
