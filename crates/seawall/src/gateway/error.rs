//! Why a gateway could not be built from a configuration.

/// An error building a [`Gateway`](super::Gateway); each names the provider to fix.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// `base_url` is not an absolute `http(s)` URL the client can reach.
    #[error("provider `{provider}`: invalid base_url `{url}`: {reason}")]
    InvalidBaseUrl {
        /// The provider's name.
        provider: String,
        /// The configured URL.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The provider's API key cannot be sent in an HTTP header (control characters).
    #[error("provider `{provider}`: the API key is not a valid HTTP header value")]
    InvalidApiKey {
        /// The provider's name.
        provider: String,
    },
    /// [`Breakers`](crate::breakers::Breakers) was built from another configuration.
    #[error("provider `{provider}` has no breakers")]
    MissingBreakers {
        /// The provider's name.
        provider: String,
    },
    /// The TLS client configuration could not be built.
    #[error("TLS setup failed: {0}")]
    Tls(#[from] rustls::Error),
}
