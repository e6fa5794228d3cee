//! The breaker's verdict on one call, decided in one place: what happened on the way to the
//! upstream and back becomes success, failure (with its reason and the upstream's
//! `Retry-After`), or ignore (nothing the provider is to blame for).
//!
//! | what happened                                   | verdict                          |
//! |-------------------------------------------------|----------------------------------|
//! | the client's body failed, or the client left    | ignore                           |
//! | connect error or timeout, no head, no head in time | failure                       |
//! | a head with a failure status of the kind        | failure (ignore: OpenAI's 429 `insufficient_quota`) |
//! | a head with another 4xx/5xx                      | ignore                           |
//! | a `101` to an upgrade (a WebSocket tunnel opens) | success                         |
//! | another 1xx, a 2xx/3xx head                      | the body decides                 |
//! | the body ends cleanly                           | success                          |
//! | an error event mid-stream, a broken or idle body | failure                         |

use std::borrow::Cow;
use std::time::Duration;

use http::StatusCode;
use seawall_breaker::OwnedPermit;

/// What happened to a call, as the gateway saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Happened {
    /// The client's request body failed (too large, broken, stalled): the client's fault.
    ClientBodyFailed,
    /// The client went away before the exchange ended.
    ClientGone,
    /// No connection to the upstream could be opened (refused, DNS, TLS).
    ConnectFailed,
    /// Opening the connection took longer than `timeouts.connect`.
    ConnectTimedOut,
    /// The connection failed after the request began and before a response head (an I/O
    /// error, a close, an unreadable head).
    UpstreamBroke,
    /// No response head within `timeouts.first_byte` of the request being sent.
    FirstByteTimedOut,
    /// A response head arrived.
    Head {
        status: StatusCode,
        /// The upstream's `retry-after-ms` / `Retry-After`.
        retry_after: Option<Duration>,
        /// The body says the account is out of quota (OpenAI's 429 `insufficient_quota`):
        /// a bill to pay, not an overload.
        quota_exhausted: bool,
    },
    /// The response body ended cleanly.
    StreamEnded,
    /// An error event in an event stream after a good head.
    StreamErrorEvent,
    /// The upstream broke the body, or fell silent past `timeouts.idle`.
    StreamBroke,
}

/// Why a call failed, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    Connect,
    ConnectTimeout,
    UpstreamBroke,
    FirstByteTimeout,
    Status(StatusCode),
    StreamErrorEvent,
    StreamBroke,
}

/// The verdict on a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Success,
    Failure {
        reason: Reason,
        retry_after: Option<Duration>,
    },
    Ignore,
    /// A good head: the body decides (success at its end, failure on a mid-stream error).
    AwaitBody,
}

/// The verdict on `happened`; `failure_status` lists the statuses the provider's kind (or
/// its `failure_status` setting) counts as failures (only a head's status is looked up).
pub(crate) fn judge(happened: Happened, failure_status: &[u16]) -> Verdict {
    let fail = |reason| Verdict::Failure {
        reason,
        retry_after: None,
    };
    match happened {
        Happened::ClientBodyFailed | Happened::ClientGone => Verdict::Ignore,
        Happened::ConnectFailed => fail(Reason::Connect),
        Happened::ConnectTimedOut => fail(Reason::ConnectTimeout),
        Happened::UpstreamBroke => fail(Reason::UpstreamBroke),
        Happened::FirstByteTimedOut => fail(Reason::FirstByteTimeout),
        Happened::Head {
            status,
            retry_after,
            quota_exhausted,
        } => {
            if failure_status.contains(&status.as_u16()) {
                if quota_exhausted {
                    Verdict::Ignore
                } else {
                    Verdict::Failure {
                        reason: Reason::Status(status),
                        retry_after,
                    }
                }
            } else if status == StatusCode::SWITCHING_PROTOCOLS {
                // A tunnel opened: the provider did its part.
                Verdict::Success
            } else if status.is_informational() || status.is_success() || status.is_redirection() {
                Verdict::AwaitBody
            } else {
                // Other client and server errors say nothing about overload.
                Verdict::Ignore
            }
        }
        Happened::StreamEnded => Verdict::Success,
        Happened::StreamErrorEvent => fail(Reason::StreamErrorEvent),
        Happened::StreamBroke => fail(Reason::StreamBroke),
    }
}

impl Reason {
    /// The reason as `seawall_failover_attempts_total{reason}` labels it.
    pub(crate) fn label(self) -> Cow<'static, str> {
        match self {
            Reason::Connect => "connect".into(),
            Reason::ConnectTimeout => "connect_timeout".into(),
            Reason::UpstreamBroke => "upstream_broke".into(),
            Reason::FirstByteTimeout => "first_byte_timeout".into(),
            Reason::Status(s) => format!("status_{}", s.as_u16()).into(),
            Reason::StreamErrorEvent => "stream_error_event".into(),
            Reason::StreamBroke => "stream_broke".into(),
        }
    }
}

impl Verdict {
    /// Why the call failed, when it did.
    pub(crate) fn failure_reason(self) -> Option<Cow<'static, str>> {
        match self {
            Verdict::Failure { reason, .. } => Some(reason.label()),
            _ => None,
        }
    }

    /// Gives `permit` this verdict; hands it back when the body still has to decide.
    pub(crate) fn apply(self, permit: OwnedPermit) -> Option<OwnedPermit> {
        match self {
            Verdict::Success => permit.success(),
            Verdict::Failure {
                retry_after: Some(pause),
                ..
            } => permit.failure_with_retry_after(pause),
            Verdict::Failure { .. } => permit.failure(),
            Verdict::Ignore => permit.ignore(),
            Verdict::AwaitBody => return Some(permit),
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANTHROPIC: &[u16] = &[429, 500, 503, 504, 529];

    fn head(status: u16, retry_after: Option<u64>, quota_exhausted: bool) -> Happened {
        Happened::Head {
            status: StatusCode::from_u16(status).unwrap(),
            retry_after: retry_after.map(Duration::from_secs),
            quota_exhausted,
        }
    }

    fn failure(reason: Reason) -> Verdict {
        Verdict::Failure {
            reason,
            retry_after: None,
        }
    }

    #[test]
    fn the_whole_matrix() {
        let status = |s| Reason::Status(StatusCode::from_u16(s).unwrap());
        let cases = [
            (Happened::ClientBodyFailed, Verdict::Ignore),
            (Happened::ClientGone, Verdict::Ignore),
            (Happened::ConnectFailed, failure(Reason::Connect)),
            (Happened::ConnectTimedOut, failure(Reason::ConnectTimeout)),
            (Happened::UpstreamBroke, failure(Reason::UpstreamBroke)),
            (
                Happened::FirstByteTimedOut,
                failure(Reason::FirstByteTimeout),
            ),
            (head(529, None, false), failure(status(529))),
            (
                head(429, Some(5), false),
                Verdict::Failure {
                    reason: status(429),
                    retry_after: Some(Duration::from_secs(5)),
                },
            ),
            (head(429, Some(5), true), Verdict::Ignore),
            (head(502, None, false), Verdict::Ignore),
            (head(404, None, false), Verdict::Ignore),
            (head(400, None, true), Verdict::Ignore),
            (head(200, None, false), Verdict::AwaitBody),
            (head(101, None, false), Verdict::Success),
            (head(103, None, false), Verdict::AwaitBody),
            (head(304, None, false), Verdict::AwaitBody),
            (Happened::StreamEnded, Verdict::Success),
            (
                Happened::StreamErrorEvent,
                failure(Reason::StreamErrorEvent),
            ),
            (Happened::StreamBroke, failure(Reason::StreamBroke)),
        ];
        for (happened, expected) in cases {
            assert_eq!(judge(happened, ANTHROPIC), expected, "{happened:?}");
        }
        // The statuses are the kind's (or the provider's own list).
        assert_eq!(judge(head(502, None, false), &[502]), failure(status(502)));
        assert_eq!(judge(head(529, None, false), &[]), Verdict::Ignore);
    }

    #[test]
    fn verdicts_reach_the_breaker() {
        use seawall_breaker::{CircuitBreaker, Config, State};
        let cb = CircuitBreaker::new(Config::builder().failure_threshold(1).build().unwrap());
        let permit = cb.try_acquire_owned().unwrap();
        let held = judge(head(200, None, false), ANTHROPIC).apply(permit);
        assert!(held.is_some(), "a good head leaves the verdict to the body");
        assert!(judge(Happened::StreamEnded, &[])
            .apply(held.unwrap())
            .is_none());
        assert_eq!(cb.state(), State::Closed);
        let permit = cb.try_acquire_owned().unwrap();
        judge(Happened::ClientGone, &[]).apply(permit);
        assert_eq!(cb.state(), State::Closed);
        let permit = cb.try_acquire_owned().unwrap();
        judge(head(529, Some(60), false), ANTHROPIC).apply(permit);
        assert_eq!(cb.state(), State::Open);
        assert!(cb.try_acquire().unwrap_err().retry_after() > Duration::from_secs(50));
    }
}
