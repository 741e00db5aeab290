//! Pixie-compatible table schemas, as Arrow schemas, and row builders for them.
//!
//! Owns table and column names, Arrow types and semantic types (kept in field metadata under
//! [`SEMANTIC_TYPE_KEY`]). Every table is declared once with [`table!`] (or [`conn8_table!`] for protocol
//! tables), which yields its spec, an owned row struct and a column builder; `docs/tables.md` is generated from
//! the same declarations. The collector, store, PxL checker and UI all read tables from here.
//! Must not know how rows are collected, stored or queried.
//!
//! Type mapping of Pixie's data types: INT64 → Int64, FLOAT64 → Float64, BOOLEAN → Boolean, STRING → Utf8,
//! TIME64NS → Timestamp(ns), UINT128 (`upid`) → Utf8 in its text form `asid:pid:start_ticks`, which groups,
//! filters and prints without special cases.

pub mod host;
pub mod http;
pub mod protocols;
pub mod table;

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// Field-metadata key holding a column's Pixie semantic type name (e.g. `ST_DURATION_NS`).
pub const SEMANTIC_TYPE_KEY: &str = "px.semantic_type";

/// The name of the time column every Pixie table carries.
pub const TIME_COLUMN: &str = "time_";

/// A column's Pixie data type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// BOOLEAN
    Boolean,
    /// INT64 (also enums, ports, durations)
    Int64,
    /// FLOAT64
    Float64,
    /// STRING
    String,
    /// TIME64NS
    Time64Ns,
    /// UINT128, stored as text `asid:pid:start_ticks`
    Uint128,
}

impl ColumnType {
    /// The Arrow type used for this column.
    pub fn arrow_type(self) -> DataType {
        match self {
            ColumnType::Boolean => DataType::Boolean,
            ColumnType::Int64 => DataType::Int64,
            ColumnType::Float64 => DataType::Float64,
            ColumnType::String | ColumnType::Uint128 => DataType::Utf8,
            ColumnType::Time64Ns => DataType::Timestamp(TimeUnit::Nanosecond, None),
        }
    }
}

/// One column of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnSpec {
    /// Column name, as in Pixie.
    pub name: &'static str,
    /// Data type.
    pub ty: ColumnType,
    /// Pixie semantic type name (`ST_NONE` when none).
    pub semantic: &'static str,
    /// One-line description, shown by `px/schemas`.
    pub desc: &'static str,
}

/// One table: its name and columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec {
    /// Table name, as in Pixie (`http_events`).
    pub name: &'static str,
    /// One-line description.
    pub desc: &'static str,
    /// Columns in order; the first is `time_`.
    pub columns: Vec<ColumnSpec>,
}

impl TableSpec {
    /// The Arrow schema, with semantic types in field metadata.
    pub fn arrow_schema(&self) -> SchemaRef {
        let fields: Vec<Field> = self
            .columns
            .iter()
            .map(|c| {
                Field::new(c.name, c.ty.arrow_type(), false)
                    .with_metadata(HashMap::from([(SEMANTIC_TYPE_KEY.to_string(), c.semantic.to_string())]))
            })
            .collect();
        Arc::new(Schema::new(fields))
    }

    /// The column called `name`, if any.
    pub fn column(&self, name: &str) -> Option<&ColumnSpec> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// Every table Loupe knows (Pixie's tables), in a stable order: protocol tables, then host tables.
pub fn all_tables() -> Vec<TableSpec> {
    vec![
        http::http_events(),
        protocols::mysql_events(),
        protocols::pgsql_events(),
        protocols::cql_events(),
        protocols::dns_events(),
        protocols::redis_events(),
        protocols::kafka_events(),
        protocols::nats_events(),
        protocols::mux_events(),
        protocols::amqp_events(),
        protocols::mqtt_events(),
        protocols::mongodb_events(),
        protocols::tls_events(),
        protocols::conn_stats(),
        host::process_stats(),
        host::network_stats(),
        host::jvm_stats(),
        host::stack_traces(),
        host::proc_exit_events(),
        host::tcp_stats_events(),
        host::stirling_error(),
        host::probe_status(),
        host::agent_stats(),
    ]
}

/// The reference page `docs/tables.md`: every table with its columns, types, semantic types and docs.
pub fn tables_markdown() -> String {
    use std::fmt::Write as _;
    let mut out = String::from(
        "# Tables\n\nGenerated from the declarations in `crates/schema` (`cargo test -p loupe-schema` checks it; \
         `LOUPE_BLESS=1 cargo test -p loupe-schema` rewrites it). Names and columns are Pixie's, so scripts carry \
         over. A table that no source fills yet answers with no rows.\n",
    );
    for t in all_tables() {
        let _ = write!(
            out,
            "\n## `{}`\n\n{}.\n\n| column | type | semantic type | meaning |\n|---|---|---|---|\n",
            t.name, t.desc
        );
        for c in &t.columns {
            let _ = writeln!(out, "| `{}` | {:?} | {} | {} |", c.name, c.ty, c.semantic, c.desc);
        }
    }
    out
}

/// The table called `name`, if Loupe knows it.
pub fn table(name: &str) -> Option<TableSpec> {
    all_tables().into_iter().find(|t| t.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_starts_with_time_and_has_unique_columns() {
        for t in all_tables() {
            assert_eq!(t.columns[0].name, TIME_COLUMN, "{}", t.name);
            let mut names: Vec<_> = t.columns.iter().map(|c| c.name).collect();
            names.sort_unstable();
            names.dedup();
            assert_eq!(names.len(), t.columns.len(), "{} has duplicate columns", t.name);
        }
    }

    #[test]
    fn every_table_has_a_unique_name_and_builds_an_empty_batch() {
        let mut names: Vec<_> = all_tables().iter().map(|t| t.name).collect();
        assert_eq!(names.len(), 23);
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 23, "duplicate table names");
        let batch = protocols::RedisEventsBuilder::new().finish().expect("empty batch");
        assert_eq!(batch.schema(), protocols::redis_events().arrow_schema());
        let mut exits = host::ProcExitEventsBuilder::new();
        exits.append(&host::ProcExitEventRow { time_ns: 7, exit_code: 3, comm: "sh".into(), ..Default::default() });
        let batch = exits.finish().expect("batch");
        assert_eq!(batch.num_rows(), 1);
        assert_eq!(batch.schema().field(2).name(), "exit_code");
    }

    /// `docs/tables.md` is what the declarations say; `LOUPE_BLESS=1` rewrites it.
    #[test]
    fn tables_doc_is_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/tables.md");
        let want = tables_markdown();
        if std::env::var_os("LOUPE_BLESS").is_some() {
            std::fs::write(&path, &want).expect("write docs/tables.md");
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(have == want, "docs/tables.md is stale: run `LOUPE_BLESS=1 cargo test -p loupe-schema` and commit it");
    }

    #[test]
    fn semantic_types_reach_arrow_metadata() {
        let s = table("http_events").expect("http_events").arrow_schema();
        let latency = s.field_with_name("latency").expect("latency");
        assert_eq!(latency.metadata().get(SEMANTIC_TYPE_KEY).map(String::as_str), Some("ST_DURATION_NS"));
    }
}
