//! The disk buffer against the real `seawall` binary killed with SIGKILL: every event answered
//! 202 is delivered at least once after a restart, duplicates only ever repeat a batch under
//! its id, replay survives being killed itself, a truncated and a corrupted segment are cut and
//! counted, a full buffer and a file system that fills shed ingest and recover, a changed
//! output list is reconciled honestly, a graceful shutdown keeps what is undelivered, and a
//! second daemon cannot take the same directory.

mod common;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::client;
use common::collector::{Collector, Mode};
use common::exposition::Exposition;
use common::ports::free_port;
use common::process::{run_logged, seawall, wait_ready, Logged};
use common::temp::{temp_dir, temp_path};
use common::wait::{eventually, settle};
use serde_json::Value;
use tokio::runtime::Runtime;

const READY: Duration = Duration::from_secs(30);

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A daemon's two addresses and its configuration, so it can be started again as it was.
struct Setup {
    gateway: SocketAddr,
    admin: SocketAddr,
    yaml: String,
}

impl Setup {
    /// One pipeline `p` with a disk buffer in `dir` (`buffer` adds keys) and `outputs`.
    fn new(dir: &Path, buffer: &str, outputs: &str) -> Setup {
        let (gateway, admin) = (local(free_port()), local(free_port()));
        let yaml = format!(
            "server: {{ listen: '{gateway}', shutdown_grace: 2s }}
admin: {{ listen: '{admin}' }}
global_health: {{ enabled: false }}
pipelines:
  - name: p
    max_body: 64KB
    buffer: {{ type: disk, path: '{}' {buffer} }}
    outputs:
{outputs}",
            dir.display()
        );
        Setup {
            gateway,
            admin,
            yaml,
        }
    }

    fn start(&self) -> Logged {
        let (mut daemon, config) = run_logged(&self.yaml, "info");
        wait_ready(&mut daemon.child, self.admin, READY);
        let _ = std::fs::remove_file(config);
        daemon
    }

    fn ingest_url(&self) -> String {
        format!("http://{}/ingest/p", self.gateway)
    }

    async fn output(&self, name: &str) -> Value {
        client::output_view(self.admin, name).await
    }

    async fn buffer(&self) -> Value {
        client::pipeline_view(self.admin).await["buffer"].clone()
    }

    async fn metrics(&self) -> Exposition {
        Exposition::new(
            client::get(&format!("http://{}/metrics", self.admin))
                .await
                .text(),
        )
    }
}

/// An `http` output `name` to `url`, batches of `max_events`, its breaker quick to recover.
fn http_output(name: &str, url: &str, max_events: usize) -> String {
    format!(
        "      - {{ name: {name}, type: http, endpoint: '{url}', timeout: 2s,
          batch: {{ max_events: {max_events}, linger: 0s }},
          resilience: {{ circuit_breaker: {{ failure_threshold: 1, open_timeout: 200ms, \
         open_timeout_max: 200ms, retry_after_max: 200ms, check_interval: 50ms }} }} }}\n"
    )
}

/// NDJSON events `{"seq":i,"pad":"…"}` for `seqs`.
fn events(seqs: std::ops::Range<u64>) -> String {
    seqs.map(|i| format!("{{\"seq\":{i},\"pad\":\"xxxxxxxxxxxxxxxxxxxxxxxx\"}}\n"))
        .collect()
}

/// POSTs `seqs`; the status, or `None` when no answer came (the daemon is gone).
async fn post(url: &str, seqs: std::ops::Range<u64>) -> Option<u16> {
    let req = client::request("POST", url)
        .header("content-type", "application/x-ndjson")
        .body(client::body(&events(seqs)))
        .unwrap();
    client::try_send(req).await.ok().map(|a| a.status.as_u16())
}

/// POSTs `n` requests of `per` events from `from` and records the acknowledged seqs.
async fn post_all(url: &str, from: u64, n: u64, per: u64, acked: &Mutex<Vec<u64>>) -> u64 {
    let mut refused = 0;
    for r in 0..n {
        let seqs = from + r * per..from + (r + 1) * per;
        match post(url, seqs.clone()).await {
            Some(202) => acked.lock().unwrap().extend(seqs),
            Some(_) => refused += 1,
            None => break,
        }
    }
    refused
}

/// POSTs 100-event requests (seqs from 0) until one is not answered 202; returns that answer
/// and how many were.
async fn post_until_refused(s: &Setup, acked: &Mutex<Vec<u64>>) -> (client::Answer, u64) {
    for n in 0..200 {
        let req = client::request("POST", &s.ingest_url())
            .header("content-type", "application/x-ndjson")
            .body(client::body(&events(n * 100..(n + 1) * 100)))
            .unwrap();
        let answer = client::send(req).await;
        if answer.status != 202 {
            return (answer, n);
        }
        acked.lock().unwrap().extend(n * 100..(n + 1) * 100);
    }
    panic!("every request accepted: the buffer never refused");
}

/// POSTs the `n`th 100-event request; true (and recorded) if answered 202.
async fn post_acked(s: &Setup, n: u64, acked: &Mutex<Vec<u64>>) -> bool {
    let seqs = n * 100..(n + 1) * 100;
    let ok = post(&s.ingest_url(), seqs.clone()).await == Some(202);
    if ok {
        acked.lock().unwrap().extend(seqs);
    }
    ok
}

/// Clients `clients` (each its own range of seqs) post `per`-event requests to `s` until
/// `threshold` events are acknowledged; then `daemon` is killed (SIGKILL) while they post.
async fn kill_while_posting(
    s: &Setup,
    daemon: &mut Logged,
    clients: std::ops::Range<u64>,
    per: u64,
    acked: &Arc<Mutex<Vec<u64>>>,
    threshold: usize,
) {
    let posters: Vec<_> = clients
        .map(|k| {
            let (url, acked) = (s.ingest_url(), acked.clone());
            tokio::spawn(async move { post_all(&url, k * 1_000_000, 500, per, &acked).await })
        })
        .collect();
    eventually("enough events acknowledged", || async {
        acked.lock().unwrap().len() >= threshold
    })
    .await;
    daemon.kill();
    for p in posters {
        assert_eq!(p.await.unwrap(), 0, "nothing refused");
    }
}

fn seq(line: &str) -> u64 {
    serde_json::from_str::<Value>(line).unwrap()["seq"]
        .as_u64()
        .unwrap()
}

/// Checks what a collector received: every resend of a batch id carries the same events, and
/// once deduplicated by batch id no event is there twice. Returns (events received,
/// duplicates received, distinct events).
fn check_batches(c: &Collector) -> (usize, usize, HashSet<u64>) {
    let mut by_id: HashMap<String, Vec<String>> = HashMap::new();
    let mut received = 0;
    for (id, lines) in c.batches_with_ids() {
        assert_eq!(id.len(), 32, "x-seawall-batch-id on every batch");
        received += lines.len();
        match by_id.get(&id) {
            Some(first) => assert_eq!(first, &lines, "batch {id} resent with other events"),
            None => {
                by_id.insert(id, lines);
            }
        }
    }
    let mut distinct = HashSet::new();
    for lines in by_id.values() {
        for line in lines {
            assert!(
                distinct.insert(seq(line)),
                "event {line} in two batches of different ids"
            );
        }
    }
    (received, received - distinct.len(), distinct)
}

#[track_caller]
fn assert_balanced(o: &Value) {
    let n = |k: &str| o[k].as_u64().unwrap_or_else(|| panic!("{k} in {o}"));
    assert_eq!(
        n("accepted"),
        n("delivered") + n("sampled_out") + o["dropped"]["total"].as_u64().unwrap() + n("pending"),
        "accounting broken: {o}"
    );
}

#[test]
fn every_event_answered_202_survives_sigkill_during_ingest_with_the_output_down() {
    let rt = Runtime::new().unwrap();
    let c = rt.block_on(Collector::start(Mode::Status(503)));
    let dir = temp_dir("durable-ingest");
    let s = Setup::new(
        &dir,
        ", sync: interval, sync_interval: 50ms",
        &http_output("c", &c.url, 50),
    );
    let mut daemon = s.start();
    let acked = Arc::new(Mutex::new(Vec::new()));
    // Four clients post 10-event requests; the daemon is killed mid-stream.
    rt.block_on(kill_while_posting(&s, &mut daemon, 0..4, 10, &acked, 1000));
    let acked: HashSet<u64> = acked.lock().unwrap().iter().copied().collect();
    assert!(!daemon.logged("final accounting"), "killed, not stopped");

    c.set(Mode::Ok);
    let mut daemon = s.start();
    daemon.wait_for("disk buffer replay done", READY);
    rt.block_on(async {
        eventually("every acknowledged event delivered", || async {
            let (_, _, got) = check_batches(&c);
            acked.is_subset(&got)
        })
        .await;
        let o = settle(|| s.output("c"), |o| o["pending"] == 0).await;
        assert_balanced(&o);
        let (received, duplicates, distinct) = check_batches(&c);
        println!(
            "acknowledged {}, written {}, received {received}, duplicates {duplicates}",
            acked.len(),
            distinct.len()
        );
        let delivered = o["delivered"].as_u64().unwrap();
        assert!(
            delivered <= received as u64 && delivered >= distinct.len() as u64,
            "{o}"
        );
        assert_eq!(
            o["accepted"].as_u64().unwrap(),
            distinct.len() as u64,
            "{o}"
        );
    });
    drop(daemon);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn after_sigkill_a_batch_whose_answer_was_lost_is_resent_under_the_same_id() {
    let rt = Runtime::new().unwrap();
    let c = rt.block_on(Collector::start(Mode::KeepThenHang));
    let dir = temp_dir("durable-resend");
    let s = Setup::new(&dir, "", &http_output("c", &c.url, 40));
    let mut daemon = s.start();
    rt.block_on(async {
        for r in 0..5 {
            assert_eq!(post(&s.ingest_url(), r * 20..(r + 1) * 20).await, Some(202));
        }
        eventually("the first batch kept", || async { c.requests() > 0 }).await;
    });
    daemon.kill();

    c.set(Mode::Ok);
    let _daemon = s.start();
    rt.block_on(async {
        eventually("all 100 delivered", || async {
            check_batches(&c).2.len() == 100
        })
        .await;
        let o = settle(|| s.output("c"), |o| o["pending"] == 0).await;
        assert_balanced(&o);
    });
    let (received, duplicates, _) = check_batches(&c);
    let batches = c.batches_with_ids();
    let kept = batches[0].1.len();
    assert_eq!(
        batches[0], batches[1],
        "resent first after the restart, same id"
    );
    assert_eq!(
        (duplicates, received),
        (kept, 100 + kept),
        "the kept batch, once more"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// Fills the log of `s` with `requests` × `per` events while its collector refuses them;
/// returns the acknowledged seqs.
fn fill(rt: &Runtime, s: &Setup, requests: u64, per: u64) -> HashSet<u64> {
    let acked = Mutex::new(Vec::new());
    let refused = rt.block_on(post_all(&s.ingest_url(), 0, requests, per, &acked));
    assert_eq!(refused, 0);
    let acked = acked.into_inner().unwrap();
    assert_eq!(acked.len() as u64, requests * per);
    acked.into_iter().collect()
}

#[test]
fn sigkill_during_replay_loses_nothing() {
    let rt = Runtime::new().unwrap();
    let c = rt.block_on(Collector::start(Mode::Status(503)));
    let dir = temp_dir("durable-replay");
    let s = Setup::new(&dir, ", sync: none", &http_output("c", &c.url, 1000));
    let mut daemon = s.start();
    let acked = fill(&rt, &s, 200, 1000);
    daemon.kill();

    let (mut replaying, config) = run_logged(&s.yaml, "info");
    replaying.wait_for("disk buffer replay started", READY);
    replaying.kill();
    let _ = std::fs::remove_file(config);
    assert!(
        !replaying.logged("disk buffer replay done"),
        "killed during the replay: {}",
        replaying.text()
    );

    c.set(Mode::Ok);
    let mut daemon = s.start();
    daemon.wait_for("disk buffer replay done", READY);
    assert!(daemon.logged("\"corrupt_events\":0"), "{}", daemon.text());
    rt.block_on(async {
        let o = settle(|| s.output("c"), |o| o["pending"] == 0).await;
        assert_balanced(&o);
        assert_eq!(o["delivered"], 200_000, "{o}");
    });
    let (received, duplicates, got) = check_batches(&c);
    assert_eq!((received, duplicates), (200_000, 0));
    assert_eq!(got, acked);
    let _ = std::fs::remove_dir_all(dir);
}

/// The segment files of `dir`'s pipeline `p`, oldest first.
fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut all: Vec<PathBuf> = std::fs::read_dir(dir.join("p"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    all.sort();
    all
}

#[test]
fn a_corrupted_and_a_truncated_segment_are_cut_and_counted_once_without_a_crash_loop() {
    let rt = Runtime::new().unwrap();
    let c = rt.block_on(Collector::start(Mode::Status(503)));
    let dir = temp_dir("durable-corrupt");
    let s = Setup::new(&dir, ", max_size: 512KB", &http_output("c", &c.url, 1000));
    let mut daemon = s.start();
    let acked = fill(&rt, &s, 60, 100);
    daemon.kill();
    let segs = segments(&dir);
    assert!(segs.len() >= 4, "{segs:?}");
    // A flipped byte in the middle of the second segment, the last one cut inside its last record.
    let mut bytes = std::fs::read(&segs[1]).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(&segs[1], &bytes).unwrap();
    let last = segs.last().unwrap();
    let len = std::fs::metadata(last).unwrap().len();
    let file = std::fs::OpenOptions::new().write(true).open(last).unwrap();
    file.set_len(len - 100).unwrap();
    drop(file);

    c.set(Mode::Ok);
    let mut daemon = s.start();
    daemon.wait_for("disk buffer replay done", READY);
    let cuts = daemon
        .lines()
        .iter()
        .filter(|l| l.contains("torn or corrupt tail cut"))
        .count();
    assert_eq!(cuts, 2, "{}", daemon.text());
    let o = rt.block_on(settle(|| s.output("c"), |o| o["pending"] == 0));
    assert_balanced(&o);
    let corrupt = o["dropped"]["corrupt"].as_u64().unwrap();
    let delivered = o["delivered"].as_u64().unwrap();
    assert!(
        corrupt > 100,
        "the torn record's 100 and the cut segment's rest: {o}\n{}",
        daemon.text()
    );
    assert_eq!(delivered + corrupt, acked.len() as u64, "{o}");
    let (_, duplicates, got) = check_batches(&c);
    assert_eq!(duplicates, 0);
    assert!(got.is_subset(&acked));
    assert_eq!(got.len() as u64, delivered);
    let metrics = rt.block_on(s.metrics());
    assert_eq!(
        metrics.value::<u64>(r#"seawall_buffer_corrupt_events_total{pipeline="p"}"#),
        corrupt
    );
    drop(daemon);

    // Started again: nothing cut, nothing counted twice, the figures kept.
    let mut daemon = s.start();
    daemon.wait_for("disk buffer replay done", READY);
    assert!(
        !daemon.logged("torn or corrupt tail cut"),
        "{}",
        daemon.text()
    );
    let again = rt.block_on(s.output("c"));
    assert_eq!(again["dropped"]["corrupt"], corrupt);
    assert_eq!(again["delivered"], delivered);
    assert_balanced(&again);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_full_buffer_sheds_ingest_with_503_and_accepts_again_once_the_output_drains() {
    let rt = Runtime::new().unwrap();
    let c = rt.block_on(Collector::start(Mode::Status(503)));
    let dir = temp_dir("durable-full");
    let s = Setup::new(&dir, ", max_size: 160KB", &http_output("c", &c.url, 1000));
    let _daemon_guard;
    let mut daemon = s.start();
    let acked = Mutex::new(Vec::new());
    rt.block_on(async {
        let (answer, n) = post_until_refused(&s, &acked).await;
        assert_eq!(answer.status, 503, "{}", answer.text());
        assert_eq!(answer.json()["error"]["type"], "buffer_full");
        assert_eq!(answer.header("retry-after"), Some("1"));
        let buffer = s.buffer().await;
        assert_eq!(buffer["state"], "full", "{buffer}");
        assert!(buffer["bytes"].as_u64().unwrap() <= 160 * 1024, "{buffer}");
        let metrics = s.metrics().await;
        assert_eq!(
            metrics.value::<u64>(r#"seawall_buffer_shedding{pipeline="p"}"#),
            1
        );
        assert_eq!(
            metrics.value::<u64>(
                r#"seawall_buffer_refused_requests_total{pipeline="p",reason="full"}"#
            ),
            1
        );
        daemon.wait_for("disk buffer full: shedding ingest", READY);

        c.set(Mode::Ok);
        eventually("ingest accepted again", || post_acked(&s, n, &acked)).await;
        daemon.wait_for("disk buffer accepting again", READY);
        let o = settle(|| s.output("c"), |o| o["pending"] == 0).await;
        assert_balanced(&o);
    });
    let acked: HashSet<u64> = acked.into_inner().unwrap().into_iter().collect();
    assert_eq!(check_batches(&c).2, acked);
    _daemon_guard = daemon;
    let _ = std::fs::remove_dir_all(dir);
}

/// How writes are made to fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Failing {
    /// A 192 KiB tmpfs mounted at the buffer directory in a namespace of the daemon's own
    /// (`unshare`: needs user namespaces): writes fail with ENOSPC once it is full.
    Tmpfs,
    /// `ulimit -f 128` (SIGXFSZ ignored): a write that would take a file past 64 KiB fails
    /// with EFBIG, as an injected I/O error any Linux machine can make.
    FileSizeLimit,
}

/// Whether this machine lets an unprivileged namespace mount a tmpfs at `dir`.
fn can_mount_tmpfs(dir: &Path) -> bool {
    Command::new("unshare")
        .args(["-rm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs \"$0\""])
        .arg(dir)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `seawall run -c config` with its buffer directory `dir` failing as `how` says.
fn failing_command(how: Failing, dir: &Path, config: &Path) -> Command {
    let mut command = match how {
        Failing::Tmpfs => {
            let mut c = Command::new("unshare");
            c.args([
                "-rm",
                "sh",
                "-c",
                "mount -t tmpfs -o size=192k tmpfs \"$0\" && exec \"$@\"",
            ])
            .arg(dir);
            c
        }
        Failing::FileSizeLimit => {
            let mut c = Command::new("sh");
            c.args(["-c", "trap '' XFSZ; ulimit -f 128 && exec \"$@\"", "sh"]);
            c
        }
    };
    command
        .arg(seawall().get_program())
        .args(["run", "--log-format", "json", "-c"])
        .arg(config)
        .env_remove("RUST_LOG")
        .env("SEAWALL_LOG", "info")
        .stdout(Stdio::null());
    command
}

#[test]
fn a_tmpfs_that_fills_sheds_ingest_and_the_daemon_keeps_running() {
    let probe = temp_dir("durable-probe");
    let how = if can_mount_tmpfs(&probe) {
        Failing::Tmpfs
    } else {
        println!("no tmpfs in a user namespace here: a file size limit fails the writes instead");
        Failing::FileSizeLimit
    };
    let _ = std::fs::remove_dir_all(probe);
    sheds_while_writes_fail(how);
}

#[test]
fn an_injected_write_failure_sheds_ingest_and_the_daemon_keeps_running() {
    sheds_while_writes_fail(Failing::FileSizeLimit);
}

fn sheds_while_writes_fail(how: Failing) {
    let rt = Runtime::new().unwrap();
    let c = rt.block_on(Collector::start(Mode::Status(503)));
    let dir = temp_dir("durable-enospc");
    let s = Setup::new(&dir, ", max_size: 1MB", &http_output("c", &c.url, 1000));
    let config = temp_path("enospc.yaml");
    std::fs::write(&config, &s.yaml).unwrap();
    std::fs::create_dir_all(dir.join("p")).unwrap();
    let mut daemon = Logged::spawn(failing_command(how, &dir.join("p"), &config));
    wait_ready(&mut daemon.child, s.admin, READY);
    let acked = Mutex::new(Vec::new());
    rt.block_on(async {
        let (answer, n) = post_until_refused(&s, &acked).await;
        assert_eq!(answer.status, 503, "{}", answer.text());
        assert_eq!(answer.json()["error"]["type"], "buffer_failing");
        assert_eq!(answer.header("retry-after"), Some("1"));
        assert_eq!(s.buffer().await["state"], "failing");
        let healthz = client::get(&format!("http://{}/healthz", s.admin)).await;
        assert_eq!(healthz.status, 200, "still running");
        daemon.wait_for("disk buffer write failed: shedding ingest", READY);
        let metrics = s.metrics().await;
        assert!(metrics.value::<u64>(r#"seawall_buffer_io_errors_total{pipeline="p"}"#) >= 1);

        c.set(Mode::Ok);
        eventually("ingest accepted again", || post_acked(&s, n, &acked)).await;
        assert_eq!(s.buffer().await["state"], "accepting");
        let o = settle(|| s.output("c"), |o| o["pending"] == 0).await;
        assert_balanced(&o);
    });
    let acked: HashSet<u64> = acked.into_inner().unwrap().into_iter().collect();
    assert_eq!(check_batches(&c).2, acked);
    assert!(daemon.child.try_wait().unwrap().is_none(), "never exited");
    drop(daemon);
    let _ = std::fs::remove_file(config);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_removed_output_is_counted_and_dropped_and_a_new_one_starts_at_the_tail() {
    let rt = Runtime::new().unwrap();
    let (a, b, new) = rt.block_on(async {
        (
            Collector::start(Mode::Status(503)).await,
            Collector::start(Mode::Status(503)).await,
            Collector::start(Mode::Ok).await,
        )
    });
    let dir = temp_dir("durable-outputs");
    let before = format!(
        "{}{}",
        http_output("a", &a.url, 1000),
        http_output("b", &b.url, 1000)
    );
    let s = Setup::new(&dir, "", &before);
    let mut daemon = s.start();
    fill(&rt, &s, 10, 10);
    daemon.kill();

    a.set(Mode::Ok);
    let after = format!(
        "{}{}",
        http_output("a", &a.url, 1000),
        http_output("c", &new.url, 1000)
    );
    let s = Setup {
        yaml: s.yaml.replace(&before, &after),
        ..s
    };
    let mut daemon = s.start();
    daemon.wait_for("output no longer configured: its cursor is dropped", READY);
    daemon.wait_for("new output starts at the disk buffer's tail", READY);
    assert!(!dir.join("p/b.cursor").exists());
    rt.block_on(async {
        for r in 0..5 {
            assert_eq!(post(&s.ingest_url(), 1000 + r * 10..1000 + (r + 1) * 10).await, Some(202));
        }
        let a_view = settle(|| s.output("a"), |o| o["delivered"] == 150).await;
        assert_balanced(&a_view);
        let c_view = settle(|| s.output("c"), |o| o["delivered"] == 50).await;
        assert_balanced(&c_view);
        assert_eq!(c_view["accepted"], 50, "only what arrived after it was added");
        let metrics = s.metrics().await;
        assert_eq!(
            metrics.value::<u64>(
                r#"seawall_output_dropped_events_total{pipeline="p",output="b",reason="output_removed"}"#
            ),
            100
        );
    });
    assert_eq!(check_batches(&a).2.len(), 150);
    assert_eq!(check_batches(&new).2, (1000..1050).collect());
    assert!(b.lines().is_empty());
    drop(daemon);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn an_event_acknowledged_for_a_file_output_survives_sigkill_with_sync_always() {
    let rt = Runtime::new().unwrap();
    let dir = temp_dir("durable-file");
    let file = dir.join("out.ndjson");
    let output = format!(
        "      - {{ name: f, type: file, path: '{}', batch: {{ max_events: 30, linger: 1s }} }}\n",
        file.display()
    );
    let s = Setup::new(&dir, ", sync: always", &output);
    let mut daemon = s.start();
    let acked = Arc::new(Mutex::new(Vec::new()));
    rt.block_on(async {
        assert_eq!(post(&s.ingest_url(), 0..10).await, Some(202));
        let syncs = s.metrics().await;
        assert!(
            syncs.value::<u64>(r#"seawall_buffer_syncs_total{pipeline="p"}"#) >= 1,
            "synced before the 202"
        );
        acked.lock().unwrap().extend(0..10);
        kill_while_posting(&s, &mut daemon, 1..3, 7, &acked, 700).await;
    });
    let _daemon = s.start();
    let o = rt.block_on(settle(|| s.output("f"), |o| o["pending"] == 0));
    assert_balanced(&o);
    let text = std::fs::read_to_string(&file).unwrap();
    let written: Vec<u64> = text.lines().map(seq).collect();
    let distinct: HashSet<u64> = written.iter().copied().collect();
    let acked: HashSet<u64> = acked.lock().unwrap().iter().copied().collect();
    println!(
        "acknowledged {}, lines in the file {}, duplicates {}",
        acked.len(),
        written.len(),
        written.len() - distinct.len()
    );
    assert!(
        acked.is_subset(&distinct),
        "every acknowledged event is in the file"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_second_daemon_on_the_same_buffer_directory_is_refused_and_the_first_keeps_running() {
    let dir = temp_dir("durable-lock");
    let first = Setup::new(&dir, "", "      - { name: o, type: blackhole }\n");
    let mut running = first.start();
    let second = Setup::new(&dir, "", "      - { name: o, type: blackhole }\n");
    let config = temp_path("lock.yaml");
    std::fs::write(&config, &second.yaml).unwrap();
    let out = seawall().args(["run", "-c"]).arg(&config).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "not a configuration error: {stderr}"
    );
    assert!(
        stderr.contains("another process holds the buffer directory"),
        "{stderr}"
    );
    assert!(running.child.try_wait().unwrap().is_none());
    running.kill();
    let _ = std::fs::remove_file(config);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_graceful_shutdown_keeps_undelivered_events_on_disk_instead_of_dropping_them() {
    let rt = Runtime::new().unwrap();
    let c = rt.block_on(Collector::start(Mode::Status(503)));
    let dir = temp_dir("durable-shutdown");
    let s = Setup::new(&dir, "", &http_output("c", &c.url, 1000));
    let mut daemon = s.start();
    fill(&rt, &s, 5, 10);
    let term = Command::new("kill")
        .args(["-TERM", &daemon.child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    daemon.wait_for("output stopped: final accounting", READY);
    let line = daemon
        .lines()
        .into_iter()
        .find(|l| l.contains("final accounting"))
        .unwrap();
    let fields = serde_json::from_str::<Value>(&line).unwrap()["fields"].clone();
    assert_eq!(
        (
            &fields["shutdown"],
            &fields["kept_on_disk"],
            &fields["delivered"]
        ),
        (&0.into(), &50.into(), &0.into()),
        "{line}"
    );
    assert!(daemon.child.wait().unwrap().success());

    c.set(Mode::Ok);
    let _daemon = s.start();
    let o = rt.block_on(settle(|| s.output("c"), |o| o["delivered"] == 50));
    assert_balanced(&o);
    assert_eq!(
        (&o["pending"], &o["dropped"]["total"]),
        (&0.into(), &0.into())
    );
    let _ = std::fs::remove_dir_all(dir);
}
