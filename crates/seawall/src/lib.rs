//! Seawall: overload protection for callers of remote services.
//!
//! The `seawall` daemon is an HTTP gateway in front of API providers (Anthropic, OpenAI, any
//! HTTP upstream) with a circuit breaker per provider × endpoint, configured by one YAML file.
//!
//! # Layout
//! `docs/ARCHITECTURE.md` in the repository draws the layers, how a gateway request and an
//! ingested event flow, who owns what, and where to add a provider kind, an output type or a
//! metric. In short:
//! - [`config`]: the YAML schema, loading with `line:column` errors, secrets from the env.
//! - [`breakers`]: breaker policies from config, per-provider registries, transition logging.
//! - [`metrics`]: the Prometheus metrics (prefix `seawall_`); [`exposition`]: `/metrics` in
//!   OpenMetrics or the 0.0.4 text format, as the client's `accept` asks.
//! - [`timeline`]: the bounded ring of recent breaker transitions (`GET /v1/transitions`).
//! - [`history`]: the sampled rings of breaker and output counters (`GET /v1/history`, the
//!   dashboard's charts).
//! - [`message`]: what handlers receive and answer ([`message::Reply`]), JSON replies.
//! - `http1`: the HTTP/1.1 transport: codec, client connections, upstream connections.
//! - [`gateway`]: the HTTP gateway: routing, breakers per provider × endpoint, streaming.
//! - [`pipeline`]: event ingest, fan-out to outputs, per-endpoint breakers, fallback chain.
//! - [`flags`]: feature flags per upstream host (breaker enforcement, request events on/off).
//! - [`health`]: the global health monitor (memory, queue fill) that sheds new work.
//! - [`memory`]: the exact count of bytes held in queues, buffers and bodies being read.
//! - [`telemetry`]: the gateway's request events, sent to a pipeline.
//! - [`demo`]: the self-contained `seawall demo`.
//! - [`server`]: the listeners' accept loop (HTTP/1.1 + h2c, or TLS with ALPN `h2` and
//!   `http/1.1`; connection bound, graceful shutdown) and the gateway's worker threads.
//! - `router`: the gateway listener's routes (`/ingest/…` to the pipelines, the rest to the
//!   gateway).
//! - [`admin`]: the admin listener's routes (`/metrics`, `/readyz`, `/v1/breakers`, …).
//! - [`ui`]: the live dashboard served at the admin listener's `GET /ui`.
//! - [`app`]: assembles everything from a `Config` and runs it until shutdown.
//! - [`cli`]: the `seawall run|check|ready|demo|schema` command line; [`version`]: the version
//!   and git revision it reports; [`ready`]: `seawall ready`'s probe of `/readyz`.

pub mod admin;
pub mod app;
pub mod breakers;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod demo;
pub mod exposition;
pub mod flags;
pub mod gateway;
pub mod health;
pub mod history;
mod http1;
mod labels;
pub mod memory;
pub mod message;
pub mod metrics;
pub mod pipeline;
pub mod ready;
mod router;
pub mod server;
pub mod telemetry;
pub mod timeline;
pub mod ui;
pub mod version;
