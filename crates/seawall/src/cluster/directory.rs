//! Finds this replica's breaker for a name another replica sent: provider breakers (created
//! on demand, as a request would) and output breakers (fixed by the configuration).

use std::sync::Arc;

use seawall_breaker::CircuitBreaker;

use crate::breakers::Breakers;
use crate::labels::BreakerLabels;
use crate::pipeline::Pipelines;

/// Every breaker of this replica, by labels.
pub struct Directory {
    breakers: Arc<Breakers>,
    pipelines: Option<Arc<Pipelines>>,
}

impl Directory {
    /// The breakers of `breakers` (providers) and `pipelines` (outputs).
    pub fn new(breakers: Arc<Breakers>, pipelines: Option<Arc<Pipelines>>) -> Self {
        Directory {
            breakers,
            pipelines,
        }
    }

    /// The breaker labelled `l`, created if this replica has the provider and target but no
    /// breaker for that endpoint yet; `None` when it has no such provider, target or output.
    pub fn find(&self, l: &BreakerLabels) -> Option<CircuitBreaker> {
        match l.kind {
            "provider" => self.breakers.resolve(l),
            _ => self
                .pipelines
                .as_ref()?
                .breakers()
                .into_iter()
                .find(|(labels, _)| labels == l)
                .map(|(_, b)| b),
        }
    }

    /// Every breaker this replica has now.
    pub fn all(&self) -> Vec<(BreakerLabels, CircuitBreaker)> {
        let mut all: Vec<_> = self
            .breakers
            .providers()
            .iter()
            .flat_map(|p| p.entries())
            .collect();
        if let Some(p) = &self.pipelines {
            all.extend(p.breakers());
        }
        all
    }
}
