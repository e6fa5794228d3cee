//! Delivery of one encoded batch through an output's endpoints: the primary first, then
//! reroutes to other endpoints that admit (at most `max_attempts`, each endpoint at most once,
//! and only after a failure known not to have delivered the batch).

use std::time::Duration;

use bytes::Bytes;
use http::HeaderValue;
use seawall_breaker::Permit;

use super::output::Output;
use super::sink::{Sent, Sink};

/// What became of a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Delivery {
    /// An endpoint has it.
    Delivered,
    /// An endpoint refused it for good.
    Refused,
    /// An OTLP endpoint took it but rejected this many of its events (`partial_success`).
    Partial(u64),
    /// No endpoint is known to have it: hold it for a retry.
    Undelivered,
}

/// Per-output delivery settings.
pub(crate) struct SendLimits {
    /// Timeout of one send.
    pub(crate) timeout: Duration,
    /// Reroutes allowed per batch.
    pub(crate) max_reroutes: u32,
}

impl SendLimits {
    /// Walks the endpoints in order for `payload`, named `id` on every endpoint.
    pub(crate) async fn deliver(
        &self,
        output: &Output,
        sinks: &mut [Sink],
        pipeline: &str,
        payload: &Bytes,
        id: &HeaderValue,
    ) -> Delivery {
        let mut reroutes = 0;
        for (i, (endpoint, sink)) in output.endpoints.iter().zip(sinks.iter_mut()).enumerate() {
            if i > 0 && reroutes == self.max_reroutes {
                break;
            }
            let permit = match endpoint.breaker.try_acquire() {
                Ok(permit) => permit,
                Err(_) => {
                    output.metrics.count_reject(&endpoint.labels);
                    continue;
                }
            };
            if i > 0 {
                reroutes += 1;
                output.ledger.metrics().reroutes.inc();
            }
            let sent = match tokio::time::timeout(self.timeout, sink.send(payload, id)).await {
                Ok(sent) => sent,
                Err(_) => Sent::Failed {
                    known_undelivered: false,
                    retry_after: None,
                    error: format!("timed out after {:?}", self.timeout),
                },
            };
            match verdict(permit, sent) {
                Step::Done(d) => return d,
                Step::Next(error) => {
                    tracing::debug!(pipeline, output = %output.name,
                        endpoint = %endpoint.labels.endpoint, %error,
                        "send failed, not delivered: next endpoint");
                }
                Step::Stop(error) => {
                    tracing::debug!(pipeline, output = %output.name,
                        endpoint = %endpoint.labels.endpoint, %error,
                        "send failed, maybe delivered: no reroute");
                    return Delivery::Undelivered;
                }
            }
        }
        Delivery::Undelivered
    }
}

enum Step {
    Done(Delivery),
    /// Known undelivered: another endpoint may have it.
    Next(String),
    /// Failed but possibly delivered: rerouting could duplicate it.
    Stop(String),
}

/// Reports `sent` to the breaker and says what to do next.
fn verdict(permit: Permit<'_>, sent: Sent) -> Step {
    match sent {
        Sent::Delivered => {
            permit.success();
            Step::Done(Delivery::Delivered)
        }
        Sent::Partial { rejected, error } => {
            // OTLP: the receiver kept the rest, so the batch is not sent again; a receiver
            // that keeps rejecting records is failing, as far as the breaker is concerned.
            permit.failure();
            tracing::warn!(rejected, %error, "OTLP receiver rejected records of a batch; dropped as rejected");
            Step::Done(Delivery::Partial(rejected))
        }
        Sent::Refused(status) => {
            permit.ignore();
            tracing::warn!(%status, "output refused a batch; dropped as rejected");
            Step::Done(Delivery::Refused)
        }
        Sent::Failed {
            known_undelivered,
            retry_after,
            error,
        } => {
            match retry_after {
                Some(d) => permit.failure_with_retry_after(d),
                None => permit.failure(),
            }
            if known_undelivered {
                Step::Next(error)
            } else {
                Step::Stop(error)
            }
        }
    }
}
