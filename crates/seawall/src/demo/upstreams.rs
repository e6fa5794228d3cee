//! The simulated Anthropic- and OpenAI-shaped upstreams: real HTTP servers that answer
//! Messages / Chat Completions requests (plain JSON or SSE) and follow the run's phases:
//! healthy, overload storm (529 `overloaded_error` / 429 `rate_limit_exceeded` with
//! `retry-after`), slow, recovered.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::time::sleep;

use super::net::{self, json_reply, ChannelBody, Handler, Simulated};
use super::{Timeline, UpstreamPhase};
use crate::message::Body;

/// The API shape a simulated upstream speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Shape {
    /// `POST /v1/messages`, errors `{"type":"error","error":{…}}`, 529 when overloaded.
    Anthropic,
    /// `POST /v1/chat/completions`, errors `{"error":{…}}`, 429 when rate limited.
    Openai,
}

/// What a simulated upstream has answered.
#[derive(Debug, Default)]
pub(super) struct UpstreamStats {
    /// Requests that reached it.
    pub received: AtomicU64,
    /// Of those, answered with an overload error.
    pub overloaded: AtomicU64,
}

/// A running simulated upstream.
pub(super) type Upstream = Simulated<UpstreamStats>;

/// Starts a simulated upstream of `shape` following `timeline`.
pub(super) async fn start(shape: Shape, timeline: Timeline) -> std::io::Result<Upstream> {
    let stats = Arc::new(UpstreamStats::default());
    let handler: Handler = {
        let stats = stats.clone();
        Arc::new(move |req| Box::pin(answer(shape, timeline, stats.clone(), req)))
    };
    let (addr, task) = net::serve(handler).await?;
    Ok(Simulated { addr, stats, task })
}

async fn answer(
    shape: Shape,
    timeline: Timeline,
    stats: Arc<UpstreamStats>,
    req: Request<Incoming>,
) -> Response<Body> {
    stats.received.fetch_add(1, Ordering::Relaxed);
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let request: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let stream = request["stream"].as_bool().unwrap_or(false);
    let model = request["model"].as_str().unwrap_or("demo-model").to_owned();
    match timeline.upstream_phase() {
        UpstreamPhase::Storm if fastrand::f64() < 0.85 => {
            stats.overloaded.fetch_add(1, Ordering::Relaxed);
            sleep(Duration::from_millis(fastrand::u64(5..30))).await;
            overloaded(shape)
        }
        UpstreamPhase::Slow if stream => sse(shape, model, Duration::from_millis(450)),
        UpstreamPhase::Slow => {
            sleep(Duration::from_millis(fastrand::u64(1500..2200))).await;
            message(shape, &model)
        }
        _ if stream => sse(shape, model, Duration::from_millis(15)),
        _ => {
            sleep(Duration::from_millis(fastrand::u64(20..80))).await;
            message(shape, &model)
        }
    }
}

/// The provider's own overload error, with a `retry-after` hint.
fn overloaded(shape: Shape) -> Response<Body> {
    match shape {
        Shape::Anthropic => json_reply(
            StatusCode::from_u16(529).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
            Some(2),
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#.into(),
        ),
        Shape::Openai => json_reply(
            StatusCode::TOO_MANY_REQUESTS,
            Some(2),
            r#"{"error":{"message":"Rate limit reached for requests","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#.into(),
        ),
    }
}

const WORDS: [&str; 6] = ["The", " breaker", " kept", " the", " caller", " safe."];

/// A complete, non-streamed answer.
fn message(shape: Shape, model: &str) -> Response<Body> {
    let text: String = WORDS.concat();
    let id = fastrand::u32(..);
    let body = match shape {
        Shape::Anthropic => serde_json::json!({
            "id": format!("msg_demo_{id:08x}"), "type": "message", "role": "assistant",
            "model": model, "content": [{ "type": "text", "text": text }],
            "stop_reason": "end_turn", "stop_sequence": null,
            "usage": { "input_tokens": 12, "output_tokens": 6 }
        }),
        Shape::Openai => serde_json::json!({
            "id": format!("chatcmpl-demo{id:08x}"), "object": "chat.completion",
            "created": 0, "model": model,
            "choices": [{ "index": 0, "finish_reason": "stop",
                          "message": { "role": "assistant", "content": text } }],
            "usage": { "prompt_tokens": 12, "completion_tokens": 6, "total_tokens": 18 }
        }),
    };
    json_reply(StatusCode::OK, None, body.to_string())
}

/// A streamed answer: one SSE event per word, `gap` apart.
fn sse(shape: Shape, model: String, gap: Duration) -> Response<Body> {
    let (tx, body) = ChannelBody::channel();
    tokio::spawn(async move {
        for event in events(shape, &model) {
            if tx.send(Bytes::from(event)).await.is_err() {
                return;
            }
            sleep(gap).await;
        }
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(body)
        .unwrap_or_else(|_| Response::new(crate::message::empty()))
}

/// The SSE events of one streamed answer, in the provider's format.
fn events(shape: Shape, model: &str) -> Vec<String> {
    match shape {
        Shape::Anthropic => {
            let mut out = vec![
                format!(
                    "event: message_start\ndata: {}\n\n",
                    serde_json::json!({ "type": "message_start", "message": {
                        "id": "msg_demo_stream", "type": "message", "role": "assistant",
                        "model": model, "content": [], "usage": { "input_tokens": 12, "output_tokens": 0 } } })
                ),
                "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n".to_owned(),
            ];
            out.extend(WORDS.iter().map(|w| {
                format!(
                    "event: content_block_delta\ndata: {}\n\n",
                    serde_json::json!({ "type": "content_block_delta", "index": 0,
                                        "delta": { "type": "text_delta", "text": w } })
                )
            }));
            out.push("event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n".to_owned());
            out.push("event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":6}}\n\n".to_owned());
            out.push("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n".to_owned());
            out
        }
        Shape::Openai => {
            let mut out: Vec<String> = WORDS
                .iter()
                .map(|w| {
                    format!(
                        "data: {}\n\n",
                        serde_json::json!({ "id": "chatcmpl-demo-stream", "object": "chat.completion.chunk",
                            "created": 0, "model": model,
                            "choices": [{ "index": 0, "delta": { "content": w }, "finish_reason": null }] })
                    )
                })
                .collect();
            out.push("data: [DONE]\n\n".to_owned());
            out
        }
    }
}
