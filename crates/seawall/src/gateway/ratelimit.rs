//! Rate-limit-aware routing: what a target's answers say about its remaining quota, read from
//! Anthropic's `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{remaining,reset}`
//! (reset as an RFC 3339 time) and OpenAI's `x-ratelimit-{remaining,reset}-{requests,tokens}`
//! (reset as a duration such as `6m0s`, `1s`, `20ms`). A target with a resource at zero is
//! skipped until that resource resets, before any 429 arrives.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderName, HeaderValue};
use prometheus_client::metrics::gauge::Gauge;
use tokio::time::Instant;

use crate::config::ProviderKind;
use crate::message::fields::WireHeaders;

/// The resources a provider limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resource {
    Requests,
    Tokens,
    InputTokens,
    OutputTokens,
}

impl Resource {
    pub(crate) const ALL: [Resource; 4] = [
        Resource::Requests,
        Resource::Tokens,
        Resource::InputTokens,
        Resource::OutputTokens,
    ];

    /// The `resource` label and the name's middle part (`anthropic-ratelimit-{this}-remaining`).
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Resource::Requests => "requests",
            Resource::Tokens => "tokens",
            Resource::InputTokens => "input-tokens",
            Resource::OutputTokens => "output-tokens",
        }
    }

    fn parse(s: &[u8]) -> Option<Resource> {
        Resource::ALL
            .into_iter()
            .find(|r| s.eq_ignore_ascii_case(r.as_str().as_bytes()))
    }
}

/// Unknown: no answer has told yet.
const UNKNOWN: u64 = u64::MAX;

/// One resource's last reading.
struct Reading {
    remaining: AtomicU64,
    /// When it resets, in nanoseconds after the target's `epoch`; 0 when unknown.
    reset_at: AtomicU64,
    /// `seawall_target_rate_limit_remaining{provider,target,resource}`.
    gauge: Gauge,
}

/// A target's rate-limit state, as its answers report it.
pub(crate) struct RateLimits {
    kind: ProviderKind,
    epoch: Instant,
    readings: [Reading; 4],
}

impl RateLimits {
    /// The state of a target of a `kind` provider, reporting into `gauges` (one per resource,
    /// in [`Resource::ALL`] order).
    pub(crate) fn new(kind: ProviderKind, gauges: [Gauge; 4]) -> Self {
        RateLimits {
            kind,
            epoch: Instant::now(),
            readings: gauges.map(|gauge| Reading {
                remaining: AtomicU64::new(UNKNOWN),
                reset_at: AtomicU64::new(0),
                gauge,
            }),
        }
    }

    /// Reads an answer's rate-limit fields (one pass over them).
    pub(crate) fn observe(&self, fields: &WireHeaders) {
        let prefix: &[u8] = match self.kind {
            ProviderKind::Anthropic => b"anthropic-ratelimit-",
            ProviderKind::Openai => b"x-ratelimit-",
            ProviderKind::Generic => return,
        };
        let now = (Instant::now(), SystemTime::now());
        for (name, value) in fields.iter() {
            let Some(rest) = name
                .get(..prefix.len())
                .filter(|p| p.eq_ignore_ascii_case(prefix))
                .map(|_| &name[prefix.len()..])
            else {
                continue;
            };
            if let Some((resource, field)) = self.split(rest) {
                self.record(resource, field, value, now);
            }
        }
    }

    /// `(resource, remaining|reset)` of a field name after its prefix.
    fn split<'a>(&self, rest: &'a [u8]) -> Option<(Resource, &'a [u8])> {
        let dash = |s: &'a [u8], from_end: bool| {
            let at = if from_end {
                s.iter().rposition(|&b| b == b'-')
            } else {
                s.iter().position(|&b| b == b'-')
            }?;
            Some((&s[..at], &s[at + 1..]))
        };
        match self.kind {
            // anthropic-ratelimit-{input-tokens}-{remaining}
            ProviderKind::Anthropic => {
                let (resource, field) = dash(rest, true)?;
                Some((Resource::parse(resource)?, field))
            }
            // x-ratelimit-{remaining}-{requests}
            _ => {
                let (field, resource) = dash(rest, false)?;
                Some((Resource::parse(resource)?, field))
            }
        }
    }

    fn record(&self, resource: Resource, field: &[u8], value: &[u8], now: (Instant, SystemTime)) {
        let reading = &self.readings[resource as usize];
        let text = std::str::from_utf8(value).unwrap_or("").trim();
        if field.eq_ignore_ascii_case(b"remaining") {
            if let Ok(n) = text.parse::<u64>() {
                reading.remaining.store(n, Ordering::Relaxed);
                reading.gauge.set(i64::try_from(n).unwrap_or(i64::MAX));
            }
        } else if field.eq_ignore_ascii_case(b"reset") {
            let after = match self.kind {
                ProviderKind::Anthropic => humantime::parse_rfc3339_weak(text)
                    .ok()
                    .map(|at| at.duration_since(now.1).unwrap_or_default()),
                _ => parse_duration(text),
            };
            if let Some(after) = after {
                let at = (now.0 + after).duration_since(self.epoch);
                let nanos = u64::try_from(at.as_nanos()).unwrap_or(u64::MAX).max(1);
                reading.reset_at.store(nanos, Ordering::Relaxed);
            }
        }
    }

    /// When this target may be asked again, if a resource is spent and has not reset yet.
    pub(crate) fn exhausted_until(&self, now: Instant) -> Option<Instant> {
        let now_nanos =
            u64::try_from(now.duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX);
        self.readings
            .iter()
            .filter(|r| r.remaining.load(Ordering::Relaxed) == 0)
            .map(|r| r.reset_at.load(Ordering::Relaxed))
            .filter(|&at| at > now_nanos)
            .max()
            .map(|at| self.epoch + Duration::from_nanos(at))
    }

    /// The provider's own rate-limit fields for what is known, for a rejection to carry.
    pub(crate) fn headers(&self, into: &mut HeaderMap, now: Instant) {
        for resource in Resource::ALL {
            let reading = &self.readings[resource as usize];
            let remaining = reading.remaining.load(Ordering::Relaxed);
            if remaining == UNKNOWN {
                continue;
            }
            let reset_at = reading.reset_at.load(Ordering::Relaxed);
            let reset = (reset_at > 0).then(|| {
                let at = self.epoch + Duration::from_nanos(reset_at);
                at.saturating_duration_since(now)
            });
            let names = |field: &str| match self.kind {
                ProviderKind::Anthropic => {
                    format!("anthropic-ratelimit-{}-{field}", resource.as_str())
                }
                _ => format!("x-ratelimit-{field}-{}", resource.as_str()),
            };
            let mut put = |name: String, value: String| {
                if let (Ok(n), Ok(v)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
                    into.insert(n, v);
                }
            };
            put(names("remaining"), remaining.to_string());
            if let Some(reset) = reset {
                let value = match self.kind {
                    ProviderKind::Anthropic => {
                        humantime::format_rfc3339_seconds(SystemTime::now() + reset).to_string()
                    }
                    _ => format!("{}ms", reset.as_millis()),
                };
                put(names("reset"), value);
            }
        }
    }
}

/// An OpenAI reset duration: numbers with units `h`, `m`, `s`, `ms` (`6m0s`, `1.5s`, `20ms`).
fn parse_duration(text: &str) -> Option<Duration> {
    let mut total = 0.0;
    let mut rest = text;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let n: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (unit, len) = if rest.starts_with("ms") {
            (0.001, 2)
        } else if rest.starts_with('h') {
            (3600.0, 1)
        } else if rest.starts_with('m') {
            (60.0, 1)
        } else if rest.starts_with('s') {
            (1.0, 1)
        } else {
            return None;
        };
        total += n * unit;
        rest = &rest[len..];
    }
    (total.is_finite() && total < 1e9).then(|| Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;

    fn fields(head: &str) -> WireHeaders {
        let mut buf = BytesMut::from(format!("HTTP/1.1 200 OK\r\n{head}\r\n").as_bytes());
        crate::http1::codec::head::parse_response(&mut buf)
            .unwrap()
            .unwrap()
            .headers
    }

    fn limits(kind: ProviderKind) -> RateLimits {
        RateLimits::new(kind, Default::default())
    }

    #[test]
    fn openai_durations() {
        let d = |s| parse_duration(s);
        assert_eq!(d("6m0s"), Some(Duration::from_secs(360)));
        assert_eq!(d("1s"), Some(Duration::from_secs(1)));
        assert_eq!(d("20ms"), Some(Duration::from_millis(20)));
        assert_eq!(d("1h2m3.5s"), Some(Duration::from_millis(3_723_500)));
        assert_eq!(d(""), None);
        assert_eq!(d("soon"), None);
        assert_eq!(d("5x"), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_spent_openai_resource_holds_the_target_until_its_reset() {
        let rl = limits(ProviderKind::Openai);
        let now = Instant::now();
        rl.observe(&fields(
            "x-ratelimit-remaining-requests: 0\r\nx-ratelimit-reset-requests: 2s\r\n\
             x-ratelimit-remaining-tokens: 9000\r\nx-ratelimit-reset-tokens: 1m0s\r\n",
        ));
        let until = rl.exhausted_until(now).expect("requests are spent");
        assert_eq!(until - now, Duration::from_secs(2));
        assert_eq!(rl.exhausted_until(now + Duration::from_secs(2)), None);
        let mut h = HeaderMap::new();
        rl.headers(&mut h, now);
        assert_eq!(h["x-ratelimit-remaining-requests"], "0");
        assert_eq!(h["x-ratelimit-reset-requests"], "2000ms");
        assert_eq!(h["x-ratelimit-remaining-tokens"], "9000");
    }

    #[tokio::test(start_paused = true)]
    async fn anthropic_resets_are_times() {
        let rl = limits(ProviderKind::Anthropic);
        let at = humantime::format_rfc3339_seconds(SystemTime::now() + Duration::from_secs(30));
        rl.observe(&fields(&format!(
            "anthropic-ratelimit-input-tokens-remaining: 0\r\nanthropic-ratelimit-input-tokens-reset: {at}\r\n\
             anthropic-ratelimit-requests-remaining: 10\r\n"
        )));
        let until = rl
            .exhausted_until(Instant::now())
            .expect("input tokens are spent");
        let left = until - Instant::now();
        assert!(
            left > Duration::from_secs(28) && left <= Duration::from_secs(30),
            "{left:?}"
        );
        // A provider of the other kind ignores these names.
        let other = limits(ProviderKind::Openai);
        other.observe(&fields("anthropic-ratelimit-requests-remaining: 0\r\n"));
        assert_eq!(other.exhausted_until(Instant::now()), None);
    }
}
