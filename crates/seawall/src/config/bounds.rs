//! The upper bound of every duration, size and count in the configuration (README's tables
//! quote them). Validation enforces them, so anything `seawall check` accepts also runs: no
//! deadline overflows an `Instant`, no open period overflows a `Duration`, no bound asks for
//! more threads, permits or memory than a host has.

use std::time::Duration;

const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);

/// `server.shutdown_grace`.
pub const SHUTDOWN_GRACE: Duration = HOUR;
/// `providers[].timeouts.connect` and `feature_flags.fetch_timeout`.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// `server.tls.handshake_timeout` and `admin.tls.handshake_timeout`.
pub const TLS_HANDSHAKE: Duration = Duration::from_secs(5 * 60);
/// `providers[].timeouts.first_byte`, `.idle`, `pipelines[].outputs[].timeout` and every
/// `server.timeouts` key.
pub const REQUEST_TIMEOUT: Duration = HOUR;
/// Breaker periods: `open_timeout`, `open_timeout_max`, `half_open_timeout`,
/// `retry_after_max`.
pub const BREAKER_PERIOD: Duration = DAY;
/// Breaker measurements: `window`, `slow_call_duration`, and every `check_interval`
/// (breakers' and `global_health`'s).
pub const MEASUREMENT: Duration = HOUR;
/// `cluster.quorum_window`, `cluster.probe_lease` and `cluster.connect_timeout`.
pub const CLUSTER_PERIOD: Duration = HOUR;
/// `feature_flags.ttl`, `min_ttl`, `max_ttl` and `idle_grace`.
pub const FLAG_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// `pipelines[].outputs[].batch.linger`.
pub const LINGER: Duration = HOUR;
/// `pipelines[].buffer.sync_interval`.
pub const SYNC_INTERVAL: Duration = HOUR;

/// `admin.history.period`: the shortest and the longest.
pub const HISTORY_PERIOD_MIN: Duration = Duration::from_millis(100);
/// `admin.history.period`'s upper bound.
pub const HISTORY_PERIOD_MAX: Duration = HOUR;
/// `admin.history.window / admin.history.period`: samples kept per series.
pub const HISTORY_POINTS: u64 = 1440;

/// `server.max_body` and `pipelines[].max_body`: a body is held whole by ingest.
pub const MAX_BODY: u64 = 1 << 30;
/// `pipelines[].outputs[].batch.max_bytes`: a batch is encoded into one buffer.
pub const BATCH_BYTES: u64 = 256 << 20;
/// `pipelines[].buffer.max_size`: the disk buffer's bound.
pub const BUFFER_SIZE: u64 = 1 << 40;
/// Room `pipelines[].buffer.max_size` keeps beyond `max_body`, so that any accepted body fits in
/// an empty buffer (record headers and the smallest segment).
pub const BUFFER_SLACK: u64 = 64 << 10;
/// `global_health.memory_threshold`.
pub const MEMORY_THRESHOLD: u64 = 1 << 40;

/// `server.max_connections`.
pub const MAX_CONNECTIONS: u64 = 1_000_000;
/// `server.h2.max_concurrent_streams`.
pub const H2_STREAMS: u64 = 10_000;
/// `server.workers`: each is a thread with its own runtime.
pub const WORKERS: u64 = 1024;
/// `providers[].targets[].weight`.
pub const TARGET_WEIGHT: u64 = 1000;
/// `providers[].failover.max_attempts`.
pub const MAX_ATTEMPTS: u64 = 10;
/// `providers[].retry_budget.min_per_second`.
pub const RETRIES_PER_SECOND: u64 = 10_000;
/// `providers[].slow_start`.
pub const SLOW_START: Duration = HOUR;
/// `providers[].max_keys`.
pub const MAX_KEYS: u64 = 1_000_000;
/// `window_buckets` (the breaker crate's own bound).
pub const WINDOW_BUCKETS: u64 = 1000;
/// `half_open_max_calls` (the breaker crate's own bound).
pub const HALF_OPEN_CALLS: u64 = 4095;
/// `pipelines[].queue.capacity` and `pipelines[].fallback.retry_buffer`, in events.
pub const EVENTS_HELD: u64 = 100_000_000;
/// `pipelines[].outputs[].batch.max_events`.
pub const BATCH_EVENTS: u64 = 1_000_000;
/// `pipelines[].max_depth`: well within serde_json's own recursion limit (127 levels).
pub const MAX_DEPTH: u64 = 100;
