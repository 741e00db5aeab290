//! Turning result tables into text: `table` (aligned), `json` (one object per row, with
//! `_tableName`), or `csv` (a header per table).

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

/// Prints every table in `format`.
pub fn print(tables: &[ResultTable], format: Format, out: &mut dyn Write) -> Result<()> {
    for (i, t) in tables.iter().enumerate() {
        match format {
            Format::Table => {
                if i > 0 {
                    writeln!(out)?;
                }
                let rows: usize = t.batches.iter().map(RecordBatch::num_rows).sum();
                writeln!(out, "Table: {} ({rows} rows)", t.name)?;
                let text = if t.batches.is_empty() {
                    arrow::util::pretty::pretty_format_batches(&[RecordBatch::new_empty(t.schema.clone())])?
                } else {
                    arrow::util::pretty::pretty_format_batches(&t.batches)?
                };
                writeln!(out, "{text}")?;
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
