//! Seawall: overload protection for callers of remote services.
//!
//! The `seawall` daemon is an HTTP gateway in front of API providers (Anthropic, OpenAI, any
//! HTTP upstream) with a circuit breaker per provider × endpoint, configured by one YAML file.
//!
//! # Layout
//! - [`config`]: the YAML schema, loading with `line:column` errors, secrets from the env.
//! - [`breakers`]: breaker policies from config, per-provider registries, transition logging.
//! - [`metrics`]: the Prometheus metrics of DESIGN §5.
//! - [`http`]: the response body type and JSON helpers.
//! - [`demo`]: the self-contained `seawall demo`.

pub mod breakers;
pub mod config;
pub mod demo;
pub mod http;
pub mod metrics;
