//! History: the rows of selected store tables kept as Parquet segments, on a local disk or in S3-compatible
//! object storage, laid out so that any engine reading Hive-style partitioned Parquet (DataFusion, DuckDB,
//! Spark, Trino) reads it as it is:
//!
//! ```text
//! <root>/<table>/org=<org>/vizier=<vizier>/hour=YYYY-MM-DDTHH/<writer>-<first time_ ns>-<written ns>.parquet
//! ```
//!
//! `hour` is the UTC hour every row of the segment falls in (by `time_`); `writer` names the agent that wrote it
//! (one vizier may hold several PEMs: each reads back only its own segments, so a cluster query counts a row
//! once). A segment's schema is the store table's Arrow schema (kept in the Parquet footer, so `time_` stays
//! `Timestamp(ns)` and semantic types stay in field metadata), its rows are the stored rows as they are (so
//! redaction holds), sorted by `time_`, in row groups of at most [`ROW_GROUP_ROWS`] rows with min/max
//! statistics, compressed with zstd.
//!
//! Owns: the layout ([`layout`]), the backends ([`History::open`]: a directory, files 0600 in directories 0700, or
//! `s3://bucket/prefix`), the writer that follows the store ([`writer`]), the pruned reader ([`History::read`]:
//! hour partitions, then row-group statistics, then rows), retention by age and bytes per table ([`retention`]),
//! and the tables of cron scripts' results ([`results`]).
//! Must not touch: DataFusion or PxL (the engine puts history and memory together), the network beyond the
//! object store, or the store's rows (it reads them, never changes or evicts them).

pub mod layout;
pub mod reader;
pub mod results;
pub mod retention;
pub mod writer;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::path::Path as ObjectPath;
use parking_lot::RwLock;

pub use results::{ResultsReport, result_table_name};
pub use retention::{Retention, SweepReport};
pub use writer::{FlushReport, WriterConfig, WriterHandle};

/// Rows per Parquet row group: the unit of pruning by time within a segment.
pub const ROW_GROUP_ROWS: usize = 65_536;

/// Most rows in one segment; a flush with more writes several.
pub const MAX_SEGMENT_ROWS: usize = 1 << 20;

/// Most tables one history keeps.
pub const MAX_TABLES: usize = 64;

/// Errors of history.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The location is neither a directory nor an `s3://` URL, or a name in the layout is not allowed.
    #[error("invalid history setting: {0}")]
    Config(String),
    /// The object store failed.
    #[error("history storage failed: {0}")]
    Store(#[from] object_store::Error),
    /// A segment could not be encoded or decoded.
    #[error("history segment failed: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// Arrow failed on a segment's rows.
    #[error("history rows failed: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// A local directory could not be made or secured.
    #[error("history directory {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A read would hold more than its limit in memory.
    #[error("history scan of `{table}` exceeds {limit_bytes} bytes; narrow the time range (start_time)")]
    ReadLimit {
        /// The table.
        table: String,
        /// The limit.
        limit_bytes: u64,
    },
}

/// `Result` with [`HistoryError`].
pub type Result<T, E = HistoryError> = std::result::Result<T, E>;

/// Where history lives and whose it is.
#[derive(Debug, Clone)]
pub struct HistoryConfig {
    /// A directory (`/var/lib/loupe/history`, `file:///…`) or `s3://bucket[/prefix]`. For S3 the usual
    /// `AWS_*` variables apply (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
    /// `AWS_ENDPOINT_URL` for an S3-compatible server, `AWS_ALLOW_HTTP=true` for plain http).
    pub location: String,
    /// The org partition (`org=`).
    pub org: String,
    /// The vizier partition (`vizier=`).
    pub vizier: String,
    /// The agent writing (the segment names' prefix); it reads back only its own segments.
    pub writer: String,
    /// Most bytes one read may hold in memory.
    pub max_read_bytes: u64,
    /// S3 settings over the `AWS_*` variables, by `object_store`'s names (`aws_endpoint`, `aws_allow_http`,
    /// `aws_access_key_id`, ...).
    pub s3_options: Vec<(String, String)>,
}

impl HistoryConfig {
    /// Default bound on one read: 1 GiB.
    pub const DEFAULT_MAX_READ_BYTES: u64 = 1 << 30;
}

/// One history: a backend, a place in the layout, and each table's retention.
pub struct History {
    store: Arc<dyn ObjectStore>,
    /// The prefix under which tables sit (empty for a bucket's root or a local directory).
    root: ObjectPath,
    /// The directory, for the local backend (modes are set there).
    local_root: Option<PathBuf>,
    org: String,
    vizier: String,
    writer: String,
    max_read_bytes: u64,
    retention: RwLock<BTreeMap<String, Retention>>,
    default_retention: RwLock<Retention>,
    /// The cron scripts' result tables held (`results`), with their schemas: they are not in the store.
    result_schemas: RwLock<BTreeMap<String, arrow::datatypes::SchemaRef>>,
}

impl std::fmt::Debug for History {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("History")
            .field("root", &self.root)
            .field("local_root", &self.local_root)
            .field("org", &self.org)
            .field("vizier", &self.vizier)
            .field("writer", &self.writer)
            .finish_non_exhaustive()
    }
}

impl History {
    /// Opens (and for a directory, creates with mode 0700) the history at `config.location`.
    pub fn open(config: &HistoryConfig) -> Result<History> {
        for (what, name) in [("org", &config.org), ("vizier", &config.vizier), ("writer", &config.writer)] {
            layout::check_name(what, name)?;
        }
        let (store, root, local_root): (Arc<dyn ObjectStore>, ObjectPath, Option<PathBuf>) =
            if let Some(rest) = config.location.strip_prefix("s3://") {
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                if bucket.is_empty() {
                    return Err(HistoryError::Config(format!("{}: no bucket", config.location)));
                }
                let mut b = object_store::aws::AmazonS3Builder::from_env().with_bucket_name(bucket);
                for (key, value) in &config.s3_options {
                    let key = key.parse().map_err(|e| HistoryError::Config(format!("S3 setting {key}: {e}")))?;
                    b = b.with_config(key, value);
                }
                let s3 = b.build()?;
                (Arc::new(s3), ObjectPath::from(prefix.trim_matches('/')), None)
            } else {
                let dir = PathBuf::from(config.location.strip_prefix("file://").unwrap_or(&config.location));
                if config.location.contains("://") && !config.location.starts_with("file://") {
                    return Err(HistoryError::Config(format!(
                        "{}: only a directory or s3://bucket/prefix is supported",
                        config.location
                    )));
                }
                layout::make_private_dir(&dir)?;
                let dir = dir.canonicalize().map_err(|source| HistoryError::Io { path: dir.clone(), source })?;
                let fs = object_store::local::LocalFileSystem::new_with_prefix(&dir)?;
                (Arc::new(fs), ObjectPath::default(), Some(dir))
            };
        Ok(History {
            store,
            root,
            local_root,
            org: config.org.clone(),
            vizier: config.vizier.clone(),
            writer: config.writer.clone(),
            max_read_bytes: config.max_read_bytes,
            retention: RwLock::new(BTreeMap::new()),
            default_retention: RwLock::new(Retention::default()),
            result_schemas: RwLock::new(BTreeMap::new()),
        })
    }

    /// The org partition.
    pub fn org(&self) -> &str {
        &self.org
    }

    /// The vizier partition.
    pub fn vizier(&self) -> &str {
        &self.vizier
    }

    /// The local directory, for the file backend.
    pub fn local_root(&self) -> Option<&std::path::Path> {
        self.local_root.as_deref()
    }

    /// `table`'s retention: its own if set, else the default.
    pub fn retention(&self, table: &str) -> Retention {
        self.retention.read().get(table).copied().unwrap_or_else(|| *self.default_retention.read())
    }

    /// Sets `table`'s retention (bounded: see [`Retention::bounded`]); applied at the next sweep.
    pub fn set_retention(&self, table: &str, retention: Retention) -> Result<()> {
        layout::check_table(table)?;
        let mut map = self.retention.write();
        if !map.contains_key(table) && map.len() >= MAX_TABLES {
            return Err(HistoryError::Config(format!("at most {MAX_TABLES} tables have a retention of their own")));
        }
        map.insert(table.to_string(), retention.bounded());
        Ok(())
    }

    /// Sets the retention of every table without one of its own.
    pub fn set_default_retention(&self, retention: Retention) {
        *self.default_retention.write() = retention.bounded();
    }

    /// Replaces every table's own retention at once (what the cloud sends for the org); tables left out
    /// fall back to the default.
    pub fn replace_retention(&self, tables: &BTreeMap<String, Retention>) -> Result<()> {
        if tables.len() > MAX_TABLES {
            return Err(HistoryError::Config(format!("at most {MAX_TABLES} tables have a retention of their own")));
        }
        for t in tables.keys() {
            layout::check_table(t)?;
        }
        *self.retention.write() = tables.iter().map(|(t, r)| (t.clone(), r.bounded())).collect();
        Ok(())
    }

    /// Every table's own retention.
    pub fn retention_table(&self) -> BTreeMap<String, Retention> {
        self.retention.read().clone()
    }

    /// `<root>/<table>/org=<org>/vizier=<vizier>`: the prefix of one table's partitions.
    pub(crate) fn table_prefix(&self, table: &str) -> ObjectPath {
        let mut p = self.root.clone();
        for part in [table.to_string(), format!("org={}", self.org), format!("vizier={}", self.vizier)] {
            p = p.join(part.as_str());
        }
        p
    }
}
