//! Shared helpers: rows, a history in a temp directory, the Python virtualenv.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::RecordBatch;
use loupe_history::{History, HistoryConfig};
use loupe_schema::http::{HttpEventRow, HttpEventsBuilder};

pub const HOUR: i64 = 3_600_000_000_000;

/// A fixed hour start: 2026-12-03T00:00Z.
pub const DAY0: i64 = 1_796_256_000_000_000_000;

/// `n` http_events rows spread evenly over `[from, from + span)`, with path `path`.
pub fn rows(n: usize, path: &str, from: i64, span: i64) -> RecordBatch {
    let mut b = HttpEventsBuilder::new();
    for i in 0..n {
        b.append(&HttpEventRow {
            time_ns: from + span / n as i64 * i as i64,
            req_path: path.into(),
            req_method: "GET".into(),
            resp_status: 200,
            latency_ns: i as i64,
            ..HttpEventRow::default()
        });
    }
    b.finish().expect("batch")
}

/// An empty directory for one test.
pub fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("loupe-history-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

pub fn config(location: &str) -> HistoryConfig {
    HistoryConfig {
        location: location.into(),
        org: "acme".into(),
        vizier: "vz-1".into(),
        writer: "node-a".into(),
        max_read_bytes: HistoryConfig::DEFAULT_MAX_READ_BYTES,
        s3_options: Vec::new(),
    }
}

pub fn local(tag: &str) -> (Arc<History>, PathBuf) {
    let dir = temp_dir(tag);
    (Arc::new(History::open(&config(&dir.display().to_string())).expect("open")), dir)
}

/// The virtualenv's python, or `None` (after saying why) outside CI when it is missing.
pub fn venv_python(what: &str) -> Option<PathBuf> {
    let venv = std::env::var_os("LOUPE_HISTORY_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/history-venv"));
    let python = venv.join("bin/python");
    if python.exists() {
        return Some(python);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{what} needs {} (run scripts/history-venv.sh)",
        python.display()
    );
    eprintln!("skipping {what}: no {} (run scripts/history-venv.sh)", python.display());
    None
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

pub fn count(batches: &[RecordBatch]) -> usize {
    batches.iter().map(RecordBatch::num_rows).sum()
}
