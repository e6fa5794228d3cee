//! The gateway listener on `server.workers` threads, each with its own single-threaded tokio
//! runtime, all accepting from one listening socket, as nginx runs its worker processes. A
//! [`Balance`] keeps their connection counts within a small slack of each other (with
//! `SO_REUSEPORT` the kernel would assign connections by address hash, blind to load).
//!
//! A connection lives on one thread from accept to close, with its upstream connections
//! (the client keeps one idle pool stripe per thread). Nothing is handed between threads on
//! the request path and no thread parks while another holds the readiness events: with
//! tokio's shared work-stealing scheduler the same gateway left 5–8 % of two cores idle
//! under load (BENCHMARKS.md). Everything else (admin, pipelines, tickers) stays on the
//! main runtime.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use http::Request;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{oneshot, Semaphore};

use super::tls::TlsAcceptor;
use super::{serve_with_slots, Balance, Limits};
use crate::message::{Reply, RequestBody};

/// Most connections waiting to be accepted.
const BACKLOG: u32 = 1024;

/// One listening socket on `addr`, shared by `count` handles (duplicated descriptors), ready
/// to be moved to worker threads.
pub(crate) fn bind(addr: SocketAddr, count: usize) -> io::Result<Vec<std::net::TcpListener>> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    let listener = socket.listen(BACKLOG)?.into_std()?;
    let mut handles = Vec::with_capacity(count.max(1));
    for _ in 1..count.max(1) {
        handles.push(listener.try_clone()?);
    }
    handles.push(listener);
    Ok(handles)
}

/// The listener threads' settings.
pub(crate) struct Workers<S, T> {
    /// Makes, once per thread, the future that resolves when that thread should stop.
    pub(crate) shutdown: S,
    /// Runs first on each worker thread, with its index (the daemon gives each thread its own
    /// upstream connection pool stripe).
    pub(crate) on_thread_start: T,
    pub(crate) limits: Limits,
    /// The listener's TLS, shared by every thread (it is served in plaintext without).
    pub(crate) tls: Option<Arc<TlsAcceptor>>,
    /// One connection count per listener.
    pub(crate) balance: Arc<Balance>,
}

/// Serves `listeners` (from [`bind`]), one thread each, until `workers.shutdown()`'s future
/// resolves on every thread; the connection limit is shared, and the balance spreads the
/// connections. Resolves when all threads have drained.
pub(crate) async fn serve<H, F, S, SF, T>(
    listeners: Vec<std::net::TcpListener>,
    handler: H,
    workers: Workers<S, T>,
) where
    H: Fn(Request<RequestBody>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Reply> + Send + 'static,
    S: Fn() -> SF,
    SF: Future<Output = ()> + Send + 'static,
    T: Fn(usize) + Clone + Send + 'static,
{
    let Workers {
        shutdown,
        on_thread_start,
        limits,
        tls,
        balance,
    } = workers;
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut finished = Vec::with_capacity(listeners.len());
    for (index, listener) in listeners.into_iter().enumerate() {
        let (done, finish) = oneshot::channel::<()>();
        let (handler, slots, stop, tls) = (handler.clone(), slots.clone(), shutdown(), tls.clone());
        let worker = Some((balance.clone(), index));
        let retire = balance.clone();
        let on_thread_start = on_thread_start.clone();
        let started = std::thread::Builder::new()
            .name(format!("seawall-gw-{index}"))
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        tracing::error!(%error, "cannot start a gateway worker runtime");
                        retire.retire(index);
                        return;
                    }
                };
                on_thread_start(index);
                runtime.block_on(async move {
                    match TcpListener::from_std(listener) {
                        Ok(listener) => {
                            serve_with_slots(listener, tls, handler, stop, limits, slots, worker)
                                .await;
                        }
                        Err(error) => {
                            tracing::error!(%error, "cannot register a gateway listener");
                            retire.retire(index);
                        }
                    }
                });
                let _ = done.send(());
            });
        match started {
            Ok(_) => finished.push(finish),
            Err(error) => {
                tracing::error!(%error, "cannot start a gateway worker thread");
                balance.retire(index);
            }
        }
    }
    for finish in finished {
        let _ = finish.await;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use prometheus_client::metrics::gauge::Gauge;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio::sync::broadcast;

    use super::*;
    use crate::message::full;
    use crate::server::tests::get;
    use http::Response;

    fn balance(workers: usize) -> Arc<Balance> {
        Balance::new((0..workers).map(|_| Gauge::default()).collect())
    }

    /// Serves `listeners` with a handler that answers with its thread's name, until the
    /// returned sender sends.
    fn serve_thread_names(
        listeners: Vec<std::net::TcpListener>,
        balance: Arc<Balance>,
    ) -> (broadcast::Sender<()>, tokio::task::JoinHandle<()>) {
        let (stop, _) = broadcast::channel::<()>(1);
        let stopper = stop.clone();
        let limits = Limits::new(64, Duration::from_secs(5));
        let workers = Workers {
            shutdown: move || {
                let mut stopped = stopper.subscribe();
                async move {
                    let _ = stopped.recv().await;
                }
            },
            on_thread_start: |_| {},
            limits,
            tls: None,
            balance,
        };
        let server = tokio::spawn(serve(
            listeners,
            |_req, _remote| async {
                let thread = std::thread::current().name().unwrap_or("?").to_owned();
                Reply::from(Response::new(full(thread)))
            },
            workers,
        ));
        (stop, server)
    }

    /// Stops the workers and waits until every one has drained.
    async fn stop_and_drain(stop: broadcast::Sender<()>, server: tokio::task::JoinHandle<()>) {
        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(10), server)
            .await
            .expect("every worker drains")
            .unwrap();
    }

    /// Sends `GET /` on `stream` (kept open) and returns the response body.
    async fn body_of_get(stream: &mut TcpStream) -> String {
        stream
            .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = Vec::new();
        loop {
            let mut chunk = [0u8; 512];
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&buf));
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf);
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .and_then(|n| n.parse::<usize>().ok())
                    .expect("a content-length");
                if body.len() >= length {
                    return body.to_owned();
                }
            }
        }
    }

    #[tokio::test]
    async fn workers_share_one_port_answer_on_their_own_threads_and_drain_on_shutdown() {
        let listeners = bind("127.0.0.1:0".parse().unwrap(), 3).unwrap();
        let addr = listeners[0].local_addr().unwrap();
        assert!(listeners.iter().all(|l| l.local_addr().unwrap() == addr));
        let (stop, server) = serve_thread_names(listeners, balance(3));
        let clients: Vec<_> = (0..24).map(|_| tokio::spawn(get(addr))).collect();
        for client in clients {
            let answer = client.await.unwrap().unwrap();
            assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
            assert!(
                answer.contains("seawall-gw-"),
                "not on a worker thread: {answer}"
            );
        }
        stop_and_drain(stop, server).await;
        assert!(TcpStream::connect(addr).await.is_err(), "still accepting");
    }

    #[tokio::test]
    async fn a_burst_of_connections_is_spread_over_the_workers() {
        let listeners = bind("127.0.0.1:0".parse().unwrap(), 3).unwrap();
        let addr = listeners[0].local_addr().unwrap();
        let counts = balance(3);
        let (stop, server) = serve_thread_names(listeners, counts.clone());
        // 24 connections opened at once and all kept open: a worker never accepts while it
        // holds more than the least busy one plus the slack, so none can take most of them.
        let mut streams = Vec::new();
        for _ in 0..24 {
            streams.push(TcpStream::connect(addr).await.unwrap());
        }
        let mut per_worker = std::collections::BTreeMap::<String, usize>::new();
        for stream in &mut streams {
            *per_worker.entry(body_of_get(stream).await).or_default() += 1;
        }
        assert_eq!(per_worker.len(), 3, "{per_worker:?}");
        assert!(
            per_worker.values().all(|&n| (7..=10).contains(&n)),
            "{per_worker:?}"
        );
        // The counts (exported per worker as a metric) match.
        for (worker, n) in per_worker {
            let index: usize = worker.trim_start_matches("seawall-gw-").parse().unwrap();
            assert_eq!(counts.open(index), n as i64);
        }
        drop(streams);
        stop_and_drain(stop, server).await;
        assert!((0..3).all(|worker| counts.open(worker) == 0));
    }
}
