//! Turning result tables into text: `table` (aligned), `json` (one object per row, with
//! `_tableName`), `csv` (a header per table), or `svg` (a flamegraph of the first table with folded
//! stacks: `stack_trace` and `count` columns, as `px/perf_flamegraph` returns).
//!
//! Table output shows values by their column's semantic type, as Pixie's CLI does: durations in
//! nanoseconds as `1.2 ms`, bytes as `3.4 KiB`, fractions as `12.50 %`, throughputs per second,
//! quantile JSON as `p50: 1.2 ms, p99: …`. The type comes from the schema's field metadata (the server
//! puts the compiler's semantic types there). JSON and CSV keep the raw values.

use std::io::Write;

use anyhow::{Context, Result};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use loupe_proto::arrow_ipc;
use loupe_proto::vizierpb::{QueryData, QueryMetadata};

/// Output formats for results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns, one block per output table.
    Table,
    /// One JSON object per row, with `_tableName`.
    Json,
    /// CSV, a header line per output table.
    Csv,
    /// An SVG flamegraph of the first table with `stack_trace` (folded, root first, `;`-separated) and
    /// `count` columns, such as `px/perf_flamegraph`'s.
    Svg,
}

/// One output table as received.
pub struct ResultTable {
    /// The id data messages refer to.
    pub id: String,
    /// The name given to `px.display`.
    pub name: String,
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
}

impl ResultTable {
    /// A table announced by the server.
    pub fn new(meta: QueryMetadata) -> Result<Self> {
        let schema = arrow_ipc::decode_schema(&meta.arrow_schema).context("server sent an unreadable schema")?;
        Ok(ResultTable { id: meta.id, name: meta.name, schema, batches: Vec::new() })
    }

    /// Adds a data message's batches.
    pub fn add(&mut self, data: &QueryData) -> Result<()> {
        if !data.arrow_batch.is_empty() {
            self.batches
                .extend(arrow_ipc::decode_batches(&data.arrow_batch).context("server sent an unreadable batch")?);
        }
        Ok(())
    }
}

/// Widest cell in table output; longer values (bodies, headers) are cut with `…`. JSON and CSV
/// output are never cut.
const MAX_CELL_CHARS: usize = 64;

/// One cell as table text: control characters escaped so a row stays on one line, long
/// values cut.
fn cell_text(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len().min(MAX_CELL_CHARS + 8));
    let mut chars = 0;
    for c in raw.chars() {
        let piece: &str = match c {
            '\n' => "\\n",
            '\r' => "\\r",
            '\t' => "\\t",
            _ => "",
        };
        let add = if piece.is_empty() { 1 } else { 2 };
        if chars + add > MAX_CELL_CHARS {
            out.push('…');
            return out;
        }
        if piece.is_empty() {
            out.push(if c.is_control() { '?' } else { c });
        } else {
            out.push_str(piece);
        }
        chars += add;
    }
    out
}

/// The field-metadata key of a column's semantic type (`loupe_schema::SEMANTIC_TYPE_KEY`; the CLI does
/// not depend on the schema crate for one constant).
const SEMANTIC_TYPE_KEY: &str = "px.semantic_type";

/// How a column's values are shown in table output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Show {
    /// As Arrow prints them.
    Raw,
    /// `ST_DURATION_NS`: `1.2 ms`.
    Duration,
    /// `ST_BYTES`: `3.4 KiB`.
    Bytes,
    /// `ST_PERCENT` (a fraction): `12.50 %`.
    Percent,
    /// `ST_THROUGHPUT_PER_NS`: `1500.000000 /sec`.
    PerSecond,
    /// `ST_THROUGHPUT_BYTES_PER_NS`: `1.5 KiB/sec`.
    BytesPerSecond,
    /// `ST_DURATION_NS_QUANTILES`: `p01: 1.2 ms, p10: …`.
    DurationQuantiles,
    /// `ST_QUANTILES`: `p01: 1.5, p10: …`.
    Quantiles,
}

impl Show {
    fn of(field: &arrow::datatypes::Field) -> Show {
        match field.metadata().get(SEMANTIC_TYPE_KEY).map(String::as_str) {
            Some("ST_DURATION_NS") => Show::Duration,
            Some("ST_BYTES") => Show::Bytes,
            Some("ST_PERCENT") => Show::Percent,
            Some("ST_THROUGHPUT_PER_NS") => Show::PerSecond,
            Some("ST_THROUGHPUT_BYTES_PER_NS") => Show::BytesPerSecond,
            Some("ST_DURATION_NS_QUANTILES") => Show::DurationQuantiles,
            Some("ST_QUANTILES") => Show::Quantiles,
            _ => Show::Raw,
        }
    }
}

/// `value` scaled into the largest of `units` (each `base` times the previous) that keeps it at least
/// 1, one decimal below 10 of that unit (`1.2 ms`, `123 ms`); below 10 of the base unit, the integer.
fn humanize(value: f64, base: f64, units: &[&str]) -> String {
    let sign = if value < 0.0 { "-" } else { "" };
    let v = value.abs();
    if !v.is_finite() {
        return format!("{value}");
    }
    if v < 10.0 {
        return format!("{sign}{} {}", v.round() as u64, units[0]);
    }
    let mut e = 0;
    let mut scaled = v;
    while scaled >= base && e + 1 < units.len() {
        scaled /= base;
        e += 1;
    }
    let scaled = (scaled * 10.0).round() / 10.0;
    if scaled < 10.0 { format!("{sign}{scaled:.1} {}", units[e]) } else { format!("{sign}{scaled:.0} {}", units[e]) }
}

fn duration_text(ns: f64) -> String {
    humanize(ns, 1000.0, &["ns", "µs", "ms", "s"])
}

fn bytes_text(bytes: f64) -> String {
    humanize(bytes, 1024.0, &["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"])
}

/// A numeric cell as f64, `None` for a null or a non-numeric column.
fn number(col: &dyn arrow::array::Array, i: usize) -> Option<f64> {
    use arrow::array::AsArray;
    use arrow::datatypes::{DataType, Float64Type, Int64Type};
    if col.is_null(i) {
        return None;
    }
    match col.data_type() {
        DataType::Int64 => Some(col.as_primitive::<Int64Type>().value(i) as f64),
        DataType::Float64 => Some(col.as_primitive::<Float64Type>().value(i)),
        _ => None,
    }
}

/// `{"p50": 1200000, "p99": …}` as `p50: 1.2 ms, p99: …` (keys sorted); `None` if it is not such JSON.
fn quantiles_text(json: &str, show: impl Fn(f64) -> String) -> Option<String> {
    let map: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(json).ok().filter(|m: &serde_json::Map<_, _>| !m.is_empty())?;
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    let parts: Vec<String> = keys
        .into_iter()
        .map(|k| match map[k].as_f64() {
            Some(v) => format!("{k}: {}", show(v)),
            None => format!("{k}: {}", map[k]),
        })
        .collect();
    Some(parts.join(", "))
}

/// One cell by its column's semantic type; `None` where the raw text stands (nulls, other types).
fn semantic_text(show: Show, col: &dyn arrow::array::Array, i: usize) -> Option<String> {
    use arrow::array::AsArray;
    match show {
        Show::Raw => None,
        Show::Duration => number(col, i).map(duration_text),
        Show::Bytes => number(col, i).map(bytes_text),
        Show::Percent => number(col, i).map(|v| format!("{:.2} %", v * 100.0)),
        Show::PerSecond => number(col, i).map(|v| format!("{:.6} /sec", v * 1e9)),
        Show::BytesPerSecond => number(col, i).map(|v| format!("{}/sec", bytes_text(v * 1e9))),
        Show::DurationQuantiles | Show::Quantiles => {
            let s = col.as_string_opt::<i32>().filter(|_| !col.is_null(i))?.value(i);
            if show == Show::DurationQuantiles {
                quantiles_text(s, duration_text)
            } else {
                quantiles_text(s, |v| format!("{v}"))
            }
        }
    }
}

fn write_table(schema: &SchemaRef, batches: &[RecordBatch], out: &mut dyn Write) -> Result<()> {
    let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let shows: Vec<Show> = schema.fields().iter().map(|f| Show::of(f)).collect();
    let mut rows: Vec<Vec<String>> = Vec::new();
    let options = arrow::util::display::FormatOptions::default().with_null("null");
    for b in batches {
        let formatters = b
            .columns()
            .iter()
            .map(|c| arrow::util::display::ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()?;
        for i in 0..b.num_rows() {
            rows.push(
                formatters
                    .iter()
                    .zip(b.columns())
                    .zip(&shows)
                    .map(|((f, c), show)| {
                        cell_text(&semantic_text(*show, c.as_ref(), i).unwrap_or_else(|| f.value(i).to_string()))
                    })
                    .collect(),
            );
        }
    }
    let mut widths: Vec<usize> = names.iter().map(|n| n.chars().count()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[String], out: &mut dyn Write| -> std::io::Result<()> {
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            if i > 0 {
                s.push_str("  ");
            }
            s.push_str(c);
            if i + 1 < cells.len() {
                s.extend(std::iter::repeat_n(' ', w - c.chars().count()));
            }
        }
        writeln!(out, "{s}")
    };
    line(&names.iter().map(|n| n.to_uppercase()).collect::<Vec<_>>(), out)?;
    for r in &rows {
        line(r, out)?;
    }
    Ok(())
}

/// The folded stacks of the first table with `stack_trace` and `count` columns, as `stack count` lines
/// (the same stack summed once), sorted; `None` if no table has them.
fn folded_lines(tables: &[ResultTable]) -> Option<Vec<String>> {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{DataType, Int64Type};
    let t = tables.iter().find(|t| {
        let has = |name: &str, ty: &DataType| t.schema.field_with_name(name).is_ok_and(|f| f.data_type() == ty);
        has("stack_trace", &DataType::Utf8) && has("count", &DataType::Int64)
    })?;
    let mut counts: std::collections::BTreeMap<String, i64> = std::collections::BTreeMap::new();
    for b in &t.batches {
        let (Some(stacks), Some(counts_col)) = (b.column_by_name("stack_trace"), b.column_by_name("count")) else {
            continue;
        };
        let (stacks, n) = (stacks.as_string::<i32>(), counts_col.as_primitive::<Int64Type>());
        for i in 0..b.num_rows() {
            if stacks.is_null(i) || n.is_null(i) || n.value(i) <= 0 || stacks.value(i).is_empty() {
                continue;
            }
            // A frame name never holds a newline; a stack with one would break the line format.
            let stack = stacks.value(i).replace('\n', " ");
            *counts.entry(stack).or_default() += n.value(i);
        }
    }
    Some(counts.into_iter().map(|(stack, n)| format!("{stack} {n}")).collect())
}

/// Writes the flamegraph of the folded stacks in `tables` as SVG.
fn write_svg(tables: &[ResultTable], out: &mut dyn Write) -> Result<()> {
    let lines = folded_lines(tables).context(
        "-o svg needs a table with `stack_trace` and `count` columns (folded stacks, e.g. px/perf_flamegraph)",
    )?;
    let mut options = inferno::flamegraph::Options::default();
    options.title = "CPU flamegraph".into();
    options.count_name = "samples".into();
    if lines.is_empty() {
        // inferno refuses empty input; an empty profile is still a valid, empty picture.
        options.subtitle = Some("no samples in the time range".into());
        return inferno::flamegraph::from_lines(&mut options, ["[no samples] 1"], out)
            .context("failed to draw the flamegraph");
    }
    inferno::flamegraph::from_lines(&mut options, lines.iter().map(String::as_str), out)
        .context("failed to draw the flamegraph")
}

/// Prints every table in `format`.
pub fn print(tables: &[ResultTable], format: Format, out: &mut dyn Write) -> Result<()> {
    if format == Format::Svg {
        return write_svg(tables, out);
    }
    for (i, t) in tables.iter().enumerate() {
        match format {
            Format::Table => {
                if i > 0 {
                    writeln!(out)?;
                }
                let rows: usize = t.batches.iter().map(RecordBatch::num_rows).sum();
                writeln!(out, "Table: {} ({rows} rows)", t.name)?;
                write_table(&t.schema, &t.batches, out)?;
            }
            Format::Json => {
                let mut buf = Vec::new();
                {
                    let mut w = arrow::json::LineDelimitedWriter::new(&mut buf);
                    for b in &t.batches {
                        w.write(b)?;
                    }
                    w.finish()?;
                }
                for line in buf.split(|&c| c == b'\n').filter(|l| !l.is_empty()) {
                    let mut obj: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(line)?;
                    obj.insert("_tableName".into(), serde_json::Value::String(t.name.clone()));
                    writeln!(out, "{}", serde_json::Value::Object(obj))?;
                }
            }
            // Drawn whole above.
            Format::Svg => {}
            Format::Csv => {
                if i > 0 {
                    writeln!(out)?;
                }
                let mut w = arrow::csv::WriterBuilder::new().with_header(true).build(&mut *out);
                if t.batches.is_empty() {
                    w.write(&RecordBatch::new_empty(t.schema.clone()))?;
                }
                for b in &t.batches {
                    w.write(b)?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, StringArray};

    use super::*;

    fn table() -> ResultTable {
        let batch = RecordBatch::try_from_iter(vec![
            ("status", Arc::new(Int64Array::from(vec![200, 404])) as _),
            ("body", Arc::new(StringArray::from(vec!["line1\nline2", &"x".repeat(100)])) as _),
        ])
        .expect("batch");
        ResultTable { id: "0".into(), name: "out".into(), schema: batch.schema(), batches: vec![batch] }
    }

    fn render(format: Format) -> String {
        let mut buf = Vec::new();
        print(&[table()], format, &mut buf).expect("print");
        String::from_utf8(buf).expect("utf8")
    }

    #[test]
    fn table_rows_stay_on_one_line_and_long_cells_are_cut() {
        let text = render(Format::Table);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "Table: out (2 rows)");
        assert!(lines[1].starts_with("STATUS  BODY"), "{text}");
        assert!(lines[2].contains(r"line1\nline2"), "{text}");
        assert!(lines[3].ends_with('…') && lines[3].chars().count() < 80, "{text}");
        assert_eq!(lines.len(), 4);
    }

    #[test]
    fn json_rows_carry_the_table_name_and_full_values() {
        let text = render(Format::Json);
        let rows: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).expect("json")).collect();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0]["_tableName"], "out");
        assert_eq!(rows[0]["body"], "line1\nline2");
        assert_eq!(rows[1]["body"].as_str().map(str::len), Some(100));
    }

    /// A table whose columns carry semantic types, as the server sends them.
    fn semantic_table() -> ResultTable {
        use std::collections::HashMap;

        use arrow::array::Float64Array;
        use arrow::datatypes::{DataType, Field, Schema};
        let field = |name: &str, ty: DataType, st: &str| {
            Field::new(name, ty, true).with_metadata(HashMap::from([(SEMANTIC_TYPE_KEY.to_string(), st.to_string())]))
        };
        let schema = Arc::new(Schema::new(vec![
            field("latency", DataType::Int64, "ST_DURATION_NS"),
            field("mean", DataType::Float64, "ST_DURATION_NS"),
            field("size", DataType::Int64, "ST_BYTES"),
            field("errors", DataType::Float64, "ST_PERCENT"),
            field("rps", DataType::Float64, "ST_THROUGHPUT_PER_NS"),
            field("q", DataType::Utf8, "ST_DURATION_NS_QUANTILES"),
            field("n", DataType::Int64, "ST_NONE"),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![Some(1_234_567), Some(5), Some(-2_500_000_000), None])),
                Arc::new(Float64Array::from(vec![123_000_000.0, 999.0, 45_000.0, 10.0])),
                Arc::new(Int64Array::from(vec![3_482, 3, 1 << 30, 150 * 1024])),
                Arc::new(Float64Array::from(vec![0.125, 0.0, 1.0, 0.0001])),
                Arc::new(Float64Array::from(vec![1.5e-6, 0.0, 1e-9, 2e-9])),
                Arc::new(StringArray::from(vec![r#"{"p99":2000000,"p50":1500}"#, "not json", "{}", r#"{"p50":12.0}"#])),
                Arc::new(Int64Array::from(vec![1_234_567, 5, 7, 9])),
            ],
        )
        .expect("batch");
        ResultTable { id: "0".into(), name: "sem".into(), schema, batches: vec![batch] }
    }

    #[test]
    fn table_shows_values_by_semantic_type() {
        let mut buf = Vec::new();
        print(&[semantic_table()], Format::Table, &mut buf).expect("print");
        let text = String::from_utf8(buf).expect("utf8");
        let cells: Vec<Vec<&str>> =
            text.lines().skip(2).map(|l| l.split("  ").map(str::trim).filter(|c| !c.is_empty()).collect()).collect();
        assert_eq!(
            cells[0],
            vec!["1.2 ms", "123 ms", "3.4 KiB", "12.50 %", "1500.000000 /sec", "p50: 1.5 µs, p99: 2.0 ms", "1234567"],
            "{text}"
        );
        assert_eq!(cells[1], vec!["5 ns", "999 ns", "3 B", "0.00 %", "0.000000 /sec", "not json", "5"], "{text}");
        assert_eq!(cells[2], vec!["-2.5 s", "45 µs", "1.0 GiB", "100.00 %", "1.000000 /sec", "{}", "7"], "{text}");
        assert_eq!(cells[3], vec!["null", "10 ns", "150 KiB", "0.01 %", "2.000000 /sec", "p50: 12 ns", "9"], "{text}");
    }

    #[test]
    fn json_and_csv_keep_raw_values_of_semantic_columns() {
        let mut buf = Vec::new();
        print(&[semantic_table()], Format::Json, &mut buf).expect("print");
        let first: serde_json::Value =
            serde_json::from_str(String::from_utf8(buf).expect("utf8").lines().next().expect("a row")).expect("json");
        assert_eq!(first["latency"], 1_234_567);
        assert_eq!(first["size"], 3_482);
        assert_eq!(first["errors"], 0.125);
        let mut buf = Vec::new();
        print(&[semantic_table()], Format::Csv, &mut buf).expect("print");
        let csv = String::from_utf8(buf).expect("utf8");
        assert!(csv.lines().nth(1).is_some_and(|l| l.starts_with("1234567,123000000.0,3482,0.125,")), "{csv}");
    }

    #[test]
    fn csv_has_a_header_and_quotes_newlines() {
        let text = render(Format::Csv);
        assert!(text.starts_with("status,body\n200,\"line1\nline2\"\n"), "{text}");
    }

    fn stacks(rows: &[(&str, i64)]) -> ResultTable {
        let batch = RecordBatch::try_from_iter(vec![
            ("stack_trace", Arc::new(StringArray::from(rows.iter().map(|r| r.0).collect::<Vec<_>>())) as _),
            ("count", Arc::new(Int64Array::from(rows.iter().map(|r| r.1).collect::<Vec<_>>())) as _),
        ])
        .expect("batch");
        ResultTable { id: "0".into(), name: "Flamegraph".into(), schema: batch.schema(), batches: vec![batch] }
    }

    #[test]
    fn folded_stacks_are_summed_and_drawn_as_svg() {
        let t = stacks(&[("main;a;b;hot", 90), ("main;a;cold", 10), ("main;a;b;hot", 5), ("", 3), ("main;idle", 0)]);
        assert_eq!(
            folded_lines(std::slice::from_ref(&t)),
            Some(vec!["main;a;b;hot 95".into(), "main;a;cold 10".into()])
        );
        let mut buf = Vec::new();
        print(&[table(), t], Format::Svg, &mut buf).expect("svg");
        let svg = String::from_utf8(buf).expect("utf8");
        assert!(svg.contains("<svg") && svg.contains("hot") && svg.contains("cold"), "{svg}");
        // No table of folded stacks: a clear error, not an empty picture.
        let err = print(&[table()], Format::Svg, &mut Vec::new()).expect_err("no stacks");
        assert!(err.to_string().contains("stack_trace"), "{err}");
        // A table of folded stacks without rows is still a picture.
        let mut buf = Vec::new();
        print(&[stacks(&[])], Format::Svg, &mut buf).expect("empty svg");
        assert!(String::from_utf8(buf).expect("utf8").contains("<svg"));
    }
}
