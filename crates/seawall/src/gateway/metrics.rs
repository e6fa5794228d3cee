//! The gateway's own metric families, per provider: clients that went away before their
//! answer ended (`seawall_client_disconnects_total`), and WebSocket tunnels
//! (`seawall_websocket_tunnels` open now, `seawall_websocket_tunnels_opened_total`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use crate::metrics::Metrics;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProviderLabels {
    provider: String,
}

/// The families, registered once per gateway.
pub(crate) struct Families {
    disconnects: Family<ProviderLabels, Counter>,
    tunnels: Family<ProviderLabels, Gauge>,
    opened: Family<ProviderLabels, Counter>,
}

impl Families {
    pub(crate) fn register(metrics: &Metrics) -> Self {
        let families = Families {
            disconnects: Family::default(),
            tunnels: Family::default(),
            opened: Family::default(),
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
        families
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
        }
    }
}

/// One provider's handles (cheap clones of shared counters).
#[derive(Clone, Debug)]
pub(crate) struct ProviderMetrics {
    pub(crate) disconnects: Counter,
    pub(crate) tunnels: Gauge,
    pub(crate) opened: Counter,
}
