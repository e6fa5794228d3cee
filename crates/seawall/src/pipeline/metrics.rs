//! The pipeline's Prometheus families (named in the README's metrics reference), registered once per [`Metrics`], with
//! per-output handles created up front so every series exists from the start at zero.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use super::disk::BufferMetrics;
use super::ledger::DropReason;
use crate::metrics::Metrics;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PipelineLabels {
    pipeline: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutputLabels {
    pipeline: String,
    output: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    pipeline: String,
    output: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StoreLabels {
    pipeline: String,
    output: String,
    store: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    pipeline: String,
    output: String,
    reason: &'static str,
}

/// The registered families.
pub(crate) struct Families {
    accepted: Family<PipelineLabels, Counter>,
    events: Family<OutcomeLabels, Counter>,
    dropped: Family<ReasonLabels, Counter>,
    pending: Family<OutputLabels, Gauge>,
    held: Family<StoreLabels, Gauge>,
    reroutes: Family<OutputLabels, Counter>,
    sampling: Family<OutputLabels, Gauge<f64, AtomicU64>>,
    otlp_accepted: Family<PipelineLabels, Counter>,
    otlp_rejected: Family<PipelineLabels, Counter>,
    buffer: BufferFamilies,
}

/// A pipeline's OTLP log record counters.
#[derive(Clone, Default)]
pub(crate) struct OtlpMetrics {
    /// Records that became events.
    pub(crate) accepted: Counter,
    /// Records of a decoded request that did not: rejected one by one (partial success) or
    /// with their whole request (shutdown, a full disk buffer).
    pub(crate) rejected: Counter,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusedLabels {
    pipeline: String,
    reason: &'static str,
}

/// The disk buffers' families.
#[derive(Default)]
struct BufferFamilies {
    bytes: Family<PipelineLabels, Gauge>,
    segments: Family<PipelineLabels, Gauge>,
    shedding: Family<PipelineLabels, Gauge>,
    refused: Family<RefusedLabels, Counter>,
    io_errors: Family<PipelineLabels, Counter>,
    syncs: Family<PipelineLabels, Counter>,
    corrupt: Family<PipelineLabels, Counter>,
}

impl BufferFamilies {
    fn register(&self, metrics: &Metrics) {
        let gauge = |name, help, family: &Family<PipelineLabels, Gauge>| {
            metrics.register(name, help, family.clone());
        };
        let counter = |name, help, family: &Family<PipelineLabels, Counter>| {
            metrics.register(name, help, family.clone());
        };
        gauge(
            "buffer_bytes",
            "Bytes of a pipeline's disk buffer on disk",
            &self.bytes,
        );
        gauge(
            "buffer_segments",
            "Segment files of a pipeline's disk buffer",
            &self.segments,
        );
        gauge(
            "buffer_shedding",
            "1 while a pipeline's disk buffer refuses ingest (full, or writes failing)",
            &self.shedding,
        );
        metrics.register(
            "buffer_refused_requests",
            "Ingest requests a disk buffer refused with 503, by reason (`full`: max_size reached; \
             `failing`: writing or syncing failed)",
            self.refused.clone(),
        );
        let failed = "Failed writes, syncs, reads and deletions of a disk buffer";
        counter("buffer_io_errors", failed, &self.io_errors);
        counter(
            "buffer_syncs",
            "fsyncs of a disk buffer's open segment",
            &self.syncs,
        );
        counter(
            "buffer_corrupt_events",
            "Events a disk buffer lost to a torn or corrupt record, found at replay",
            &self.corrupt,
        );
    }
}

/// One output's series.
pub(crate) struct OutputMetrics {
    pub(crate) delivered: Counter,
    pub(crate) sampled_out: Counter,
    pub(crate) dropped: Counter,
    /// Indexed by [`DropReason`] as `usize`.
    pub(crate) dropped_by: [Counter; DropReason::ALL.len()],
    pub(crate) pending: Gauge,
    /// Events in the queue.
    pub(crate) queued: Gauge,
    /// Events in the retry buffer.
    pub(crate) buffered: Gauge,
    /// Events only in the disk buffer's log.
    pub(crate) on_disk: Gauge,
    pub(crate) reroutes: Counter,
    pub(crate) sampling_rate: Gauge<f64, AtomicU64>,
}

impl Families {
    /// Registers the families in `metrics`.
    pub(crate) fn register(metrics: &Metrics) -> Self {
        let f = Families {
            accepted: Family::default(),
            events: Family::default(),
            dropped: Family::default(),
            pending: Family::default(),
            held: Family::default(),
            reroutes: Family::default(),
            sampling: Family::default(),
            otlp_accepted: Family::default(),
            otlp_rejected: Family::default(),
            buffer: BufferFamilies::default(),
        };
        metrics.register(
            "pipeline_events_accepted",
            "Events accepted by a pipeline (ingest and the gateway's own events)",
            f.accepted.clone(),
        );
        metrics.register(
            "output_events",
            "Events an output has finished with, by outcome (delivered, sampled_out, dropped)",
            f.events.clone(),
        );
        metrics.register(
            "output_dropped_events",
            "Events an output dropped, by reason (queue_full, buffer_full, rejected, shutdown, \
             corrupt, output_removed)",
            f.dropped.clone(),
        );
        metrics.register(
            "output_pending_events",
            "Events in an output's queue, batch in flight and retry buffer",
            f.pending.clone(),
        );
        metrics.register(
            "output_held_events",
            "Events an output holds, by store: `queue` (not sent yet; with a disk buffer its \
             copy in memory), `retry_buffer` (not delivered yet; filled while the output cannot \
             deliver) or `disk` (only in the disk buffer's log)",
            f.held.clone(),
        );
        metrics.register(
            "reroutes",
            "Batches rerouted to another endpoint of the same output",
            f.reroutes.clone(),
        );
        metrics.register(
            "sampling_rate",
            "Share of arriving events an output keeps: 1, or past fallback.sampling.start_percent \
             of its buffer a share falling with the fill towards healthy endpoints / endpoints \
             (floored at min_rate)",
            f.sampling.clone(),
        );
        metrics.register(
            "pipeline_otlp_records_accepted",
            "OTLP log records accepted at `POST /ingest/{pipeline}/v1/logs`, each one event",
            f.otlp_accepted.clone(),
        );
        metrics.register(
            "pipeline_otlp_records_rejected",
            "OTLP log records of decoded requests not accepted: rejected one by one (reported \
             in partial_success) or with their whole request (shutdown, a full disk buffer)",
            f.otlp_rejected.clone(),
        );
        f.buffer.register(metrics);
        f
    }

    /// The OTLP record counters of `pipeline`.
    pub(crate) fn otlp(&self, pipeline: &str) -> OtlpMetrics {
        let labels = PipelineLabels {
            pipeline: pipeline.to_owned(),
        };
        OtlpMetrics {
            accepted: self.otlp_accepted.get_or_create(&labels).clone(),
            rejected: self.otlp_rejected.get_or_create(&labels).clone(),
        }
    }

    /// The disk buffer series of `pipeline`.
    pub(crate) fn buffer(&self, pipeline: &str) -> BufferMetrics {
        let b = &self.buffer;
        let labels = PipelineLabels {
            pipeline: pipeline.to_owned(),
        };
        let refused = |reason| {
            b.refused
                .get_or_create(&RefusedLabels {
                    pipeline: pipeline.to_owned(),
                    reason,
                })
                .clone()
        };
        BufferMetrics {
            bytes: b.bytes.get_or_create(&labels).clone(),
            segments: b.segments.get_or_create(&labels).clone(),
            shedding: b.shedding.get_or_create(&labels).clone(),
            refused_full: refused("full"),
            refused_failing: refused("failing"),
            io_errors: b.io_errors.get_or_create(&labels).clone(),
            syncs: b.syncs.get_or_create(&labels).clone(),
            corrupt_events: b.corrupt.get_or_create(&labels).clone(),
        }
    }

    /// Counts the pending events of an output removed from the configuration, dropped with
    /// its disk cursor (`reason="output_removed"`).
    pub(crate) fn removed(&self, pipeline: &str, output: &str, pending: u64) {
        let dropped = |reason| ReasonLabels {
            pipeline: pipeline.to_owned(),
            output: output.to_owned(),
            reason,
        };
        self.dropped
            .get_or_create(&dropped("output_removed"))
            .inc_by(pending);
    }

    /// The accepted counter of `pipeline`.
    pub(crate) fn accepted(&self, pipeline: &str) -> Counter {
        self.accepted
            .get_or_create(&PipelineLabels {
                pipeline: pipeline.to_owned(),
            })
            .clone()
    }

    /// The series of one output.
    pub(crate) fn output(&self, pipeline: &str, output: &str) -> OutputMetrics {
        let outcome = |outcome| {
            self.events
                .get_or_create(&OutcomeLabels {
                    pipeline: pipeline.to_owned(),
                    output: output.to_owned(),
                    outcome,
                })
                .clone()
        };
        let reason = |r: DropReason| {
            self.dropped
                .get_or_create(&ReasonLabels {
                    pipeline: pipeline.to_owned(),
                    output: output.to_owned(),
                    reason: r.as_str(),
                })
                .clone()
        };
        let labels = OutputLabels {
            pipeline: pipeline.to_owned(),
            output: output.to_owned(),
        };
        let sampling_rate = self.sampling.get_or_create(&labels).clone();
        sampling_rate.set(1.0);
        let store = |store| {
            self.held
                .get_or_create(&StoreLabels {
                    pipeline: pipeline.to_owned(),
                    output: output.to_owned(),
                    store,
                })
                .clone()
        };
        OutputMetrics {
            queued: store("queue"),
            buffered: store("retry_buffer"),
            on_disk: store("disk"),
            delivered: outcome("delivered"),
            sampled_out: outcome("sampled_out"),
            dropped: outcome("dropped"),
            dropped_by: DropReason::ALL.map(reason),
            pending: self.pending.get_or_create(&labels).clone(),
            reroutes: self.reroutes.get_or_create(&labels).clone(),
            sampling_rate,
        }
    }
}
