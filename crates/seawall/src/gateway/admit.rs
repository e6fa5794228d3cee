//! Admission: a permit from the provider's breaker for this endpoint (× model), else from the
//! first fallback provider whose breaker admits, else the original provider's rejection.

use std::collections::HashMap;

use seawall_breaker::{OwnedPermit, Rejected, State};

use super::upstream::Upstream;
use crate::breakers::Breakers;
use crate::metrics::BreakerLabels;

/// A call the breakers let through, and where it goes.
pub(crate) struct Admitted<'a> {
    /// The provider that serves the call (a fallback, possibly).
    pub(crate) upstream: &'a Upstream,
    /// Held until the response body ends.
    pub(crate) permit: OwnedPermit,
    /// The admitting breaker's labels (its endpoint is `*` for an overflow breaker).
    pub(crate) labels: BreakerLabels,
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

/// Asks `primary`'s breaker, then its fallbacks', for a permit; every refusal is counted.
pub(crate) fn admit<'a>(
    upstreams: &'a HashMap<String, Upstream>,
    breakers: &Breakers,
    primary: &'a Upstream,
    endpoint: &str,
    model: Option<&str>,
) -> Result<Admitted<'a>, Refused> {
    let try_one = |upstream: &'a Upstream| {
        // `Gateway::new` checked that every provider has breakers.
        let pb = breakers.provider(&upstream.name)?;
        let (breaker, labels) = pb.get(endpoint, model);
        Some(match breaker.try_acquire_owned() {
            Ok(permit) => Ok((permit, labels)),
            Err(rejected) => {
                pb.count_reject(&labels);
                Err((rejected, breaker.state()))
            }
        })
    };
    let (rejected, state) = match try_one(primary) {
        Some(Ok((permit, labels))) => {
            return Ok(Admitted {
                upstream: primary,
                permit,
                labels,
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
        if let Some(Ok((permit, labels))) = try_one(upstream) {
            tracing::debug!(provider = %primary.name, fallback = %name, %endpoint, "breaker open; served by fallback");
            return Ok(Admitted {
                upstream,
                permit,
                labels,
                fallback: true,
            });
        }
    }
    Err(Refused::Rejected(rejected, state))
}
