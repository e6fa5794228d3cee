//! The storage decision, measured: our segmented log beside redb (a well-kept embedded
//! key-value store) doing the disk buffer's job: append 1000-event records (the bench's
//! 117-byte events), read them back in order, free them; for each `sync` policy; and our log's
//! replay of what it holds. Run by `bench/pipeline-store.sh` (release build):
//! `cargo test --release -p seawall --features bench-redb --lib compare -- --ignored --nocapture`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use redb::{Database, Durability, ReadableDatabase, TableDefinition};

use super::replay::open;
use super::{BufferMetrics, Item, Pos, Reader};
use crate::config::SyncPolicy;
use crate::memory::Budget;
use crate::metrics::Metrics;
use crate::pipeline::events::Chunk;

const RECORDS: u64 = 1000;
const EVENTS: u64 = 1000;
const EVERY: Duration = Duration::from_millis(200);
const TABLE: TableDefinition<u64, &[u8]> = TableDefinition::new("events");

fn body() -> Bytes {
    let text: String = (1..=EVENTS)
        .map(|i| {
            format!(
                "{{\"ts\":\"2025-01-01T00:00:00.{i:06}Z\",\"level\":\"info\",\"service\":\"checkout\",\
                 \"msg\":\"request served\",\"status\":200,\"seq\":{i}}}\n"
            )
        })
        .collect();
    Bytes::from(text)
}

fn scratch(tag: &str) -> PathBuf {
    let dir = super::scratch(tag);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn rate(events: u64, took: Duration) -> f64 {
    events as f64 / took.as_secs_f64()
}

/// Our log: (append events/s, read-and-free events/s, replay events/s).
fn ours(policy: SyncPolicy, dir: &Path) -> (f64, f64, f64) {
    let body = body();
    let settings = (8 << 30, policy);
    let opened = open(dir, "p", settings, &["o"], BufferMetrics::default()).unwrap();
    let (log, start) = (opened.log, opened.outputs[0].pos);
    let t = Instant::now();
    let mut synced = Instant::now();
    for _ in 0..RECORDS {
        log.append(&Chunk::new(body.clone(), EVENTS as usize), |_, _| {})
            .unwrap();
        let due = match policy {
            SyncPolicy::Always => true,
            SyncPolicy::Interval => synced.elapsed() >= EVERY,
            SyncPolicy::None => false,
        };
        if due {
            log.sync().unwrap();
            synced = Instant::now();
        }
    }
    let append = rate(RECORDS * EVENTS, t.elapsed());
    drop((log, opened.lock));

    let t = Instant::now();
    let opened = open(dir, "p", settings, &["o"], BufferMetrics::default()).unwrap();
    let replay = rate(RECORDS * EVENTS, t.elapsed());

    let (log, budget) = (opened.log, Budget::new(&Metrics::new()));
    let (mut reader, mut pos, mut next): (Reader, Pos, u64) = (Reader::default(), start, 0);
    let t = Instant::now();
    loop {
        let items = reader.read(&log, pos, next, 4 << 20, &budget).unwrap();
        if items.is_empty() {
            break;
        }
        for item in items {
            if let Item::Events { first, chunk, end } = item {
                (pos, next) = (end, first + chunk.events() as u64);
            }
        }
        log.release(next);
    }
    assert_eq!(next, RECORDS * EVENTS);
    (append, rate(RECORDS * EVENTS, t.elapsed()), replay)
}

/// redb: (append events/s, read-and-free events/s). One write transaction per record (a
/// request), durable at once (`always`), every 200 ms (`interval`), or never (`none`: such
/// commits live in redb's own cache until a durable one, so a crash of the process loses them).
fn redb(policy: SyncPolicy, dir: &Path) -> (f64, f64) {
    let body = body();
    let db = Database::create(dir.join("events.redb")).unwrap();
    let t = Instant::now();
    let mut synced = Instant::now();
    for key in 0..RECORDS {
        let durable = match policy {
            SyncPolicy::Always => true,
            SyncPolicy::Interval => synced.elapsed() >= EVERY,
            SyncPolicy::None => false,
        };
        let mut tx = db.begin_write().unwrap();
        let durability = if durable {
            synced = Instant::now();
            Durability::Immediate
        } else {
            Durability::None
        };
        tx.set_durability(durability).unwrap();
        tx.open_table(TABLE)
            .unwrap()
            .insert(key, &body[..])
            .unwrap();
        tx.commit().unwrap();
    }
    let append = rate(RECORDS * EVENTS, t.elapsed());

    let t = Instant::now();
    let mut read = 0u64;
    for from in (0..RECORDS).step_by(32) {
        let to = (from + 32).min(RECORDS);
        {
            let rx = db.begin_read().unwrap();
            let table = rx.open_table(TABLE).unwrap();
            for entry in table.range(from..to).unwrap() {
                let (_, value) = entry.unwrap();
                read += memchr::memchr_iter(b'\n', value.value()).count() as u64;
            }
        }
        let mut tx = db.begin_write().unwrap();
        tx.set_durability(Durability::None).unwrap();
        tx.open_table(TABLE)
            .unwrap()
            .retain_in(from..to, |_, _| false)
            .unwrap();
        tx.commit().unwrap();
    }
    assert_eq!(read, RECORDS * EVENTS);
    (append, rate(RECORDS * EVENTS, t.elapsed()))
}

#[test]
#[ignore = "a benchmark: run it with --release (bench/pipeline-store.sh)"]
fn storage_candidates_side_by_side() {
    // A first round warms the page cache and the allocator for both; it is not shown.
    for (tag, run) in [("warm-ours", true), ("warm-redb", false)] {
        let dir = scratch(tag);
        if run {
            ours(SyncPolicy::None, &dir);
        } else {
            redb(SyncPolicy::None, &dir);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    println!("| store | sync | append events/s | read + free events/s | replay events/s |");
    println!("|---|---|---:|---:|---:|");
    for policy in [SyncPolicy::None, SyncPolicy::Interval, SyncPolicy::Always] {
        let dir = scratch("ours");
        let (append, drain, replay) = ours(policy, &dir);
        let _ = std::fs::remove_dir_all(&dir);
        println!(
            "| seawall log | {} | {append:.0} | {drain:.0} | {replay:.0} |",
            policy.as_str()
        );
        let dir = scratch("redb");
        let (append, drain) = redb(policy, &dir);
        let _ = std::fs::remove_dir_all(&dir);
        println!(
            "| redb 3.1 | {} | {append:.0} | {drain:.0} | |",
            policy.as_str()
        );
    }
}
