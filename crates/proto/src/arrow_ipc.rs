//! Arrow IPC encoding of result batches, so every message is self-describing.

use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use arrow::record_batch::RecordBatch;

/// Encodes a schema alone as an Arrow IPC stream.
pub fn encode_schema(schema: &SchemaRef) -> Result<Vec<u8>, ArrowError> {
    let mut buf = Vec::new();
    StreamWriter::try_new(&mut buf, schema)?.finish()?;
    Ok(buf)
}

/// Encodes one batch (with its schema) as an Arrow IPC stream.
pub fn encode_batch(batch: &RecordBatch) -> Result<Vec<u8>, ArrowError> {
    let mut buf = Vec::new();
    let mut w = StreamWriter::try_new(&mut buf, &batch.schema())?;
    w.write(batch)?;
    w.finish()?;
    drop(w);
    Ok(buf)
}

/// Decodes a schema sent by [`encode_schema`].
pub fn decode_schema(bytes: &[u8]) -> Result<SchemaRef, ArrowError> {
    Ok(StreamReader::try_new(bytes, None)?.schema())
}

/// Decodes the batches of an IPC stream sent by [`encode_batch`].
pub fn decode_batches(bytes: &[u8]) -> Result<Vec<RecordBatch>, ArrowError> {
    StreamReader::try_new(bytes, None)?.collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, StringArray};

    use super::*;

    #[test]
    fn batches_round_trip() {
        let batch = RecordBatch::try_from_iter(vec![
            ("a", Arc::new(Int64Array::from(vec![1, 2])) as _),
            ("b", Arc::new(StringArray::from(vec!["x", "y"])) as _),
        ])
        .expect("batch");
        let got = decode_batches(&encode_batch(&batch).expect("encode")).expect("decode");
        assert_eq!(got, vec![batch.clone()]);
        assert_eq!(decode_schema(&encode_schema(&batch.schema()).expect("encode")).expect("decode"), batch.schema());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode_batches(b"not arrow at all").is_err());
    }
}
