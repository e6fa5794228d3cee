//! What `GET /v1/pipelines` shows: per pipeline, per output, the accounting figures, queue
//! and buffer fill, sampling rate and each endpoint's breaker.

use serde::Serialize;

use super::ledger::DropReason;
use super::output::Output;
use super::{Pipeline, Pipelines};
use crate::breakers::breaker_id;

/// One pipeline.
#[derive(Clone, Debug, Serialize)]
pub struct PipelineView {
    /// The pipeline's name (`POST /ingest/{name}`).
    pub name: String,
    /// Events accepted by the pipeline; each output was offered every one. With a disk
    /// buffer, since the log was created.
    pub accepted: u64,
    /// Where accepted events wait.
    pub buffer: BufferView,
    /// Its outputs.
    pub outputs: Vec<OutputView>,
}

/// A pipeline's buffer: `{"type":"memory"}`, or the disk buffer's state.
#[derive(Clone, Debug, Serialize)]
pub struct BufferView {
    /// `memory` or `disk`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Disk: the pipeline's log directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Disk: bytes of the log's segments.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// Disk: `buffer.max_size`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_size: Option<u64>,
    /// Disk: segment files.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segments: Option<usize>,
    /// Disk: `always`, `interval` or `none`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync: Option<&'static str>,
    /// Disk: `accepting`, `full` (ingest shed until outputs free segments) or `failing` (a
    /// write or sync failed; ingest shed until one succeeds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<&'static str>,
}

/// One output; `accepted = delivered + sampled_out + dropped.total + pending` in every view.
#[derive(Clone, Debug, Serialize)]
pub struct OutputView {
    /// The output's name.
    pub name: String,
    /// `http`, `file`, `stdout` or `blackhole`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Events offered to this output.
    pub accepted: u64,
    /// Events a destination has.
    pub delivered: u64,
    /// Arriving events not kept by health-based sampling (only past `sampling_start_percent`).
    pub sampled_out: u64,
    /// Events dropped, by reason.
    pub dropped: DroppedView,
    /// Events in the queue, in the batch being sent, in the retry buffer, or (disk buffer)
    /// only in the log.
    pub pending: u64,
    /// Whether an endpoint admits batches now; `false` while every breaker is open, when the
    /// output holds its events until one recovers.
    pub delivering: bool,
    /// Share of arriving events kept right now: 1 unless the output holds more than
    /// `sampling_start_percent` of its queue and retry buffer while endpoints are unhealthy.
    pub sampling_rate: f64,
    /// `fallback.sampling.start_percent`.
    pub sampling_start_percent: u32,
    /// Batches rerouted to another endpoint.
    pub reroutes: u64,
    /// The output's queue.
    pub queue: FillView,
    /// The retry buffer.
    pub retry_buffer: FillView,
    /// Each endpoint and its breaker.
    pub endpoints: Vec<EndpointView>,
}

/// Dropped events by reason.
#[derive(Clone, Debug, Serialize)]
pub struct DroppedView {
    /// All reasons together.
    pub total: u64,
    /// The queue was full at ingest.
    pub queue_full: u64,
    /// Kept by sampling but the retry buffer was full.
    pub buffer_full: u64,
    /// The destination refused the batch (4xx).
    pub rejected: u64,
    /// Still undelivered when shutdown's grace period ended (memory buffer only).
    pub shutdown: u64,
    /// Lost from a disk buffer to a torn or corrupt record.
    pub corrupt: u64,
}

/// Length and capacity of a bounded store.
#[derive(Clone, Debug, Serialize)]
pub struct FillView {
    /// Events held.
    pub length: u64,
    /// Events it can hold.
    pub capacity: usize,
}

/// One endpoint of an output.
#[derive(Clone, Debug, Serialize)]
pub struct EndpointView {
    /// URL, file path, `stdout` or `blackhole`.
    pub endpoint: String,
    /// The breaker's id in `/v1/breakers`.
    pub breaker_id: String,
    /// `closed`, `open` or `half_open`.
    pub state: &'static str,
    /// `normal`, `forced_open`, `disabled` or `metrics_only`.
    pub mode: &'static str,
}

impl Pipelines {
    /// What `GET /v1/pipelines` returns: per pipeline, per output, its figures (each output's
    /// read together, so they always add up), sampling rate, queue and retry-buffer fill, and
    /// endpoints with their breaker state.
    pub fn views(&self) -> Vec<PipelineView> {
        self.pipelines
            .load()
            .iter()
            .map(|p| PipelineView {
                name: p.name.clone(),
                accepted: p.accepted.load(std::sync::atomic::Ordering::Relaxed),
                buffer: buffer_view(p),
                outputs: p.outputs.iter().map(|o| output_view(o)).collect(),
            })
            .collect()
    }
}

fn buffer_view(p: &Pipeline) -> BufferView {
    let Some(disk) = &p.disk else {
        return BufferView {
            kind: "memory",
            path: None,
            bytes: None,
            max_size: None,
            segments: None,
            sync: None,
            state: None,
        };
    };
    let (bytes, segments, shedding) = disk.log.levels();
    BufferView {
        kind: "disk",
        path: Some(disk.path.display().to_string()),
        bytes: Some(bytes),
        max_size: Some(disk.log.max_size),
        segments: Some(segments),
        sync: Some(disk.policy().as_str()),
        state: Some(shedding.as_str()),
    }
}

fn output_view(o: &Output) -> OutputView {
    let c = o.ledger.counts();
    let by = |r: DropReason| c.dropped[r as usize];
    OutputView {
        name: o.name.clone(),
        kind: o.kind.as_str(),
        accepted: c.accepted,
        delivered: c.delivered,
        sampled_out: c.sampled_out,
        dropped: DroppedView {
            total: c.dropped_total(),
            queue_full: by(DropReason::QueueFull),
            buffer_full: by(DropReason::BufferFull),
            rejected: by(DropReason::Rejected),
            shutdown: by(DropReason::Shutdown),
            corrupt: by(DropReason::Corrupt),
        },
        pending: c.pending(),
        delivering: o.may_deliver(),
        sampling_rate: o.sampling_rate(),
        sampling_start_percent: o.ledger.start_percent(),
        reroutes: o.ledger.metrics().reroutes.get(),
        queue: FillView {
            length: c.queued,
            capacity: o.ledger.queue_capacity(),
        },
        retry_buffer: FillView {
            length: c.buffered,
            capacity: o.ledger.buffer_capacity(),
        },
        endpoints: o
            .endpoints
            .iter()
            .map(|e| EndpointView {
                endpoint: e.labels.endpoint.clone(),
                breaker_id: breaker_id(&e.labels),
                state: e.breaker.state().as_str(),
                mode: e.breaker.mode().as_str(),
            })
            .collect(),
    }
}
