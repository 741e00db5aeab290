//! `table!`: declare a table once and get its [`TableSpec`](crate::TableSpec) (Arrow schema, semantic types,
//! column docs), an owned row struct, and a column builder that turns rows into record batches, all from the
//! same list, so a column cannot be spelled differently in two places.
//!
//! Owns the macro and the column kinds it maps to Arrow. Must not know any particular table.

use arrow::array::{
    Array, ArrayBuilder, BooleanArray, BooleanBuilder, Float64Array, Float64Builder, Int64Array, Int64Builder,
    StringArray, StringBuilder, TimestampNanosecondArray, TimestampNanosecondBuilder,
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
    /// The Arrow array the builder makes.
    type Array: Array + 'static;
    /// Appends one value.
    fn append(builder: &mut Self::Builder, value: &Self::Value);
    /// Reads value `i` back (rows read from a batch: tests and tools, not the hot path).
    fn value(array: &Self::Array, i: usize) -> Self::Value;
    /// An empty builder with room for about as much as `previous` (the batch it last made) holds. A
    /// builder started empty grows by doubling, copying its contents each time: about half the collector's
    /// memory traffic per row at line rate came from that (perf, issue 13).
    fn sized_like(previous: &dyn Array) -> Self::Builder;
}

/// Room for `n` plus an eighth: the next batch is rarely exactly as big as the last.
fn headroom(n: usize) -> usize {
    n.saturating_add(n / 8)
}

/// What every table's builder offers, so code generic over tables (the collector's per-protocol row buffers)
/// can hold one.
pub trait TableBuilder: Default + Send + 'static {
    /// The table's owned row.
    type Row: Send + 'static;
    /// Rows pending.
    fn len(&self) -> usize;
    /// True when no rows are pending.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The pending rows as one batch, leaving them pending.
    fn snapshot(&self) -> Result<arrow::record_batch::RecordBatch, arrow::error::ArrowError>;
    /// Emits the pending rows as one batch and resets the builder.
    fn finish(&mut self) -> Result<arrow::record_batch::RecordBatch, arrow::error::ArrowError>;
    /// The rows of a batch of this table.
    fn rows(batch: &arrow::record_batch::RecordBatch) -> Vec<Self::Row>;
}

macro_rules! kind {
    ($(#[$doc:meta])* $name:ident, $ty:ident, $value:ty, $builder:ty, $array:ty,
     |$b:ident, $v:ident| $append:expr, |$a:ident, $i:ident| $read:expr) => {
        kind!($(#[$doc])* $name, $ty, $value, $builder, $array, |$b, $v| $append, |$a, $i| $read,
            |p| <$builder>::with_capacity(headroom(p.len())));
    };
    ($(#[$doc:meta])* $name:ident, $ty:ident, $value:ty, $builder:ty, $array:ty,
     |$b:ident, $v:ident| $append:expr, |$a:ident, $i:ident| $read:expr, |$p:ident| $sized:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy)]
        pub struct $name;
        impl ColumnKind for $name {
            const TYPE: ColumnType = ColumnType::$ty;
            type Value = $value;
            type Builder = $builder;
            type Array = $array;
            fn append($b: &mut $builder, $v: &$value) {
                $append
            }
            fn value($a: &$array, $i: usize) -> $value {
                $read
            }
            fn sized_like($p: &dyn Array) -> $builder {
                $sized
            }
        }
    };
}

/// A string builder with room for the rows and bytes of `previous` (a `StringArray`).
fn string_sized_like(previous: &dyn Array) -> StringBuilder {
    let bytes = previous.as_any().downcast_ref::<StringArray>().map_or(0, |a| a.values().len());
    StringBuilder::with_capacity(headroom(previous.len()), headroom(bytes))
}

kind!(/// BOOLEAN.
    Bool, Boolean, bool, BooleanBuilder, BooleanArray, |b, v| b.append_value(*v), |a, i| a.value(i));
kind!(/// INT64 (also enums, ports, counters, durations).
    I64, Int64, i64, Int64Builder, Int64Array, |b, v| b.append_value(*v), |a, i| a.value(i));
kind!(/// FLOAT64.
    F64, Float64, f64, Float64Builder, Float64Array, |b, v| b.append_value(*v), |a, i| a.value(i));
kind!(/// STRING.
    Str, String, String, StringBuilder, StringArray, |b, v| b.append_value(v), |a, i| a.value(i).to_string(),
    |p| string_sized_like(p));
kind!(/// TIME64NS: Unix nanoseconds.
    Time, Time64Ns, i64, TimestampNanosecondBuilder, TimestampNanosecondArray, |b, v| b.append_value(*v),
    |a, i| a.value(i));
kind!(/// UINT128 `upid`, held in its text form `asid:pid:start_ticks`.
    Upid, Uint128, String, StringBuilder, StringArray, |b, v| b.append_value(v), |a, i| a.value(i).to_string(),
    |p| string_sized_like(p));

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

        impl $row {
            /// The rows of a batch of this table (for tests and tools: the hot path appends to the builder's
            /// columns directly). Rows of a batch with other columns come out as defaults.
            pub fn from_batch(batch: &::arrow::record_batch::RecordBatch) -> Vec<Self> {
                let mut rows = vec![Self::default(); batch.num_rows()];
                let mut column = 0;
                $(
                    if let Some(array) = batch.columns().get(column).and_then(|c| {
                        c.as_any().downcast_ref::<<$crate::table::$kind as $crate::table::ColumnKind>::Array>()
                    }) {
                        for (i, row) in rows.iter_mut().enumerate() {
                            row.$field = <$crate::table::$kind as $crate::table::ColumnKind>::value(array, i);
                        }
                    }
                    column += 1;
                )+
                let _ = column;
                rows
            }
        }

        #[doc = concat!("Accumulates `", $name, "` rows column by column and emits record batches.")]
        ///
        /// Either [`append`](Self::append) whole rows, or (the allocation-free path) append one value to every
        /// column field, then call [`end_row`](Self::end_row).
        pub struct $builder {
            schema: ::arrow::datatypes::SchemaRef,
            rows: usize,
            $(
                #[doc = concat!("The `", $col, "` column.")]
                pub $field: <$crate::table::$kind as $crate::table::ColumnKind>::Builder,
            )+
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

            /// Counts a row whose columns were appended one by one.
            pub fn end_row(&mut self) {
                self.rows += 1;
            }

            /// The pending rows as one batch, leaving them pending.
            pub fn snapshot(&self) -> Result<::arrow::record_batch::RecordBatch, ::arrow::error::ArrowError> {
                let columns: Vec<::arrow::array::ArrayRef> =
                    vec![$(::arrow::array::ArrayBuilder::finish_cloned(&self.$field)),+];
                ::arrow::record_batch::RecordBatch::try_new(self.schema.clone(), columns)
            }

            /// Emits the pending rows as one batch and resets the builder.
            pub fn finish(&mut self) -> Result<::arrow::record_batch::RecordBatch, ::arrow::error::ArrowError> {
                // The trait's `finish` (an `ArrayRef`), not the builders' own typed ones.
                let columns: Vec<::arrow::array::ArrayRef> =
                    vec![$(::arrow::array::ArrayBuilder::finish(&mut self.$field)),+];
                // The next batch starts at this one's size rather than growing from empty.
                let mut previous = columns.iter();
                $(
                    if let Some(p) = previous.next() {
                        self.$field = <$crate::table::$kind as $crate::table::ColumnKind>::sized_like(p.as_ref());
                    }
                )+
                self.rows = 0;
                ::arrow::record_batch::RecordBatch::try_new(self.schema.clone(), columns)
            }
        }

        impl Default for $builder {
            fn default() -> Self {
                Self::new()
            }
        }

        impl $crate::table::TableBuilder for $builder {
            type Row = $row;
            fn len(&self) -> usize {
                self.rows
            }
            fn snapshot(&self) -> Result<::arrow::record_batch::RecordBatch, ::arrow::error::ArrowError> {
                $builder::snapshot(self)
            }
            fn finish(&mut self) -> Result<::arrow::record_batch::RecordBatch, ::arrow::error::ArrowError> {
                $builder::finish(self)
            }
            fn rows(batch: &::arrow::record_batch::RecordBatch) -> Vec<$row> {
                $row::from_batch(batch)
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
