//! Admission: which target of which provider gets a call. The provider's targets come first,
//! chosen by its picker among those not tried yet and not out of quota, then each fallback's;
//! the first whose breaker admits the call gets it. A refusal moves on only when the provider
//! fails over on `rejected`; every refusal is counted.

use std::borrow::Cow;
use std::sync::Arc;

use foldhash::HashMap;
use seawall_breaker::{OwnedPermit, Rejected, State};
use tokio::time::Instant;

use super::target::Target;
use super::upstream::Upstream;
use crate::config::FailoverOn;

/// A call a breaker let through, and where it goes.
pub(crate) struct Admitted<'a> {
    /// The provider that serves the call (a fallback, possibly).
    pub(crate) upstream: &'a Upstream,
    /// The provider's target that serves it.
    pub(crate) target: &'a Target,
    /// Held until the response body ends.
    pub(crate) permit: OwnedPermit,
    /// The admitting breaker's endpoint label (`*` for an overflow breaker).
    pub(crate) endpoint: Cow<'a, str>,
    /// Whether a fallback serves the call.
    pub(crate) fallback: bool,
}

/// Why no breaker admitted a call.
pub(crate) enum Refused {
    /// The primary's breaker rejected it (in this state), and nothing else admitted it.
    Rejected(Rejected, State),
    /// Every candidate's quota is spent, until the earliest of their resets.
    RateLimited(Instant),
    /// Every candidate has been tried already.
    Exhausted,
}

/// The candidates of one client request for `path`, and which have been tried.
pub(crate) struct Candidates<'a> {
    upstreams: &'a HashMap<String, Arc<Upstream>>,
    primary: &'a Upstream,
    path: &'a str,
    /// The primary's label of `path`.
    endpoint: &'a str,
    model: Option<&'a str>,
    /// (provider, target index) pairs already asked.
    tried: Vec<(&'a str, usize)>,
    /// The primary's first rejection, answered when nothing admits the call.
    rejection: Option<(Rejected, State)>,
    /// The provider and target that last refused the call, counted as a failover once the
    /// call moves on to another candidate.
    refused_by: Option<(&'a Upstream, &'a str)>,
}

impl<'a> Candidates<'a> {
    pub(crate) fn new(
        upstreams: &'a HashMap<String, Arc<Upstream>>,
        primary: &'a Upstream,
        path: &'a str,
        endpoint: &'a str,
        model: Option<&'a str>,
    ) -> Self {
        Candidates {
            upstreams,
            primary,
            path,
            endpoint,
            model,
            tried: Vec::new(),
            rejection: None,
            refused_by: None,
        }
    }

    /// The providers in order: the primary, then its fallbacks.
    fn providers(&self) -> impl Iterator<Item = &'a Upstream> + 'a {
        let upstreams = self.upstreams;
        std::iter::once(self.primary).chain(
            self.primary
                .fallbacks
                .iter()
                .filter_map(move |n| upstreams.get(n).map(|u| &**u)),
        )
    }

    /// The next call some breaker admits, or why none does.
    pub(crate) fn next(&mut self) -> Result<Admitted<'a>, Refused> {
        let move_on = self.primary.failover.on(FailoverOn::Rejected);
        let now = Instant::now();
        let mut quota_back: Option<Instant> = None;
        let providers: Vec<&'a Upstream> = self.providers().collect();
        for (p, upstream) in providers.into_iter().enumerate() {
            let pb = &upstream.breakers;
            let label = if p == 0 {
                Cow::Borrowed(self.endpoint)
            } else {
                upstream.endpoint(self.path)
            };
            loop {
                let loads: Vec<_> = upstream.targets.iter().map(|t| &*t.load).collect();
                let tried = &self.tried;
                let mut eligible = |i: usize| {
                    let spent = upstream.targets[i]
                        .limits
                        .as_ref()
                        .and_then(|l| l.exhausted_until(now));
                    if let Some(until) = spent {
                        quota_back = Some(quota_back.map_or(until, |q| q.min(until)));
                    }
                    spent.is_none() && !tried.contains(&(upstream.name.as_str(), i))
                };
                // Of several targets, those whose breakers admit now are balanced over, so an
                // open one is passed over without a rejection; only when none admits is one
                // asked anyway, for the rejection to answer with.
                let admits = |i: usize| {
                    pb.targets()
                        .get(i)
                        .is_some_and(|tb| tb.breaker(&label, self.model).0.check().is_ok())
                };
                let mut picked = None;
                if upstream.targets.len() > 1 {
                    picked = upstream.picker.pick(&loads, |i| eligible(i) && admits(i));
                }
                if picked.is_none() {
                    picked = upstream.picker.pick(&loads, &mut eligible);
                }
                let Some(i) = picked else {
                    break;
                };
                self.tried.push((&upstream.name, i));
                if let Some((from, target)) = self.refused_by.take() {
                    from.metrics.count_failover(&from.name, target, "rejected");
                }
                let target = &upstream.targets[i];
                let Some(tb) = pb.targets().get(i) else {
                    continue;
                };
                let (breaker, overflow) = tb.breaker(&label, self.model);
                match breaker.try_acquire_owned() {
                    Ok(permit) => {
                        if p > 0 {
                            tracing::debug!(provider = %self.primary.name, fallback = %upstream.name,
                                endpoint = %label, "served by a fallback");
                        }
                        return Ok(Admitted {
                            upstream,
                            target,
                            permit,
                            endpoint: if overflow {
                                Cow::Borrowed("*")
                            } else {
                                label.clone()
                            },
                            fallback: p > 0,
                        });
                    }
                    Err(rejected) => {
                        tb.count_reject_of(&label, self.model, overflow);
                        if self.rejection.is_none() {
                            self.rejection = Some((rejected, breaker.state()));
                        }
                        if !move_on {
                            return Err(self.refusal(None));
                        }
                        self.refused_by = Some((upstream, &target.name));
                    }
                }
            }
        }
        Err(self.refusal(quota_back))
    }

    fn refusal(&mut self, quota_back: Option<Instant>) -> Refused {
        match (self.rejection.take(), quota_back) {
            (Some((rejected, state)), _) => Refused::Rejected(rejected, state),
            (None, Some(until)) => Refused::RateLimited(until),
            (None, None) => Refused::Exhausted,
        }
    }
}

/// Whether every candidate would refuse a call now (asking changes and counts nothing): a
/// request that would be refused is not read first.
pub(crate) fn would_refuse(
    upstreams: &HashMap<String, Arc<Upstream>>,
    primary: &Upstream,
    path: &str,
    endpoint: &str,
) -> bool {
    let now = Instant::now();
    let admits = |upstream: &Upstream, label: &str| {
        let pb = &upstream.breakers;
        upstream.targets.iter().zip(pb.targets()).any(|(t, tb)| {
            let spent = t
                .limits
                .as_ref()
                .is_some_and(|l| l.exhausted_until(now).is_some());
            !spent && tb.breaker(label, None).0.check().is_ok()
        })
    };
    if admits(primary, endpoint) {
        return false;
    }
    !primary.failover.on(FailoverOn::Rejected)
        || !primary
            .fallbacks
            .iter()
            .filter_map(|name| upstreams.get(name))
            .any(|fallback| admits(fallback, &fallback.endpoint(path)))
}
