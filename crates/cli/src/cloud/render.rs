//! Printing the cloud's JSON answers as `table` (aligned columns, upper-case header, like `output`), `json`
//! (one object per line, exactly as the server sent it) or `csv` (a header of field names, then raw values).
//!
//! Owns only the text layout of lists and single records. Must not call the network or decide which fields a
//! command shows (the commands pass their `Column`s).

use std::io::Write;

use anyhow::Result;
use serde_json::Value;

use crate::output::Format;

/// Widest cell in table output; longer values are cut with `…` (JSON and CSV are never cut).
const MAX_CELL_CHARS: usize = 64;

/// How a field is shown in table output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// As text.
    Text,
    /// Unix seconds, shown as `YYYY-MM-DD HH:MM:SS` UTC.
    Time,
}

/// One shown field: its JSON key, its table header, and how to show it.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    /// Key in the server's JSON object; a dotted path (`user.email`) reaches into nested objects.
    pub key: &'static str,
    /// Table header (printed upper-case).
    pub header: &'static str,
    /// How to show it in a table.
    pub kind: Kind,
}

/// A text column.
pub const fn text(key: &'static str, header: &'static str) -> Column {
    Column { key, header, kind: Kind::Text }
}

/// A Unix-seconds column.
pub const fn time(key: &'static str, header: &'static str) -> Column {
    Column { key, header, kind: Kind::Time }
}

fn field<'a>(row: &'a Value, key: &str) -> &'a Value {
    key.split('.').fold(row, |v, k| v.get(k).unwrap_or(&Value::Null))
}

/// A value as plain text: strings unquoted, null empty.
fn raw(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A value as a table cell: times as UTC dates, control characters escaped, long values cut.
fn cell(v: &Value, kind: Kind) -> String {
    let text = match (kind, v.as_i64()) {
        (Kind::Time, Some(secs)) => utc(secs),
        _ => raw(v),
    };
    let mut out = String::new();
    for (n, c) in text.chars().enumerate() {
        if n == MAX_CELL_CHARS {
            out.push('…');
            break;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SS` in UTC.
pub fn utc(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = loupe_common::schedule::civil_from_days(days);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}", rem / 3600, rem / 60 % 60, rem % 60)
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_owned() }
}

fn write_aligned(lines: &[Vec<String>], out: &mut dyn Write) -> Result<()> {
    let mut widths: Vec<usize> = Vec::new();
    for line in lines {
        for (i, c) in line.iter().enumerate() {
            let w = c.chars().count();
            match widths.get_mut(i) {
                Some(max) => *max = (*max).max(w),
                None => widths.push(w),
            }
        }
    }
    for line in lines {
        let mut s = String::new();
        for (i, (c, w)) in line.iter().zip(&widths).enumerate() {
            if i > 0 {
                s.push_str("  ");
            }
            s.push_str(c);
            if i + 1 < line.len() {
                s.extend(std::iter::repeat_n(' ', w.saturating_sub(c.chars().count())));
            }
        }
        // Empty trailing cells (e.g. a key never used nor revoked) leave no trailing blanks.
        writeln!(out, "{}", s.trim_end())?;
    }
    Ok(())
}

/// Prints a list of objects: a table with one row each, one JSON object per line, or CSV.
pub fn list(rows: &[Value], cols: &[Column], format: Format, out: &mut dyn Write) -> Result<()> {
    match format {
        Format::Table => {
            let mut lines = vec![cols.iter().map(|c| c.header.to_uppercase()).collect::<Vec<_>>()];
            lines.extend(rows.iter().map(|r| cols.iter().map(|c| cell(field(r, c.key), c.kind)).collect()));
            write_aligned(&lines, out)
        }
        Format::Json => {
            for r in rows {
                writeln!(out, "{r}")?;
            }
            Ok(())
        }
        Format::Csv => {
            writeln!(out, "{}", cols.iter().map(|c| csv_field(c.key)).collect::<Vec<_>>().join(","))?;
            for r in rows {
                let cells: Vec<String> = cols.iter().map(|c| csv_field(&raw(field(r, c.key)))).collect();
                writeln!(out, "{}", cells.join(","))?;
            }
            Ok(())
        }
        Format::Svg => anyhow::bail!("-o svg draws flamegraphs of `px run` results; use table, json or csv here"),
    }
}

/// Prints one object: `HEADER  value` lines in a table, one JSON line, or a CSV header and row.
pub fn record(row: &Value, cols: &[Column], format: Format, out: &mut dyn Write) -> Result<()> {
    match format {
        Format::Table => {
            let lines: Vec<Vec<String>> =
                cols.iter().map(|c| vec![c.header.to_uppercase(), cell(field(row, c.key), c.kind)]).collect();
            write_aligned(&lines, out)
        }
        Format::Json | Format::Csv | Format::Svg => list(std::slice::from_ref(row), cols, format, out),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const COLS: &[Column] = &[text("id", "id"), text("description", "description"), time("created_at", "created")];

    fn render(format: Format) -> String {
        let rows = [
            json!({"id": "a", "description": "ci, nightly", "created_at": 0, "extra": 1}),
            json!({"id": "bb", "description": "line1\nline2", "created_at": 1_700_000_000}),
        ];
        let mut buf = Vec::new();
        list(&rows, COLS, format, &mut buf).expect("render");
        String::from_utf8(buf).expect("utf8")
    }

    #[test]
    fn tables_align_and_escape() {
        let text = render(Format::Table);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "ID  DESCRIPTION   CREATED");
        assert_eq!(lines[1], "a   ci, nightly   1970-01-01 00:00:00");
        assert_eq!(lines[2], r"bb  line1\nline2  2023-11-14 22:13:20");
        let mut buf = Vec::new();
        list(&[json!({"id": "c", "description": "x".repeat(100)})], COLS, Format::Table, &mut buf).expect("render");
        let text = String::from_utf8(buf).expect("utf8");
        let row = text.lines().nth(1).expect("row");
        assert!(row.ends_with('…') && row.chars().count() == 4 + MAX_CELL_CHARS + 1, "{text}");
    }

    #[test]
    fn json_keeps_every_field_and_csv_quotes() {
        let text = render(Format::Json);
        let first: Value = serde_json::from_str(text.lines().next().expect("line")).expect("json");
        assert_eq!(first["extra"], 1);
        let csv = render(Format::Csv);
        assert!(
            csv.starts_with("id,description,created_at\na,\"ci, nightly\",0\nbb,\"line1\nline2\",1700000000\n"),
            "{csv}"
        );
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00");
        assert_eq!(utc(-1), "1969-12-31 23:59:59");
    }
}
