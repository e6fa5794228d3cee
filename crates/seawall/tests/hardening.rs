//! The gateway under hostile clients and flaky connections, over real sockets: idle and slow
//! clients are cut off by `server.timeouts`, a client that leaves cancels its upstream call,
//! client-side faults never count against a provider, `100 Continue` waits for every check, a
//! pooled connection the upstream closed is retried, hostile framing is refused, and
//! WebSockets tunnel through.

mod common;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::Message;

use common::daemon::Daemon;
use common::upstream::{MockUpstream, Reply};
use common::wait::{eventually, recv, within};
use common::wire::{ok, RawUpstream, Wire};

/// A daemon with one generic provider `up` at `upstream`; `extra` goes into `server:`.
async fn daemon(upstream: &str, extra: &str) -> Daemon {
    let yaml = format!(
        "server: {{ listen: 127.0.0.1:0, workers: 0, max_body: 1KB{extra} }}
admin: {{ listen: 127.0.0.1:0 }}
providers:
  - {{ name: up, kind: generic, base_url: '{upstream}', circuit_breaker: {{ failure_threshold: 1, open_timeout: 1h, open_timeout_max: 1h }} }}
"
    );
    Daemon::start(&yaml).await
}

/// The breaker of `up` × `endpoint` as `/v1/breakers` lists it.
async fn breaker(app: &Daemon, endpoint: &str) -> serde_json::Value {
    let list = app.admin_json("/v1/breakers").await;
    list.as_array()
        .unwrap()
        .iter()
        .find(|b| b["endpoint"] == endpoint)
        .cloned()
        .unwrap_or_else(|| panic!("no breaker for {endpoint}: {list}"))
}

/// Everything the peer sends until it closes, bounded.
async fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    within("the connection to close", async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => all.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    all
}

// ---------------------------------------------------------------------------------------
// Timeouts.
// ---------------------------------------------------------------------------------------

/// Found: an h2c connection that sent the preface and an empty SETTINGS frame was held
/// forever. Now it closes after `keepalive_idle` with no open stream.
#[tokio::test(start_paused = true)]
async fn an_idle_h2c_connection_is_closed_after_keepalive_idle() {
    let up = MockUpstream::start(Reply::ok()).await;
    let app = daemon(&up.url(), ", timeouts: { keepalive_idle: 5s }").await;
    let mut attacker = TcpStream::connect(app.gateway_addr()).await.unwrap();
    let empty_settings = [0u8, 0, 0, 4, 0, 0, 0, 0, 0];
    attacker
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    attacker.write_all(&empty_settings).await.unwrap();
    let started = tokio::time::Instant::now();
    let sent = read_to_close(&mut attacker).await;
    let waited = started.elapsed();
    assert!(!sent.is_empty(), "the server spoke h2 first (its SETTINGS)");
    assert!(
        waited >= Duration::from_secs(5) && waited < Duration::from_secs(7),
        "closed after {waited:?}"
    );
}

/// The h2c listener advertises `server.h2.max_concurrent_streams` and a bounded header list.
#[tokio::test]
async fn h2c_advertises_the_configured_stream_limit() {
    let up = MockUpstream::start(Reply::ok()).await;
    let app = daemon(&up.url(), ", h2: { max_concurrent_streams: 7 }").await;
    let mut client = TcpStream::connect(app.gateway_addr()).await.unwrap();
    client
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .unwrap();
    let mut frame = [0u8; 9];
    within("the server's SETTINGS", client.read_exact(&mut frame))
        .await
        .unwrap();
    assert_eq!(frame[3], 4, "a SETTINGS frame first");
    let len = u32::from_be_bytes([0, frame[0], frame[1], frame[2]]) as usize;
    let mut payload = vec![0u8; len];
    client.read_exact(&mut payload).await.unwrap();
    let settings: Vec<(u16, u32)> = payload
        .chunks(6)
        .map(|s| {
            (
                u16::from_be_bytes([s[0], s[1]]),
                u32::from_be_bytes([s[2], s[3], s[4], s[5]]),
            )
        })
        .collect();
    assert!(settings.contains(&(0x3, 7)), "{settings:?}");
    assert!(settings.contains(&(0x6, 64 * 1024)), "{settings:?}");
}

/// Found: a body trickled or stalled held the connection (and a half-sent upstream request,
/// and the breaker's permit) forever. Now a pause longer than `request_body_idle` gets 408, the
/// connection closes, nothing reached the upstream, and the breaker counts nothing.
#[tokio::test(start_paused = true)]
async fn a_stalled_request_body_gets_408_and_never_reaches_the_upstream() {
    let up = MockUpstream::start(Reply::ok()).await;
    let app = daemon(&up.url(), ", timeouts: { request_body_idle: 10s }").await;
    let mut client = Wire::connect(app.gateway_addr()).await;
    client
        .send(b"POST /up/v1/x HTTP/1.1\r\nhost: gw\r\ncontent-length: 100\r\n\r\n{\"a\":")
        .await;
    let started = tokio::time::Instant::now();
    let reply = client.response("POST").await;
    let waited = started.elapsed();
    assert_eq!(reply.head.status, 408, "{reply:?}");
    assert_eq!(reply.json()["error"]["type"], "request_timeout");
    assert!(
        waited >= Duration::from_secs(10) && waited < Duration::from_secs(12),
        "answered after {waited:?}"
    );
    client.assert_closed().await;
    assert_eq!(up.count(), 0);
    let b = breaker(&app, "/v1/x").await;
    assert_eq!(b["state"], "closed", "{b}");
    assert_eq!(b["counts"]["window_failures"], 0, "{b}");
}

/// Found (issue 14): an ingest body that stalled was waited for forever, and `100 Continue`
/// went out before a body too large for the pipeline was refused. Now ingest, on the same
/// port, gets 408 after `request_body_idle` with nothing accepted, and an oversized body is
/// refused with 413 before any `100 Continue`.
#[tokio::test(start_paused = true)]
async fn a_stalled_ingest_body_gets_408_and_an_oversized_one_413_without_100_continue() {
    let app = Daemon::start(
        "server: { listen: 127.0.0.1:0, workers: 0, timeouts: { request_body_idle: 10s } }
admin: { listen: 127.0.0.1:0 }
pipelines:
  - { name: p, max_body: 1KB, outputs: [ { name: sink, type: blackhole } ] }
",
    )
    .await;
    let mut client = Wire::connect(app.gateway_addr()).await;
    client
        .send(b"POST /ingest/p HTTP/1.1\r\nhost: gw\r\ncontent-type: application/x-ndjson\r\ncontent-length: 100\r\n\r\n{\"a\":")
        .await;
    let started = tokio::time::Instant::now();
    let reply = client.response("POST").await;
    assert_eq!(reply.head.status, 408, "{reply:?}");
    assert!(started.elapsed() >= Duration::from_secs(10));
    client.assert_closed().await;

    let mut client = Wire::connect(app.gateway_addr()).await;
    client
        .send(b"POST /ingest/p HTTP/1.1\r\nhost: gw\r\ncontent-type: application/x-ndjson\r\ncontent-length: 4096\r\nexpect: 100-continue\r\n\r\n")
        .await;
    let reply = client.response("POST").await;
    assert_eq!(reply.head.status, 413, "no 100 Continue first: {reply:?}");

    let pipelines = app.admin_json("/v1/pipelines").await;
    assert_eq!(pipelines[0]["accepted"], 0, "{pipelines}");
}

/// Found: a client that stopped reading a streamed answer held it forever. Now the
/// connection is dropped once a write waits longer than `response_write_idle`.
#[tokio::test(start_paused = true)]
async fn a_client_that_stops_reading_is_dropped_after_response_write_idle() {
    // An upstream that streams far more than socket buffers hold.
    let up = RawUpstream::start(|mut wire: Wire| async move {
        wire.request_head().await;
        let mut head =
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
                .to_vec();
        head.extend_from_slice(b"10000\r\n");
        if !wire.try_send(&head).await {
            return;
        }
        let chunk = vec![b'x'; 0x10000];
        loop {
            if !wire.try_send(&chunk).await || !wire.try_send(b"\r\n10000\r\n").await {
                return;
            }
        }
    })
    .await;
    let app = daemon(
        &format!("http://{}", up.addr),
        ", timeouts: { response_write_idle: 5s }",
    )
    .await;
    let mut client = TcpStream::connect(app.gateway_addr()).await.unwrap();
    client
        .write_all(b"GET /up/stream HTTP/1.1\r\nhost: gw\r\n\r\n")
        .await
        .unwrap();
    // Read nothing for longer than the timeout, then drain: the stream ends early.
    tokio::time::sleep(Duration::from_secs(30)).await;
    let got = read_to_close(&mut client).await;
    assert!(got.starts_with(b"HTTP/1.1 200 OK"), "the answer began");
    assert!(
        got.len() < 64 << 20,
        "read {} bytes: it never stopped",
        got.len()
    );
}

// ---------------------------------------------------------------------------------------
// Clients that leave.
// ---------------------------------------------------------------------------------------

/// An upstream that reads one request, then reports when the gateway closes that
/// connection (the call was cancelled) without ever answering.
async fn cancellable_upstream() -> (RawUpstream, mpsc::UnboundedReceiver<&'static str>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let up = RawUpstream::start(move |mut wire: Wire| {
        let tx = tx.clone();
        async move {
            if wire.request_head().await.is_some() {
                let _ = tx.send("request");
                wire.rest().await;
                let _ = tx.send("closed");
            }
        }
    })
    .await;
    (up, rx)
}

/// Found: a client that left 0.5 s into a slow request left the upstream request running (and
/// billing) to its end. Now the upstream connection closes at once, the disconnect is counted,
/// and the provider is not blamed.
#[tokio::test]
async fn a_client_that_leaves_cancels_its_upstream_request() {
    let (up, mut events) = cancellable_upstream().await;
    let app = daemon(&format!("http://{}", up.addr), "").await;
    let mut client = Wire::connect(app.gateway_addr()).await;
    client
        .send(b"POST /up/v1/messages HTTP/1.1\r\nhost: gw\r\ncontent-length: 2\r\n\r\n{}")
        .await;
    assert_eq!(recv(&mut events, "the request upstream").await, "request");
    drop(client);
    assert_eq!(
        recv(&mut events, "the upstream request cancelled").await,
        "closed"
    );
    eventually("the disconnect counted", || async {
        app.metrics()
            .await
            .contains(r#"seawall_client_disconnects_total{provider="up"} 1"#)
    })
    .await;
    let b = breaker(&app, "/v1/messages").await;
    assert_eq!(b["state"], "closed", "{b}");
    assert_eq!(b["counts"]["window_failures"], 0, "{b}");
}

/// The same while an event stream is flowing: the client leaves, the upstream stream is cut.
#[tokio::test]
async fn a_client_that_leaves_a_stream_cancels_it_upstream() {
    let (tx, mut events) = mpsc::unbounded_channel();
    let up = RawUpstream::start(move |mut wire: Wire| {
        let tx = tx.clone();
        async move {
            wire.request_head().await;
            let first = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
                          transfer-encoding: chunked\r\n\r\n9\r\ndata: 1\n\n\r\n";
            wire.send(first).await;
            let _ = tx.send("streaming");
            wire.rest().await;
            let _ = tx.send("closed");
        }
    })
    .await;
    let app = daemon(&format!("http://{}", up.addr), "").await;
    let mut client = Wire::connect(app.gateway_addr()).await;
    client
        .send(b"GET /up/v1/stream HTTP/1.1\r\nhost: gw\r\n\r\n")
        .await;
    assert_eq!(recv(&mut events, "the stream started").await, "streaming");
    let head = client.response_head().await;
    assert_eq!(head.status, 200);
    drop(client);
    assert_eq!(recv(&mut events, "the stream cut upstream").await, "closed");
    eventually("the disconnect counted", || async {
        app.metrics()
            .await
            .contains(r#"seawall_client_disconnects_total{provider="up"} 1"#)
    })
    .await;
}

// ---------------------------------------------------------------------------------------
// 100 Continue.
// ---------------------------------------------------------------------------------------

/// Sends a head with `expect: 100-continue` and returns the first answer's status, asserting
/// no `100 Continue` came before it.
async fn first_answer_to_expect(app: &Daemon, head: &str) -> u16 {
    let mut client = Wire::connect(app.gateway_addr()).await;
    client.send(head.as_bytes()).await;
    let first = client.response_head().await;
    assert_ne!(first.status, 100, "invited to upload: {head}");
    first.status
}

/// Found: `100 Continue` went out before auth, routing, admission and the size check, so a
/// client that would be refused was invited to upload first. Now only an acceptable request
/// gets it.
#[tokio::test]
async fn expect_100_continue_is_answered_only_after_every_check_passes() {
    let up = MockUpstream::start(Reply::ok()).await;
    up.route("/fail", Reply::overloaded());
    let yaml = format!(
        "server: {{ listen: 127.0.0.1:0, workers: 0, max_body: 1KB }}
admin: {{ listen: 127.0.0.1:0 }}
auth: {{ tokens_env: [TOKEN] }}
providers:
  - {{ name: up, kind: generic, base_url: '{}', circuit_breaker: {{ failure_threshold: 1, open_timeout: 1h, open_timeout_max: 1h }} }}
",
        up.url()
    );
    let app = Daemon::start_with_env(&yaml, &[("TOKEN", "t0ken")]).await;
    let expect = |path: &str, auth: bool, length: usize| {
        let auth = if auth {
            "authorization: Bearer t0ken\r\n"
        } else {
            ""
        };
        format!(
            "POST {path} HTTP/1.1\r\nhost: gw\r\n{auth}content-length: {length}\r\nexpect: 100-continue\r\n\r\n"
        )
    };
    assert_eq!(
        first_answer_to_expect(&app, &expect("/up/v1/x", false, 2)).await,
        401
    );
    assert_eq!(
        first_answer_to_expect(&app, &expect("/nope/v1/x", true, 2)).await,
        404
    );
    assert_eq!(
        first_answer_to_expect(&app, &expect("/up/v1/x", true, 4096)).await,
        413
    );
    // Trip `/fail`'s breaker, then ask to upload to it.
    let trip = "GET /up/fail HTTP/1.1\r\nhost: gw\r\nauthorization: Bearer t0ken\r\n\r\n";
    let mut client = Wire::connect(app.gateway_addr()).await;
    client.send(trip.as_bytes()).await;
    assert_eq!(client.response("GET").await.head.status, 503);
    assert_eq!(
        first_answer_to_expect(&app, &expect("/up/fail", true, 2)).await,
        503
    );
    // A request that passes every check is invited, then served.
    let mut client = Wire::connect(app.gateway_addr()).await;
    client.send(expect("/up/v1/x", true, 2).as_bytes()).await;
    assert_eq!(client.response_head().await.status, 100);
    client.send(b"{}").await;
    assert_eq!(client.response("POST").await.head.status, 200);
    assert_eq!(up.hits("/v1/x"), 1);
}

// ---------------------------------------------------------------------------------------
// Upstream connections.
// ---------------------------------------------------------------------------------------

/// Found: a pooled connection the upstream closed just as it was reused gave the client a 502
/// and counted a breaker failure. Now the request is sent again once, on a fresh connection.
#[tokio::test]
async fn a_pooled_connection_the_upstream_closed_is_retried_once_on_a_fresh_one() {
    // The first connection answers one request, then closes on the next without answering
    // (the race of a server closing an idle connection as it is reused).
    let up = RawUpstream::start(|mut wire: Wire| async move {
        let mut answered = 0;
        while let Some(head) = wire.request_head().await {
            let body = wire.body(head.request_framing(), None).await;
            if answered == 1 {
                return;
            }
            answered += 1;
            wire.send(&ok(&body)).await;
        }
    })
    .await;
    let app = daemon(&format!("http://{}", up.addr), "").await;
    let mut client = Wire::connect(app.gateway_addr()).await;
    for body in ["one", "two"] {
        let req = format!("POST /up/v1/x HTTP/1.1\r\nhost: gw\r\ncontent-length: 3\r\n\r\n{body}");
        client.send(req.as_bytes()).await;
        let reply = client.response("POST").await;
        assert_eq!((reply.head.status, reply.text()), (200, body.to_owned()));
    }
    assert_eq!(
        up.accepts(),
        2,
        "the second request went on a fresh connection"
    );
    let b = breaker(&app, "/v1/x").await;
    assert_eq!(b["counts"]["window_failures"], 0, "{b}");
}

/// Found: an HTTP/1.0 response with `transfer-encoding` was decoded and its connection reused.
/// RFC 9112 §6.1: the connection cannot be trusted after it; it is not reused.
#[tokio::test]
async fn an_http10_response_with_transfer_encoding_does_not_keep_its_connection() {
    let up = RawUpstream::start(|mut wire: Wire| async move {
        wire.request_head().await;
        wire.send(
            b"HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ntransfer-encoding: chunked\r\n\r\n\
              5\r\nhello\r\n0\r\n\r\n",
        )
        .await;
    })
    .await;
    let app = daemon(&format!("http://{}", up.addr), "").await;
    for _ in 0..2 {
        let mut client = Wire::connect(app.gateway_addr()).await;
        client
            .send(b"GET /up/old HTTP/1.1\r\nhost: gw\r\n\r\n")
            .await;
        let reply = client.response("GET").await;
        assert_eq!(reply.head.status, 200);
        assert_eq!(reply.text(), "hello");
    }
    assert_eq!(up.accepts(), 2, "never reused");
}

/// Found: an upstream's invalid `content-length` on a HEAD answer reached the client
/// verbatim. Now it is an invalid upstream response (502).
#[tokio::test]
async fn an_invalid_upstream_content_length_on_head_is_a_502() {
    let up = RawUpstream::start(|mut wire: Wire| async move {
        wire.request_head().await;
        wire.send(b"HTTP/1.1 200 OK\r\ncontent-length: 12abc\r\n\r\n")
            .await;
        wire.rest().await;
    })
    .await;
    let app = daemon(&format!("http://{}", up.addr), "").await;
    let mut client = Wire::connect(app.gateway_addr()).await;
    client
        .send(b"HEAD /up/x HTTP/1.1\r\nhost: gw\r\n\r\n")
        .await;
    let reply = client.response("HEAD").await;
    assert_eq!(reply.head.status, 502, "{reply:?}");
    assert!(reply
        .head
        .header("content-length")
        .is_none_or(|l| l != "12abc"));
}

/// A `101` to an upgrade now opens a tunnel (see the WebSocket tests); a `101` to a request
/// that asked for none is the upstream breaking the protocol: a 502, counted like any broken
/// answer.
#[tokio::test]
async fn an_unasked_upstream_101_is_a_502() {
    let up = RawUpstream::start(|mut wire: Wire| async move {
        wire.request_head().await;
        wire.send(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: x\r\nconnection: upgrade\r\n\r\n")
            .await;
        wire.rest().await;
    })
    .await;
    let app = daemon(&format!("http://{}", up.addr), "").await;
    let mut client = Wire::connect(app.gateway_addr()).await;
    client.send(b"GET /up/x HTTP/1.1\r\nhost: gw\r\n\r\n").await;
    assert_eq!(client.response("GET").await.head.status, 502);
    let b = breaker(&app, "/x").await;
    assert_eq!(b["counts"]["trips"], 1, "{b}");
}

// ---------------------------------------------------------------------------------------
// Hostile framing.
// ---------------------------------------------------------------------------------------

/// Found: `transfer-encoding: gzip, chunked` was accepted and the gzip silently dropped. Now
/// a transfer coding the gateway cannot pass on is refused with 501, before the upstream.
#[tokio::test]
async fn a_request_transfer_coding_other_than_chunked_is_501() {
    let up = MockUpstream::start(Reply::ok()).await;
    let app = daemon(&up.url(), "").await;
    let mut client = Wire::connect(app.gateway_addr()).await;
    client
        .send(
            b"POST /up/x HTTP/1.1\r\nhost: gw\r\ntransfer-encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        )
        .await;
    let reply = client.response("POST").await;
    assert_eq!(reply.head.status, 501, "{reply:?}");
    assert_eq!(up.count(), 0);
}

/// Found: `Transfer_Encoding` and `Content_Length` (underscores) were forwarded beside the
/// gateway's own framing. Now they are dropped both ways.
#[tokio::test]
async fn underscore_spellings_of_framing_fields_are_dropped_both_ways() {
    let (tx, mut seen) = mpsc::unbounded_channel();
    let up = RawUpstream::start(move |mut wire: Wire| {
        let tx = tx.clone();
        async move {
            let head = wire.request_head().await.unwrap();
            let body = wire.body(head.request_framing(), None).await;
            let _ = tx.send((head, body));
            wire.send(b"HTTP/1.1 200 OK\r\nContent_Length: 99\r\nTransfer_Encoding: chunked\r\ncontent-length: 2\r\n\r\nok")
                .await;
        }
    })
    .await;
    let app = daemon(&format!("http://{}", up.addr), "").await;
    let mut client = Wire::connect(app.gateway_addr()).await;
    client
        .send(b"POST /up/x HTTP/1.1\r\nhost: gw\r\nTransfer_Encoding: chunked\r\nContent_Length: 0\r\ncontent-length: 5\r\n\r\nhello")
        .await;
    let (head, body) = recv(&mut seen, "the request upstream").await;
    assert_eq!(body, b"hello");
    assert!(head.header("transfer_encoding").is_none(), "{head:?}");
    assert!(head.header("content_length").is_none(), "{head:?}");
    let reply = client.response("POST").await;
    assert_eq!(reply.text(), "ok");
    assert!(
        reply.head.header("content_length").is_none(),
        "{:?}",
        reply.head
    );
    assert!(
        reply.head.header("transfer_encoding").is_none(),
        "{:?}",
        reply.head
    );
}

/// Found: an unsupported HTTP version got 400. Now 505.
#[tokio::test]
async fn an_unsupported_http_version_is_505() {
    let up = MockUpstream::start(Reply::ok()).await;
    let app = daemon(&up.url(), "").await;
    let mut client = Wire::connect(app.gateway_addr()).await;
    client.send(b"GET /up/x HTTP/1.2\r\nhost: gw\r\n\r\n").await;
    let reply = client.response("GET").await;
    assert_eq!(reply.head.status, 505, "{reply:?}");
}

// ---------------------------------------------------------------------------------------
// WebSockets.
// ---------------------------------------------------------------------------------------

/// A WebSocket server on loopback that echoes every message, and reports the headers of each
/// handshake it accepted.
async fn echo_websocket() -> (String, mpsc::UnboundedReceiver<http::HeaderMap>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                #[allow(clippy::result_large_err)] // tungstenite's own callback type
                let callback = |req: &Request, resp: Response| {
                    let _ = tx.send(req.headers().clone());
                    Ok(resp)
                };
                let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
                    return;
                };
                while let Some(Ok(message)) = ws.next().await {
                    if message.is_close() || ws.send(message).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (format!("http://{addr}"), rx)
}

/// Found: `upgrade` was stripped, so the OpenAI Realtime API (`GET /v1/realtime`, `Upgrade:
/// websocket`) could not pass. Now the handshake goes upstream with the provider's key, the
/// `101` opens a tunnel both ways, it is counted while open, and the breaker sees a success.
#[tokio::test]
async fn a_websocket_tunnels_through_with_the_provider_key() {
    let (upstream, mut handshakes) = echo_websocket().await;
    let yaml = format!(
        "server: {{ listen: 127.0.0.1:0, workers: 0 }}
admin: {{ listen: 127.0.0.1:0 }}
auth: {{ tokens_env: [TOKEN] }}
providers:
  - {{ name: realtime, kind: openai, base_url: '{upstream}', api_key_env: KEY }}
"
    );
    let app = Daemon::start_with_env(&yaml, &[("TOKEN", "client"), ("KEY", "sk-up")]).await;
    let url = format!(
        "ws://{}/realtime/v1/realtime?model=gpt-realtime",
        app.gateway_addr()
    );
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", "Bearer client".parse().unwrap());
    let (mut ws, response) = within(
        "the WebSocket handshake",
        tokio_tungstenite::connect_async(request),
    )
    .await
    .expect("the handshake passes the gateway");
    assert_eq!(response.status(), 101);
    let seen = recv(&mut handshakes, "the handshake upstream").await;
    assert_eq!(
        seen["authorization"], "Bearer sk-up",
        "the provider's key, not the client's"
    );
    assert!(seen.contains_key("sec-websocket-key"));
    for text in ["hello", "again"] {
        ws.send(Message::text(text)).await.unwrap();
        let echoed = within("the echo", ws.next()).await.unwrap().unwrap();
        assert_eq!(echoed, Message::text(text));
    }
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(r#"seawall_websocket_tunnels{provider="realtime"} 1"#),
        "{metrics}"
    );
    ws.close(None).await.unwrap();
    while let Some(Ok(_)) = within("the close handshake", ws.next()).await {}
    drop(ws);
    eventually("the tunnel closed", || async {
        app.metrics()
            .await
            .contains(r#"seawall_websocket_tunnels{provider="realtime"} 0"#)
    })
    .await;
    let metrics = app.metrics().await;
    let handshakes = r#"seawall_upstream_requests_total{provider="realtime",endpoint="/v1/realtime",code="101"} 1"#;
    assert!(metrics.contains(handshakes), "{metrics}");
    let b = breaker(&app, "/v1/realtime").await;
    assert_eq!(b["state"], "closed", "{b}");
    assert_eq!(b["counts"]["consecutive_failures"], 0, "{b}");
}

/// A refused upgrade (the upstream answers 401) is an ordinary answer: no tunnel.
#[tokio::test]
async fn a_refused_upgrade_is_passed_on_as_an_answer() {
    let up = MockUpstream::start(Reply::status(401).json(r#"{"error":"no"}"#)).await;
    let app = daemon(&up.url(), "").await;
    let mut client = Wire::connect(app.gateway_addr()).await;
    client
        .send(b"GET /up/ws HTTP/1.1\r\nhost: gw\r\nconnection: upgrade\r\nupgrade: websocket\r\nsec-websocket-key: x\r\nsec-websocket-version: 13\r\n\r\n")
        .await;
    let reply = client.response("GET").await;
    assert_eq!(reply.head.status, 401);
}

/// Found: the breaker's permit was taken before the body was read, so a slow uploader held the
/// only half-open probe (and an upstream timeout then counted against the provider). Now the
/// body is read first: another client's request gets the probe and closes the breaker.
#[tokio::test(start_paused = true)]
async fn a_slow_uploader_does_not_hold_the_half_open_probe() {
    let up = MockUpstream::start(Reply::ok()).await;
    up.push(Reply::overloaded());
    let yaml = format!(
        "server: {{ listen: 127.0.0.1:0, workers: 0 }}
admin: {{ listen: 127.0.0.1:0 }}
providers:
  - {{ name: up, kind: generic, base_url: '{}', circuit_breaker: {{ failure_threshold: 1, open_timeout: 1s, half_open_max_calls: 1, jitter: 0 }} }}
",
        up.url()
    );
    let app = Daemon::start(&yaml).await;
    let mut trip = Wire::connect(app.gateway_addr()).await;
    trip.send(b"GET /up/v1/x HTTP/1.1\r\nhost: gw\r\n\r\n")
        .await;
    assert_eq!(trip.response("GET").await.head.status, 503);
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Half-open now, with room for one probe. A slow uploader starts first...
    let mut slow = Wire::connect(app.gateway_addr()).await;
    slow.send(b"POST /up/v1/x HTTP/1.1\r\nhost: gw\r\ncontent-length: 9\r\n\r\n{")
        .await;
    tokio::task::yield_now().await;
    // ...and a whole request that arrives after it still gets the probe.
    let mut quick = Wire::connect(app.gateway_addr()).await;
    quick
        .send(b"POST /up/v1/x HTTP/1.1\r\nhost: gw\r\ncontent-length: 2\r\n\r\n{}")
        .await;
    assert_eq!(quick.response("POST").await.head.status, 200);
    assert_eq!(breaker(&app, "/v1/x").await["state"], "closed");
    slow.send(b"\"a\": 1 }").await;
    assert_eq!(slow.response("POST").await.head.status, 200);
}

/// The h2c path has the same body bound: a request body that pauses longer than
/// `request_body_idle` fails with 408, and the upstream never sees it.
#[tokio::test]
async fn an_h2c_request_body_that_stalls_gets_408() {
    use http_body_util::BodyExt;
    let up = MockUpstream::start(Reply::ok()).await;
    let app = daemon(&up.url(), ", timeouts: { request_body_idle: 200ms }").await;
    let stream = TcpStream::connect(app.gateway_addr()).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let (mut tx, body) =
        http_body_util::channel::Channel::<bytes::Bytes, std::convert::Infallible>::new(1);
    let req = http::Request::post(format!("http://{}/up/v1/x", app.gateway_addr()))
        .body(body)
        .unwrap();
    let answer = tokio::spawn(async move { send.send_request(req).await });
    tx.send_data(bytes::Bytes::from_static(b"{")).await.unwrap();
    let resp = within("the h2 answer", answer).await.unwrap().unwrap();
    assert_eq!(resp.status(), 408);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("request_timeout"));
    assert_eq!(up.count(), 0);
    drop(tx);
}
