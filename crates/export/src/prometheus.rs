//! A Prometheus view of script results: the rows of a script's output tables as gauges in the text exposition
//! format (0.0.4), for a `/metrics` endpoint to serve.
//!
//! The naming rule: each numeric column (INT64, UINT64, FLOAT64; booleans as 0/1) of table `t` becomes the gauge
//! `loupe_script_<t>_<column>` (plus `_value` after a `_total`, `_sum`, `_count` or `_bucket` ending), one sample per row, labelled with the row's string columns and `script="<name>"`; names
//! are lower-cased with every character outside `[a-z0-9_]` replaced by `_`. Time columns are left out (the scrape
//! is the time); when several rows have the same labels the last one wins (a time series of one service keeps its
//! newest value). At most [`MAX_SERIES`] samples are written.
//!
//! Owns the mapping and the format. Must not serve HTTP or decide which scripts are shown.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float64Type, Int64Type, UInt64Type};

/// Most samples in one exposition.
pub const MAX_SERIES: usize = 10_000;

/// A Prometheus metric or label name from a PxL name.
pub fn metric_name(parts: &[&str]) -> String {
    let mut out = String::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            out.push('_');
        }
        out.extend(p.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }));
    }
    if out.starts_with(|c: char| c.is_ascii_digit()) || out.is_empty() {
        out.insert(0, '_');
    }
    out
}

/// `loupe_script_<table>_<column>` (apart from Loupe's own metrics), with `_value` added to a name ending in a suffix Prometheus keeps for counters,
/// histograms and summaries (`_total`, `_sum`, `_count`, `_bucket`), so the gauge is not read as one of those.
pub fn gauge_name(table: &str, column: &str) -> String {
    let mut name = metric_name(&["loupe_script", table, column]);
    if ["_total", "_sum", "_count", "_bucket"].iter().any(|s| name.ends_with(s)) {
        name.push_str("_value");
    }
    name
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn number(a: &dyn Array, row: usize) -> Option<f64> {
    if a.is_null(row) {
        return None;
    }
    match a.data_type() {
        DataType::Int64 => Some(a.as_primitive::<Int64Type>().value(row) as f64),
        DataType::UInt64 => Some(a.as_primitive::<UInt64Type>().value(row) as f64),
        DataType::Float64 => Some(a.as_primitive::<Float64Type>().value(row)),
        DataType::Boolean => Some(if a.as_boolean().value(row) { 1.0 } else { 0.0 }),
        _ => None,
    }
}

fn text(a: &dyn Array, row: usize) -> Option<String> {
    if a.is_null(row) {
        return Some(String::new());
    }
    match a.data_type() {
        DataType::Utf8 => Some(a.as_string::<i32>().value(row).to_owned()),
        DataType::LargeUtf8 => Some(a.as_string::<i64>().value(row).to_owned()),
        DataType::Utf8View => Some(a.as_string_view().value(row).to_owned()),
        _ => None,
    }
}

fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf".into() } else { "-Inf".into() }
    } else {
        format!("{v}")
    }
}

/// One script's result: its name and its output tables (name → batches).
pub type ScriptResult = (String, Vec<(String, Vec<RecordBatch>)>);

/// The exposition of every script's result (a metric that several scripts' tables make has one family).
pub fn render(results: &[ScriptResult]) -> String {
    // metric name → (help, labels text → value), in name order so scrapes are stable.
    let mut families: BTreeMap<String, (String, BTreeMap<String, String>)> = BTreeMap::new();
    let mut samples = 0usize;
    for (script, tables) in results {
        for (table, batches) in tables {
            for batch in batches {
                let schema = batch.schema();
                let labels: Vec<(String, usize)> = schema
                    .fields()
                    .iter()
                    .enumerate()
                    .filter(|(_, f)| matches!(f.data_type(), DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View))
                    .map(|(i, f)| (metric_name(&[f.name()]), i))
                    .collect();
                // Two columns that sanitize to one label name (or to `script`, or Prometheus's reserved `__`) keep
                // only the first: a sample never repeats a label.
                let mut seen = std::collections::HashSet::from(["script".to_string()]);
                let labels: Vec<(String, usize)> =
                    labels.into_iter().filter(|(n, _)| !n.starts_with("__") && seen.insert(n.clone())).collect();
                let values: Vec<(String, usize, &str)> = schema
                    .fields()
                    .iter()
                    .enumerate()
                    .filter(|(_, f)| {
                        matches!(
                            f.data_type(),
                            DataType::Int64 | DataType::UInt64 | DataType::Float64 | DataType::Boolean
                        )
                    })
                    .map(|(i, f)| (gauge_name(table, f.name()), i, f.name().as_str()))
                    .collect();
                for row in 0..batch.num_rows() {
                    let mut label_text = format!("script=\"{}\"", escape(script));
                    for (name, i) in &labels {
                        if let Some(v) = text(batch.column(*i).as_ref(), row) {
                            let _ = write!(label_text, ",{name}=\"{}\"", escape(&v));
                        }
                    }
                    for (name, i, column) in &values {
                        let Some(v) = number(batch.column(*i).as_ref(), row) else { continue };
                        let family = families.entry(name.clone()).or_insert_with(|| {
                            (
                                format!("column `{column}` of table `{table}` of a script's newest result"),
                                BTreeMap::new(),
                            )
                        });
                        if !family.1.contains_key(&label_text) {
                            if samples >= MAX_SERIES {
                                continue;
                            }
                            samples += 1;
                        }
                        family.1.insert(label_text.clone(), format_value(v));
                    }
                }
            }
        }
    }
    let mut out = String::new();
    for (name, (help, series)) in families {
        let _ = writeln!(out, "# HELP {name} {}", help.replace('\\', "\\\\").replace('\n', " "));
        let _ = writeln!(out, "# TYPE {name} gauge");
        for (labels, value) in series {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_sanitized() {
        assert_eq!(metric_name(&["loupe", "http_stats", "p99 Latency"]), "loupe_http_stats_p99_latency");
        assert_eq!(metric_name(&["9lives"]), "_9lives");
        assert_eq!(metric_name(&["req.path"]), "req_path");
        assert_eq!(gauge_name("s", "latency_sum"), "loupe_script_s_latency_sum_value");
        assert_eq!(gauge_name("s", "n"), "loupe_script_s_n");
    }
}
