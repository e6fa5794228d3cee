//! The streaming response body: passes every upstream frame through at once, ends the stream
//! when the upstream falls silent for `idle`, and holds the breaker permit until the end so
//! the verdict ([`judge`]) covers the whole response (SSE error events included).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use hyper::body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use prometheus_client::metrics::counter::Counter;
use seawall_breaker::OwnedPermit;
use tokio::time::{Instant, Sleep};

use super::metrics::ProviderMetrics;
use super::sse::SseScanner;
use super::verdict::{judge, Happened};
use crate::message::BoxError;

/// The upstream sent nothing for longer than the provider's `timeouts.idle`.
#[derive(Debug, thiserror::Error)]
#[error("upstream idle for more than {0:?}")]
pub(crate) struct IdleTimeout(pub(crate) Duration);

pin_project! {
    /// An upstream response body on its way to the client.
    ///
    /// The permit's verdict: failure on an upstream error, an idle timeout or an SSE error
    /// event (as soon as it is seen); success when the stream ends cleanly. A client that
    /// goes away drops the body: its call is ignored.
    pub(crate) struct GuardedBody<B> {
        #[pin]
        inner: B,
        // Created the first time the upstream makes the body wait (a response that arrives
        // whole never needs one); it runs while waiting and is re-armed after each frame.
        idle_timer: Option<Pin<Box<Sleep>>>,
        idle: Duration,
        armed: bool,
        permit: Option<OwnedPermit>,
        sse: Option<SseScanner>,
        done: bool,
        // Counts a client that leaves before the end.
        disconnects: Counter,
    }

    impl<B> PinnedDrop for GuardedBody<B> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if !*this.done {
                // Dropped before its end: the client went away.
                this.disconnects.inc();
                settle(this.permit, Happened::ClientGone);
            }
        }
    }
}

impl<B: Body> GuardedBody<B> {
    /// Guards `inner`; `permit` (if any) gets the verdict, `sse` (if any) scans the stream,
    /// `metrics` count a client that leaves before the end.
    pub(crate) fn new(
        inner: B,
        idle: Duration,
        permit: Option<OwnedPermit>,
        sse: Option<SseScanner>,
        metrics: &ProviderMetrics,
    ) -> Self {
        let mut body = GuardedBody {
            idle_timer: None,
            inner,
            idle,
            armed: false,
            permit,
            sse,
            done: false,
            disconnects: metrics.disconnects.clone(),
        };
        if body.inner.is_end_stream() {
            // The server will not poll an empty body: give the verdict now.
            settle(&mut body.permit, Happened::StreamEnded);
            body.done = true;
        }
        body
    }
}

/// Gives the held permit (if any) the verdict on `happened`. Statuses play no part once the
/// head has passed.
fn settle(permit: &mut Option<OwnedPermit>, happened: Happened) {
    if let Some(p) = permit.take() {
        judge(happened, &[]).apply(p);
    }
}

impl<B> Body for GuardedBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        match this.inner.as_mut().poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                *this.armed = false;
                if let (Some(data), Some(scanner)) = (frame.data_ref(), this.sse.as_mut()) {
                    if scanner.feed(data.chunk()) {
                        settle(this.permit, Happened::StreamErrorEvent);
                    }
                }
                if this.inner.is_end_stream() {
                    // The server may stop polling once the body reports its end.
                    *this.done = true;
                    settle(this.permit, Happened::StreamEnded);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                *this.done = true;
                settle(this.permit, Happened::StreamBroke);
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(None) => {
                *this.done = true;
                settle(this.permit, Happened::StreamEnded);
                Poll::Ready(None)
            }
            Poll::Pending => {
                if !*this.armed {
                    *this.armed = true;
                    let deadline = Instant::now() + *this.idle;
                    match this.idle_timer {
                        Some(timer) => timer.as_mut().reset(deadline),
                        None => {
                            *this.idle_timer = Some(Box::pin(tokio::time::sleep_until(deadline)))
                        }
                    }
                }
                if let Some(timer) = this.idle_timer {
                    if timer.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                }
                *this.done = true;
                settle(this.permit, Happened::StreamBroke);
                Poll::Ready(Some(Err(Box::new(IdleTimeout(*this.idle)))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

pin_project! {
    /// Bytes already read from a body, followed by the rest of that body.
    pub(crate) struct Prefixed<B> {
        prefix: Option<Bytes>,
        #[pin]
        rest: B,
    }
}

impl<B> Prefixed<B> {
    /// `prefix`, then `rest`.
    pub(crate) fn new(prefix: Bytes, rest: B) -> Self {
        Prefixed {
            prefix: (!prefix.is_empty()).then_some(prefix),
            rest,
        }
    }
}

impl<B: Body<Data = Bytes>> Body for Prefixed<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        if let Some(prefix) = this.prefix.take() {
            return Poll::Ready(Some(Ok(Frame::data(prefix))));
        }
        this.rest.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.prefix.is_none() && self.rest.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let rest = self.rest.size_hint();
        let extra = self.prefix.as_ref().map_or(0, |p| p.len() as u64);
        let mut hint = SizeHint::new();
        // Upper first: `set_lower` checks against it.
        if let Some(upper) = rest.upper() {
            hint.set_upper(upper + extra);
        }
        hint.set_lower(rest.lower() + extra);
        hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ProviderKind;
    use http_body_util::{BodyExt, Full};
    use seawall_breaker::{CircuitBreaker, Config, State};

    fn breaker() -> CircuitBreaker {
        CircuitBreaker::new(Config::builder().failure_threshold(1).build().unwrap())
    }

    fn metrics() -> ProviderMetrics {
        super::super::metrics::Families::register(&crate::metrics::Metrics::new()).of("p")
    }

    fn guarded(
        cb: &CircuitBreaker,
        bytes: &'static [u8],
        kind: ProviderKind,
    ) -> GuardedBody<Full<Bytes>> {
        let permit = cb.try_acquire_owned().ok();
        GuardedBody::new(
            Full::new(Bytes::from_static(bytes)),
            Duration::from_secs(5),
            permit,
            SseScanner::for_kind(kind),
            &metrics(),
        )
    }

    #[tokio::test]
    async fn clean_end_is_a_success_and_an_error_event_a_failure() {
        let cb = breaker();
        guarded(&cb, b"data: {}\n\n", ProviderKind::Openai)
            .collect()
            .await
            .unwrap();
        assert_eq!(cb.state(), State::Closed);
        let body = guarded(&cb, b"event: error\ndata: {}\n\n", ProviderKind::Anthropic);
        assert_eq!(
            body.collect().await.unwrap().to_bytes(),
            &b"event: error\ndata: {}\n\n"[..]
        );
        assert_eq!(cb.state(), State::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_upstream_ends_the_stream_with_a_failure() {
        let cb = breaker();
        let (mut tx, rx) = http_body_util::channel::Channel::<Bytes, BoxError>::new(1);
        let mut body = Box::pin(GuardedBody::new(
            rx,
            Duration::from_secs(5),
            cb.try_acquire_owned().ok(),
            None,
            &metrics(),
        ));
        tx.send_data(Bytes::from_static(b"first")).await.unwrap();
        let first = body.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), "first");
        let err = body.frame().await.unwrap().unwrap_err();
        assert!(err.is::<IdleTimeout>());
        assert_eq!(cb.state(), State::Open);
        drop(tx);
    }

    #[tokio::test]
    async fn a_body_dropped_before_its_end_is_a_client_disconnect_and_no_verdict() {
        let cb = breaker();
        let metrics = metrics();
        let (_tx, rx) = http_body_util::channel::Channel::<Bytes, BoxError>::new(1);
        let body = GuardedBody::new(
            rx,
            Duration::from_secs(5),
            cb.try_acquire_owned().ok(),
            None,
            &metrics,
        );
        drop(body);
        assert_eq!(metrics.disconnects.get(), 1);
        assert_eq!(cb.snapshot().counts.consecutive_failures, 0);
        let whole = Full::new(Bytes::from_static(b"done"));
        let body = GuardedBody::new(whole, Duration::from_secs(5), None, None, &metrics);
        body.collect().await.unwrap();
        assert_eq!(
            metrics.disconnects.get(),
            1,
            "a body read to its end is no disconnect"
        );
    }

    #[tokio::test]
    async fn prefixed_replays_the_prefix() {
        let body = Prefixed::new(
            Bytes::from_static(b"ab"),
            Full::new(Bytes::from_static(b"cd")),
        );
        assert_eq!(body.size_hint().exact(), Some(4));
        assert_eq!(body.collect().await.unwrap().to_bytes(), "abcd");
    }
}
