//! `pipelines:` entries: event inputs (`POST /ingest/{name}`, and OTLP/HTTP logs at
//! `POST /ingest/{name}/v1/logs`), their outputs and fallback.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;

use super::breaker::BreakerSettings;
use super::schema::{DurationText, SizeText};
use super::{duration, size};

/// One event pipeline; every output receives every accepted event.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Unique name, used in `POST /ingest/{name}`: letters, digits, `-`, `_`, `.`. Required.
    pub name: String,
    /// Per-output queue settings.
    #[serde(default)]
    pub queue: QueueConfig,
    /// Largest accepted ingest request body, in bytes. Default `10MB` (10 MiB); at most 1 GiB.
    #[serde(default = "default_max_body", with = "size")]
    #[schemars(with = "SizeText")]
    pub max_body: u64,
    /// Deepest nesting of arrays and objects an ingested event may have (the event object
    /// itself is depth 1). Default 64; in 1..=100.
    #[serde(default = "default_max_depth")]
    pub max_depth: u32,
    /// Destinations; at least one, names unique within the pipeline.
    pub outputs: Vec<OutputConfig>,
    /// What happens when an output's endpoint is open or a send fails.
    #[serde(default)]
    pub fallback: FallbackConfig,
    /// Where accepted events wait for their outputs: in memory (default) or in a log on disk.
    #[serde(default)]
    pub buffer: BufferConfig,
}

pub(crate) fn default_max_body() -> u64 {
    10 << 20
}

fn default_max_depth() -> u32 {
    64
}

/// Bounded queue in front of each output.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct QueueConfig {
    /// Events each output's queue holds. Default 10 000; at least 1.
    pub capacity: usize,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self { capacity: 10_000 }
    }
}

/// The destination type of an output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OutputType {
    /// NDJSON batches POSTed to `endpoint` (and `alternates`).
    Http,
    /// NDJSON appended to `path`.
    File,
    /// NDJSON written to standard output.
    Stdout,
    /// Events are counted as delivered and discarded.
    Blackhole,
    /// OTLP/HTTP logs: protobuf `ExportLogsServiceRequest` batches POSTed to `endpoint` (and
    /// `alternates`), each event one log record, grouped by resource and scope.
    Otlp,
}

impl OutputType {
    /// The type's name as written in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::File => "file",
            Self::Stdout => "stdout",
            Self::Blackhole => "blackhole",
            Self::Otlp => "otlp",
        }
    }
}

/// One output of a pipeline.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    /// Name, unique within the pipeline. Required.
    pub name: String,
    /// Destination type. Required.
    #[serde(rename = "type")]
    pub kind: OutputType,
    /// `http` and `otlp` only, required there: the primary `http(s)://` endpoint URL. For
    /// `otlp` the logs URL (`http://collector:4318/v1/logs`); a URL without a path gets
    /// `/v1/logs`.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// `http` and `otlp` only: more endpoint URLs for reroute, each distinct from `endpoint`
    /// and each other. Default: none.
    #[serde(default)]
    pub alternates: Vec<String>,
    /// `otlp` only: headers sent with every batch (an `authorization` or tenant header), by
    /// name. Not `content-type`, `content-encoding`, `content-length`, `host` or
    /// `x-seawall-batch-id`, which Seawall sets. Default: none.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// `otlp` only: how a batch's body is compressed, `gzip` (default) or `none`.
    #[serde(default)]
    pub compression: Compression,
    /// `file` only, required there: the file NDJSON is appended to.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// Timeout of one batch send. Default `10s`; must be > 0.
    #[serde(default = "default_output_timeout", with = "duration")]
    #[schemars(with = "DurationText")]
    pub timeout: Duration,
    /// Batching limits.
    #[serde(default)]
    pub batch: BatchConfig,
    /// Breaker settings, one breaker per endpoint.
    #[serde(default)]
    pub resilience: ResilienceConfig,
}

fn default_output_timeout() -> Duration {
    Duration::from_secs(10)
}

impl OutputConfig {
    /// Every endpoint of an `http` or `otlp` output: `endpoint` then `alternates` (empty
    /// otherwise).
    pub fn endpoints(&self) -> impl Iterator<Item = &str> {
        self.endpoint
            .iter()
            .chain(self.alternates.iter())
            .map(String::as_str)
    }
}

/// How an `otlp` output compresses a batch's body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// `content-encoding: gzip`, as OTLP/HTTP receivers accept.
    #[default]
    Gzip,
    /// The protobuf as it is.
    None,
}

/// A batch is sent when any limit is reached.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct BatchConfig {
    /// Events per batch. Default 1000; at least 1.
    pub max_events: usize,
    /// Encoded bytes per batch. Default `1MB` (1 MiB); at least 1.
    #[serde(with = "size")]
    #[schemars(with = "SizeText")]
    pub max_bytes: u64,
    /// Longest wait for a batch to fill. Default `200ms`; `0s` sends at once.
    #[serde(with = "duration")]
    #[schemars(with = "DurationText")]
    pub linger: Duration,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            max_events: 1000,
            max_bytes: 1 << 20,
            linger: Duration::from_millis(200),
        }
    }
}

/// `resilience:` block of an output.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ResilienceConfig {
    /// Breaker settings for each endpoint of the output.
    pub circuit_breaker: BreakerSettings,
}

/// `fallback:` block of a pipeline.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct FallbackConfig {
    /// Step 1: reroute to the output's other healthy endpoints.
    pub reroute: RerouteConfig,
    /// Step 2: health-based sampling into the retry buffer.
    pub sampling: SamplingConfig,
    /// Events held for retry per output; `0` disables the buffer. Default 10 000.
    pub retry_buffer: usize,
}

impl Default for FallbackConfig {
    fn default() -> Self {
        Self {
            reroute: RerouteConfig::default(),
            sampling: SamplingConfig::default(),
            retry_buffer: 10_000,
        }
    }
}

/// Reroute settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RerouteConfig {
    /// Other endpoints tried for one batch; `0` disables reroute. Default 3.
    pub max_attempts: u32,
}

impl Default for RerouteConfig {
    fn default() -> Self {
        Self { max_attempts: 3 }
    }
}

/// Health-based sampling settings: it applies only once an output that cannot deliver holds
/// more than `start_percent` of what it can hold.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SamplingConfig {
    /// Fill of the output's queue and retry buffer, in percent of their joint capacity, from
    /// which events arriving for an output that cannot deliver are sampled. Default 80; in
    /// 0..=100 (100: never sample, only drop when full).
    pub start_percent: u32,
    /// Floor of the kept share, in [0, 1]. Default 0.1.
    pub min_rate: f64,
    /// Seed of the sampling RNG, for reproducible runs. Default: none (random).
    pub seed: Option<u64>,
}

impl Default for SamplingConfig {
    fn default() -> Self {
        Self {
            start_percent: 80,
            min_rate: 0.1,
            seed: None,
        }
    }
}

/// Where a pipeline's accepted events wait for their outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BufferType {
    /// In each output's queue and retry buffer; lost if the process dies.
    #[default]
    Memory,
    /// In an append-only log under `path`, with a cursor per output; survives a crash.
    Disk,
}

/// When the disk buffer's log is flushed to stable storage (`fsync`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SyncPolicy {
    /// Before ingest answers 202 (requests arriving together share one sync).
    Always,
    /// Every `sync_interval`, in the background.
    #[default]
    Interval,
    /// Never by Seawall (the kernel writes back when it likes); a crash of the daemon still
    /// loses nothing, a crash of the host may lose what was not yet written back.
    None,
}

impl SyncPolicy {
    /// The policy's name as written in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Always => "always",
            Self::Interval => "interval",
            Self::None => "none",
        }
    }
}

/// `buffer:` block of a pipeline.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct BufferConfig {
    /// `memory` (default) or `disk`.
    #[serde(rename = "type")]
    pub kind: BufferType,
    /// `disk` only, required there: the directory holding one log per pipeline
    /// (`{path}/{pipeline}/`), created if missing.
    pub path: Option<PathBuf>,
    /// `disk` only: the most the log may take on disk; ingest is shed with `503` past it.
    /// Default `1GB`; at least `max_body` + 64 KiB, at most 1 TiB.
    #[serde(with = "size")]
    #[schemars(with = "SizeText")]
    pub max_size: u64,
    /// `disk` only: when the log is synced. Default `interval`.
    pub sync: SyncPolicy,
    /// `disk` with `sync: interval` only: how often. Default `200ms`; in (0, 1h].
    #[serde(with = "duration")]
    #[schemars(with = "DurationText")]
    pub sync_interval: Duration,
}

impl Default for BufferConfig {
    fn default() -> Self {
        Self {
            kind: BufferType::Memory,
            path: None,
            max_size: 1 << 30,
            sync: SyncPolicy::Interval,
            sync_interval: Duration::from_millis(200),
        }
    }
}
