//! The gateway's own metric families, per provider: clients that went away before their
//! answer ended (`seawall_client_disconnects_total`), WebSocket tunnels
//! (`seawall_websocket_tunnels` open now, `seawall_websocket_tunnels_opened_total`), failover
//! (`seawall_failover_attempts_total`, `seawall_retry_budget_exhausted_total`), and what each
//! target's answers said of its quota (`seawall_target_rate_limit_remaining`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use crate::metrics::Metrics;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProviderLabels {
    provider: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailoverLabels {
    provider: String,
    target: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QuotaLabels {
    provider: String,
    target: String,
    resource: &'static str,
}

/// The families, registered once per gateway.
pub(crate) struct Families {
    disconnects: Family<ProviderLabels, Counter>,
    tunnels: Family<ProviderLabels, Gauge>,
    opened: Family<ProviderLabels, Counter>,
    failover: Family<FailoverLabels, Counter>,
    budget_exhausted: Family<ProviderLabels, Counter>,
    remaining: Family<QuotaLabels, Gauge>,
}

impl Families {
    pub(crate) fn register(metrics: &Metrics) -> Self {
        let families = Families {
            disconnects: Family::default(),
            tunnels: Family::default(),
            opened: Family::default(),
            failover: Family::default(),
            budget_exhausted: Family::default(),
            remaining: Family::default(),
        };
        metrics.register(
            "client_disconnects",
            "Gateway requests whose client went away before the answer ended (the upstream request is cancelled)",
            families.disconnects.clone(),
        );
        metrics.register(
            "websocket_tunnels",
            "WebSocket tunnels open now",
            families.tunnels.clone(),
        );
        metrics.register(
            "websocket_tunnels_opened",
            "WebSocket tunnels opened",
            families.opened.clone(),
        );
        metrics.register(
            "failover_attempts",
            "Attempts sent to another target or a fallback after a failure or a refusal, by the target that failed and why",
            families.failover.clone(),
        );
        metrics.register(
            "retry_budget_exhausted",
            "Failures that went back to the client because the provider's retry budget was spent",
            families.budget_exhausted.clone(),
        );
        metrics.register(
            "target_rate_limit_remaining",
            "What a target's last answer said is left of its quota, by resource",
            families.remaining.clone(),
        );
        families
    }

    /// The `seawall_target_rate_limit_remaining` gauges of `provider`'s `target`, one per
    /// resource (`requests`, `tokens`, `input-tokens`, `output-tokens`), created on first use.
    pub(crate) fn rate_limit_gauges(&self, provider: &str, target: &str) -> [Gauge; 4] {
        ["requests", "tokens", "input-tokens", "output-tokens"].map(|resource| {
            self.remaining
                .get_or_create(&QuotaLabels {
                    provider: provider.to_owned(),
                    target: target.to_owned(),
                    resource,
                })
                .clone()
        })
    }

    /// The handles of `provider`, created at zero.
    pub(crate) fn of(&self, provider: &str) -> ProviderMetrics {
        let labels = ProviderLabels {
            provider: provider.to_owned(),
        };
        ProviderMetrics {
            disconnects: self.disconnects.get_or_create(&labels).clone(),
            tunnels: self.tunnels.get_or_create(&labels).clone(),
            opened: self.opened.get_or_create(&labels).clone(),
            budget_exhausted: self.budget_exhausted.get_or_create(&labels).clone(),
            failover: self.failover.clone(),
        }
    }
}

/// One provider's handles (cheap clones of shared counters).
#[derive(Clone, Debug)]
pub(crate) struct ProviderMetrics {
    pub(crate) disconnects: Counter,
    pub(crate) tunnels: Gauge,
    pub(crate) opened: Counter,
    pub(crate) budget_exhausted: Counter,
    failover: Family<FailoverLabels, Counter>,
}

impl ProviderMetrics {
    /// Counts an attempt moved off `target` of `provider` because of `reason` (rare: the
    /// labels are built here).
    pub(crate) fn count_failover(&self, provider: &str, target: &str, reason: &str) {
        let labels = FailoverLabels {
            provider: provider.to_owned(),
            target: target.to_owned(),
            reason: reason.to_owned(),
        };
        self.failover.get_or_create(&labels).inc();
    }
}
