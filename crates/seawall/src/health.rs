//! Global health: a monitor that samples resident memory and output-queue fill
//! every `check_interval` and, while either is over its threshold, tells the edges (gateway
//! and ingest) to shed new work so the pressure can fall. Recovery has hysteresis: a check
//! turns healthy again only below `recover_percent`% of its threshold.
//!
//! ```
//! use std::sync::Arc;
//! use seawall::config::GlobalHealthConfig;
//! use seawall::health::{Check, Edge, Health};
//! use seawall::metrics::Metrics;
//!
//! let config = GlobalHealthConfig { memory_check_enabled: true, memory_threshold: 100, ..Default::default() };
//! let health = Health::new(&config, &Metrics::new());
//! health.observe(Some(100), None);
//! assert_eq!(health.shed(Edge::Gateway), Some(Check::Memory));
//! health.observe(Some(95), None); // above 90% of the threshold: still shedding
//! assert!(!health.is_healthy());
//! health.observe(Some(89), None);
//! assert!(health.is_healthy());
//! ```

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use crate::config::GlobalHealthConfig;
use crate::metrics::Metrics;

/// One of the global health checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Resident memory against `memory_threshold`.
    Memory,
    /// The fullest output queue against `queue_threshold_percent`.
    Queue,
}

impl Check {
    /// The check's name, as in `seawall_global_health_unhealthy{check}`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::Queue => "queue",
        }
    }

    /// What the pressure is, for messages to clients.
    pub fn pressure(self) -> &'static str {
        match self {
            Self::Memory => "memory pressure",
            Self::Queue => "output queue pressure",
        }
    }
}

/// Where new work enters the daemon and may be shed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edge {
    /// A request to `/{provider}/…`.
    Gateway,
    /// A `POST /ingest/{pipeline}`.
    Ingest,
}

impl Edge {
    /// The edge's name, as in `seawall_shed_requests_total{edge}`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gateway => "gateway",
            Self::Ingest => "ingest",
        }
    }
}

/// Reads the process's resident memory.
pub trait MemoryProbe: Send + Sync + 'static {
    /// Resident bytes, or `None` when unknown (then the memory check is skipped).
    fn resident_bytes(&self) -> Option<u64>;
}

impl<F: Fn() -> Option<u64> + Send + Sync + 'static> MemoryProbe for F {
    fn resident_bytes(&self) -> Option<u64> {
        self()
    }
}

/// Reads how full the output queues are.
pub trait QueueProbe: Send + Sync + 'static {
    /// The highest fill ratio among output queues, in `0..=1`, or `None` when unknown (then
    /// the queue check is skipped).
    fn fill(&self) -> Option<f64>;
}

impl<F: Fn() -> Option<f64> + Send + Sync + 'static> QueueProbe for F {
    fn fill(&self) -> Option<f64> {
        self()
    }
}

/// Resident memory from `/proc/self/status` (`VmRSS`, in kB): exact whatever the page size.
/// Unknown (`None`) where that file does not exist, i.e. outside Linux.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcMemory;

impl MemoryProbe for ProcMemory {
    fn resident_bytes(&self) -> Option<u64> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        parse_vm_rss(&status)
    }
}

/// Reads how many resident bytes the global allocator keeps without using them (freed memory
/// not yet returned to the OS), when the program registered such a reader.
static ALLOCATOR_IDLE: OnceLock<fn() -> Option<u64>> = OnceLock::new();

/// Registers how to read the resident bytes the global allocator keeps unused. The `seawall`
/// binary runs on jemalloc and registers `stats.resident - stats.allocated`, so the memory check
/// sees memory in use, which falls as soon as buffers are freed (glibc's malloc keeps freed
/// memory resident, so a check of `VmRSS` alone never recovered after a burst). The first
/// registration wins.
pub fn use_allocator_idle_bytes(read: fn() -> Option<u64>) {
    let _ = ALLOCATOR_IDLE.set(read);
}

/// The process's memory as the memory check reads it: resident memory ([`ProcMemory`]) less
/// what the allocator keeps resident unused, when the program registered a reader
/// ([`use_allocator_idle_bytes`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessMemory;

impl MemoryProbe for ProcessMemory {
    fn resident_bytes(&self) -> Option<u64> {
        let resident = ProcMemory.resident_bytes()?;
        let idle = ALLOCATOR_IDLE.get().and_then(|read| read()).unwrap_or(0);
        Some(resident.saturating_sub(idle))
    }
}

/// The `VmRSS:   1234 kB` line of a `/proc/*/status` file, in bytes.
fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().next()?.parse().ok()?;
    kb.checked_mul(1024)
}

/// The probes the monitor reads; a missing probe skips its check.
#[derive(Clone, Default)]
pub struct Probes {
    /// Process memory (the daemon uses [`ProcessMemory`] when none is given).
    pub memory: Option<Arc<dyn MemoryProbe>>,
    /// Output queue fill (the daemon reads its pipelines when none is given).
    pub queue: Option<Arc<dyn QueueProbe>>,
}

impl std::fmt::Debug for Probes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Probes")
            .field("memory", &self.memory.is_some())
            .field("queue", &self.queue.is_some())
            .finish()
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CheckLabels {
    check: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ShedLabels {
    edge: &'static str,
    check: &'static str,
}

/// One check's verdict and its limits, in the check's own unit (bytes or percent).
struct CheckState {
    check: Check,
    /// Whether the check runs at all (`*_check_enabled`).
    enabled: bool,
    /// Read on every request: cheap, lock-free.
    unhealthy: AtomicBool,
    /// At or above this the check turns unhealthy.
    trip: f64,
    /// Below this an unhealthy check turns healthy again.
    recover: f64,
    /// `seawall_global_health_unhealthy{check}`.
    gauge: Gauge,
}

impl CheckState {
    /// Applies one measurement; logs and updates the gauge on a change.
    fn observe(&self, value: f64, unit: &str) {
        let was = self.unhealthy.load(Ordering::Acquire);
        let now = if was {
            value >= self.recover
        } else {
            value >= self.trip
        };
        if now == was {
            return;
        }
        self.unhealthy.store(now, Ordering::Release);
        self.gauge.set(i64::from(now));
        let check = self.check.as_str();
        if now {
            tracing::warn!(
                check,
                value,
                threshold = self.trip,
                unit,
                "global health: unhealthy, shedding new work at the gateway and ingest"
            );
        } else {
            tracing::info!(
                check,
                value,
                recover_below = self.recover,
                unit,
                "global health: recovered, accepting new work"
            );
        }
    }
}

/// The shared health state: one flag per check, read on every request.
pub struct Health {
    memory: CheckState,
    queue: CheckState,
    /// `check_interval`, for the monitor's period.
    interval: Duration,
    /// `retry-after` of shed responses: `check_interval` in whole seconds (rounded up, ≥ 1),
    /// the soonest a shed client could see a different verdict.
    retry_after_secs: u64,
    /// `seawall_shed_requests_total{edge,check}`, indexed by [`Edge`] then [`Check`].
    shed: [[Counter; 2]; 2],
    /// `memory_threshold` when the memory check is on: also enforced at ingest admission.
    memory_threshold: Option<u64>,
}

impl Health {
    /// Healthy state for `config`, with its metrics registered in `metrics`.
    pub fn new(config: &GlobalHealthConfig, metrics: &Metrics) -> Arc<Health> {
        let gauges = Family::<CheckLabels, Gauge>::default();
        metrics.register(
            "global_health_unhealthy",
            "Whether a global health check is failing (1) and new work is shed",
            gauges.clone(),
        );
        let shed_family = Family::<ShedLabels, Counter>::default();
        metrics.register(
            "shed_requests",
            "Requests answered 503 because global health is failing, by edge and check",
            shed_family.clone(),
        );
        let recover = |trip: f64| trip * f64::from(config.recover_percent) / 100.0;
        let state = |check: Check, enabled: bool, trip: f64| CheckState {
            check,
            enabled,
            unhealthy: AtomicBool::new(false),
            trip,
            recover: recover(trip),
            gauge: gauges
                .get_or_create(&CheckLabels {
                    check: check.as_str(),
                })
                .clone(),
        };
        // Precision loss above 2^53 bytes does not matter for a threshold.
        let memory_trip = config.memory_threshold as f64;
        let queue_trip = f64::from(config.queue_threshold_percent);
        let counter = |edge: Edge, check: Check| {
            shed_family
                .get_or_create(&ShedLabels {
                    edge: edge.as_str(),
                    check: check.as_str(),
                })
                .clone()
        };
        let per_edge = |edge| [counter(edge, Check::Memory), counter(edge, Check::Queue)];
        Arc::new(Health {
            memory: state(Check::Memory, config.memory_check_enabled, memory_trip),
            queue: state(Check::Queue, config.queue_check_enabled, queue_trip),
            interval: config.check_interval,
            retry_after_secs: whole_secs(config.check_interval),
            shed: [per_edge(Edge::Gateway), per_edge(Edge::Ingest)],
            memory_threshold: config
                .memory_check_enabled
                .then_some(config.memory_threshold),
        })
    }

    /// Applies one round of measurements (`None`: unknown, that check keeps its verdict).
    /// Disabled checks ignore their measurement. The monitor calls it every `check_interval`.
    pub fn observe(&self, resident_bytes: Option<u64>, queue_fill: Option<f64>) {
        if let (true, Some(bytes)) = (self.memory.enabled, resident_bytes) {
            self.memory.observe(bytes as f64, "bytes");
        }
        if let (true, Some(fill)) = (self.queue.enabled, queue_fill) {
            self.queue.observe(fill * 100.0, "percent");
        }
    }

    /// The first failing check (memory, then queue), if any.
    pub fn failing(&self) -> Option<Check> {
        [&self.memory, &self.queue]
            .into_iter()
            .find(|c| c.unhealthy.load(Ordering::Acquire))
            .map(|c| c.check)
    }

    /// Whether no check is failing.
    pub fn is_healthy(&self) -> bool {
        self.failing().is_none()
    }

    /// Whether new work at `edge` must be shed, and why; a shed request is counted.
    pub fn shed(&self, edge: Edge) -> Option<Check> {
        let check = self.failing()?;
        self.shed[edge as usize][check as usize].inc();
        Some(check)
    }

    /// Counts a request at `edge` shed because of `check` outside [`Health::shed`] (ingest
    /// refuses a body at admission when it would pass the memory threshold).
    pub fn count_shed(&self, edge: Edge, check: Check) {
        self.shed[edge as usize][check as usize].inc();
    }

    /// `memory_threshold`, when the memory check is on.
    pub fn memory_threshold(&self) -> Option<u64> {
        self.memory_threshold
    }

    /// The `retry-after` of shed responses, in seconds (≥ 1).
    pub fn retry_after_secs(&self) -> u64 {
        self.retry_after_secs
    }

    /// Reads `probes` every `check_interval` (the first time at once) and applies the
    /// measurements, until the task is dropped or aborted.
    pub async fn monitor(self: Arc<Self>, probes: Probes) {
        let mut interval = tokio::time::interval(self.interval);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            let memory = match (&probes.memory, self.memory.enabled) {
                (Some(p), true) => p.resident_bytes(),
                _ => None,
            };
            let queue = match (&probes.queue, self.queue.enabled) {
                (Some(p), true) => p.fill(),
                _ => None,
            };
            self.observe(memory, queue);
        }
    }
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health")
            .field("failing", &self.failing())
            .field("retry_after_secs", &self.retry_after_secs)
            .finish()
    }
}

/// `d` in whole seconds, rounded up, at least 1.
fn whole_secs(d: Duration) -> u64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    fn config() -> GlobalHealthConfig {
        GlobalHealthConfig {
            memory_check_enabled: true,
            memory_threshold: 1000,
            queue_threshold_percent: 50,
            check_interval: Duration::from_millis(1500),
            recover_percent: 80,
            ..GlobalHealthConfig::default()
        }
    }

    #[test]
    fn vm_rss_is_read_in_bytes() {
        let status = "Name:\tseawall\nVmPeak:\t  9000 kB\nVmRSS:\t    1234 kB\nThreads: 4\n";
        assert_eq!(parse_vm_rss(status), Some(1234 * 1024));
        assert_eq!(parse_vm_rss("Name: x\n"), None);
    }

    #[test]
    fn proc_memory_reads_this_process_on_linux() {
        let rss = ProcMemory.resident_bytes();
        if cfg!(target_os = "linux") {
            assert!(rss.is_some_and(|b| b > 0), "{rss:?}");
        }
    }

    #[test]
    fn queue_check_trips_at_the_threshold_and_recovers_below_the_recover_level() {
        let metrics = Metrics::new();
        let h = Health::new(&config(), &metrics);
        h.observe(None, Some(0.49));
        assert!(h.is_healthy());
        h.observe(None, Some(0.5));
        assert_eq!(h.failing(), Some(Check::Queue));
        assert!(metrics
            .encode()
            .contains(r#"seawall_global_health_unhealthy{check="queue"} 1"#));
        // 80% of 50% is 40%: anything at or above keeps shedding.
        for fill in [0.45, 0.49, 0.4] {
            h.observe(None, Some(fill));
            assert!(!h.is_healthy(), "{fill}");
        }
        h.observe(None, Some(0.39));
        assert!(h.is_healthy());
        assert!(metrics
            .encode()
            .contains(r#"seawall_global_health_unhealthy{check="queue"} 0"#));
    }

    #[test]
    fn unknown_and_disabled_measurements_keep_the_verdict() {
        let h = Health::new(
            &GlobalHealthConfig {
                queue_check_enabled: false,
                ..config()
            },
            &Metrics::new(),
        );
        h.observe(Some(2000), Some(1.0));
        assert_eq!(h.failing(), Some(Check::Memory));
        h.observe(None, None);
        assert_eq!(h.failing(), Some(Check::Memory));
        h.observe(Some(0), Some(1.0));
        assert!(h.is_healthy());
    }

    #[test]
    fn shedding_is_counted_per_edge_and_reason() {
        let metrics = Metrics::new();
        let h = Health::new(&config(), &metrics);
        assert_eq!(h.shed(Edge::Ingest), None);
        h.observe(Some(1000), Some(1.0));
        assert_eq!(h.shed(Edge::Ingest), Some(Check::Memory));
        assert_eq!(h.shed(Edge::Gateway), Some(Check::Memory));
        let text = metrics.encode();
        assert!(
            text.contains(r#"seawall_shed_requests_total{edge="ingest",check="memory"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"seawall_shed_requests_total{edge="gateway",check="queue"} 0"#));
        assert_eq!(h.retry_after_secs(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn the_monitor_samples_every_check_interval() {
        let h = Health::new(&config(), &Metrics::new());
        let rss = Arc::new(AtomicU64::new(0));
        let reads = Arc::new(AtomicU64::new(0));
        let probe = {
            let (rss, reads) = (rss.clone(), reads.clone());
            move || {
                reads.fetch_add(1, Ordering::Relaxed);
                Some(rss.load(Ordering::Relaxed))
            }
        };
        let probes = Probes {
            memory: Some(Arc::new(probe)),
            queue: None,
        };
        let task = tokio::spawn(h.clone().monitor(probes));
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(
            reads.load(Ordering::Relaxed),
            1,
            "the first check runs at once"
        );
        rss.store(5000, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(1400)).await;
        assert!(h.is_healthy(), "not sampled before check_interval");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(h.failing(), Some(Check::Memory));
        assert_eq!(reads.load(Ordering::Relaxed), 2);
        task.abort();
    }
}
