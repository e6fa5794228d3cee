//! Admission: a permit from the provider's breaker for this endpoint (× model), else from the
//! first fallback provider whose breaker admits, else the original provider's rejection.

use std::borrow::Cow;

use foldhash::HashMap;

use seawall_breaker::{OwnedPermit, Rejected, State};

use super::upstream::Upstream;
use crate::breakers::Breakers;

/// A call the breakers let through, and where it goes.
pub(crate) struct Admitted<'a> {
    /// The provider that serves the call (a fallback, possibly).
    pub(crate) upstream: &'a Upstream,
    /// Held until the response body ends.
    pub(crate) permit: OwnedPermit,
    /// The admitting breaker's endpoint label (`*` for an overflow breaker).
    pub(crate) endpoint: Cow<'a, str>,
    /// Whether a fallback serves the call.
    pub(crate) fallback: bool,
}

/// Why no breaker admitted a call.
pub(crate) enum Refused {
    /// `primary`'s breaker rejected it (in this state), and no fallback admitted it.
    Rejected(Rejected, State),
    /// `primary` has no breakers (they were built from another configuration).
    NoBreakers,
}

/// Whether `primary`'s breaker for `endpoint` and every fallback's for its own label of `path`
/// would refuse a call now (asking changes and counts nothing): a request that would be
/// refused is not read first.
pub(crate) fn would_refuse(
    upstreams: &HashMap<String, Upstream>,
    breakers: &Breakers,
    primary: &Upstream,
    path: &str,
    endpoint: &str,
) -> bool {
    let refuses = |upstream: &Upstream, endpoint: &str| {
        breakers
            .provider(&upstream.name)
            .is_some_and(|pb| pb.breaker(endpoint, None).0.check().is_err())
    };
    refuses(primary, endpoint)
        && primary
            .fallbacks
            .iter()
            .filter_map(|name| upstreams.get(name))
            .all(|fallback| refuses(fallback, &fallback.endpoint(path)))
}

/// Asks `primary`'s breaker for `endpoint` (its label of the normal request `path`), then its
/// fallbacks' breakers for their own labels of `path`, for a permit; every refusal is counted.
pub(crate) fn admit<'a>(
    upstreams: &'a HashMap<String, Upstream>,
    breakers: &Breakers,
    primary: &'a Upstream,
    path: &'a str,
    endpoint: &'a str,
    model: Option<&str>,
) -> Result<Admitted<'a>, Refused> {
    let try_one = |upstream: &'a Upstream, endpoint: Cow<'a, str>| {
        // `Gateway::new` checked that every provider has breakers.
        let pb = breakers.provider(&upstream.name)?;
        let (breaker, overflow) = pb.breaker(&endpoint, model);
        Some(match breaker.try_acquire_owned() {
            Ok(permit) if overflow => Ok((permit, Cow::Borrowed("*"))),
            Ok(permit) => Ok((permit, endpoint)),
            Err(rejected) => {
                pb.count_reject_of(&endpoint, model, overflow);
                Err((rejected, breaker.state()))
            }
        })
    };
    let (rejected, state) = match try_one(primary, Cow::Borrowed(endpoint)) {
        Some(Ok((permit, endpoint))) => {
            return Ok(Admitted {
                upstream: primary,
                permit,
                endpoint,
                fallback: false,
            })
        }
        Some(Err(rejected)) => rejected,
        None => return Err(Refused::NoBreakers),
    };
    for name in &primary.fallbacks {
        let Some(upstream) = upstreams.get(name) else {
            continue;
        };
        if let Some(Ok((permit, label))) = try_one(upstream, upstream.endpoint(path)) {
            tracing::debug!(provider = %primary.name, fallback = %name, %endpoint, "breaker open; served by fallback");
            return Ok(Admitted {
                upstream,
                permit,
                endpoint: label,
                fallback: true,
            });
        }
    }
    Err(Refused::Rejected(rejected, state))
}
