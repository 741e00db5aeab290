//! `table!`: declare a table once and get its [`TableSpec`](crate::TableSpec) (Arrow schema, semantic types,
//! column docs), an owned row struct, and a column builder that turns rows into record batches, all from the
//! same list, so a column cannot be spelled differently in two places.
//!
//! Owns the macro and the column kinds it maps to Arrow. Must not know any particular table.

use arrow::array::{
    ArrayBuilder, BooleanBuilder, Float64Builder, Int64Builder, StringBuilder, TimestampNanosecondBuilder,
};

use crate::ColumnType;

/// A column kind: its Pixie type, the Rust value a row holds, and the Arrow builder that collects it.
pub trait ColumnKind {
    /// The Pixie type.
    const TYPE: ColumnType;
    /// What a row struct holds for this column.
    type Value: Default + Clone + std::fmt::Debug + PartialEq;
    /// The Arrow builder.
    type Builder: ArrayBuilder + Default;
    /// Appends one value.
    fn append(builder: &mut Self::Builder, value: &Self::Value);
}

macro_rules! kind {
    ($(#[$doc:meta])* $name:ident, $ty:ident, $value:ty, $builder:ty, |$b:ident, $v:ident| $append:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy)]
        pub struct $name;
        impl ColumnKind for $name {
            const TYPE: ColumnType = ColumnType::$ty;
            type Value = $value;
            type Builder = $builder;
            fn append($b: &mut $builder, $v: &$value) {
                $append
            }
        }
    };
}

kind!(/// BOOLEAN.
    Bool, Boolean, bool, BooleanBuilder, |b, v| b.append_value(*v));
kind!(/// INT64 (also enums, ports, counters, durations).
    I64, Int64, i64, Int64Builder, |b, v| b.append_value(*v));
kind!(/// FLOAT64.
    F64, Float64, f64, Float64Builder, |b, v| b.append_value(*v));
kind!(/// STRING.
    Str, String, String, StringBuilder, |b, v| b.append_value(v));
kind!(/// TIME64NS: Unix nanoseconds.
    Time, Time64Ns, i64, TimestampNanosecondBuilder, |b, v| b.append_value(*v));
kind!(/// UINT128 `upid`, held in its text form `asid:pid:start_ticks`.
    Upid, Uint128, String, StringBuilder, |b, v| b.append_value(v));

/// Declares a table. Each column is `field: Kind = "column", "SEMANTIC_TYPE", "one-line doc";` where `field` names
/// the row struct's member and `Kind` is one of [`Bool`], [`I64`], [`F64`], [`Str`], [`Time`], [`Upid`]. The first
/// column must be `time_`.
///
/// ```text
/// table! {
///     /// `mux_events`: Finagle mux request-response pairs.
///     mux_events = "mux_events", "Finagle mux request-response pairs", MuxEventRow, MuxEventsBuilder {
///         time_ns: Time = "time_", "ST_NONE", "time of the response";
///         req_type: I64 = "req_type", "ST_NONE", "request type";
///     }
/// }
/// ```
#[macro_export]
macro_rules! table {
    (
        $(#[$doc:meta])*
        $spec_fn:ident = $name:literal, $desc:literal, $row:ident, $builder:ident {
            $($field:ident : $kind:ident = $col:literal, $semantic:literal, $col_doc:literal;)+
        }
    ) => {
        $(#[$doc])*
        pub fn $spec_fn() -> $crate::TableSpec {
            $crate::TableSpec {
                name: $name,
                desc: $desc,
                columns: vec![$($crate::ColumnSpec {
                    name: $col,
                    ty: <$crate::table::$kind as $crate::table::ColumnKind>::TYPE,
                    semantic: $semantic,
                    desc: $col_doc,
                }),+],
            }
        }

        #[doc = concat!("One `", $name, "` row, owned.")]
        #[derive(Debug, Clone, Default, PartialEq)]
        pub struct $row {
            $(
                #[doc = concat!("`", $col, "`: ", $col_doc, ".")]
                pub $field: <$crate::table::$kind as $crate::table::ColumnKind>::Value,
            )+
        }

        #[doc = concat!("Accumulates `", $name, "` rows column by column and emits record batches.")]
        pub struct $builder {
            schema: ::arrow::datatypes::SchemaRef,
            rows: usize,
            $($field: <$crate::table::$kind as $crate::table::ColumnKind>::Builder,)+
        }

        impl $builder {
            /// An empty builder.
            pub fn new() -> Self {
                $builder {
                    schema: $spec_fn().arrow_schema(),
                    rows: 0,
                    $($field: Default::default(),)+
                }
            }

            /// Rows appended since the last `finish`.
            pub fn len(&self) -> usize {
                self.rows
            }

            /// True when no rows are pending.
            pub fn is_empty(&self) -> bool {
                self.rows == 0
            }

            /// Appends one row.
            pub fn append(&mut self, row: &$row) {
                $(<$crate::table::$kind as $crate::table::ColumnKind>::append(&mut self.$field, &row.$field);)+
                self.rows += 1;
            }

            /// Emits the pending rows as one batch and resets the builder.
            pub fn finish(&mut self) -> Result<::arrow::record_batch::RecordBatch, ::arrow::error::ArrowError> {
                // The trait's `finish` (an `ArrayRef`), not the builders' own typed ones.
                let columns: Vec<::arrow::array::ArrayRef> =
                    vec![$(::arrow::array::ArrayBuilder::finish(&mut self.$field)),+];
                self.rows = 0;
                ::arrow::record_batch::RecordBatch::try_new(self.schema.clone(), columns)
            }
        }

        impl Default for $builder {
            fn default() -> Self {
                Self::new()
            }
        }
    };
}

/// Declares a protocol table: [`table!`] with Pixie's common prefix ("CONN8": `time_`, `upid`, `remote_addr`,
/// `remote_port`, `local_addr`, `local_port`, `trace_role`, `encrypted`) before the columns given.
#[macro_export]
macro_rules! conn8_table {
    (
        $(#[$doc:meta])*
        $spec_fn:ident = $name:literal, $desc:literal, $row:ident, $builder:ident { $($columns:tt)+ }
    ) => {
        $crate::table! {
            $(#[$doc])*
            $spec_fn = $name, $desc, $row, $builder {
                time_ns: Time = "time_", "ST_NONE", "time of the response that completed the pair";
                upid: Upid = "upid", "ST_UPID", "process owning the traced socket";
                remote_addr: Str = "remote_addr", "ST_IP_ADDRESS", "peer IP address";
                remote_port: I64 = "remote_port", "ST_PORT", "peer port";
                local_addr: Str = "local_addr", "ST_IP_ADDRESS", "own IP address";
                local_port: I64 = "local_port", "ST_PORT", "own port";
                trace_role: I64 = "trace_role", "ST_NONE", "role of the traced process: 1 client, 2 server, 4 unknown";
                encrypted: Bool = "encrypted", "ST_NONE", "payload captured as TLS plaintext";
                $($columns)+
            }
        }
    };
}
