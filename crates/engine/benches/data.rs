//! The benchmarks' `http_events` data: deterministic rows shaped like a busy service's traffic (50
//! paths, 32 peers, six methods, ~90 % 2xx, log-uniform latency from 0.1 ms to ~1 s), in 8192-row
//! batches of the store's schema. Shared by `groupby` and `pxl_vs` through `#[path]`.

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanBuilder, Int64Builder, StringBuilder, TimestampNanosecondBuilder};
use arrow::record_batch::RecordBatch;
use loupe_schema::http::http_events;

/// Rows in the data set.
pub const ROWS: usize = 10_000_000;
/// Rows per batch (what the collector's flushes are near).
pub const BATCH: usize = 8192;
/// Distinct `req_path` values.
pub const PATHS: usize = 50;
/// `time_` of the first row; rows are 1 µs apart.
pub const START_NS: i64 = 1_700_000_000_000_000_000;

/// xorshift64*: deterministic and fast; quality is irrelevant here.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// ~90 % 2xx, 3 % 3xx, 5 % 4xx, 1.5 % 5xx, 0.5 % 1xx.
fn status(r: u64) -> i64 {
    match r % 1000 {
        0..=849 => 200,
        850..=899 => 201,
        900..=929 => 302,
        930..=969 => 404,
        970..=979 => 401,
        980..=994 => 500,
        _ => 101,
    }
}

/// `rows` rows of `http_events`, in [`BATCH`]-row batches.
pub fn batches(rows: usize) -> Vec<RecordBatch> {
    let schema = http_events().arrow_schema();
    let paths: Vec<String> = (0..PATHS).map(|i| format!("/api/v1/service{}/endpoint{}", i % 7, i)).collect();
    let upids: Vec<String> = (0..16).map(|i| format!("1:{}:12345", 1000 + i)).collect();
    let addrs: Vec<String> = (0..32).map(|i| format!("10.0.{}.{}", i / 8, i % 8 + 1)).collect();
    let methods = ["GET", "GET", "GET", "POST", "PUT", "DELETE"];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut out = Vec::with_capacity(rows / BATCH + 1);
    let mut row = 0usize;
    while row < rows {
        let n = BATCH.min(rows - row);
        let mut time = TimestampNanosecondBuilder::with_capacity(n);
        let mut ints: Vec<Int64Builder> = (0..11).map(|_| Int64Builder::with_capacity(n)).collect();
        let mut strs: Vec<StringBuilder> = (0..10).map(|_| StringBuilder::with_capacity(n, n * 8)).collect();
        let mut encrypted = BooleanBuilder::with_capacity(n);
        for i in 0..n {
            let r = rng.next();
            let path = (r >> 8) as usize % PATHS;
            // Log-uniform-ish latency between ~0.1 ms and ~1 s.
            let latency = (100_000i64 << ((r >> 20) % 14)) | ((r >> 40) as i64 & 0xFFFFF);
            time.append_value(START_NS + (row + i) as i64 * 1_000);
            strs[0].append_value(&upids[(r >> 16) as usize % upids.len()]); // upid
            strs[1].append_value(&addrs[(r >> 24) as usize % addrs.len()]); // remote_addr
            ints[0].append_value(30_000 + (r >> 32) as i64 % 30_000); // remote_port
            strs[2].append_value(&addrs[(r >> 28) as usize % addrs.len()]); // local_addr
            ints[1].append_value(8080); // local_port
            ints[2].append_value(if r & 1 == 0 { 1 } else { 2 }); // trace_role
            encrypted.append_value(r & 2 == 0);
            ints[3].append_value(1); // major_version
            ints[4].append_value(1); // minor_version
            ints[5].append_value(1); // content_type
            strs[3].append_value("{}"); // req_headers
            strs[4].append_value(methods[(r >> 36) as usize % methods.len()]); // req_method
            strs[5].append_value(&paths[path]); // req_path
            strs[6].append_value(""); // req_body
            ints[6].append_value(0); // req_body_size
            strs[7].append_value("{}"); // resp_headers
            ints[7].append_value(status(r >> 44)); // resp_status
            strs[8].append_value("OK"); // resp_message
            strs[9].append_value(""); // resp_body
            ints[8].append_value(64); // resp_body_size
            ints[9].append_value(latency); // latency
        }
        let mut s = strs.into_iter().map(|mut b| Arc::new(b.finish()) as ArrayRef);
        let mut n64 = ints.into_iter().map(|mut b| Arc::new(b.finish()) as ArrayRef);
        let mut next_s = || s.next().expect("string column");
        let mut next_i = || n64.next().expect("int column");
        let columns: Vec<ArrayRef> = vec![
            Arc::new(time.finish()),
            next_s(),
            next_s(),
            next_i(),
            next_s(),
            next_i(),
            next_i(),
            Arc::new(encrypted.finish()),
            next_i(),
            next_i(),
            next_i(),
            next_s(),
            next_s(),
            next_s(),
            next_s(),
            next_i(),
            next_s(),
            next_i(),
            next_s(),
            next_s(),
            next_i(),
            next_i(),
        ];
        out.push(RecordBatch::try_new(schema.clone(), columns).expect("batch matches http_events"));
        row += n;
    }
    out
}
