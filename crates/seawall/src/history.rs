//! The recent past for `GET /v1/history` and the dashboard's charts: every `admin.history.period`
//! a sampler reads the counters the daemon already keeps (each breaker's lifetime totals and
//! state, each output's accounting) and keeps what changed since the sample before, in
//! fixed-size rings. No database: memory is bounded by [`MAX_BREAKER_SERIES`],
//! [`MAX_OUTPUT_SERIES`] and `window / period` points per series.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use seawall_breaker::{CircuitBreaker, State};
use serde::Serialize;

use crate::breakers::{breaker_id, Breakers};
use crate::config::HistoryConfig;
use crate::labels::BreakerLabels;
use crate::pipeline::Pipelines;
use crate::timeline::bounded;

/// Breakers with a series at most. Breakers come and go with endpoints (each provider target
/// holds at most `max_keys`, idle ones are evicted): an evicted breaker's series goes at the
/// next sample, and a new breaker waits for a free slot while this many are kept.
pub const MAX_BREAKER_SERIES: usize = 256;

/// Outputs with a series at most (outputs are fixed by the configuration).
pub const MAX_OUTPUT_SERIES: usize = 256;

/// A breaker's band colour for one sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Band {
    Closed,
    HalfOpen,
    Open,
}

impl Band {
    fn of(state: State) -> Self {
        match state {
            State::Closed => Band::Closed,
            State::HalfOpen => Band::HalfOpen,
            State::Open => Band::Open,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Band::Closed => "closed",
            Band::HalfOpen => "half_open",
            Band::Open => "open",
        }
    }
}

/// One breaker's counters as the sampler reads them.
#[derive(Clone, Debug)]
pub struct BreakerReading {
    /// Its labels (the id is derived from them).
    pub labels: BreakerLabels,
    /// Its state at the sample.
    pub state: State,
    /// Successes and failures, ever.
    pub requests: u64,
    /// Failures, ever.
    pub failures: u64,
    /// Rejections, ever.
    pub rejected: u64,
    /// Trips, ever.
    pub trips: u64,
}

impl BreakerReading {
    /// The reading of `breaker` labelled `labels`, now.
    pub fn of(labels: BreakerLabels, breaker: &CircuitBreaker) -> Self {
        let snap = breaker.snapshot();
        let c = snap.counts;
        BreakerReading {
            labels,
            state: snap.state,
            requests: c.successes.saturating_add(c.failures),
            failures: c.failures,
            rejected: c.rejected,
            trips: c.trips,
        }
    }
}

/// One output's counters as the sampler reads them.
#[derive(Clone, Debug)]
pub struct OutputReading {
    /// The pipeline's name.
    pub pipeline: String,
    /// The output's name.
    pub output: String,
    /// Events delivered, ever.
    pub delivered: u64,
    /// Events sampled out, ever.
    pub sampled_out: u64,
    /// Events dropped for any reason, ever.
    pub dropped: u64,
}

/// The history of the daemon's counters. Cheap to share behind an [`Arc`].
#[derive(Debug)]
pub struct History {
    period: Duration,
    window: Duration,
    /// Samples kept per series.
    points: usize,
    rings: Mutex<Rings>,
}

#[derive(Debug, Default)]
struct Rings {
    /// When each kept sample was taken (Unix milliseconds), oldest first.
    times: VecDeque<u64>,
    /// By breaker id. A series' points are the newest samples, one per sample since it began.
    breakers: BTreeMap<String, BreakerSeries>,
    /// By (pipeline, output).
    outputs: BTreeMap<(String, String), OutputSeries>,
    /// Breakers seen at the last sample that had no series (over [`MAX_BREAKER_SERIES`]).
    untracked: usize,
}

#[derive(Debug)]
struct BreakerSeries {
    labels: BreakerLabels,
    /// The lifetime totals at the last sample.
    last: [u64; 4],
    points: VecDeque<BreakerPoint>,
}

/// What one breaker did in one period.
#[derive(Clone, Copy, Debug)]
struct BreakerPoint {
    requests: u32,
    failures: u32,
    rejections: u32,
    band: Band,
}

#[derive(Debug)]
struct OutputSeries {
    last: [u64; 3],
    /// Delivered, sampled out and dropped events in each period.
    points: VecDeque<[u32; 3]>,
}

/// `GET /v1/history`: per series, one value per sample in `timestamps` (oldest first), `null`
/// before the series began.
#[derive(Clone, Debug, Serialize)]
pub struct HistoryView {
    /// Seconds between samples.
    pub period_seconds: f64,
    /// Seconds the history reaches back when full.
    pub window_seconds: f64,
    /// Samples kept per series.
    pub points: usize,
    /// When each sample was taken (Unix milliseconds); each value counts the period before.
    pub timestamps: Vec<u64>,
    /// Per breaker, calls per period.
    pub breakers: Vec<BreakerHistory>,
    /// Per output, events per period.
    pub outputs: Vec<OutputHistory>,
    /// Breakers without a series because [`MAX_BREAKER_SERIES`] are kept.
    pub untracked_breakers: usize,
}

/// One breaker's series.
#[derive(Clone, Debug, Serialize)]
pub struct BreakerHistory {
    /// The id in `/v1/breakers`.
    pub id: String,
    /// `provider` or `output`.
    pub kind: &'static str,
    /// Provider or output name.
    pub name: String,
    /// Endpoint path or URL.
    pub endpoint: String,
    /// Model, or empty.
    pub model: String,
    /// Target of a multi-target provider, or empty.
    pub target: String,
    /// Calls with a verdict (successes and failures; ignored calls are not counted).
    pub requests: Vec<Option<u32>>,
    /// Failed calls.
    pub failures: Vec<Option<u32>>,
    /// Calls rejected by the breaker.
    pub rejections: Vec<Option<u32>>,
    /// The state band: the state at the sample, or `open` when it tripped during the period.
    pub states: Vec<Option<&'static str>>,
}

/// One output's series.
#[derive(Clone, Debug, Serialize)]
pub struct OutputHistory {
    /// The pipeline.
    pub pipeline: String,
    /// The output.
    pub output: String,
    /// Events delivered.
    pub delivered: Vec<Option<u32>>,
    /// Events sampled out.
    pub sampled_out: Vec<Option<u32>>,
    /// Events dropped.
    pub dropped: Vec<Option<u32>>,
}

impl History {
    /// An empty history sampled as `config` says.
    pub fn new(config: &HistoryConfig) -> Self {
        History {
            period: config.period,
            window: config.window,
            points: config.points().max(1),
            rings: Mutex::new(Rings::default()),
        }
    }

    /// Samples every `period` from `breakers` and `pipelines` until the task is aborted.
    pub async fn run(self: Arc<Self>, breakers: Arc<Breakers>, pipelines: Option<Arc<Pipelines>>) {
        let mut interval = tokio::time::interval(self.period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick is immediate: the first sample holds what happened since start.
        interval.tick().await;
        loop {
            interval.tick().await;
            self.sample(&breakers, pipelines.as_deref());
        }
    }

    /// Takes one sample of `breakers` and `pipelines` now.
    pub fn sample(&self, breakers: &Breakers, pipelines: Option<&Pipelines>) {
        let mut readings: Vec<BreakerReading> = breakers
            .providers()
            .iter()
            .flat_map(|p| p.entries())
            .map(|(l, b)| BreakerReading::of(l, &b))
            .collect();
        let mut outputs = Vec::new();
        if let Some(p) = pipelines {
            readings.extend(
                p.breakers()
                    .into_iter()
                    .map(|(l, b)| BreakerReading::of(l, &b)),
            );
            for pipeline in p.views() {
                for o in pipeline.outputs {
                    outputs.push(OutputReading {
                        pipeline: pipeline.name.clone(),
                        output: o.name,
                        delivered: o.delivered,
                        sampled_out: o.sampled_out,
                        dropped: o.dropped.total,
                    });
                }
            }
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        self.record(now, readings, outputs);
    }

    /// Records one sample taken at `at` (Unix milliseconds): each series gets what changed
    /// since its last sample (a new series: its counts so far, as its breaker or output began
    /// after the sample before). Series whose breaker or output is gone are forgotten.
    pub fn record(&self, at: u64, breakers: Vec<BreakerReading>, outputs: Vec<OutputReading>) {
        let mut rings = self.rings.lock().unwrap_or_else(PoisonError::into_inner);
        push_bounded(&mut rings.times, at, self.points);

        let mut seen = BTreeMap::new();
        for r in breakers {
            seen.insert(breaker_id(&r.labels), r);
        }
        rings.breakers.retain(|id, _| seen.contains_key(id));
        let mut untracked = 0;
        for (id, r) in seen {
            let now = [r.requests, r.failures, r.rejected, r.trips];
            let free = rings.breakers.len() < MAX_BREAKER_SERIES;
            let series = match rings.breakers.get_mut(&id) {
                Some(s) => s,
                None if free => rings.breakers.entry(id).or_insert(BreakerSeries {
                    labels: bounded_labels(&r.labels),
                    last: [0; 4],
                    points: VecDeque::with_capacity(self.points),
                }),
                None => {
                    untracked += 1;
                    continue;
                }
            };
            let d = deltas(&series.last, &now);
            series.last = now;
            let tripped = if d[3] > 0 { Band::Open } else { Band::Closed };
            let point = BreakerPoint {
                requests: d[0],
                failures: d[1],
                rejections: d[2],
                band: Band::of(r.state).max(tripped),
            };
            push_bounded(&mut series.points, point, self.points);
        }
        rings.untracked = untracked;

        let mut seen = BTreeMap::new();
        for o in outputs {
            seen.insert((o.pipeline.clone(), o.output.clone()), o);
        }
        rings.outputs.retain(|k, _| seen.contains_key(k));
        for (key, o) in seen {
            let now = [o.delivered, o.sampled_out, o.dropped];
            let free = rings.outputs.len() < MAX_OUTPUT_SERIES;
            let series = match rings.outputs.get_mut(&key) {
                Some(s) => s,
                None if free => rings.outputs.entry(key).or_insert(OutputSeries {
                    last: [0; 3],
                    points: VecDeque::with_capacity(self.points),
                }),
                None => continue,
            };
            let d = deltas(&series.last, &now);
            series.last = now;
            push_bounded(&mut series.points, d, self.points);
        }
    }

    /// The history, of every breaker or only of the one whose id is `breaker` (then without
    /// outputs); `None` when no breaker with that id has a series.
    pub fn view(&self, breaker: Option<&str>) -> Option<HistoryView> {
        let rings = self.rings.lock().unwrap_or_else(PoisonError::into_inner);
        let len = rings.times.len();
        let breakers: Vec<BreakerHistory> = rings
            .breakers
            .iter()
            .filter(|(id, _)| breaker.is_none_or(|b| b == id.as_str()))
            .map(|(id, s)| {
                let column = |f: fn(&BreakerPoint) -> u32| padded(len, s.points.iter().map(f));
                BreakerHistory {
                    id: id.clone(),
                    kind: s.labels.kind,
                    name: s.labels.name.clone(),
                    endpoint: s.labels.endpoint.clone(),
                    model: s.labels.model.clone(),
                    target: s.labels.target.clone(),
                    requests: column(|p| p.requests),
                    failures: column(|p| p.failures),
                    rejections: column(|p| p.rejections),
                    states: padded(len, s.points.iter().map(|p| p.band.as_str())),
                }
            })
            .collect();
        if breaker.is_some() && breakers.is_empty() {
            return None;
        }
        let outputs = if breaker.is_some() {
            Vec::new()
        } else {
            rings
                .outputs
                .iter()
                .map(|((pipeline, output), s)| {
                    let column = |i: usize| padded(len, s.points.iter().map(|p| p[i]));
                    OutputHistory {
                        pipeline: pipeline.clone(),
                        output: output.clone(),
                        delivered: column(0),
                        sampled_out: column(1),
                        dropped: column(2),
                    }
                })
                .collect()
        };
        Some(HistoryView {
            period_seconds: self.period.as_secs_f64(),
            window_seconds: self.window.as_secs_f64(),
            points: self.points,
            timestamps: rings.times.iter().copied().collect(),
            breakers,
            outputs,
            untracked_breakers: rings.untracked,
        })
    }
}

/// Appends `v`, dropping the oldest entry once `cap` are held.
fn push_bounded<T>(ring: &mut VecDeque<T>, v: T, cap: usize) {
    if ring.len() == cap {
        ring.pop_front();
    }
    ring.push_back(v);
}

/// `now - last` per counter, saturated to `u32`. A counter that went down started again (a
/// breaker or output rebuilt under the same name): all of it is new.
fn deltas<const N: usize>(last: &[u64; N], now: &[u64; N]) -> [u32; N] {
    std::array::from_fn(|i| {
        let d = now[i].checked_sub(last[i]).unwrap_or(now[i]);
        u32::try_from(d).unwrap_or(u32::MAX)
    })
}

/// `values` (the newest of `len` samples) preceded by `None` for the samples before them.
fn padded<T>(len: usize, values: impl ExactSizeIterator<Item = T>) -> Vec<Option<T>> {
    let missing = len.saturating_sub(values.len());
    std::iter::repeat_with(|| None)
        .take(missing)
        .chain(values.map(Some))
        .collect()
}

fn bounded_labels(l: &BreakerLabels) -> BreakerLabels {
    BreakerLabels {
        kind: l.kind,
        name: bounded(&l.name),
        endpoint: bounded(&l.endpoint),
        model: bounded(&l.model),
        target: bounded(&l.target),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(period_s: u64, window_s: u64) -> HistoryConfig {
        HistoryConfig {
            period: Duration::from_secs(period_s),
            window: Duration::from_secs(window_s),
        }
    }

    fn labels(endpoint: &str) -> BreakerLabels {
        BreakerLabels {
            kind: "provider",
            name: "p".into(),
            endpoint: endpoint.into(),
            model: String::new(),
            target: String::new(),
        }
    }

    fn reading(endpoint: &str, state: State, totals: [u64; 4]) -> BreakerReading {
        BreakerReading {
            labels: labels(endpoint),
            state,
            requests: totals[0],
            failures: totals[1],
            rejected: totals[2],
            trips: totals[3],
        }
    }

    fn output(delivered: u64, sampled_out: u64, dropped: u64) -> OutputReading {
        OutputReading {
            pipeline: "events".into(),
            output: "sink".into(),
            delivered,
            sampled_out,
            dropped,
        }
    }

    #[test]
    fn keeps_deltas_per_period_and_the_state_band() {
        let h = History::new(&config(5, 15));
        h.record(
            1_000,
            vec![reading("/a", State::Closed, [4, 1, 0, 0])],
            vec![],
        );
        h.record(
            6_000,
            vec![reading("/a", State::Closed, [10, 3, 0, 0])],
            vec![],
        );
        // Tripped and already half-open again at the sample: the band shows the trip.
        h.record(
            11_000,
            vec![reading("/a", State::HalfOpen, [12, 5, 7, 1])],
            vec![],
        );
        let v = h.view(None).unwrap();
        assert_eq!(v.timestamps, [1_000, 6_000, 11_000]);
        let b = &v.breakers[0];
        assert_eq!(b.requests, [Some(4), Some(6), Some(2)]);
        assert_eq!(b.failures, [Some(1), Some(2), Some(2)]);
        assert_eq!(b.rejections, [Some(0), Some(0), Some(7)]);
        assert_eq!(b.states, [Some("closed"), Some("closed"), Some("open")]);
        h.record(
            16_000,
            vec![reading("/a", State::HalfOpen, [12, 5, 7, 1])],
            vec![],
        );
        let b = &h.view(None).unwrap().breakers[0];
        assert_eq!(b.states, [Some("closed"), Some("open"), Some("half_open")]);
    }

    #[test]
    fn the_rings_stay_bounded_and_late_series_are_padded() {
        let h = History::new(&config(1, 3));
        for i in 0..10u64 {
            let mut readings = vec![reading("/old", State::Closed, [i, 0, 0, 0])];
            if i >= 8 {
                readings.push(reading("/new", State::Open, [0, 0, i, 1]));
            }
            h.record(i * 1000, readings, vec![output(i * 10, 0, 0)]);
        }
        let v = h.view(None).unwrap();
        assert_eq!(v.points, 3);
        assert_eq!(v.timestamps, [7_000, 8_000, 9_000]);
        let new = v.breakers.iter().find(|b| b.endpoint == "/new").unwrap();
        assert_eq!(new.rejections, [None, Some(8), Some(1)]);
        assert_eq!(new.states, [None, Some("open"), Some("open")]);
        let old = v.breakers.iter().find(|b| b.endpoint == "/old").unwrap();
        assert_eq!(old.requests, [Some(1); 3]);
        assert_eq!(v.outputs[0].delivered, [Some(10); 3]);
    }

    #[test]
    fn gone_breakers_are_forgotten_and_series_are_capped() {
        let h = History::new(&config(5, 60));
        let many = |n: usize| {
            (0..n)
                .map(|i| reading(&format!("/e{i}"), State::Closed, [1, 0, 0, 0]))
                .collect::<Vec<_>>()
        };
        h.record(0, many(MAX_BREAKER_SERIES + 5), vec![output(1, 0, 0)]);
        let v = h.view(None).unwrap();
        assert_eq!(v.breakers.len(), MAX_BREAKER_SERIES);
        assert_eq!(v.untracked_breakers, 5);
        h.record(5_000, many(1), vec![]);
        let v = h.view(None).unwrap();
        assert_eq!((v.breakers.len(), v.untracked_breakers), (1, 0));
        assert!(v.outputs.is_empty());
    }

    #[test]
    fn a_point_costs_what_the_readme_says() {
        // README, "The dashboard": points × (8 + 16 per breaker series + 12 per output series).
        assert_eq!(std::mem::size_of::<u64>(), 8);
        assert_eq!(std::mem::size_of::<BreakerPoint>(), 16);
        assert_eq!(std::mem::size_of::<[u32; 3]>(), 12);
    }

    #[test]
    fn a_counter_that_went_down_started_again() {
        let h = History::new(&config(5, 60));
        h.record(0, vec![], vec![output(100, 5, 1)]);
        h.record(5_000, vec![], vec![output(3, 0, 0)]);
        let v = h.view(None).unwrap();
        assert_eq!(v.outputs[0].delivered, [Some(100), Some(3)]);
        assert_eq!(v.outputs[0].sampled_out, [Some(5), Some(0)]);
    }

    #[test]
    fn one_breaker_by_id() {
        let h = History::new(&config(5, 60));
        h.record(
            0,
            vec![
                reading("/a", State::Closed, [1, 0, 0, 0]),
                reading("/b", State::Closed, [2, 0, 0, 0]),
            ],
            vec![output(1, 0, 0)],
        );
        let id = breaker_id(&labels("/b"));
        let v = h.view(Some(&id)).unwrap();
        assert_eq!(v.breakers.len(), 1);
        assert_eq!(v.breakers[0].endpoint, "/b");
        assert!(v.outputs.is_empty());
        assert!(h.view(Some("nope")).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn the_sampler_reads_real_breakers_every_period() {
        let yaml = "providers: [{ name: p, kind: generic, base_url: 'http://127.0.0.1:1',
            circuit_breaker: { failure_threshold: 2, open_timeout: 1h, jitter: 0 } }]";
        let parsed = crate::config::parse(yaml).unwrap();
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let breakers = Arc::new(
            Breakers::new(&parsed.providers, crate::breakers::tokio_clock(), metrics).unwrap(),
        );
        let history = Arc::new(History::new(&config(5, 60)));
        let sampler = tokio::spawn(history.clone().run(breakers.clone(), None));
        let (cb, _) = breakers.provider("p").unwrap().get("/v1/x", None);
        cb.try_acquire().unwrap().success();
        tokio::time::sleep(Duration::from_millis(5_001)).await;
        for _ in 0..2 {
            cb.try_acquire().unwrap().failure();
        }
        assert!(cb.try_acquire().is_err());
        tokio::time::sleep(Duration::from_secs(5)).await;
        sampler.abort();
        let b = &history.view(None).unwrap().breakers[0];
        assert_eq!(b.requests, [Some(1), Some(2)]);
        assert_eq!(b.failures, [Some(0), Some(2)]);
        assert_eq!(b.rejections, [Some(0), Some(1)]);
        assert_eq!(b.states, [Some("closed"), Some("open")]);
    }
}
