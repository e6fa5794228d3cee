//! [`BreakerLabels`]: which breaker a series, an admin view or a timeline entry is about.

use prometheus_client::encoding::{EncodeLabel, EncodeLabelSet, LabelSetEncoder};

/// Identifies one breaker in metrics, in the admin API and in the transition timeline.
///
/// Encoded as the labels `kind`, `name`, `endpoint`, `model`, and `target` only for a
/// provider with several targets (an empty label is no label to Prometheus; leaving it out
/// keeps one-target series exactly as they were).
#[derive(Clone, Debug, Default, Hash, PartialEq, Eq)]
pub struct BreakerLabels {
    /// `provider` or `output`.
    pub kind: &'static str,
    /// The provider's or output's name.
    pub name: String,
    /// The endpoint: a request path for providers, a URL for outputs.
    pub endpoint: String,
    /// The model when breakers are per model, else empty.
    pub model: String,
    /// The provider's target, when it has several (`providers[].targets`); else empty.
    pub target: String,
}

impl EncodeLabelSet for BreakerLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> Result<(), std::fmt::Error> {
        ("kind", self.kind).encode(encoder.encode_label())?;
        ("name", self.name.as_str()).encode(encoder.encode_label())?;
        ("endpoint", self.endpoint.as_str()).encode(encoder.encode_label())?;
        ("model", self.model.as_str()).encode(encoder.encode_label())?;
        if !self.target.is_empty() {
            ("target", self.target.as_str()).encode(encoder.encode_label())?;
        }
        Ok(())
    }
}
