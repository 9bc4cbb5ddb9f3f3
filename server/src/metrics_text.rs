//! The two text formats `/metrics` answers in, chosen by the request's `Accept` header:
//! OpenMetrics 1.0 (what prometheus_client encodes) and the Prometheus text format 0.0.4,
//! converted here from the OpenMetrics text.
//!
//! The formats differ in what a family is called and what it may hold: a 0.0.4 counter family
//! is named after its sample (`x_total`, where OpenMetrics names it `x`), 0.0.4 has no `info`
//! or `stateset` types (they become gauges), no `# UNIT` lines, no `_created` samples, no
//! exemplars, timestamps in milliseconds rather than seconds, and no `# EOF`.

use std::fmt::Write;

use thiserror::Error;

/// `Content-Type` of an OpenMetrics answer.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// `Content-Type` of a Prometheus text answer.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A text format of `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0 text, ending in `# EOF`.
    OpenMetrics,
    /// Prometheus text format 0.0.4.
    Prometheus,
}

impl Format {
    /// The format an `Accept` header asks for: OpenMetrics when it accepts
    /// `application/openmetrics-text` at least as much as any text it accepts, else
    /// Prometheus text (also with no header, or one naming neither).
    pub fn negotiate(accept: Option<&str>) -> Self {
        let (mut openmetrics, mut text) = (0.0f64, 0.0f64);
        for range in accept.unwrap_or("").split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or("").to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.split_once('='))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
                .map_or(1.0, |(_, v)| v.trim().parse::<f64>().unwrap_or(0.0));
            match media.as_str() {
                "application/openmetrics-text" => openmetrics = openmetrics.max(q),
                "text/plain" | "text/*" | "*/*" => text = text.max(q),
                _ => {}
            }
        }
        if openmetrics > 0.0 && openmetrics >= text {
            Self::OpenMetrics
        } else {
            Self::Prometheus
        }
    }

    /// The `Content-Type` of an answer in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
            Self::Prometheus => PROMETHEUS_CONTENT_TYPE,
        }
    }
}

/// Why OpenMetrics text could not be converted.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum TextFormatError {
    /// A line is not a metadata line or a sample.
    #[error("line {line}: {reason}: {text:?}")]
    Malformed {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: &'static str,
        /// The line.
        text: String,
    },
    /// A family type the 0.0.4 format cannot express.
    #[error("family {family}: type {kind} has no Prometheus 0.0.4 form")]
    Unsupported {
        /// The family.
        family: String,
        /// Its OpenMetrics type.
        kind: String,
    },
}

/// One family of the OpenMetrics text, as the 0.0.4 text will show it.
#[derive(Default)]
struct Family {
    /// OpenMetrics family name.
    name: String,
    /// Help text, unescaped.
    help: Option<String>,
    /// OpenMetrics type (`unknown` when not given).
    kind: Option<String>,
    /// Sample lines, converted.
    samples: Vec<String>,
}

impl Family {
    /// The 0.0.4 family name and type.
    fn prometheus_name_and_type(&self) -> Result<(String, &'static str), TextFormatError> {
        let kind = self.kind.as_deref().unwrap_or("unknown");
        Ok(match kind {
            "counter" => (format!("{}_total", self.name), "counter"),
            "gauge" => (self.name.clone(), "gauge"),
            "histogram" => (self.name.clone(), "histogram"),
            "summary" => (self.name.clone(), "summary"),
            "info" => (format!("{}_info", self.name), "gauge"),
            "stateset" => (self.name.clone(), "gauge"),
            "unknown" => (self.name.clone(), "untyped"),
            other => {
                return Err(TextFormatError::Unsupported {
                    family: self.name.clone(),
                    kind: other.to_string(),
                })
            }
        })
    }

    /// Whether `sample` is one of this family's sample names.
    fn holds(&self, sample: &str) -> bool {
        const SUFFIXES: [&str; 9] = [
            "", "_total", "_created", "_bucket", "_count", "_sum", "_info", "_gcount", "_gsum",
        ];
        sample
            .strip_prefix(self.name.as_str())
            .is_some_and(|suffix| SUFFIXES.contains(&suffix))
    }

    /// Whether a sample of this family is left out of the 0.0.4 text.
    fn drops(&self, sample: &str) -> bool {
        let created = sample
            .strip_prefix(self.name.as_str())
            .is_some_and(|s| s == "_created");
        created
            && matches!(
                self.kind.as_deref(),
                Some("counter" | "histogram" | "summary")
            )
    }
}

/// The Prometheus 0.0.4 text of OpenMetrics `text`.
pub fn openmetrics_to_prometheus(text: &str) -> Result<String, TextFormatError> {
    let mut families: Vec<Family> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let malformed = |reason| TextFormatError::Malformed {
            line: i + 1,
            reason,
            text: line.to_string(),
        };
        if line.is_empty() {
            continue;
        }
        if line == "# EOF" {
            break;
        }
        if let Some(meta) = line.strip_prefix("# ") {
            let (keyword, rest) = meta
                .split_once(' ')
                .ok_or_else(|| malformed("bare comment"))?;
            let (name, value) = rest.split_once(' ').unwrap_or((rest, ""));
            let family = family_named(&mut families, name);
            match keyword {
                "HELP" => family.help = Some(unescape_help(value)),
                "TYPE" => family.kind = Some(value.to_string()),
                "UNIT" => {}
                _ => return Err(malformed("unknown metadata keyword")),
            }
            continue;
        }
        let sample = Sample::parse(line).ok_or_else(|| malformed("not a sample"))?;
        let family = match families.last_mut() {
            Some(f) if f.holds(sample.name) => f,
            _ => family_named(&mut families, sample.name),
        };
        if !family.drops(sample.name) {
            family.samples.push(sample.prometheus_line());
        }
    }
    let mut out = String::with_capacity(text.len());
    for family in &families {
        let (name, kind) = family.prometheus_name_and_type()?;
        if let Some(help) = &family.help {
            let _ = writeln!(out, "# HELP {name} {}", escape_help(help));
        }
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for sample in &family.samples {
            out.push_str(sample);
            out.push('\n');
        }
    }
    Ok(out)
}

/// The family `name`: the last one if it has that name, else a new one.
fn family_named<'a>(families: &'a mut Vec<Family>, name: &str) -> &'a mut Family {
    if families.last().is_none_or(|f| f.name != name) {
        families.push(Family {
            name: name.to_string(),
            ..Family::default()
        });
    }
    let last = families.len() - 1;
    &mut families[last]
}

/// OpenMetrics help escapes (`\\`, `\n`, `\"`) undone; another backslash is kept.
fn unescape_help(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek()) {
            ('\\', Some('\\')) => out.push('\\'),
            ('\\', Some('n')) => out.push('\n'),
            ('\\', Some('"')) => out.push('"'),
            _ => {
                out.push(c);
                continue;
            }
        }
        chars.next();
    }
    out
}

/// Help text escaped for 0.0.4, which knows only `\\` and `\n` there.
fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

/// One sample line of OpenMetrics text.
struct Sample<'a> {
    /// Metric name.
    name: &'a str,
    /// `{...}` as written (label escapes are the same in both formats), or empty.
    labels: &'a str,
    /// The value.
    value: &'a str,
    /// Timestamp in seconds, if given.
    timestamp: Option<&'a str>,
}

impl<'a> Sample<'a> {
    /// Parses `name{labels} value [timestamp] [# exemplar]`.
    fn parse(line: &'a str) -> Option<Self> {
        let name_end = line.find(['{', ' '])?;
        let name = &line[..name_end];
        if name.is_empty() {
            return None;
        }
        let rest = &line[name_end..];
        let labels_len = if rest.starts_with('{') {
            labels_end(rest)?
        } else {
            0
        };
        let (labels, rest) = rest.split_at(labels_len);
        let rest = rest.strip_prefix(' ')?;
        let rest = rest.split(" # ").next().unwrap_or(rest);
        let mut fields = rest.split(' ');
        let value = fields.next().filter(|v| !v.is_empty())?;
        let timestamp = fields.next();
        if fields.next().is_some() {
            return None;
        }
        Some(Self {
            name,
            labels,
            value,
            timestamp,
        })
    }

    /// The sample as a 0.0.4 line: infinities and NaN spelt as Go parses them, the
    /// timestamp in integer milliseconds, no exemplar.
    fn prometheus_line(&self) -> String {
        let value = match self.value {
            "inf" | "+inf" | "Inf" | "+Inf" => "+Inf",
            "-inf" | "-Inf" => "-Inf",
            "nan" | "NaN" => "NaN",
            v => v,
        };
        let mut line = format!("{}{} {value}", self.name, self.labels);
        if let Some(ms) = self
            .timestamp
            .and_then(|t| t.parse::<f64>().ok())
            .filter(|t| t.is_finite())
        {
            let _ = write!(line, " {}", (ms * 1000.0).round() as i64);
        }
        line
    }
}

/// Length of the `{...}` block at the start of `text`, quoted values and escapes skipped.
fn labels_end(text: &str) -> Option<usize> {
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            '}' if !in_quotes => return Some(i + 1),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    use prometheus_client::encoding::text::encode;
    use prometheus_client::encoding::EncodeLabelSet;
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::family::Family as MetricFamily;
    use prometheus_client::metrics::gauge::Gauge;
    use prometheus_client::metrics::histogram::Histogram;
    use prometheus_client::metrics::info::Info;
    use prometheus_client::registry::{Registry, Unit};
    use std::sync::atomic::AtomicU64;

    #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
    struct Labels {
        table: String,
    }

    fn openmetrics(registry: &Registry) -> String {
        let mut text = String::new();
        encode(&mut text, registry).expect("encode");
        text
    }

    #[test]
    fn counters_are_named_after_their_total_sample_without_unit_lines_or_eof() {
        let mut registry = Registry::with_prefix("strata");
        let rows: Counter = Counter::default();
        rows.inc_by(3);
        registry.register("rows_pulled", "Rows served by Pull", rows);
        let bytes = MetricFamily::<Labels, Counter>::default();
        bytes
            .get_or_create(&Labels {
                table: "a \"quoted\" \\ name".into(),
            })
            .inc_by(7);
        registry.register_with_unit("traffic", "Payload bytes", Unit::Bytes, bytes);
        let om = openmetrics(&registry);
        assert!(om.contains("# UNIT strata_traffic_bytes bytes"), "{om}");
        assert!(om.ends_with("# EOF\n"), "{om}");

        let text = openmetrics_to_prometheus(&om).expect("convert");
        assert_eq!(
            text,
            "# HELP strata_rows_pulled_total Rows served by Pull.\n\
             # TYPE strata_rows_pulled_total counter\n\
             strata_rows_pulled_total 3\n\
             # HELP strata_traffic_bytes_total Payload bytes.\n\
             # TYPE strata_traffic_bytes_total counter\n\
             strata_traffic_bytes_total{table=\"a \\\"quoted\\\" \\\\ name\"} 7\n"
        );
    }

    #[test]
    fn gauges_keep_their_names_and_float_values() {
        let mut registry = Registry::with_prefix("strata");
        let used: Gauge = Gauge::default();
        used.set(-5);
        registry.register_with_unit("memory_used", "Budget in use", Unit::Bytes, used);
        let ratio = MetricFamily::<Labels, Gauge<f64, AtomicU64>>::default();
        ratio.get_or_create(&Labels { table: "g".into() }).set(0.25);
        ratio
            .get_or_create(&Labels { table: "h".into() })
            .set(f64::INFINITY);
        registry.register("tier_hit_ratio", "Hits over lookups", ratio);
        let text = openmetrics_to_prometheus(&openmetrics(&registry)).expect("convert");
        assert!(
            text.starts_with(
                "# HELP strata_memory_used_bytes Budget in use.\n\
                 # TYPE strata_memory_used_bytes gauge\n\
                 strata_memory_used_bytes -5\n\
                 # HELP strata_tier_hit_ratio Hits over lookups.\n\
                 # TYPE strata_tier_hit_ratio gauge\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("strata_tier_hit_ratio{table=\"g\"} 0.25\n"),
            "{text}"
        );
        assert!(
            text.contains("strata_tier_hit_ratio{table=\"h\"} +Inf\n"),
            "{text}"
        );
    }

    #[test]
    fn histograms_keep_buckets_sum_and_count() {
        let mut registry = Registry::with_prefix("strata");
        let seconds = MetricFamily::<Labels, Histogram>::new_with_constructor(|| {
            Histogram::new([0.001, 0.01])
        });
        seconds
            .get_or_create(&Labels { table: "t".into() })
            .observe(0.005);
        registry.register_with_unit("rpc_duration", "Latency", Unit::Seconds, seconds);
        let text = openmetrics_to_prometheus(&openmetrics(&registry)).expect("convert");
        assert_eq!(
            text,
            "# HELP strata_rpc_duration_seconds Latency.\n\
             # TYPE strata_rpc_duration_seconds histogram\n\
             strata_rpc_duration_seconds_sum{table=\"t\"} 0.005\n\
             strata_rpc_duration_seconds_count{table=\"t\"} 1\n\
             strata_rpc_duration_seconds_bucket{le=\"0.001\",table=\"t\"} 0\n\
             strata_rpc_duration_seconds_bucket{le=\"0.01\",table=\"t\"} 1\n\
             strata_rpc_duration_seconds_bucket{le=\"+Inf\",table=\"t\"} 1\n"
        );
    }

    #[test]
    fn info_families_become_gauges_named_after_their_sample() {
        let mut registry = Registry::with_prefix("strata");
        registry.register(
            "build",
            "Version of the server",
            Info::new(vec![("version", "1.2.3")]),
        );
        let text = openmetrics_to_prometheus(&openmetrics(&registry)).expect("convert");
        assert_eq!(
            text,
            "# HELP strata_build_info Version of the server.\n\
             # TYPE strata_build_info gauge\n\
             strata_build_info{version=\"1.2.3\"} 1\n"
        );
    }

    #[test]
    fn families_without_samples_keep_their_metadata() {
        let om = "# HELP strata_rpc_errors Failed requests.\n\
                  # TYPE strata_rpc_errors counter\n\
                  # EOF\n";
        let text = openmetrics_to_prometheus(om).expect("convert");
        assert_eq!(
            text,
            "# HELP strata_rpc_errors_total Failed requests.\n\
             # TYPE strata_rpc_errors_total counter\n"
        );
    }

    #[test]
    fn created_samples_exemplars_and_second_timestamps_are_rewritten() {
        let om = "# TYPE a counter\n\
                  # HELP a Help with \\\"quotes\\\", a \\\\ and a\\nbreak\n\
                  a_total{x=\"} # {\"} 2 1.5 # {trace_id=\"t\"} 1 1.0\n\
                  a_created 1.7e9\n\
                  # TYPE s stateset\n\
                  s{s=\"on\"} 1\n\
                  s{s=\"off\"} 0\n\
                  # TYPE u unknown\n\
                  u NaN\n\
                  # EOF\n";
        let text = openmetrics_to_prometheus(om).expect("convert");
        assert_eq!(
            text,
            "# HELP a_total Help with \"quotes\", a \\\\ and a\\nbreak\n\
             # TYPE a_total counter\n\
             a_total{x=\"} # {\"} 2 1500\n\
             # TYPE s gauge\n\
             s{s=\"on\"} 1\n\
             s{s=\"off\"} 0\n\
             # TYPE u untyped\n\
             u NaN\n"
        );
    }

    #[test]
    fn malformed_lines_and_unsupported_types_are_refused() {
        let err = openmetrics_to_prometheus("# TYPE a gauge\na{x=\"1\" 2\n").expect_err("open");
        assert!(
            matches!(err, TextFormatError::Malformed { line: 2, .. }),
            "{err}"
        );
        let err = openmetrics_to_prometheus("# TYPE a gauge\na\n").expect_err("no value");
        assert!(
            matches!(err, TextFormatError::Malformed { line: 2, .. }),
            "{err}"
        );
        let err = openmetrics_to_prometheus("#bare\n").expect_err("bare");
        assert!(
            matches!(err, TextFormatError::Malformed { line: 1, .. }),
            "{err}"
        );
        let err = openmetrics_to_prometheus("# TYPE g gaugehistogram\ng_gcount 1\n")
            .expect_err("gaugehistogram");
        assert_eq!(
            err,
            TextFormatError::Unsupported {
                family: "g".into(),
                kind: "gaugehistogram".into()
            }
        );
    }

    #[test]
    fn accept_headers_choose_the_format() {
        use Format::{OpenMetrics, Prometheus};
        for (accept, want) in [
            (None, Prometheus),
            (Some(""), Prometheus),
            (Some("*/*"), Prometheus),
            (Some("text/plain"), Prometheus),
            (Some("text/plain; version=0.0.4"), Prometheus),
            (Some("application/json"), Prometheus),
            (Some("application/openmetrics-text"), OpenMetrics),
            (
                Some("application/openmetrics-text; version=1.0.0; charset=utf-8"),
                OpenMetrics,
            ),
            // What Prometheus itself sends.
            (
                Some(
                    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
                     version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
                ),
                OpenMetrics,
            ),
            (
                Some("text/plain;q=0.9, application/openmetrics-text;q=0.5"),
                Prometheus,
            ),
            (Some("application/openmetrics-text;q=0"), Prometheus),
            (Some("Application/OpenMetrics-Text, */*"), OpenMetrics),
        ] {
            assert_eq!(Format::negotiate(accept), want, "{accept:?}");
        }
    }
}
