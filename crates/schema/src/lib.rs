//! Pixie-compatible table schemas, as Arrow schemas, and row builders for them.
//!
//! Owns table and column names, Arrow types and semantic types (kept in field metadata under
//! [`SEMANTIC_TYPE_KEY`]). The collector, store, PxL checker and UI all read tables from here.
//! Must not know how rows are collected, stored or queried.
//!
//! Type mapping (see `shared/specs/tables.md` §1): INT64 → Int64, FLOAT64 → Float64,
//! BOOLEAN → Boolean, STRING → Utf8, TIME64NS → Timestamp(ns), UINT128 (`upid`) → Utf8 in its
//! text form `asid:pid:start_ticks`, which groups, filters and prints without special cases.

pub mod http;

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

pub(crate) const fn col(name: &'static str, ty: ColumnType, semantic: &'static str, desc: &'static str) -> ColumnSpec {
    ColumnSpec { name, ty, semantic, desc }
}

/// Every table Loupe knows, in a stable order.
pub fn all_tables() -> Vec<TableSpec> {
    vec![http::http_events()]
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
    fn semantic_types_reach_arrow_metadata() {
        let s = table("http_events").expect("http_events").arrow_schema();
        let latency = s.field_with_name("latency").expect("latency");
        assert_eq!(latency.metadata().get(SEMANTIC_TYPE_KEY).map(String::as_str), Some("ST_DURATION_NS"));
    }
}
