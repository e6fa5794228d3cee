//! A lock-free circuit breaker with a keyed registry and an optional tower `Layer`.
//!
//! A breaker watches the outcomes of calls to a dependency. When the dependency is overloaded
//! (consecutive failures, a failure or slow-call rate over a rolling window, or a `Retry-After`
//! hint) it **opens** and rejects calls at once, telling the caller how long to wait. After the
//! open period it goes **half-open** and lets a bounded number of probe calls through; if they
//! all succeed it **closes**, if any fails it opens again, for longer.
//!
//! # Plain calls
//! ```
//! use seawall_breaker::{CircuitBreaker, Config};
//!
//! let cb = CircuitBreaker::new(Config::default());
//! match cb.try_acquire() {
//!     Ok(permit) => {
//!         let ok = true; // make the call here
//!         if ok { permit.success() } else { permit.failure() }
//!     }
//!     Err(rejected) => println!("try again in {:?}", rejected.retry_after()),
//! };
//! ```
//!
//! # Async calls
//! A [`Permit`] held across an `.await` is cancellation-safe: if the future is dropped, the
//! permit counts the call as ignored and frees its half-open slot.
//! ```
//! # async fn fetch() -> Result<u32, std::io::Error> { Ok(7) }
//! use seawall_breaker::{CircuitBreaker, Config};
//!
//! async fn guarded(cb: &CircuitBreaker) -> Option<u32> {
//!     let permit = cb.try_acquire().ok()?;
//!     match fetch().await {
//!         Ok(v) => { permit.success(); Some(v) }
//!         Err(_) => { permit.failure(); None }
//!     }
//! }
//! ```
//!
//! # Layout
//! - [`breaker`](CircuitBreaker): the state machine; `state`, `window`, `striped` are its parts.
//! - [`Permit`] / [`OwnedPermit`]: the right to make one call, and its verdict ([`Outcome`]).
//! - [`Config`]: the policy; [`Clock`]: injectable time.
//! - [`Registry`]: breakers by key.
//! - [`tower`] (feature `tower`): `CircuitBreakerLayer`, a tower middleware.
//!
//! # Performance
//! Admission while closed is one atomic load; a successful outcome is one more load (and a
//! store only after a failure streak). No lock, allocation or syscall on that path. Transitions
//! take a mutex and call listeners after releasing it.

mod breaker;
mod clock;
mod config;
mod permit;
mod registry;
mod snapshot;
mod state;
mod striped;
mod sync;
mod transition;
mod window;

#[cfg(feature = "tower")]
pub mod tower;

pub use breaker::{CallError, CircuitBreaker, StreakWatcher};
pub use clock::{Clock, ManualClock};
pub use config::{Config, ConfigBuilder, ConfigError, Window};
pub use permit::{Outcome, OwnedPermit, Permit, Rejected};
pub use registry::{Registry, RegistryFull};
pub use snapshot::{Counts, Snapshot};
pub use state::{Mode, Reason, State};
pub use transition::{Listener, Transition};
