//! The cluster's metric families: `seawall_cluster_connected`,
//! `seawall_cluster_messages_total{direction,type}`, `seawall_cluster_propagation_seconds`,
//! `seawall_cluster_probe_leases_total` and `seawall_cluster_dropped_total`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};

use crate::metrics::Metrics;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MessageLabels {
    direction: &'static str,
    r#type: &'static str,
}

/// The families, registered once per daemon.
pub(crate) struct Families {
    pub(crate) connected: Gauge,
    messages: Family<MessageLabels, Counter>,
    pub(crate) propagation: Histogram,
    pub(crate) leases: Counter,
    pub(crate) dropped: Counter,
}

impl Families {
    pub(crate) fn register(metrics: &Metrics) -> Self {
        let families = Families {
            connected: Gauge::default(),
            messages: Family::default(),
            // 50 µs to about 3 s.
            propagation: Histogram::new(exponential_buckets(0.000_05, 2.0, 17)),
            leases: Counter::default(),
            dropped: Counter::default(),
        };
        metrics.register(
            "cluster_connected",
            "1 while this replica is connected to the cluster's Redis, else 0 (it then decides alone)",
            families.connected.clone(),
        );
        metrics.register(
            "cluster_messages",
            "Fleet messages, by direction (sent, received) and type (trip, close, admin)",
            families.messages.clone(),
        );
        metrics.register(
            "cluster_propagation_seconds",
            "Time from another replica sending a trip to this replica applying it",
            families.propagation.clone(),
        );
        metrics.register(
            "cluster_probe_leases",
            "Probe rounds this replica took for the fleet",
            families.leases.clone(),
        );
        metrics.register(
            "cluster_dropped",
            "Breaker transitions not told to the fleet because the cluster's queue was full (caught up on the next reconnect)",
            families.dropped.clone(),
        );
        for direction in ["sent", "received"] {
            for r#type in ["trip", "close", "admin"] {
                let _ = families
                    .messages
                    .get_or_create(&MessageLabels { direction, r#type });
            }
        }
        families
    }

    pub(crate) fn count(&self, direction: &'static str, r#type: &'static str) {
        self.messages
            .get_or_create(&MessageLabels { direction, r#type })
            .inc();
    }
}
