//! Loupe's results in Pixie's format: Arrow schemas as `Relation`s, Arrow batches as `RowBatchData` of typed
//! columns (boolean, int64, uint128, time64ns, float64, string), statuses with compiler errors as
//! `ErrorDetails`, and stats.
//!
//! Owns the type mapping. Arrow types without a Pixie twin are widened first (every integer to int64, every
//! float to float64, every string or dictionary of strings to string, any timestamp to nanoseconds); a type
//! Pixie cannot carry at all is an error rather than a silently wrong column. Must not encrypt (that is
//! `jwe`).

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray as _, RecordBatch};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef, TimeUnit, TimestampNanosecondType};
use loupe_proto::pixie::vizierpb as px;
use loupe_proto::vizierpb as lp;

use crate::jwe::{Encryptor, JweError};

/// The field metadata key holding a column's Pixie semantic type (`ST_DURATION_NS`, …), as `loupe-schema`
/// writes it.
pub const SEMANTIC_TYPE_KEY: &str = "px.semantic_type";

/// Why a result could not be put in Pixie's format.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// A column of a type Pixie's format cannot carry.
    #[error("column `{column}` has type {data_type}, which Pixie's format cannot carry")]
    Unsupported {
        /// The column.
        column: String,
        /// Its Arrow type.
        data_type: DataType,
    },
    /// An Arrow operation failed (decoding the IPC stream, widening a column).
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// Data for a table that was never announced.
    #[error("data for table {0:?} before its metadata")]
    UnknownTable(String),
    /// Encryption was asked for and failed.
    #[error(transparent)]
    Jwe(#[from] JweError),
}

/// The Pixie data type a column of `data_type` travels as, and the Arrow type it is widened to first.
fn pixie_type(data_type: &DataType) -> Option<(px::DataType, DataType)> {
    use DataType as A;
    Some(match data_type {
        A::Boolean => (px::DataType::Boolean, A::Boolean),
        A::Int8 | A::Int16 | A::Int32 | A::Int64 | A::UInt8 | A::UInt16 | A::UInt32 | A::UInt64 => {
            (px::DataType::Int64, A::Int64)
        }
        A::Duration(_) => (px::DataType::Int64, A::Int64),
        A::Float16 | A::Float32 | A::Float64 | A::Decimal128(..) | A::Decimal256(..) => {
            (px::DataType::Float64, A::Float64)
        }
        A::Timestamp(..) | A::Date32 | A::Date64 => (px::DataType::Time64ns, A::Timestamp(TimeUnit::Nanosecond, None)),
        A::Utf8 | A::LargeUtf8 | A::Utf8View => (px::DataType::String, A::Utf8),
        A::Dictionary(_, value) if matches!(**value, A::Utf8 | A::LargeUtf8 | A::Utf8View) => {
            (px::DataType::String, A::Utf8)
        }
        A::Binary | A::LargeBinary | A::BinaryView => (px::DataType::String, A::Binary),
        A::FixedSizeBinary(16) => (px::DataType::Uint128, data_type.clone()),
        _ => return None,
    })
}

/// The semantic type named in `field`'s metadata; `ST_NONE` when it names none (or one Pixie does not know).
pub fn semantic_type(field: &Field) -> px::SemanticType {
    field
        .metadata()
        .get(SEMANTIC_TYPE_KEY)
        .and_then(|name| px::SemanticType::from_str_name(name))
        .unwrap_or(px::SemanticType::StNone)
}

/// The `Relation` of a table with `schema`: names, Pixie data types and semantic types, in column order.
pub fn relation(schema: &Schema) -> Result<px::Relation, ConvertError> {
    let columns = schema
        .fields()
        .iter()
        .map(|field| {
            let (column_type, _) = pixie_type(field.data_type()).ok_or_else(|| unsupported(field))?;
            Ok(px::relation::ColumnInfo {
                column_name: field.name().clone(),
                column_type: column_type as i32,
                column_desc: String::new(),
                column_semantic_type: semantic_type(field) as i32,
            })
        })
        .collect::<Result<_, ConvertError>>()?;
    Ok(px::Relation { columns })
}

fn unsupported(field: &Field) -> ConvertError {
    ConvertError::Unsupported { column: field.name().clone(), data_type: field.data_type().clone() }
}

/// One column in Pixie's form. Nulls become the type's zero value (Pixie's columns have no nulls).
fn column(field: &Field, array: &ArrayRef) -> Result<px::Column, ConvertError> {
    use px::column::ColData;
    let (kind, widened) = pixie_type(field.data_type()).ok_or_else(|| unsupported(field))?;
    let array = if array.data_type() == &widened { Arc::clone(array) } else { arrow::compute::cast(array, &widened)? };
    let data = match kind {
        px::DataType::Boolean => {
            let a = array.as_boolean();
            ColData::BooleanData(px::BooleanColumn {
                data: (0..a.len()).map(|i| a.is_valid(i) && a.value(i)).collect(),
            })
        }
        px::DataType::Int64 => {
            ColData::Int64Data(px::Int64Column { data: values_i64(array.as_primitive::<Int64Type>()) })
        }
        px::DataType::Time64ns => ColData::Time64nsData(px::Time64NsColumn {
            data: values_i64(array.as_primitive::<TimestampNanosecondType>()),
        }),
        px::DataType::Float64 => {
            let a = array.as_primitive::<arrow::datatypes::Float64Type>();
            let data = match a.nulls() {
                None => a.values().to_vec(),
                Some(_) => a.iter().map(|v| v.unwrap_or(0.0)).collect(),
            };
            ColData::Float64Data(px::Float64Column { data })
        }
        px::DataType::String if widened == DataType::Binary => {
            let a = array.as_binary::<i32>();
            ColData::StringData(px::StringColumn { data: a.iter().map(|v| v.unwrap_or_default().to_vec()).collect() })
        }
        px::DataType::String => {
            let a = array.as_string::<i32>();
            ColData::StringData(px::StringColumn {
                data: a.iter().map(|v| v.unwrap_or_default().as_bytes().to_vec()).collect(),
            })
        }
        px::DataType::Uint128 => {
            let a = array.as_fixed_size_binary();
            let data = (0..a.len())
                .map(|i| {
                    let bytes: [u8; 16] =
                        if a.is_valid(i) { a.value(i).try_into().unwrap_or([0; 16]) } else { [0; 16] };
                    let v = u128::from_be_bytes(bytes);
                    px::UInt128 { high: (v >> 64) as u64, low: v as u64 }
                })
                .collect();
            ColData::Uint128Data(px::UInt128Column { data })
        }
        px::DataType::Unknown => return Err(unsupported(field)),
    };
    Ok(px::Column { col_data: Some(data) })
}

fn values_i64<T: arrow::datatypes::ArrowPrimitiveType<Native = i64>>(a: &arrow::array::PrimitiveArray<T>) -> Vec<i64> {
    match a.nulls() {
        None => a.values().to_vec(),
        Some(_) => a.iter().map(Option::unwrap_or_default).collect(),
    }
}

/// `batch` as one `RowBatchData` of table `table_id`.
pub fn row_batch(table_id: &str, batch: &RecordBatch, eow: bool, eos: bool) -> Result<px::RowBatchData, ConvertError> {
    let schema = batch.schema();
    let cols = schema.fields().iter().zip(batch.columns()).map(|(f, a)| column(f, a)).collect::<Result<_, _>>()?;
    Ok(px::RowBatchData { table_id: table_id.to_owned(), cols, num_rows: batch.num_rows() as i64, eow, eos })
}

/// The closing batch of a table: no rows, a typed empty column each, `eow` and `eos` set.
pub fn end_of_stream(table_id: &str, schema: &SchemaRef) -> Result<px::RowBatchData, ConvertError> {
    row_batch(table_id, &RecordBatch::new_empty(Arc::clone(schema)), true, true)
}

/// A Loupe status in Pixie's form: the code as a gRPC code (what Pixie's status codes are), and each compiler
/// error as an `ErrorDetails` (line, column, message), which Pixie's clients show at its line.
pub fn status(s: &lp::Status) -> px::Status {
    let code = lp::ErrorCode::try_from(s.code).map_or(GRPC_UNKNOWN, |c| c.grpc_code() as i32);
    px::Status {
        code,
        message: s.message.clone(),
        error_details: s
            .compiler_errors
            .iter()
            .map(|e| px::ErrorDetails {
                error: Some(px::error_details::Error::CompilerError(px::CompilerError {
                    line: u64::from(e.line),
                    column: u64::from(e.column),
                    message: e.message.clone(),
                })),
            })
            .collect(),
    }
}

/// gRPC's UNKNOWN, for a code this build does not know.
const GRPC_UNKNOWN: i32 = 2;

/// Loupe's stats in Pixie's form.
pub fn stats(s: &lp::QueryExecutionStats) -> px::QueryExecutionStats {
    px::QueryExecutionStats {
        timing: Some(px::QueryTimingInfo {
            execution_time_ns: s.execution_time_ns,
            compilation_time_ns: s.compilation_time_ns,
        }),
        bytes_processed: s.bytes_processed,
        records_processed: s.records_processed,
    }
}

/// Turns one query's Loupe responses into Pixie's, in order, remembering each table's schema for its closing
/// batch, and encrypting batches when the client gave a key.
#[derive(Default)]
pub struct Converter {
    tables: HashMap<String, SchemaRef>,
    encryptor: Option<Encryptor>,
}

impl Converter {
    /// A converter for one query; with `encryption` every row batch goes out as a JWE for that key.
    pub fn new(encryption: Option<&px::execute_script_request::EncryptionOptions>) -> Result<Self, ConvertError> {
        Ok(Converter { tables: HashMap::new(), encryptor: encryption.map(Encryptor::new).transpose()? })
    }

    /// The Pixie response for `response`, or `None` when it has no Pixie twin.
    pub fn convert(
        &mut self,
        response: lp::ExecuteScriptResponse,
    ) -> Result<Option<px::ExecuteScriptResponse>, ConvertError> {
        use lp::execute_script_response::Result as R;
        use px::execute_script_response::Result as P;
        let query_id = response.query_id;
        let (status, result) = match response.result {
            None => return Ok(None),
            Some(R::MetaData(m)) => {
                let schema = loupe_proto::arrow_ipc::decode_schema(&m.arrow_schema)?;
                let relation = relation(&schema)?;
                self.tables.insert(m.id.clone(), schema);
                (None, Some(P::MetaData(px::QueryMetadata { relation: Some(relation), name: m.name, id: m.id })))
            }
            Some(R::Data(d)) => {
                let schema =
                    self.tables.get(&d.table_id).ok_or_else(|| ConvertError::UnknownTable(d.table_id.clone()))?;
                let batch = if d.eos {
                    end_of_stream(&d.table_id, schema)?
                } else {
                    let batches = loupe_proto::arrow_ipc::decode_batches(&d.arrow_batch)?;
                    let batch = arrow::compute::concat_batches(schema, &batches)?;
                    row_batch(&d.table_id, &batch, false, false)?
                };
                (None, Some(P::Data(self.data(batch)?)))
            }
            Some(R::Stats(s)) => {
                (None, Some(P::Data(px::QueryData { execution_stats: Some(stats(&s)), ..Default::default() })))
            }
            Some(R::Status(s)) => (Some(status(&s)), None),
        };
        Ok(Some(px::ExecuteScriptResponse { status, query_id, result }))
    }

    fn data(&self, batch: px::RowBatchData) -> Result<px::QueryData, ConvertError> {
        Ok(match &self.encryptor {
            None => px::QueryData { batch: Some(batch), ..Default::default() },
            Some(e) => {
                let plain = prost::Message::encode_to_vec(&batch);
                px::QueryData { encrypted_batch: e.encrypt(&plain)?, ..Default::default() }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{
        BooleanArray, FixedSizeBinaryArray, Float64Array, Int32Array, StringArray, TimestampNanosecondArray,
        UInt64Array,
    };

    use super::*;

    fn field(name: &str, t: DataType, semantic: Option<&str>) -> Field {
        let f = Field::new(name, t, true);
        match semantic {
            Some(s) => f.with_metadata(HashMap::from([(SEMANTIC_TYPE_KEY.to_owned(), s.to_owned())])),
            None => f,
        }
    }

    fn sample() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            field("time_", DataType::Timestamp(TimeUnit::Nanosecond, None), Some("ST_TIME_NS")),
            field("ok", DataType::Boolean, None),
            field("status", DataType::Int32, Some("ST_HTTP_RESP_STATUS")),
            field("bytes", DataType::UInt64, Some("ST_BYTES")),
            field("ratio", DataType::Float64, Some("ST_PERCENT")),
            field("path", DataType::Utf8, Some("ST_NOT_A_PIXIE_TYPE")),
            field("id", DataType::FixedSizeBinary(16), None),
        ]));
        let id = FixedSizeBinaryArray::try_from_iter(
            [[0u8, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2], [0xff; 16]].into_iter(),
        )
        .expect("ids");
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(TimestampNanosecondArray::from(vec![Some(1_700_000_000_000_000_001), None])),
                Arc::new(BooleanArray::from(vec![Some(true), None])),
                Arc::new(Int32Array::from(vec![200, 404])),
                Arc::new(UInt64Array::from(vec![10, 20])),
                Arc::new(Float64Array::from(vec![Some(0.5), None])),
                Arc::new(StringArray::from(vec![Some("/a"), None])),
                Arc::new(id),
            ],
        )
        .expect("batch")
    }

    #[test]
    fn a_relation_names_pixie_data_and_semantic_types() {
        let batch = sample();
        let r = relation(&batch.schema()).expect("relation");
        let got: Vec<(String, px::DataType, px::SemanticType)> =
            r.columns.iter().map(|c| (c.column_name.clone(), c.column_type(), c.column_semantic_type())).collect();
        use px::{DataType as D, SemanticType as S};
        assert_eq!(
            got,
            vec![
                ("time_".into(), D::Time64ns, S::StTimeNs),
                ("ok".into(), D::Boolean, S::StNone),
                ("status".into(), D::Int64, S::StHttpRespStatus),
                ("bytes".into(), D::Int64, S::StBytes),
                ("ratio".into(), D::Float64, S::StPercent),
                ("path".into(), D::String, S::StNone),
                ("id".into(), D::Uint128, S::StNone),
            ]
        );
    }

    #[test]
    fn a_batch_becomes_typed_columns_with_nulls_as_zero_values() {
        use px::column::ColData as C;
        let rb = row_batch("3", &sample(), false, false).expect("converts");
        assert_eq!((rb.table_id.as_str(), rb.num_rows, rb.eow, rb.eos), ("3", 2, false, false));
        let cols: Vec<C> = rb.cols.into_iter().map(|c| c.col_data.expect("data")).collect();
        assert_eq!(
            cols,
            vec![
                C::Time64nsData(px::Time64NsColumn { data: vec![1_700_000_000_000_000_001, 0] }),
                C::BooleanData(px::BooleanColumn { data: vec![true, false] }),
                C::Int64Data(px::Int64Column { data: vec![200, 404] }),
                C::Int64Data(px::Int64Column { data: vec![10, 20] }),
                C::Float64Data(px::Float64Column { data: vec![0.5, 0.0] }),
                C::StringData(px::StringColumn { data: vec![b"/a".to_vec(), vec![]] }),
                C::Uint128Data(px::UInt128Column {
                    data: vec![px::UInt128 { high: 1, low: 2 }, px::UInt128 { high: u64::MAX, low: u64::MAX }]
                }),
            ]
        );
    }

    #[test]
    fn a_type_pixie_cannot_carry_is_an_error_naming_the_column() {
        let schema =
            Schema::new(vec![Field::new("l", DataType::List(Arc::new(Field::new("x", DataType::Int64, true))), true)]);
        let e = relation(&schema).expect_err("refused");
        assert_eq!(e.to_string(), "column `l` has type List(Int64, field: 'x'), which Pixie's format cannot carry");
    }

    #[test]
    fn compiler_errors_become_error_details_and_the_code_a_grpc_code() {
        let s = lp::Status {
            code: lp::ErrorCode::InvalidArgument as i32,
            message: "unknown column".into(),
            compiler_errors: vec![lp::CompilerError {
                line: 3,
                column: 12,
                message: "unknown column `resp_statu`".into(),
                span_start: 40,
                span_end: 50,
                notes: vec![],
                helps: vec!["did you mean `resp_status`?".into()],
            }],
        };
        let p = status(&s);
        assert_eq!(
            p,
            px::Status {
                code: 3,
                message: "unknown column".into(),
                error_details: vec![px::ErrorDetails {
                    error: Some(px::error_details::Error::CompilerError(px::CompilerError {
                        line: 3,
                        column: 12,
                        message: "unknown column `resp_statu`".into(),
                    })),
                }],
            }
        );
    }

    #[test]
    fn a_query_stream_converts_in_order_and_closes_each_table_with_eos() {
        use lp::execute_script_response::Result as R;
        use px::execute_script_response::Result as P;
        let batch = sample();
        let lp_msgs = vec![
            R::MetaData(lp::QueryMetadata {
                name: "out".into(),
                id: "0".into(),
                arrow_schema: loupe_proto::arrow_ipc::encode_schema(&batch.schema()).expect("schema"),
            }),
            R::Data(lp::QueryData {
                table_id: "0".into(),
                arrow_batch: loupe_proto::arrow_ipc::encode_batch(&batch).expect("batch"),
                num_rows: 2,
                eos: false,
            }),
            R::Data(lp::QueryData { table_id: "0".into(), arrow_batch: vec![], num_rows: 0, eos: true }),
            R::Stats(lp::QueryExecutionStats {
                compilation_time_ns: 5,
                execution_time_ns: 7,
                records_processed: 2,
                bytes_processed: 0,
                ..Default::default()
            }),
        ];
        let mut c = Converter::new(None).expect("converter");
        let out: Vec<P> = lp_msgs
            .into_iter()
            .map(|r| {
                let m = c
                    .convert(lp::ExecuteScriptResponse { query_id: "q".into(), result: Some(r) })
                    .expect("converts")
                    .expect("has a twin");
                assert_eq!((m.query_id.as_str(), &m.status), ("q", &None));
                m.result.expect("result")
            })
            .collect();
        let [P::MetaData(meta), P::Data(rows), P::Data(end), P::Data(last)] = out.as_slice() else { panic!("{out:?}") };
        assert_eq!(
            (meta.name.as_str(), meta.id.as_str(), meta.relation.as_ref().map(|r| r.columns.len())),
            ("out", "0", Some(7))
        );
        assert_eq!(rows.batch.as_ref().map(|b| (b.num_rows, b.eos)), Some((2, false)));
        let end = end.batch.as_ref().expect("closing batch");
        assert_eq!((end.num_rows, end.eow, end.eos, end.cols.len()), (0, true, true, 7));
        assert_eq!(
            last.execution_stats,
            Some(px::QueryExecutionStats {
                timing: Some(px::QueryTimingInfo { execution_time_ns: 7, compilation_time_ns: 5 }),
                bytes_processed: 0,
                records_processed: 2,
            })
        );
        let unknown = c.convert(lp::ExecuteScriptResponse {
            query_id: "q".into(),
            result: Some(R::Data(lp::QueryData { table_id: "9".into(), arrow_batch: vec![], num_rows: 0, eos: true })),
        });
        assert_eq!(unknown.expect_err("refused").to_string(), "data for table \"9\" before its metadata");
    }
}

/// One run of the format benchmark (`cargo test --release -p loupe-pixie-api -- --ignored --nocapture`):
/// 1 M rows shaped like `http_events` output, in batches of 8,192 as DataFusion produces them, through Loupe's
/// Arrow path (IPC encode, then decode on the client) and through Pixie's format (Arrow decode, conversion,
/// protobuf encode; and with encryption). Prints rows/s and bytes on the wire of each. With
/// `LOUPE_PIXIE_BENCH_OUT=<file>` it also writes the Pixie responses (length-prefixed) for timing pxapi's client.
#[cfg(test)]
mod bench {
    use std::time::Instant;

    use arrow::array::{Int64Array, StringArray, TimestampNanosecondArray};
    use prost::Message as _;

    use super::*;

    const ROWS: usize = 1_000_000;
    const BATCH: usize = 8_192;

    fn batches() -> Vec<RecordBatch> {
        let meta = |s: &str| HashMap::from([(SEMANTIC_TYPE_KEY.to_owned(), s.to_owned())]);
        let schema = Arc::new(Schema::new(vec![
            Field::new("time_", DataType::Timestamp(TimeUnit::Nanosecond, None), false),
            Field::new("upid", DataType::Utf8, false).with_metadata(meta("ST_UPID")),
            Field::new("req_method", DataType::Utf8, false).with_metadata(meta("ST_HTTP_REQ_METHOD")),
            Field::new("req_path", DataType::Utf8, false),
            Field::new("resp_status", DataType::Int64, false).with_metadata(meta("ST_HTTP_RESP_STATUS")),
            Field::new("latency", DataType::Int64, false).with_metadata(meta("ST_DURATION_NS")),
        ]));
        (0..ROWS)
            .step_by(BATCH)
            .map(|start| {
                let n = BATCH.min(ROWS - start);
                let i = start as i64..(start + n) as i64;
                RecordBatch::try_new(
                    Arc::clone(&schema),
                    vec![
                        Arc::new(TimestampNanosecondArray::from_iter_values(
                            i.clone().map(|i| 1_700_000_000_000_000_000 + i * 1_000),
                        )),
                        Arc::new(StringArray::from_iter_values(
                            i.clone().map(|i| format!("0:{}:{}", 1000 + i % 7, 99_000 + i % 7)),
                        )),
                        Arc::new(StringArray::from_iter_values(
                            i.clone().map(|i| if i % 5 == 0 { "POST" } else { "GET" }),
                        )),
                        Arc::new(StringArray::from_iter_values(
                            i.clone().map(|i| format!("/api/v1/items/{}", i % 1000)),
                        )),
                        Arc::new(Int64Array::from_iter_values(i.clone().map(|i| if i % 50 == 0 { 500 } else { 200 }))),
                        Arc::new(Int64Array::from_iter_values(i.map(|i| 100_000 + (i * 7919) % 5_000_000))),
                    ],
                )
                .expect("batch")
            })
            .collect()
    }

    fn report(what: &str, rows: usize, bytes: usize, started: Instant) {
        let s = started.elapsed().as_secs_f64();
        println!(
            "{what}: {rows} rows in {s:.3} s = {:.0} rows/s, {bytes} bytes on the wire ({:.1} B/row)",
            rows as f64 / s,
            bytes as f64 / rows as f64
        );
    }

    #[test]
    #[ignore = "a benchmark: run once with --release -- --ignored --nocapture"]
    fn one_million_rows_in_loupes_and_pixies_formats() {
        let batches = batches();
        let schema = batches[0].schema();
        // Loupe: what the vizier sends (IPC per batch) and what px decodes.
        let started = Instant::now();
        let ipc: Vec<Vec<u8>> = batches.iter().map(|b| loupe_proto::arrow_ipc::encode_batch(b).expect("ipc")).collect();
        report("loupe arrow ipc encode", ROWS, ipc.iter().map(Vec::len).sum(), started);
        let started = Instant::now();
        let decoded: usize = ipc
            .iter()
            .map(|b| {
                loupe_proto::arrow_ipc::decode_batches(b)
                    .expect("decode")
                    .iter()
                    .map(RecordBatch::num_rows)
                    .sum::<usize>()
            })
            .sum();
        report("loupe arrow ipc decode (client)", decoded, 0, started);
        // Pixie: from the IPC the query service produced to encoded Pixie responses.
        let lp_msgs: Vec<lp::ExecuteScriptResponse> =
            std::iter::once(lp::execute_script_response::Result::MetaData(lp::QueryMetadata {
                name: "rows".into(),
                id: "0".into(),
                arrow_schema: loupe_proto::arrow_ipc::encode_schema(&schema).expect("schema"),
            }))
            .chain(ipc.into_iter().map(|arrow_batch| {
                lp::execute_script_response::Result::Data(lp::QueryData {
                    table_id: "0".into(),
                    arrow_batch,
                    num_rows: 0,
                    eos: false,
                })
            }))
            .chain(std::iter::once(lp::execute_script_response::Result::Data(lp::QueryData {
                table_id: "0".into(),
                arrow_batch: vec![],
                num_rows: 0,
                eos: true,
            })))
            .map(|r| lp::ExecuteScriptResponse { query_id: "q".into(), result: Some(r) })
            .collect();
        let started = Instant::now();
        let mut c = Converter::new(None).expect("converter");
        let pixie: Vec<Vec<u8>> =
            lp_msgs.iter().cloned().map(|m| c.convert(m).expect("converts").expect("twin").encode_to_vec()).collect();
        report("pixie row batches (convert + encode)", ROWS, pixie.iter().map(|m| m.len() + 5).sum(), started);
        let started = Instant::now();
        let rows: i64 = pixie
            .iter()
            .map(|m| px::ExecuteScriptResponse::decode(m.as_slice()).expect("decode"))
            .filter_map(|m| match m.result {
                Some(px::execute_script_response::Result::Data(d)) => d.batch.map(|b| b.num_rows),
                _ => None,
            })
            .sum();
        report("pixie row batches decode (prost, client)", rows as usize, 0, started);
        if let Ok(path) = std::env::var("LOUPE_PIXIE_BENCH_OUT") {
            let mut out = Vec::new();
            for m in &pixie {
                out.extend((m.len() as u32).to_be_bytes());
                out.extend(m);
            }
            std::fs::write(path, out).expect("write");
        }
        // Encrypted: a client key, as pxapi makes one.
        let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 4096).expect("key");
        let public = key.to_public_key();
        use base64::Engine as _;
        use rsa::traits::PublicKeyParts as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let options = px::execute_script_request::EncryptionOptions {
            jwk_key: serde_json::json!({"kty": "RSA", "n": b64.encode(public.n().to_bytes_be()), "e": b64.encode(public.e().to_bytes_be())}).to_string(),
            key_alg: "RSA-OAEP-256".into(),
            content_alg: "A256GCM".into(),
            compression_alg: "DEF".into(),
        };
        let started = Instant::now();
        let mut c = Converter::new(Some(&options)).expect("converter");
        let sealed: usize =
            lp_msgs.into_iter().map(|m| c.convert(m).expect("converts").expect("twin").encoded_len() + 5).sum();
        report("pixie row batches encrypted (convert + deflate + JWE + encode)", ROWS, sealed, started);
    }
}
