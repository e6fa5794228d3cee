//! The JSON Schema of the configuration file (`seawall schema`), derived from the config
//! structs with `schemars`, so editors complete and check the YAML (yaml-language-server).
//!
//! The schema knows the sections, keys, types, enumerations and the duration and size
//! syntax; the bounds and the rules across fields (a fallback of the same kind, …) stay with
//! `seawall check`, which remains the authority. The types below stand in, in the schema, for
//! fields that deserialise through an adapter (`#[schemars(with = "…")]`).

use std::borrow::Cow;

use schemars::generate::SchemaSettings;
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};

use super::Config;

/// The schema of the whole file (JSON Schema draft-07, which every YAML editor reads).
///
/// ```
/// let schema = seawall::config::json_schema();
/// assert_eq!(schema["title"], "Seawall configuration");
/// assert_eq!(schema["additionalProperties"], false);
/// ```
pub fn json_schema() -> serde_json::Value {
    let mut schema = SchemaSettings::draft07()
        .into_generator()
        .into_root_schema_for::<Config>();
    schema.insert("title".into(), "Seawall configuration".into());
    schema.insert(
        "description".into(),
        "Seawall's YAML configuration. Every section is optional; `seawall check -c FILE` \
         validates a file completely (bounds and rules across fields included)."
            .into(),
    );
    schema.to_value()
}

/// A duration with a unit (`500ms`, `30s`, `15m`, `1h 30m`), parsed by `humantime`.
pub(crate) struct DurationText;

impl JsonSchema for DurationText {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": r"^\s*([0-9]+\s*[A-Za-zµ]+\s*)+$",
            "description": "A duration with a unit: `500ms`, `30s`, `15m`, `1h`, `1h 30m`. A bare number is an error.",
            "examples": ["500ms", "30s", "15m", "1h 30m"]
        })
    }
}

/// A byte size: an integer number of bytes, or a number with a binary unit (`10MB`).
pub(crate) struct SizeText;

impl JsonSchema for SizeText {
    fn schema_name() -> Cow<'static, str> {
        "Size".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A size in bytes: a plain integer, or a number with a unit (`512KB`, `10MB`, `1GB`). Units are binary: 1MB = 1 048 576 bytes.",
            "anyOf": [
                { "type": "integer", "minimum": 0 },
                { "type": "string", "pattern": r"^\s*[0-9]+(\.[0-9]+)?\s*([KkMmGgTtPpEe][Ii]?)?[Bb]?\s*$" }
            ],
            "examples": ["512KB", "10MB", "1GB", 4096]
        })
    }
}

/// A listen address, `IP:PORT`.
pub(crate) struct ListenAddress;

impl JsonSchema for ListenAddress {
    fn schema_name() -> Cow<'static, str> {
        "ListenAddress".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": r"^\s*(\[[0-9A-Fa-f:.%a-zA-Z]+\]|[0-9]{1,3}(\.[0-9]{1,3}){3}):[0-9]{1,5}\s*$",
            "description": "A socket address, `IP:PORT`, such as `127.0.0.1:8080` or `[::1]:8080`.",
            "examples": ["127.0.0.1:8080", "0.0.0.0:9090", "[::1]:8080"]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adapted_fields_have_their_text_schemas() {
        let schema = json_schema();
        let text = schema.to_string();
        let definitions = &schema["definitions"];
        assert_eq!(definitions["Duration"]["type"], "string", "{text}");
        assert!(definitions["Size"]["anyOf"].is_array(), "{text}");
        assert_eq!(definitions["ListenAddress"]["type"], "string", "{text}");
        // No field fell back to the shape of `std::time::Duration` ({secs, nanos}).
        assert!(!text.contains("\"nanos\""), "{text}");
    }
}
