//! A new pipeline configuration applied while running, losing no event:
//!
//! - an output whose settings did not change keeps its queue, retry buffer, breakers,
//!   counts and worker; one whose only change is its breaker settings keeps all that too and
//!   has the settings applied to its breakers in place;
//! - an output that changed otherwise is built anew beside the old one, which drains: it is
//!   told to once the last ingest request that found it is done, then delivers what it holds
//!   and stops;
//! - a removed pipeline answers `404` from now on while its outputs drain; an added one
//!   starts;
//! - a pipeline with a disk buffer changes only its outputs' breaker settings while running:
//!   anything else about it needs a restart, which loses nothing of its log.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use super::{
    build_pipeline, new_worker, output, NewWorker, Output, Pipeline, PipelineError, Pipelines,
};
use crate::config::{BufferType, OutputConfig, PipelineConfig};

/// What [`Pipelines::reload`] did.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct PipelinesReload {
    /// New pipelines.
    pub added: Vec<String>,
    /// Pipelines gone: ingest answers `404`; their outputs drain.
    pub removed: Vec<String>,
    /// Pipelines whose configuration changed (see `outputs`).
    pub changed: Vec<String>,
    /// Pipelines whose configuration did not change.
    pub unchanged: Vec<String>,
    /// `pipeline/output` of outputs started anew, drained, or with new breaker settings.
    pub outputs: OutputsReload,
    /// Pipelines with a disk buffer whose change (other than breaker settings) waits for a
    /// restart; they keep running as configured before.
    pub restart_required: Vec<String>,
}

/// What a reload did to the outputs of changed pipelines, as `pipeline/output`.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct OutputsReload {
    /// Started (new, or changed beyond breaker settings).
    pub started: Vec<String>,
    /// Draining (removed, or changed beyond breaker settings: replaced by a new one).
    pub draining: Vec<String>,
    /// Kept with their queues, breaker settings applied in place.
    pub reconfigured: Vec<String>,
    /// Kept as they were.
    pub kept: Vec<String>,
}

/// What one pipeline becomes.
enum Plan {
    Keep(Arc<Pipeline>),
    Replace {
        new: Box<Pipeline>,
        workers: Vec<NewWorker>,
        /// Outputs kept whose breaker settings change.
        reconfigure: Vec<(Arc<Output>, OutputConfig)>,
        /// The old pipeline's outputs not carried over.
        retire: Vec<Arc<Output>>,
        /// The pipeline replaced (none for an added one).
        old: Option<Arc<Pipeline>>,
    },
}

impl Pipelines {
    /// Applies `configs` (see the module's documentation). Everything fallible (opening
    /// files, parsing URLs, building breakers) happens before anything changes: an error
    /// leaves the pipelines as they were.
    pub fn reload(&self, configs: &[PipelineConfig]) -> Result<PipelinesReload, PipelineError> {
        let current = self.pipelines.load_full();
        let shared = self.build.shared(&self.budget);
        let mut report = PipelinesReload::default();
        let mut plans = Vec::new();
        for p in configs {
            let Some(old) = current.iter().find(|o| o.name == p.name) else {
                let (new, workers) = build_pipeline(p, &shared)?;
                report.added.push(p.name.clone());
                plans.push(Plan::Replace {
                    new: Box::new(new),
                    workers,
                    reconfigure: Vec::new(),
                    retire: Vec::new(),
                    old: None,
                });
                continue;
            };
            if old.config == *p {
                report.unchanged.push(p.name.clone());
                plans.push(Plan::Keep(old.clone()));
                continue;
            }
            let on_disk = old.disk.is_some() || p.buffer.kind == BufferType::Disk;
            if on_disk && !same_but_breakers(&old.config, p) {
                report.restart_required.push(p.name.clone());
                plans.push(Plan::Keep(old.clone()));
                continue;
            }
            report.changed.push(p.name.clone());
            plans.push(replan(old, p, &shared, &mut report.outputs)?);
        }
        let removed: Vec<&Arc<Pipeline>> = current
            .iter()
            .filter(|old| !configs.iter().any(|p| p.name == old.name))
            .collect();
        for old in &removed {
            report.removed.push(old.name.clone());
            for o in &old.outputs {
                let id = format!("{}/{}", old.name, o.name);
                report.outputs.draining.push(id);
            }
        }
        // Nothing below fails but breaker settings `seawall check` has already accepted.
        for plan in &plans {
            if let Plan::Replace {
                new, reconfigure, ..
            } = plan
            {
                for (output, o) in reconfigure {
                    output
                        .reconfigure(&o.resilience.circuit_breaker, &self.build.clock)
                        .map_err(|source| PipelineError::Breaker {
                            pipeline: new.name.clone(),
                            output: o.name.clone(),
                            source,
                        })?;
                }
            }
        }
        let mut next = Vec::new();
        let mut spawn = Vec::new();
        for plan in plans {
            match plan {
                Plan::Keep(p) => next.push(p),
                Plan::Replace {
                    new,
                    workers,
                    retire,
                    old,
                    ..
                } => {
                    if let Some(old) = old {
                        old.retire_on_drop
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .extend(self.drains_of(&retire));
                    }
                    next.push(Arc::new(*new));
                    spawn.extend(workers);
                }
            }
        }
        for old in removed {
            self.retire_pipeline(old);
        }
        self.pipelines.store(Arc::new(next));
        self.spawn(spawn);
        Ok(report)
    }

    /// The drain signals of `outputs`' workers.
    fn drains_of(&self, outputs: &[Arc<Output>]) -> Vec<Arc<tokio::sync::watch::Sender<bool>>> {
        self.running()
            .iter()
            .filter(|r| outputs.iter().any(|o| Arc::ptr_eq(o, &r.output)))
            .map(|r| r.drain.clone())
            .collect()
    }

    /// A removed pipeline: its memory outputs drain once the last request that found it is
    /// done; a disk buffer's outputs keep delivering its log until shutdown, which closes it.
    fn retire_pipeline(&self, old: &Arc<Pipeline>) {
        if let Some(disk) = &old.disk {
            self.retired_disks
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(disk.clone());
            return;
        }
        old.retire_on_drop
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(self.drains_of(&old.outputs));
    }
}

/// The plan for memory-buffered pipeline `old` becoming `p`: outputs kept where they may be,
/// built anew where not.
fn replan(
    old: &Arc<Pipeline>,
    p: &PipelineConfig,
    shared: &output::Shared<'_>,
    report: &mut OutputsReload,
) -> Result<Plan, PipelineError> {
    // What every output's ledger and worker were built from, besides the output's own keys.
    let same_frame = old.config.queue == p.queue && old.config.fallback == p.fallback;
    let mut outputs = Vec::new();
    let mut workers = Vec::new();
    let mut reconfigure = Vec::new();
    let mut kept = BTreeSet::new();
    for o in &p.outputs {
        let id = format!("{}/{}", p.name, o.name);
        let before = old
            .config
            .outputs
            .iter()
            .zip(&old.outputs)
            .find(|(c, _)| c.name == o.name)
            .filter(|(c, _)| same_frame && same_output_but_breakers(c, o));
        if let Some((c, output)) = before {
            if c.resilience.circuit_breaker == o.resilience.circuit_breaker {
                report.kept.push(id);
            } else {
                reconfigure.push((output.clone(), o.clone()));
                report.reconfigured.push(id);
            }
            kept.insert(o.name.clone());
            outputs.push(output.clone());
            continue;
        }
        let (output, sinks) = output::build(p, o, shared, None)?;
        workers.push(new_worker(p, o, &output, sinks, None));
        outputs.push(output);
        report.started.push(id);
    }
    let retire: Vec<Arc<Output>> = old
        .outputs
        .iter()
        .filter(|o| !kept.contains(&o.name))
        .cloned()
        .collect();
    for o in &retire {
        report.draining.push(format!("{}/{}", p.name, o.name));
    }
    let new = Pipeline {
        config: p.clone(),
        name: p.name.clone(),
        max_body: p.max_body,
        max_depth: p.max_depth,
        accepted: old.accepted.clone(),
        accepted_metric: old.accepted_metric.clone(),
        otlp: old.otlp.clone(),
        outputs,
        // Kept as it was: a disk-buffered pipeline gets here only with every output kept.
        disk: old.disk.clone(),
        retire_on_drop: Mutex::new(Vec::new()),
    };
    Ok(Plan::Replace {
        new: Box::new(new),
        workers,
        reconfigure,
        retire,
        old: Some(old.clone()),
    })
}

/// Whether `a` and `b` differ at most in their outputs' breaker settings.
fn same_but_breakers(a: &PipelineConfig, b: &PipelineConfig) -> bool {
    let mut a = a.clone();
    a.outputs
        .iter_mut()
        .zip(&b.outputs)
        .for_each(|(x, y)| x.resilience = y.resilience.clone());
    a == *b
}

/// Whether `a` and `b` differ at most in their breaker settings.
fn same_output_but_breakers(a: &OutputConfig, b: &OutputConfig) -> bool {
    let mut a = a.clone();
    a.resilience = b.resilience.clone();
    a == *b
}
