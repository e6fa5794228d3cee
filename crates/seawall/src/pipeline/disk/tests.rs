//! The log, its reader and its replay together: events read back across segments and freed,
//! segment files written over, `max_size`, the directory lock, and replays killed halfway.

use std::io;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::log::{Log, Pos};
use super::replay::{open, Opened};
use super::segment;
use super::{BufferMetrics, Item, Reader, Refused};
use crate::config::SyncPolicy;
use crate::memory::Budget;
use crate::metrics::Metrics;
use crate::pipeline::events::Chunk;

fn dir() -> PathBuf {
    super::scratch("disk")
}

fn chunk(from: u64, n: u64) -> Chunk {
    let text: String = (from..from + n)
        .map(|i| format!("{{\"i\":{i}}}\n"))
        .collect();
    Chunk::new(Bytes::from(text), n as usize)
}

fn open_log(dir: &Path, max_size: u64, outputs: &[&str]) -> (Opened, BufferMetrics) {
    let metrics = BufferMetrics::default();
    let opened = open(
        dir,
        "p",
        (max_size, SyncPolicy::None),
        outputs,
        metrics.clone(),
    );
    (opened.unwrap(), metrics)
}

/// A fresh directory whose log holds `n` events for output `o`, opened.
fn log_with(n: u64) -> (PathBuf, Opened) {
    let dir = dir();
    let (opened, _) = open_log(&dir, 1 << 20, &["o"]);
    opened.log.append(&chunk(0, n), |_, _| {}).unwrap();
    (dir, opened)
}

/// Every event index read back from `pos` on (holes as `None`).
fn read_all(log: &Log, mut pos: Pos, mut next: u64) -> Vec<Option<u64>> {
    let budget = Budget::new(&Metrics::new());
    let (mut reader, mut seen) = (Reader::default(), Vec::new());
    loop {
        let items = reader.read(log, pos, next, 1 << 20, &budget).unwrap();
        if items.is_empty() {
            return seen;
        }
        for item in items {
            match item {
                Item::Events { first, chunk, end } => {
                    seen.extend((first..first + chunk.events() as u64).map(Some));
                    (pos, next) = (end, first + chunk.events() as u64);
                }
                Item::Hole { first, events, end } => {
                    seen.extend((first..first + events).map(|_| None));
                    (pos, next) = (end, first + events);
                }
            }
        }
    }
}

#[test]
fn appended_events_are_read_back_across_segments_and_freed_below_the_lowest_cursor() {
    let dir = dir();
    let (opened, _) = open_log(&dir, 512 << 10, &["o"]);
    let log = opened.log;
    let start = opened.outputs[0].pos;
    for r in 0..200 {
        let end = log.append(&chunk(r * 50, 50), |_, _| {}).unwrap();
        assert_eq!(end, (r + 1) * 50);
    }
    let (bytes, segments, _) = log.levels();
    assert!(segments > 1, "{segments} segments, {bytes} bytes");
    assert_eq!(
        read_all(&log, start, 0),
        (0..10_000).map(Some).collect::<Vec<_>>()
    );
    log.release(8000);
    assert!(log.head() > 0 && log.head() <= 8000, "{}", log.head());
    assert_eq!(log.end(), 10_000);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn freed_segments_are_written_over_and_a_restart_reads_only_the_new_records() {
    let dir = dir();
    let (opened, _) = open_log(&dir, 512 << 10, &["o"]);
    let log = opened.log;
    let files = || std::fs::read_dir(&dir).unwrap().count();
    let mut most = 0;
    for r in 0..600 {
        log.append(&chunk(r * 50, 50), |_, _| {}).unwrap();
        log.release(r * 50);
        most = most.max(files());
    }
    let (bytes, segments, _) = log.levels();
    assert!(bytes <= 512 << 10, "{bytes}");
    assert!(
        most <= segments + 5,
        "segments, spares, cursor, lock: {most}"
    );
    drop((log, opened.lock));
    let (opened, metrics) = open_log(&dir, 512 << 10, &["o"]);
    assert_eq!(metrics.corrupt_events.get(), 0);
    assert_eq!(opened.log.end(), 30_000);
    let head = opened.log.head();
    let read = read_all(
        &opened.log,
        Pos {
            segment: head,
            offset: 0,
        },
        head,
    );
    assert_eq!(read, (head..30_000).map(Some).collect::<Vec<_>>());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn an_append_past_max_size_is_refused_and_the_log_unchanged() {
    let dir = dir();
    let (opened, metrics) = open_log(&dir, 1000, &["o"]);
    let log = opened.log;
    log.append(&chunk(0, 60), |_, _| {}).unwrap();
    assert_eq!(log.append(&chunk(60, 60), |_, _| {}), Err(Refused::Full));
    assert_eq!(log.end(), 60);
    assert_eq!((metrics.refused_full.get(), metrics.shedding.get()), (1, 1));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_second_opener_of_the_directory_is_refused() {
    let dir = dir();
    let (_held, _) = open_log(&dir, 1 << 20, &["o"]);
    let second = open(
        &dir,
        "p",
        (1 << 20, SyncPolicy::None),
        &["o"],
        BufferMetrics::default(),
    );
    assert_eq!(
        second.err().map(|e| e.kind()),
        Some(io::ErrorKind::WouldBlock)
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_replay_killed_between_writing_its_hole_and_cutting_counts_the_loss_once() {
    let (dir, opened) = log_with(2);
    drop(opened);
    let seg = dir.join(segment::file_name(0));
    let mut bytes = std::fs::read(&seg).unwrap();
    let valid = bytes.len();
    bytes.extend_from_slice(b"{\"torn\":\"aaaaaaaaaa\"}\n{\"torn\":\"bbbbbbbbbb\"}\n{\"tor");
    std::fs::write(&seg, &bytes).unwrap();

    let (opened, metrics) = open_log(&dir, 1 << 20, &["o"]);
    assert_eq!(metrics.corrupt_events.get(), 2, "one per line break");
    assert_eq!(opened.log.end(), 4);
    let pos = opened.outputs[0].pos;
    assert_eq!(
        read_all(&opened.log, pos, 0),
        [Some(0), Some(1), None, None]
    );
    drop(opened);

    // As if killed after the hole was written but before the file was shortened.
    let mut cut = std::fs::read(&seg).unwrap();
    cut.extend_from_slice(&bytes[cut.len()..]);
    assert!(cut.len() > valid);
    std::fs::write(&seg, &cut).unwrap();
    let (opened, metrics) = open_log(&dir, 1 << 20, &["o"]);
    assert_eq!(metrics.corrupt_events.get(), 0, "counted once");
    assert_eq!(opened.log.end(), 4);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_cursor_past_the_log_end_gets_a_hole_so_the_figures_still_add_up() {
    let (dir, opened) = log_with(10);
    let mut mark = opened.outputs[0].mark;
    mark.cursor = 25;
    mark.delivered = 25;
    opened.outputs[0].file.write(&mark).unwrap();
    drop(opened);
    let (opened, metrics) = open_log(&dir, 1 << 20, &["o"]);
    assert_eq!(opened.log.end(), 25);
    assert_eq!(metrics.corrupt_events.get(), 15);
    std::fs::remove_dir_all(dir).unwrap();
}
