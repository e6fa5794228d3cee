//! The response future, which owns the call's permit: dropping the future mid-call counts the
//! call as ignored and frees a half-open slot.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use pin_project_lite::pin_project;

use super::classify::Classify;
use crate::breaker::CallError;
use crate::permit::{OwnedPermit, Rejected};

pin_project! {
    /// The future of [`CircuitBreakerService`](super::CircuitBreakerService).
    pub struct ResponseFuture<F, C> {
        #[pin]
        state: Inner<F, C>,
    }
}

pin_project! {
    #[project = InnerProj]
    enum Inner<F, C> {
        Called { #[pin] future: F, permit: Option<OwnedPermit>, classifier: C },
        Rejected { rejected: Option<Rejected> },
    }
}

impl<F, C> ResponseFuture<F, C> {
    pub(super) fn called(future: F, permit: OwnedPermit, classifier: C) -> Self {
        ResponseFuture {
            state: Inner::Called {
                future,
                permit: Some(permit),
                classifier,
            },
        }
    }

    pub(super) fn rejected(rejected: Rejected) -> Self {
        ResponseFuture {
            state: Inner::Rejected {
                rejected: Some(rejected),
            },
        }
    }
}

impl<F, C, T, E> Future for ResponseFuture<F, C>
where
    F: Future<Output = Result<T, E>>,
    C: Classify<T, E>,
{
    type Output = Result<T, CallError<E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            InnerProj::Called {
                future,
                permit,
                classifier,
            } => {
                let result = ready!(future.poll(cx));
                if let Some(permit) = permit.take() {
                    permit.record(classifier.classify(result.as_ref()));
                }
                Poll::Ready(result.map_err(CallError::Failed))
            }
            InnerProj::Rejected { rejected } => {
                let r = rejected
                    .take()
                    .expect("ResponseFuture polled after completion");
                Poll::Ready(Err(CallError::Rejected(r)))
            }
        }
    }
}
