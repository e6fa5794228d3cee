//! What `GET /metrics` sends: the OpenMetrics 1.0 text that `prometheus-client` encodes, to a
//! client that asks for it (Prometheus does), and the classic Prometheus text format 0.0.4
//! to every other client, each under its own content type.
//!
//! The 0.0.4 rendering is derived from the OpenMetrics text rather than encoded twice: the
//! samples are the same lines; only the metadata differs. A counter family `x` is typed as
//! `# TYPE x counter` over samples `x_total` in OpenMetrics, but 0.0.4 types a sample name, so
//! it becomes `# TYPE x_total counter` (a 0.0.4 parser would otherwise read every counter as
//! untyped); `# UNIT` lines and the closing `# EOF` have no 0.0.4 counterpart and are left out,
//! and help texts lose OpenMetrics' `\"` escape, which 0.0.4 does not know.

use std::collections::HashMap;

use http::HeaderValue;

/// The content type of the OpenMetrics text format.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The content type of the Prometheus text format 0.0.4.
pub const TEXT_0_0_4: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The two formats `/metrics` speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0.0 text.
    OpenMetrics,
    /// Prometheus text format 0.0.4.
    Text,
}

impl Format {
    /// The format for a request with this `accept` field: OpenMetrics when the client lists
    /// `application/openmetrics-text` (version 1.0.0 or none) with a quality above zero and at
    /// least that of `text/plain`; otherwise (no field, `*/*`, `text/plain`, anything else) the
    /// 0.0.4 text, which every Prometheus-format parser reads. Prometheus itself asks for
    /// OpenMetrics first.
    ///
    /// ```
    /// use http::HeaderValue;
    /// use seawall::exposition::Format;
    ///
    /// let prometheus = HeaderValue::from_static(
    ///     "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    /// );
    /// assert_eq!(Format::negotiate(Some(&prometheus)), Format::OpenMetrics);
    /// assert_eq!(Format::negotiate(None), Format::Text);
    /// assert_eq!(Format::negotiate(Some(&HeaderValue::from_static("*/*"))), Format::Text);
    /// ```
    pub fn negotiate(accept: Option<&HeaderValue>) -> Format {
        let Some(accept) = accept.and_then(|v| v.to_str().ok()) else {
            return Format::Text;
        };
        let (mut openmetrics, mut text) = (0.0_f32, 0.0_f32);
        for range in accept.split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or_default().to_ascii_lowercase();
            let (mut quality, mut version) = (1.0_f32, None);
            for param in parts {
                let Some((key, value)) = param.split_once('=') else {
                    continue;
                };
                let value = value.trim().trim_matches('"');
                match key.trim().to_ascii_lowercase().as_str() {
                    "q" => quality = value.parse().unwrap_or(0.0),
                    "version" => version = Some(value.to_owned()),
                    _ => {}
                }
            }
            match media.as_str() {
                "application/openmetrics-text"
                    if version.as_deref().is_none_or(|v| v == "1.0.0") =>
                {
                    openmetrics = openmetrics.max(quality)
                }
                "text/plain" => text = text.max(quality),
                _ => {}
            }
        }
        if openmetrics > 0.0 && openmetrics >= text {
            Format::OpenMetrics
        } else {
            Format::Text
        }
    }

    /// The `content-type` of a body in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => OPENMETRICS,
            Format::Text => TEXT_0_0_4,
        }
    }

    /// `openmetrics` (as `prometheus-client` encodes it) in this format.
    pub fn render(self, openmetrics: String) -> String {
        match self {
            Format::OpenMetrics => openmetrics,
            Format::Text => to_text_0_0_4(&openmetrics),
        }
    }
}

/// The Prometheus 0.0.4 text of an OpenMetrics exposition that has no exemplars or
/// timestamps (the daemon's has neither).
///
/// ```
/// let openmetrics = "# HELP seawall_x Things.\n# TYPE seawall_x counter\nseawall_x_total 1\n# EOF\n";
/// assert_eq!(
///     seawall::exposition::to_text_0_0_4(openmetrics),
///     "# HELP seawall_x_total Things.\n# TYPE seawall_x_total counter\nseawall_x_total 1\n",
/// );
/// ```
pub fn to_text_0_0_4(openmetrics: &str) -> String {
    let types: HashMap<&str, &str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.split_once(' '))
        .collect();
    // 0.0.4 names the family by the sample name where OpenMetrics adds a suffix to it.
    let family = |name: &str| match types.get(name).copied() {
        Some("counter") => format!("{name}_total"),
        Some("info") => format!("{name}_info"),
        _ => name.to_owned(),
    };
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            out.push_str("# HELP ");
            out.push_str(&family(name));
            out.push(' ');
            unescape_quotes(help, &mut out);
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "unknown"));
            let kind = match kind {
                "counter" | "gauge" | "histogram" | "summary" => kind,
                "info" => "gauge",
                _ => "untyped",
            };
            out.push_str("# TYPE ");
            out.push_str(&family(name));
            out.push(' ');
            out.push_str(kind);
        } else if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// Appends an OpenMetrics help text with its `\"` escapes undone (0.0.4 escapes only `\\` and
/// `\n`, which stay as they are).
fn unescape_quotes(help: &str, out: &mut String) {
    let mut chars = help.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('"') => out.push('"'),
            Some(next) => {
                out.push('\\');
                out.push(next);
            }
            None => out.push('\\'),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &'static str) -> Format {
        Format::negotiate(Some(&HeaderValue::from_static(value)))
    }

    #[test]
    fn openmetrics_only_when_asked_for_and_preferred() {
        assert_eq!(accept("application/openmetrics-text"), Format::OpenMetrics);
        assert_eq!(
            accept("application/openmetrics-text; version=1.0.0; charset=utf-8"),
            Format::OpenMetrics
        );
        assert_eq!(
            accept(
                "text/plain;version=0.0.4;q=0.3,application/openmetrics-text;version=1.0.0;q=0.5"
            ),
            Format::OpenMetrics
        );
        // Prometheus 3's header.
        assert_eq!(
            accept("application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1"),
            Format::OpenMetrics
        );
        for text in [
            "text/plain",
            "text/plain;version=0.0.4",
            "*/*",
            "text/html,application/xhtml+xml,*/*;q=0.8",
            "application/json",
            "application/openmetrics-text;q=0",
            "application/openmetrics-text;version=0.0.1",
            "application/openmetrics-text;q=0.2,text/plain;q=0.9",
            "",
        ] {
            assert_eq!(accept(text), Format::Text, "{text}");
        }
        assert_eq!(Format::negotiate(None), Format::Text);
    }

    const OPENMETRICS_SAMPLE: &str = r#"# HELP seawall_trips Transitions to open, by "reason".
# TYPE seawall_trips counter
seawall_trips_total{reason="manual"} 1
# HELP seawall_state A \"gauge\" with a \\ and a \n.
# TYPE seawall_state gauge
seawall_state{name="a \"b\""} 0.5
# HELP seawall_seconds Durations.
# TYPE seawall_seconds histogram
# UNIT seawall_seconds seconds
seawall_seconds_sum 0.2
seawall_seconds_count 1
seawall_seconds_bucket{le="0.5"} 1
seawall_seconds_bucket{le="+Inf"} 1
# HELP seawall_build Build.
# TYPE seawall_build info
seawall_build_info{version="1"} 1
# HELP seawall_odd Odd.
# TYPE seawall_odd unknown
seawall_odd 3
# EOF
"#;

    #[test]
    fn text_0_0_4_types_counters_by_their_sample_name_and_drops_what_it_lacks() {
        let expected = r#"# HELP seawall_trips_total Transitions to open, by "reason".
# TYPE seawall_trips_total counter
seawall_trips_total{reason="manual"} 1
# HELP seawall_state A "gauge" with a \\ and a \n.
# TYPE seawall_state gauge
seawall_state{name="a \"b\""} 0.5
# HELP seawall_seconds Durations.
# TYPE seawall_seconds histogram
seawall_seconds_sum 0.2
seawall_seconds_count 1
seawall_seconds_bucket{le="0.5"} 1
seawall_seconds_bucket{le="+Inf"} 1
# HELP seawall_build_info Build.
# TYPE seawall_build_info gauge
seawall_build_info{version="1"} 1
# HELP seawall_odd Odd.
# TYPE seawall_odd untyped
seawall_odd 3
"#;
        assert_eq!(to_text_0_0_4(OPENMETRICS_SAMPLE), expected);
    }

    #[test]
    fn each_format_renders_under_its_own_content_type() {
        let om = OPENMETRICS_SAMPLE.to_owned();
        assert_eq!(Format::OpenMetrics.render(om.clone()), om);
        assert!(Format::OpenMetrics
            .content_type()
            .starts_with("application/openmetrics-text"));
        assert!(!Format::Text.render(om).contains("# EOF"));
        assert!(Format::Text
            .content_type()
            .starts_with("text/plain; version=0.0.4"));
    }
}
