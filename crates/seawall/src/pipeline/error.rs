//! Errors starting a pipeline: what an operator must fix in the configuration.

use seawall_breaker::ConfigError as PolicyError;

/// A pipeline could not be started.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// An output's destination cannot be used (bad URL, missing directory, unopenable file).
    #[error("pipeline `{pipeline}`, output `{output}`: {problem}")]
    Output {
        /// The pipeline's name.
        pipeline: String,
        /// The output's name.
        output: String,
        /// What is wrong.
        problem: String,
    },
    /// An output's `resilience.circuit_breaker` settings are invalid.
    #[error("pipeline `{pipeline}`, output `{output}`: resilience.circuit_breaker: {source}")]
    Breaker {
        /// The pipeline's name.
        pipeline: String,
        /// The output's name.
        output: String,
        /// The rejected breaker setting.
        #[source]
        source: PolicyError,
    },
    /// A disk buffer's directory cannot be used (not writable, locked by another process).
    #[error("pipeline `{pipeline}`: buffer.path {}: {source}", path.display())]
    Buffer {
        /// The pipeline's name.
        pipeline: String,
        /// `buffer.path`.
        path: std::path::PathBuf,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// The TLS client settings for `http` outputs could not be built.
    #[error("TLS setup for http outputs failed: {0}")]
    Tls(String),
}

impl PipelineError {
    /// Whether the configuration is at fault: not for a disk buffer's directory that cannot be
    /// used (permissions, a full disk, another process holding it).
    pub fn is_config_error(&self) -> bool {
        !matches!(self, PipelineError::Buffer { .. })
    }
}
