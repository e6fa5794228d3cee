//! A tower middleware that puts a [`CircuitBreaker`](crate::CircuitBreaker) in front of a
//! service (feature `tower`).
//!
//! ```
//! use seawall_breaker::tower::{CircuitBreakerLayer, Classify};
//! use seawall_breaker::{CallError, CircuitBreaker, Config, Outcome};
//! use tower_layer::Layer;
//! use tower_service::Service;
//!
//! # fn block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     use std::task::{Context, Poll, Waker};
//! #     let mut f = std::pin::pin!(f);
//! #     let mut cx = Context::from_waker(Waker::noop());
//! #     loop { if let Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; } }
//! # }
//! // A service answering with an HTTP-like status code.
//! #[derive(Clone)]
//! struct Upstream;
//! impl Service<u16> for Upstream {
//!     type Response = u16;
//!     type Error = std::io::Error;
//!     type Future = std::future::Ready<Result<u16, std::io::Error>>;
//!     fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
//!         std::task::Poll::Ready(Ok(()))
//!     }
//!     fn call(&mut self, status: u16) -> Self::Future { std::future::ready(Ok(status)) }
//! }
//!
//! // 429 and 5xx are failures; other answers are successes; transport errors are failures.
//! let classify = |r: Result<&u16, &std::io::Error>| match r {
//!     Ok(&s) if s == 429 || s >= 500 => Outcome::Failure,
//!     Ok(_) => Outcome::Success,
//!     Err(_) => Outcome::Failure,
//! };
//! let breaker = CircuitBreaker::new(Config::builder().failure_threshold(1).build().unwrap());
//! let mut svc = CircuitBreakerLayer::new(breaker, classify).layer(Upstream);
//!
//! // The 503 reaches the caller unchanged, and counts as a failure: the breaker trips.
//! assert_eq!(block_on(svc.call(503)).unwrap(), 503);
//! // The next call is rejected at once, without reaching the upstream.
//! let err = block_on(svc.call(200)).unwrap_err();
//! assert!(err.rejected().unwrap().retry_after().as_secs() > 0);
//! ```

mod classify;
mod future;
mod layer;
mod service;

pub use classify::{Classify, FailOnError};
pub use future::ResponseFuture;
pub use layer::CircuitBreakerLayer;
pub use service::CircuitBreakerService;
