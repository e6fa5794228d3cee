//! [`BreakerLabels`]: which breaker a series, an admin view or a timeline entry is about.

use prometheus_client::encoding::EncodeLabelSet;

/// Identifies one breaker in metrics, in the admin API and in the transition timeline.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BreakerLabels {
    /// `provider` or `output`.
    pub kind: &'static str,
    /// The provider's or output's name.
    pub name: String,
    /// The endpoint: a request path for providers, a URL for outputs.
    pub endpoint: String,
    /// The model when breakers are per model, else empty.
    pub model: String,
}
