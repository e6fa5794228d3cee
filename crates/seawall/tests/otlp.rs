//! OpenTelemetry logs end to end over loopback sockets: the Rust SDK's own OTLP/HTTP log
//! exporter (`opentelemetry-otlp`, protobuf and JSON, gzip) sending to the daemon's
//! `/ingest/{pipeline}/v1/logs`; the `otlp` output delivering to a real OTLP/HTTP receiver (a
//! hyper server decoding with `opentelemetry-proto`), through the same breakers, reroute and
//! retry buffer as an `http` output; and the refusals (gzip bomb, wrong content type, broken
//! protobuf).

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use common::client::{self, Answer};
use common::collector::{Collector, Mode};
use common::daemon::Daemon;
use common::serve::serve;
use common::wait::{eventually, settle};
use flate2::write::GzEncoder;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use opentelemetry::logs::{LogRecord as _, Logger as _, LoggerProvider as _, Severity};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_otlp::{Compression, Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, ArrayValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::Resource;
use prost::Message;
use serde_json::Value;

/// A daemon with pipeline `p` (`max_body` as given) whose one output is `output` (YAML flow
/// mapping without its braces).
async fn daemon(output: &str, extra: &str) -> Daemon {
    let yaml = format!(
        "server: {{ listen: 127.0.0.1:0 }}
admin: {{ listen: 127.0.0.1:0 }}
pipelines:
  - name: p
    {extra}
    outputs:
      - {{ {output} }}
"
    );
    Daemon::start(&yaml).await
}

/// An `http` output to `collector`, sending every event at once.
fn to_collector(collector: &Collector) -> String {
    format!(
        "name: o, type: http, endpoint: '{}', batch: {{ max_events: 100, linger: 0s }}",
        collector.url
    )
}

/// Emits three records with the SDK's OTLP/HTTP exporter to `endpoint` (the base URL, as
/// `OTEL_EXPORTER_OTLP_ENDPOINT` would name it: the exporter appends `/v1/logs` as the SDK
/// does for that variable): two from scope `checkout.http` (with attributes), one from
/// `checkout.db`, under resource `service.name=checkout`.
async fn export_three(base: &str, protocol: Protocol, compression: Option<Compression>) {
    let endpoint = format!("{base}/v1/logs");
    tokio::task::spawn_blocking(move || {
        let builder = opentelemetry_otlp::LogExporter::builder()
            .with_http()
            .with_protocol(protocol)
            .with_endpoint(endpoint);
        let builder = match compression {
            Some(c) => builder.with_compression(c),
            None => builder,
        };
        let exporter = builder.build().unwrap();
        let provider = SdkLoggerProvider::builder()
            .with_resource(
                Resource::builder_empty()
                    .with_attributes([KeyValue::new("service.name", "checkout")])
                    .build(),
            )
            .with_simple_exporter(exporter)
            .build();
        let http = provider.logger_with_scope(
            InstrumentationScope::builder("checkout.http")
                .with_version("1.4.0")
                .with_attributes([KeyValue::new("scope.team", "payments")])
                .build(),
        );
        let db = provider.logger_with_scope(InstrumentationScope::builder("checkout.db").build());
        for (logger, body, severity) in [
            (&http, "request served", Severity::Info),
            (&http, "slow request", Severity::Warn),
        ] {
            let mut record = logger.create_log_record();
            record.set_body(body.into());
            record.set_severity_number(severity);
            record.set_severity_text(severity.name());
            record.add_attribute("http.route", "/cart");
            logger.emit(record);
        }
        let mut record = db.create_log_record();
        record.set_body("pool exhausted".into());
        record.set_severity_number(Severity::Error);
        db.emit(record);
        provider.shutdown().unwrap();
    })
    .await
    .unwrap();
}

/// The collector's events as JSON.
fn events(collector: &Collector) -> Vec<Value> {
    collector
        .lines()
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Asserts the three records of [`export_three`] arrived as three events, each with its
/// resource and scope.
async fn assert_three_arrived(collector: &Collector) {
    eventually("three events at the collector", || async {
        collector.lines().len() >= 3
    })
    .await;
    let events = events(collector);
    assert_eq!(events.len(), 3, "{events:#?}");
    let bodies: Vec<_> = events.iter().map(|e| &e["body"]["stringValue"]).collect();
    assert_eq!(bodies, ["request served", "slow request", "pool exhausted"]);
    for e in &events {
        assert_eq!(
            e["resource"]["attributes"][0],
            serde_json::json!({"key": "service.name", "value": {"stringValue": "checkout"}}),
            "{e}"
        );
    }
    assert_eq!(events[0]["scope"]["name"], "checkout.http");
    assert_eq!(events[0]["scope"]["version"], "1.4.0");
    assert_eq!(events[0]["scope"]["attributes"][0]["key"], "scope.team");
    assert_eq!(events[0]["attributes"][0]["key"], "http.route");
    assert_eq!(events[0]["severityText"], "INFO");
    assert_eq!(events[1]["severityNumber"], 13);
    assert_eq!(events[2]["scope"]["name"], "checkout.db");
}

async fn metric(d: &Daemon, series: &str) -> f64 {
    d.metrics().await.value(series)
}

const ACCEPTED: &str = r#"seawall_pipeline_otlp_records_accepted_total{pipeline="p"}"#;
const REJECTED: &str = r#"seawall_pipeline_otlp_records_rejected_total{pipeline="p"}"#;
const EVENTS: &str = r#"seawall_pipeline_events_accepted_total{pipeline="p"}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_exporters_protobuf_records_arrive_as_events_with_resource_and_scope() {
    let collector = Collector::start(Mode::Ok).await;
    let d = daemon(&to_collector(&collector), "").await;
    export_three(&d.gateway("/ingest/p"), Protocol::HttpBinary, None).await;
    assert_three_arrived(&collector).await;
    assert_eq!(metric(&d, ACCEPTED).await, 3.0);
    assert_eq!(metric(&d, REJECTED).await, 0.0);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_exporters_gzip_protobuf_records_arrive() {
    let collector = Collector::start(Mode::Ok).await;
    let d = daemon(&to_collector(&collector), "").await;
    let base = d.gateway("/ingest/p");
    export_three(&base, Protocol::HttpBinary, Some(Compression::Gzip)).await;
    assert_three_arrived(&collector).await;
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_exporters_json_records_arrive_plain_and_gzipped() {
    let collector = Collector::start(Mode::Ok).await;
    let d = daemon(&to_collector(&collector), "").await;
    export_three(&d.gateway("/ingest/p"), Protocol::HttpJson, None).await;
    assert_three_arrived(&collector).await;
    let second = Collector::start(Mode::Ok).await;
    let d2 = daemon(&to_collector(&second), "").await;
    let base = d2.gateway("/ingest/p");
    export_three(&base, Protocol::HttpJson, Some(Compression::Gzip)).await;
    assert_three_arrived(&second).await;
    d.stop().await;
    d2.stop().await;
}

/// How the receiver answers.
#[derive(Clone, Copy, Debug)]
enum Answering {
    /// 200 with an empty `ExportLogsServiceResponse`.
    Ok,
    /// This status, with `retry-after: 1`; nothing kept.
    Status(u16),
    /// 200 with `partial_success` rejecting this many records (the request is kept).
    Partial(i64),
}

#[derive(Default)]
struct Received {
    requests: Vec<ExportLogsServiceRequest>,
    /// `(content-type, content-encoding, x-tenant)` of each request.
    heads: Vec<(String, String, String)>,
    answered: usize,
}

/// A real OTLP/HTTP logs receiver on 127.0.0.1: decodes each (gzip) protobuf request with
/// `opentelemetry-proto` and answers as its [`Answering`] says.
#[derive(Clone)]
struct Receiver {
    url: String,
    answering: Arc<Mutex<Answering>>,
    received: Arc<Mutex<Received>>,
}

impl Receiver {
    async fn start(answering: Answering) -> Receiver {
        let answering = Arc::new(Mutex::new(answering));
        let received = Arc::new(Mutex::new(Received::default()));
        let (a, r) = (answering.clone(), received.clone());
        let addr = serve(move |req: http::Request<hyper::body::Incoming>, _| {
            let (a, r) = (a.clone(), r.clone());
            async move {
                let header = |name| {
                    req.headers()
                        .get(name)
                        .map(|v: &HeaderValue| v.to_str().unwrap().to_owned())
                        .unwrap_or_default()
                };
                let head = (
                    header("content-type"),
                    header("content-encoding"),
                    header("x-tenant"),
                );
                assert_eq!(req.uri().path(), "/v1/logs");
                let body = req.into_body().collect().await?.to_bytes();
                let answering = *a.lock().unwrap();
                let mut r = r.lock().unwrap();
                r.answered += 1;
                let mut resp = Response::new(Full::new(Bytes::new()));
                let partial = match answering {
                    Answering::Status(code) => {
                        *resp.status_mut() = StatusCode::from_u16(code).unwrap();
                        resp.headers_mut()
                            .insert("retry-after", HeaderValue::from_static("1"));
                        return Ok::<_, hyper::Error>(resp);
                    }
                    Answering::Ok => None,
                    Answering::Partial(n) => Some(ExportLogsPartialSuccess {
                        rejected_log_records: n,
                        error_message: "severity too low".into(),
                    }),
                };
                let raw = if head.1 == "gzip" {
                    let mut out = Vec::new();
                    std::io::Read::read_to_end(
                        &mut flate2::read::GzDecoder::new(&body[..]),
                        &mut out,
                    )
                    .unwrap();
                    out
                } else {
                    body.to_vec()
                };
                r.requests
                    .push(ExportLogsServiceRequest::decode(&raw[..]).unwrap());
                r.heads.push(head);
                let answer = ExportLogsServiceResponse {
                    partial_success: partial,
                };
                *resp.body_mut() = Full::new(Bytes::from(answer.encode_to_vec()));
                resp.headers_mut().insert(
                    "content-type",
                    HeaderValue::from_static("application/x-protobuf"),
                );
                Ok(resp)
            }
        })
        .await;
        Receiver {
            url: format!("http://{addr}"),
            answering,
            received,
        }
    }

    fn set(&self, answering: Answering) {
        *self.answering.lock().unwrap() = answering;
    }

    /// Every record received, with its resource's `service.name` and its scope's name.
    fn records(&self) -> Vec<(String, String, LogRecord)> {
        let r = self.received.lock().unwrap();
        let mut all = Vec::new();
        for req in &r.requests {
            for rl in &req.resource_logs {
                let service = rl
                    .resource
                    .as_ref()
                    .and_then(|res| res.attributes.iter().find(|kv| kv.key == "service.name"))
                    .map(|kv| format!("{:?}", kv.value))
                    .unwrap_or_default();
                for sl in &rl.scope_logs {
                    let scope = sl
                        .scope
                        .as_ref()
                        .map(|s| s.name.clone())
                        .unwrap_or_default();
                    for rec in &sl.log_records {
                        all.push((service.clone(), scope.clone(), rec.clone()));
                    }
                }
            }
        }
        all
    }

    fn answered(&self) -> usize {
        self.received.lock().unwrap().answered
    }
}

fn body_text(record: &LogRecord) -> Option<String> {
    match record.body.as_ref()?.value.as_ref()? {
        any_value::Value::StringValue(s) => Some(s.clone()),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_otlp_output_delivers_gzip_protobuf_grouped_by_resource_and_scope() {
    let receiver = Receiver::start(Answering::Ok).await;
    let output = format!(
        "name: o, type: otlp, endpoint: '{}', headers: {{ x-tenant: acme }},
          batch: {{ max_events: 100, linger: 300ms }}",
        receiver.url
    );
    let d = daemon(&output, "").await;
    export_three(&d.gateway("/ingest/p"), Protocol::HttpBinary, None).await;
    // An ordinary event travels too, as a record whose body is the event.
    let plain = d.post_json("/ingest/p", r#"{"msg":"hello","n":7}"#).await;
    assert_eq!(plain.status, StatusCode::ACCEPTED);
    eventually("four records at the receiver", || async {
        receiver.records().len() >= 4
    })
    .await;
    let records = receiver.records();
    assert_eq!(records.len(), 4);
    let (heads, requests) = {
        let r = receiver.received.lock().unwrap();
        (r.heads.clone(), r.requests.clone())
    };
    for head in &heads {
        assert_eq!(
            head,
            &(
                "application/x-protobuf".into(),
                "gzip".into(),
                "acme".into()
            )
        );
    }
    // The SDK's records came back under their resource and scopes, in order.
    let sdk: Vec<_> = records
        .iter()
        .filter(|(service, _, _)| service.contains("checkout"))
        .map(|(_, scope, rec)| (scope.as_str(), body_text(rec).unwrap(), rec.severity_number))
        .collect();
    assert_eq!(
        sdk,
        [
            ("checkout.http", "request served".to_owned(), 9),
            ("checkout.http", "slow request".to_owned(), 13),
            ("checkout.db", "pool exhausted".to_owned(), 17),
        ]
    );
    for req in &requests {
        // Grouped: one ResourceLogs per resource, one ScopeLogs per scope within it.
        let mut seen = Vec::new();
        for rl in &req.resource_logs {
            let key = format!("{:?}", rl.resource);
            assert!(!seen.contains(&key), "resource repeated in one request");
            seen.push(key);
            let scopes: Vec<_> = rl.scope_logs.iter().map(|s| s.scope.clone()).collect();
            let mut unique = scopes.clone();
            unique.dedup();
            assert_eq!(scopes.len(), unique.len(), "scope repeated in one resource");
        }
    }
    let (_, _, plain) = records
        .iter()
        .find(|(service, _, _)| service.is_empty())
        .expect("the plain event");
    let Some(any_value::Value::KvlistValue(list)) =
        plain.body.as_ref().and_then(|b| b.value.clone())
    else {
        panic!("the plain event's body is not a key-value list: {plain:?}");
    };
    assert_eq!(list.values[0].key, "msg");
    d.stop().await;
}

/// The `circuit_breaker_state` series of the otlp output's endpoint `url`.
fn breaker_state(url: &str) -> String {
    format!(r#"seawall_circuit_breaker_state{{kind="output",name="o",endpoint="{url}",model=""}}"#)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_answering_503_trips_the_otlp_breaker_and_the_fallback_reroutes_holds_and_drains(
) {
    let failing = Receiver::start(Answering::Status(503)).await;
    let spare = Receiver::start(Answering::Ok).await;
    let output = format!(
        "name: o, type: otlp, endpoint: '{}', alternates: ['{}'],
          batch: {{ max_events: 1, linger: 0s }},
          resilience: {{ circuit_breaker: {{ failure_threshold: 1, open_timeout: 1s,
                                             half_open_max_calls: 1 }} }}",
        failing.url, spare.url
    );
    let d = daemon(&output, "fallback: { retry_buffer: 100 }").await;
    let url = d.gateway("/ingest/p");
    let ingest = |n: usize| {
        let url = url.clone();
        async move {
            let lines: Vec<String> = (0..n).map(|i| format!(r#"{{"i":{i}}}"#)).collect();
            client::post(&url, "application/x-ndjson", &lines.join("\n")).await
        }
    };
    assert_eq!(ingest(3).await.status, StatusCode::ACCEPTED);
    // Reroute: the failing receiver's 503 trips its breaker; the spare gets every event.
    eventually("the spare has the three events", || async {
        spare.records().len() == 3
    })
    .await;
    let m = d.metrics().await;
    assert_eq!(m.value::<f64>(&breaker_state(&failing.url)), 1.0, "{m}");
    assert!(m.value::<f64>(r#"seawall_reroutes_total{pipeline="p",output="o"}"#) >= 1.0);
    assert!(failing.records().is_empty());
    // Both failing: events are held in the retry buffer, not lost.
    spare.set(Answering::Status(503));
    assert_eq!(ingest(4).await.status, StatusCode::ACCEPTED);
    let m = settle(
        || d.metrics(),
        |m| m.value::<f64>(r#"seawall_output_pending_events{pipeline="p",output="o"}"#) == 4.0,
    )
    .await;
    let pending = r#"seawall_output_pending_events{pipeline="p",output="o"}"#;
    assert_eq!(m.value::<f64>(pending), 4.0, "{m}");
    let delivered = r#"seawall_output_events_total{pipeline="p",output="o",outcome="delivered"}"#;
    assert_eq!(m.value::<f64>(delivered), 3.0, "{m}");
    // Recovery drains the buffer once a breaker lets a probe through.
    failing.set(Answering::Ok);
    spare.set(Answering::Ok);
    eventually("the held events delivered", || async {
        failing.records().len() + spare.records().len() == 7
    })
    .await;
    let m = d.metrics().await;
    assert_eq!(m.value::<f64>(delivered), 7.0, "{m}");
    assert_eq!(m.value::<f64>(pending), 0.0, "{m}");
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receivers_partial_success_drops_the_rejected_records_and_counts_as_a_failure() {
    let receiver = Receiver::start(Answering::Partial(2)).await;
    let output = format!(
        "name: o, type: otlp, endpoint: '{}/v1/logs', compression: none,
          batch: {{ max_events: 5, linger: 200ms }},
          resilience: {{ circuit_breaker: {{ failure_threshold: 1, open_timeout: 30s }} }}",
        receiver.url
    );
    let d = daemon(&output, "").await;
    let lines: Vec<String> = (0..5).map(|i| format!(r#"{{"i":{i}}}"#)).collect();
    let answer = client::post(
        &d.gateway("/ingest/p"),
        "application/x-ndjson",
        &lines.join("\n"),
    )
    .await;
    assert_eq!(answer.status, StatusCode::ACCEPTED);
    let dropped =
        r#"seawall_output_dropped_events_total{pipeline="p",output="o",reason="rejected"}"#;
    let m = settle(|| d.metrics(), |m| m.value::<f64>(dropped) == 2.0).await;
    assert_eq!(m.value::<f64>(dropped), 2.0, "{m}");
    let delivered = r#"seawall_output_events_total{pipeline="p",output="o",outcome="delivered"}"#;
    assert_eq!(m.value::<f64>(delivered), 3.0, "{m}");
    // Sent once (partial success is not retried), and the breaker counted a failure.
    assert_eq!(receiver.answered(), 1);
    let state = breaker_state(&format!("{}/v1/logs", receiver.url));
    assert_eq!(m.value::<f64>(&state), 1.0, "{m}");
    assert_eq!(receiver.received.lock().unwrap().heads[0].1, "");
    d.stop().await;
}

/// `POST /ingest/p/v1/logs` with `body` and these headers.
async fn post_otlp(d: &Daemon, headers: &[(&str, &str)], body: Vec<u8>) -> Answer {
    let mut req = client::request("POST", &d.gateway("/ingest/p/v1/logs"));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let body = Full::new(Bytes::from(body)).boxed_unsync();
    client::send(req.body(body).unwrap()).await
}

/// `google.rpc.Status` as the receiver side decodes it.
#[derive(Clone, PartialEq, Message)]
struct Status {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gzip_bomb_is_refused_with_413_and_nothing_is_accepted() {
    let collector = Collector::start(Mode::Ok).await;
    let d = daemon(&to_collector(&collector), "max_body: 64KB").await;
    // 16 MiB of one protobuf string field: small on the wire, far past max_body inflated.
    let mut inflated = vec![0x0a, 0x80, 0x80, 0x80, 0x08];
    inflated.resize(16 << 20, b'a');
    let bomb = gzip(&inflated);
    assert!(bomb.len() < 64 * 1024, "{} bytes on the wire", bomb.len());
    let headers = [
        ("content-type", "application/x-protobuf"),
        ("content-encoding", "gzip"),
    ];
    let answer = post_otlp(&d, &headers, bomb).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE, "{answer:?}");
    let status = Status::decode(answer.body.as_ref()).unwrap();
    assert!(status.message.contains("max_body"), "{status:?}");
    assert_eq!(metric(&d, EVENTS).await, 0.0);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_content_type_or_encoding_is_refused_with_415() {
    let collector = Collector::start(Mode::Ok).await;
    let d = daemon(&to_collector(&collector), "").await;
    let body = ExportLogsServiceRequest::default().encode_to_vec();
    let answer = post_otlp(&d, &[("content-type", "text/plain")], body.clone()).await;
    assert_eq!(answer.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(answer.json()["code"], 3, "{answer:?}");
    let answer = post_otlp(&d, &[], body.clone()).await;
    assert_eq!(answer.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let headers = [
        ("content-type", "application/x-protobuf"),
        ("content-encoding", "br"),
    ];
    let answer = post_otlp(&d, &headers, body.clone()).await;
    assert_eq!(answer.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // The same empty request, announced right, is a success.
    let answer = post_otlp(&d, &[("content-type", "application/x-protobuf")], body).await;
    assert_eq!(answer.status, StatusCode::OK);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_does_not_decode_is_refused_with_400_and_nothing_is_accepted() {
    let collector = Collector::start(Mode::Ok).await;
    let d = daemon(&to_collector(&collector), "").await;
    // A valid request with its last bytes cut off: a length-delimited field runs past the end.
    let mut broken = request_with_bodies(&[text("a"), text("b")]).encode_to_vec();
    broken.truncate(broken.len() - 3);
    let answer = post_otlp(&d, &[("content-type", "application/x-protobuf")], broken).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{answer:?}");
    assert_eq!(
        answer.header("content-type"),
        Some("application/x-protobuf")
    );
    let status = Status::decode(answer.body.as_ref()).unwrap();
    assert_eq!(status.code, 3, "{status:?}");
    assert!(status.message.contains("protobuf"), "{status:?}");
    let json = br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"stringValue":1}}]}]}"#;
    let answer = post_otlp(&d, &[("content-type", "application/json")], json.to_vec()).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{answer:?}");
    assert_eq!(answer.json()["code"], 3);
    let headers = [
        ("content-type", "application/x-protobuf"),
        ("content-encoding", "gzip"),
    ];
    let answer = post_otlp(&d, &headers, b"not gzip".to_vec()).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{answer:?}");
    let m = d.metrics().await;
    assert_eq!(m.value::<f64>(EVENTS), 0.0, "{m}");
    assert_eq!(m.value::<f64>(ACCEPTED), 0.0, "{m}");
    assert!(collector.lines().is_empty());
    d.stop().await;
}

fn text(s: &str) -> AnyValue {
    AnyValue {
        value: Some(any_value::Value::StringValue(s.into())),
    }
}

fn request_with_bodies(bodies: &[AnyValue]) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: bodies
                    .iter()
                    .map(|b| LogRecord {
                        body: Some(b.clone()),
                        ..LogRecord::default()
                    })
                    .collect(),
                ..ScopeLogs::default()
            }],
            ..ResourceLogs::default()
        }],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_nested_past_max_depth_is_rejected_alone_in_partial_success() {
    let collector = Collector::start(Mode::Ok).await;
    let d = daemon(&to_collector(&collector), "max_depth: 8").await;
    let mut deep = text("leaf");
    for _ in 0..6 {
        deep = AnyValue {
            value: Some(any_value::Value::ArrayValue(ArrayValue {
                values: vec![deep],
            })),
        };
    }
    let request = request_with_bodies(&[text("kept"), deep, text("kept too")]);
    for (content_type, body) in [
        ("application/x-protobuf", request.encode_to_vec()),
        ("application/json", serde_json::to_vec(&request).unwrap()),
    ] {
        let answer = post_otlp(&d, &[("content-type", content_type)], body).await;
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
        let response: ExportLogsServiceResponse = if content_type == "application/json" {
            serde_json::from_slice(&answer.body).unwrap()
        } else {
            ExportLogsServiceResponse::decode(answer.body.as_ref()).unwrap()
        };
        let partial = response.partial_success.expect("partial_success");
        assert_eq!(partial.rejected_log_records, 1);
        assert!(
            partial.error_message.starts_with("log record 2: "),
            "{partial:?}"
        );
    }
    eventually("four events at the collector", || async {
        collector.lines().len() >= 4
    })
    .await;
    let bodies: Vec<_> = events(&collector)
        .iter()
        .map(|e| e["body"]["stringValue"].clone())
        .collect();
    assert_eq!(bodies, ["kept", "kept too", "kept", "kept too"]);
    let m = d.metrics().await;
    assert_eq!(m.value::<f64>(ACCEPTED), 4.0, "{m}");
    assert_eq!(m.value::<f64>(REJECTED), 2.0, "{m}");
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shedding_pipeline_answers_otlp_with_503_and_retry_after() {
    let collector = Collector::start(Mode::Hang).await;
    let yaml = format!(
        "server: {{ listen: 127.0.0.1:0, shutdown_grace: 1s }}
admin: {{ listen: 127.0.0.1:0 }}
pipelines:
  - name: p
    queue: {{ capacity: 10 }}
    outputs:
      - {{ name: o, type: http, endpoint: '{}', timeout: 60s,
          batch: {{ max_events: 1, linger: 0s }} }}
global_health: {{ queue_check_enabled: true, queue_threshold_percent: 50, check_interval: 50ms }}
",
        collector.url
    );
    let d = Daemon::start(&yaml).await;
    let events: Vec<String> = (0..30).map(|i| format!(r#"{{"i":{i}}}"#)).collect();
    let answer = client::post(
        &d.gateway("/ingest/p"),
        "application/x-ndjson",
        &events.join("\n"),
    )
    .await;
    assert_eq!(answer.status, StatusCode::ACCEPTED);
    // The monitor sees the queue at its next check; OTLP is posted once it sheds.
    let unhealthy = r#"seawall_global_health_unhealthy{check="queue"}"#;
    settle(|| metric(&d, unhealthy), |v| *v == 1.0).await;
    let body = request_with_bodies(&[text("late")]).encode_to_vec();
    let headers = [("content-type", "application/x-protobuf")];
    let answer = post_otlp(&d, &headers, body.clone()).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{answer:?}");
    let retry_after: u64 = answer.header("retry-after").unwrap().parse().unwrap();
    assert!(retry_after >= 1);
    assert_eq!(metric(&d, ACCEPTED).await, 0.0);
    d.stop().await;
}
