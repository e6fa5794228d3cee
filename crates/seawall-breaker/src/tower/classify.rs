//! Classifiers: how a response or error of the inner service maps to a breaker outcome.

use crate::permit::Outcome;

/// Maps the inner service's result to an [`Outcome`]. Implemented for closures
/// `Fn(Result<&T, &E>) -> Outcome`.
pub trait Classify<T, E> {
    /// The verdict on one call.
    fn classify(&self, result: Result<&T, &E>) -> Outcome;
}

impl<T, E, F> Classify<T, E> for F
where
    F: Fn(Result<&T, &E>) -> Outcome,
{
    fn classify(&self, result: Result<&T, &E>) -> Outcome {
        self(result)
    }
}

/// The default classifier: every `Ok` is a success, every `Err` a failure.
#[derive(Clone, Copy, Debug, Default)]
pub struct FailOnError;

impl<T, E> Classify<T, E> for FailOnError {
    fn classify(&self, result: Result<&T, &E>) -> Outcome {
        match result {
            Ok(_) => Outcome::Success,
            Err(_) => Outcome::Failure,
        }
    }
}
