//! One OTLP log record ↔ one event. An event made from a record is a JSON object with the
//! record's own fields under their OTLP/JSON names (`timeUnixNano`, `severityText`, `body`,
//! `attributes`, `traceId` in hex, …) and where it came from: `resource` (its attributes),
//! `scope` (name, version, attributes) and, when set, `resourceSchemaUrl` and
//! `scopeSchemaUrl`. The `otlp` output turns such an event back into the same record under
//! the same resource and scope; any other event becomes a record whose body is the event
//! (a key-value list) and whose observed time is the send's.

use std::collections::HashMap;
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use flate2::write::GzEncoder;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    any_value, AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use serde_json::{Map, Value};

use crate::pipeline::parse::{self, Format};

/// The keys of an event made from a record: the record's own, then its origin's.
const RECORD_KEYS: &[&str] = &[
    "timeUnixNano",
    "observedTimeUnixNano",
    "severityNumber",
    "severityText",
    "body",
    "attributes",
    "droppedAttributesCount",
    "flags",
    "traceId",
    "spanId",
    "eventName",
    RESOURCE,
    RESOURCE_SCHEMA_URL,
    SCOPE,
    SCOPE_SCHEMA_URL,
];
const RESOURCE: &str = "resource";
const RESOURCE_SCHEMA_URL: &str = "resourceSchemaUrl";
const SCOPE: &str = "scope";
const SCOPE_SCHEMA_URL: &str = "scopeSchemaUrl";

/// A request's records as events.
#[derive(Debug, Default)]
pub(crate) struct Converted {
    /// NDJSON, one line per accepted record.
    pub(crate) text: Vec<u8>,
    pub(crate) accepted: usize,
    pub(crate) rejected: usize,
    /// Why the first rejected record was (for `partial_success.error_message`).
    pub(crate) first_error: Option<String>,
}

/// Each record of `request` as one event, checked like any ingested event (nesting at most
/// `max_depth`); a record that fails is rejected alone.
pub(crate) fn events(request: &ExportLogsServiceRequest, max_depth: u32) -> Converted {
    let mut out = Converted::default();
    let mut index = 0usize;
    for rl in &request.resource_logs {
        let resource = origin(
            rl.resource.as_ref(),
            &rl.schema_url,
            RESOURCE,
            RESOURCE_SCHEMA_URL,
        );
        for sl in &rl.scope_logs {
            let scope = origin(sl.scope.as_ref(), &sl.schema_url, SCOPE, SCOPE_SCHEMA_URL);
            for record in &sl.log_records {
                index += 1;
                match event(record, &resource, &scope, max_depth) {
                    Ok(line) => {
                        out.text.extend_from_slice(&line);
                        out.accepted += 1;
                    }
                    Err(e) => {
                        out.rejected += 1;
                        out.first_error
                            .get_or_insert_with(|| format!("log record {index}: {e}"));
                    }
                }
            }
        }
    }
    out
}

/// A resource's or scope's entries of an event (none for an absent one).
fn origin<T: serde::Serialize>(
    value: Option<&T>,
    schema_url: &str,
    key: &str,
    schema_key: &str,
) -> Vec<(String, Value)> {
    let mut entries = Vec::new();
    if let Some(v) = value.and_then(|v| serde_json::to_value(v).ok()) {
        entries.push((key.to_owned(), v));
    }
    if !schema_url.is_empty() {
        entries.push((schema_key.to_owned(), Value::String(schema_url.to_owned())));
    }
    entries
}

/// One record as an NDJSON line (with its line break).
fn event(
    record: &LogRecord,
    resource: &[(String, Value)],
    scope: &[(String, Value)],
    max_depth: u32,
) -> Result<Vec<u8>, String> {
    let Ok(Value::Object(mut map)) = serde_json::to_value(record) else {
        return Err("cannot be written as JSON".into());
    };
    map.extend(resource.iter().chain(scope).cloned());
    let line = serde_json::to_vec(&map).map_err(|e| format!("cannot be written as JSON: {e}"))?;
    parse::events(line, Format::Ndjson, max_depth)
        .map(|events| events.text)
        .map_err(|bad| bad.0.replace("line 1: ", ""))
}

/// A batch of events (NDJSON) as a protobuf `ExportLogsServiceRequest`, gzipped when asked.
pub(crate) fn encode_batch(payload: &Bytes, gzip: bool) -> Result<Bytes, String> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    let body = request(payload, now).encode_to_vec();
    if !gzip {
        return Ok(Bytes::from(body));
    }
    let mut encoder = GzEncoder::new(
        Vec::with_capacity(body.len() / 4),
        flate2::Compression::fast(),
    );
    encoder
        .write_all(&body)
        .and_then(|()| encoder.finish())
        .map(Bytes::from)
        .map_err(|e| format!("gzip failed: {e}"))
}

/// The events of `text` (NDJSON) as records, grouped by resource then scope in the order
/// they first appear; `now` is the observed time of events that were not records.
pub(crate) fn request(text: &[u8], now: u64) -> ExportLogsServiceRequest {
    let mut out = ExportLogsServiceRequest::default();
    let mut resources: HashMap<String, usize> = HashMap::new();
    let mut scopes: HashMap<(usize, String), usize> = HashMap::new();
    for line in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let (record, origin) = record(line, now);
        let r = *resources.entry(origin.resource_key).or_insert_with(|| {
            out.resource_logs.push(ResourceLogs {
                resource: origin.resource,
                scope_logs: Vec::new(),
                schema_url: origin.resource_schema_url,
            });
            out.resource_logs.len() - 1
        });
        let scope_logs = &mut out.resource_logs[r].scope_logs;
        let s = *scopes.entry((r, origin.scope_key)).or_insert_with(|| {
            scope_logs.push(ScopeLogs {
                scope: origin.scope,
                log_records: Vec::new(),
                schema_url: origin.scope_schema_url,
            });
            scope_logs.len() - 1
        });
        scope_logs[s].log_records.push(record);
    }
    out
}

/// Where a record came from, and keys that tell equal origins apart.
#[derive(Default)]
struct Origin {
    resource: Option<Resource>,
    resource_schema_url: String,
    resource_key: String,
    scope: Option<InstrumentationScope>,
    scope_schema_url: String,
    scope_key: String,
}

/// One event as a record: the record it was made from, else a record carrying it as body.
fn record(line: &[u8], now: u64) -> (LogRecord, Origin) {
    let map = match serde_json::from_slice::<Value>(line) {
        Ok(Value::Object(map)) => map,
        // Events are JSON objects; anything else is carried as text.
        _ => {
            let text = String::from_utf8_lossy(line).into_owned();
            return (generic(Value::String(text), now), Origin::default());
        }
    };
    if map.keys().all(|k| RECORD_KEYS.contains(&k.as_str())) {
        if let Some(parsed) = otlp_record(&map) {
            return parsed;
        }
    }
    (generic(Value::Object(map), now), Origin::default())
}

/// An event made from a record, back as that record and its origin.
fn otlp_record(map: &Map<String, Value>) -> Option<(LogRecord, Origin)> {
    let mut fields = map.clone();
    let resource_value = fields.remove(RESOURCE);
    let scope_value = fields.remove(SCOPE);
    let text = |v: Option<Value>| match v {
        Some(Value::String(s)) => Some(s),
        None => Some(String::new()),
        Some(_) => None,
    };
    let resource_schema_url = text(fields.remove(RESOURCE_SCHEMA_URL))?;
    let scope_schema_url = text(fields.remove(SCOPE_SCHEMA_URL))?;
    let record: LogRecord = serde_json::from_value(Value::Object(fields)).ok()?;
    let resource = match &resource_value {
        Some(v) => Some(serde_json::from_value::<Resource>(v.clone()).ok()?),
        None => None,
    };
    let scope = match &scope_value {
        Some(v) => Some(serde_json::from_value::<InstrumentationScope>(v.clone()).ok()?),
        None => None,
    };
    let key = |v: &Option<Value>, url: &str| {
        format!(
            "{}\n{url}",
            v.as_ref().map(Value::to_string).unwrap_or_default()
        )
    };
    let origin = Origin {
        resource_key: key(&resource_value, &resource_schema_url),
        scope_key: key(&scope_value, &scope_schema_url),
        resource,
        resource_schema_url,
        scope,
        scope_schema_url,
    };
    Some((record, origin))
}

/// A record carrying `event` as its body.
fn generic(event: Value, now: u64) -> LogRecord {
    LogRecord {
        observed_time_unix_nano: now,
        body: Some(any_value(event)),
        ..LogRecord::default()
    }
}

/// A JSON value as an OTLP `AnyValue`: objects become key-value lists, integers that fit
/// `intValue`, other numbers `doubleValue`, `null` the empty value.
fn any_value(v: Value) -> AnyValue {
    use any_value::Value as V;
    let value = match v {
        Value::Null => None,
        Value::Bool(b) => Some(V::BoolValue(b)),
        Value::Number(n) => Some(match n.as_i64() {
            Some(i) => V::IntValue(i),
            None => V::DoubleValue(n.as_f64().unwrap_or(f64::NAN)),
        }),
        Value::String(s) => Some(V::StringValue(s)),
        Value::Array(items) => Some(V::ArrayValue(ArrayValue {
            values: items.into_iter().map(any_value).collect(),
        })),
        Value::Object(map) => Some(V::KvlistValue(KeyValueList {
            values: map
                .into_iter()
                .map(|(key, v)| KeyValue {
                    key,
                    value: Some(any_value(v)),
                    ..KeyValue::default()
                })
                .collect(),
        })),
    };
    AnyValue { value }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn text(s: &str) -> AnyValue {
        AnyValue {
            value: Some(any_value::Value::StringValue(s.into())),
        }
    }

    fn kv(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(text(value)),
            ..KeyValue::default()
        }
    }

    /// Two resources, the first with two scopes; ids, times and nested bodies set.
    fn sample() -> ExportLogsServiceRequest {
        let record = |body: &str| LogRecord {
            time_unix_nano: 1_700_000_000_000_000_001,
            observed_time_unix_nano: 1_700_000_000_000_000_002,
            severity_number: 9,
            severity_text: "INFO".into(),
            body: Some(text(body)),
            attributes: vec![kv("http.route", "/v1")],
            trace_id: vec![0xab; 16],
            span_id: vec![0xcd; 8],
            event_name: "ev".into(),
            ..LogRecord::default()
        };
        let scope = |name: &str, bodies: &[&str]| ScopeLogs {
            scope: Some(InstrumentationScope {
                name: name.into(),
                version: "1.2".into(),
                attributes: vec![kv("scope.attr", name)],
                dropped_attributes_count: 0,
            }),
            log_records: bodies.iter().map(|b| record(b)).collect(),
            schema_url: "https://opentelemetry.io/schemas/1.21.0".into(),
        };
        ExportLogsServiceRequest {
            resource_logs: vec![
                ResourceLogs {
                    resource: Some(Resource {
                        attributes: vec![kv("service.name", "checkout")],
                        ..Resource::default()
                    }),
                    scope_logs: vec![scope("a", &["one", "two"]), scope("b", &["three"])],
                    schema_url: String::new(),
                },
                ResourceLogs {
                    resource: Some(Resource {
                        attributes: vec![kv("service.name", "cart")],
                        ..Resource::default()
                    }),
                    scope_logs: vec![scope("a", &["four"])],
                    schema_url: "https://example.com/schema".into(),
                },
            ],
        }
    }

    #[test]
    fn each_record_becomes_one_event_with_its_resource_and_scope() {
        let converted = events(&sample(), 64);
        assert_eq!((converted.accepted, converted.rejected), (4, 0));
        let lines: Vec<Value> = converted
            .text
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 4);
        let first = &lines[0];
        assert_eq!(first["body"], serde_json::json!({"stringValue": "one"}));
        assert_eq!(first["severityText"], "INFO");
        assert_eq!(first["timeUnixNano"], "1700000000000000001");
        assert_eq!(first["traceId"], "ab".repeat(16));
        assert_eq!(first["spanId"], "cd".repeat(8));
        assert_eq!(
            first["resource"]["attributes"][0],
            serde_json::json!({"key": "service.name", "value": {"stringValue": "checkout"}})
        );
        assert_eq!(first["scope"]["name"], "a");
        assert_eq!(first["scope"]["version"], "1.2");
        assert_eq!(first["scope"]["attributes"][0]["key"], "scope.attr");
        assert_eq!(
            first["scopeSchemaUrl"],
            "https://opentelemetry.io/schemas/1.21.0"
        );
        assert!(first.get("resourceSchemaUrl").is_none());
        assert_eq!(lines[3]["resourceSchemaUrl"], "https://example.com/schema");
    }

    #[test]
    fn events_made_from_records_go_back_to_the_same_records_and_grouping() {
        let original = sample();
        let converted = events(&original, 64);
        let back = request(&converted.text, 42);
        assert_eq!(back, original);
    }

    #[test]
    fn other_events_become_records_with_the_event_as_body() {
        let back = request(b"{\"msg\":\"hi\",\"n\":3,\"ok\":true,\"x\":null}\n", 42);
        assert_eq!(back.resource_logs.len(), 1);
        let records = &back.resource_logs[0].scope_logs[0].log_records;
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].observed_time_unix_nano, 42);
        let Some(any_value::Value::KvlistValue(list)) =
            records[0].body.as_ref().and_then(|b| b.value.clone())
        else {
            panic!("body is not a key-value list: {:?}", records[0].body);
        };
        let keys: Vec<_> = list.values.iter().map(|kv| kv.key.as_str()).collect();
        assert_eq!(keys, ["msg", "n", "ok", "x"]);
        assert_eq!(
            list.values[1].value.as_ref().and_then(|v| v.value.clone()),
            Some(any_value::Value::IntValue(3))
        );
        // Record-shaped keys with values that are not a record's: still an ordinary event.
        let back = request(b"{\"body\":\"plain text\"}\n", 7);
        let record = &back.resource_logs[0].scope_logs[0].log_records[0];
        assert_eq!(record.observed_time_unix_nano, 7);
    }

    #[test]
    fn a_record_nested_deeper_than_max_depth_is_rejected_alone() {
        let mut deep = text("leaf");
        for _ in 0..40 {
            deep = AnyValue {
                value: Some(any_value::Value::ArrayValue(ArrayValue {
                    values: vec![deep],
                })),
            };
        }
        let mut req = sample();
        req.resource_logs[0].scope_logs[0].log_records[1].body = Some(deep);
        let converted = events(&req, 64);
        assert_eq!((converted.accepted, converted.rejected), (3, 1));
        let message = converted.first_error.unwrap();
        assert!(message.starts_with("log record 2: "), "{message}");
    }

    proptest! {
        #[test]
        fn mutated_requests_never_panic_decoding_or_conversion(
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
            cut in any::<usize>(),
        ) {
            let mut bytes = sample().encode_to_vec();
            for (at, byte) in flips {
                let i = at % bytes.len();
                bytes[i] = byte;
            }
            bytes.truncate(cut % (bytes.len() + 1));
            if let Ok(req) = ExportLogsServiceRequest::decode(&bytes[..]) {
                let converted = events(&req, 64);
                let _ = request(&converted.text, 1);
            }
        }

        #[test]
        fn any_event_text_becomes_a_request(lines in proptest::collection::vec(".{0,64}", 0..8)) {
            let text = lines.join("\n");
            let _ = request(text.as_bytes(), 1).encode_to_vec();
        }
    }
}
