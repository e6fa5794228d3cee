//! The `Layer` that wraps services with a breaker.

use tower_layer::Layer;

use super::classify::FailOnError;
use super::service::CircuitBreakerService;
use crate::breaker::CircuitBreaker;

/// Wraps a service so that every call goes through `breaker`, with `classifier` judging each
/// result. Services made by one layer share its breaker.
#[derive(Clone, Debug)]
pub struct CircuitBreakerLayer<C = FailOnError> {
    breaker: CircuitBreaker,
    classifier: C,
}

impl<C> CircuitBreakerLayer<C> {
    /// A layer using `breaker` and `classifier`.
    pub fn new(breaker: CircuitBreaker, classifier: C) -> Self {
        CircuitBreakerLayer {
            breaker,
            classifier,
        }
    }
}

impl CircuitBreakerLayer<FailOnError> {
    /// A layer that counts every `Err` as a failure and every `Ok` as a success.
    pub fn fail_on_error(breaker: CircuitBreaker) -> Self {
        CircuitBreakerLayer::new(breaker, FailOnError)
    }
}

impl<S, C: Clone> Layer<S> for CircuitBreakerLayer<C> {
    type Service = CircuitBreakerService<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreakerService::new(inner, self.breaker.clone(), self.classifier.clone())
    }
}
