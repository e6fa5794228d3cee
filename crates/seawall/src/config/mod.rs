//! The daemon's YAML configuration: schema, parsing with field-path + `line:column` errors,
//! semantic validation, and secret resolution from environment variables.
//!
//! # Layout
//! - [`load`]/[`parse`] (`load.rs`): YAML → validated [`Config`].
//! - `model.rs`, `provider.rs`, `pipeline.rs`, `breaker.rs`, `cluster.rs`: the schema, with each field's
//!   default in its doc comment; `endpoint.rs`: `providers[].endpoints` templates.
//! - [`duration`] and [`size`]: `30s`-style durations and `10MB`-style sizes (binary units);
//!   [`bounds`]: the upper bound of each of them and of every count.
//! - `spans.rs`: field path → position map built from the YAML events, so checks run after
//!   deserialisation (`validate.rs`) still report `line:column`.
//! - `secrets.rs`: [`Config::resolve_secrets`]; `error.rs`: [`ConfigError`].
//! - `tls/`: [`TlsConfig`] (`server.tls`, `admin.tls`) and reading its PEM files.
//! - [`json_schema`] (`schema.rs`): the JSON Schema of the file, for editors.
//!
//! ```
//! let yaml = "providers: [{ name: a, kind: openai, base_url: 'https://api.openai.com', fallbacks: [b] }]";
//! let err = seawall::config::parse(yaml).unwrap_err();
//! assert_eq!(
//!     err.to_string(),
//!     "config error: providers[0].fallbacks[0] at 1:86: unknown provider `b`"
//! );
//! ```

pub mod bounds;
mod breaker;
mod cluster;
pub mod duration;
mod endpoint;
mod error;
mod load;
mod model;
mod pipeline;
mod provider;
mod schema;
mod secrets;
pub mod size;
mod spans;
mod tls;
mod validate;

#[cfg(test)]
mod tests;

pub use breaker::{BreakerSettings, DEFAULT_OPEN_TIMEOUT_MAX};
pub use cluster::ClusterConfig;
pub(crate) use endpoint::{is_unreserved, stands_for_itself};
pub use endpoint::{EndpointTemplate, TemplateSegment, MAX_ENDPOINT_LEN};
pub use error::{ConfigError, Location, Position};
pub use load::{load, parse};
pub use model::{
    AdminConfig, AuthConfig, AuthMode, Config, FeatureFlagsConfig, GlobalHealthConfig, H2Config,
    HistoryConfig, ServerConfig, ServerTimeouts, TelemetryConfig,
};
pub use pipeline::{
    BatchConfig, BufferConfig, BufferType, Compression, FallbackConfig, OutputConfig, OutputType,
    PipelineConfig, QueueConfig, RerouteConfig, ResilienceConfig, SamplingConfig, SyncPolicy,
};
pub use provider::{
    FailoverConfig, FailoverOn, ProviderConfig, ProviderKind, ProviderTimeouts, RetryBudgetConfig,
    Target, TargetConfig, DEFAULT_IDLE_EVICT, MAX_IDLE_EVICT,
};
pub use schema::json_schema;
pub use secrets::{Secret, Secrets};
#[cfg(test)]
pub(crate) use tls::testing;
pub use tls::{TlsConfig, TlsField, TlsFileError, MAX_PEM_BYTES};
