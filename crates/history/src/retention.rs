//! Retention per table, by age and by bytes, and the sweep that enforces it: whole hours past the age go
//! first, then the oldest segments until the table fits its bytes.

use std::time::Duration;

use futures::TryStreamExt;
use object_store::{ObjectMeta, ObjectStoreExt};

use crate::layout::{self, HOUR_NS};
use crate::{History, Result};

/// How long and how much of one table history keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Segments whose hour ended longer ago than this are deleted.
    pub max_age: Duration,
    /// Past this many bytes (of the vizier's segments of the table), the oldest segments are deleted.
    pub max_bytes: u64,
}

impl Retention {
    /// Longest age accepted: 400 days.
    pub const MAX_AGE: Duration = Duration::from_secs(400 * 86_400);
    /// Shortest age accepted: one minute.
    pub const MIN_AGE: Duration = Duration::from_secs(60);
    /// Most bytes accepted per table: 16 TiB.
    pub const MAX_BYTES: u64 = 16 << 40;
    /// Fewest bytes accepted per table: 1 KiB.
    pub const MIN_BYTES: u64 = 1 << 10;

    /// The same retention clamped into the accepted bounds.
    pub fn bounded(self) -> Retention {
        Retention {
            max_age: self.max_age.clamp(Self::MIN_AGE, Self::MAX_AGE),
            max_bytes: self.max_bytes.clamp(Self::MIN_BYTES, Self::MAX_BYTES),
        }
    }
}

impl Default for Retention {
    /// Seven days, at most 1 GiB per table.
    fn default() -> Self {
        Retention { max_age: Duration::from_secs(7 * 86_400), max_bytes: 1 << 30 }
    }
}

/// What one sweep of one table did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Segments deleted for their age.
    pub expired_files: u64,
    /// Segments deleted to fit the byte limit.
    pub evicted_files: u64,
    /// Bytes deleted.
    pub deleted_bytes: u64,
    /// Bytes kept.
    pub kept_bytes: u64,
    /// Segments kept.
    pub kept_files: u64,
}

impl History {
    /// The tables that have a directory in this history.
    pub async fn stored_tables(&self) -> Result<Vec<String>> {
        let listed = self.store.list_with_delimiter(Some(&self.root)).await?;
        Ok(listed.common_prefixes.iter().filter_map(|p| p.filename().map(str::to_string)).collect())
    }

    /// Every segment of `table` in this vizier's partitions (any writer), oldest hour first, with its hour.
    pub(crate) async fn segments(&self, table: &str) -> Result<Vec<(i64, ObjectMeta)>> {
        let prefix = self.table_prefix(table);
        let mut all: Vec<(i64, ObjectMeta)> = self
            .store
            .list(Some(&prefix))
            .try_filter_map(|m| async move {
                let mut parts: Vec<String> = m.location.parts().map(|p| p.as_ref().to_string()).collect();
                let file = parts.pop().unwrap_or_default();
                let hour = parts.last().and_then(|d| layout::parse_hour_dir(d));
                Ok(hour.filter(|_| file.ends_with(".parquet")).map(|h| (h, m)))
            })
            .try_collect()
            .await?;
        all.sort_by(|a, b| (a.0, &a.1.location).cmp(&(b.0, &b.1.location)));
        Ok(all)
    }

    /// Enforces every stored table's retention at `now_ns`; one report per table swept.
    pub async fn sweep(&self, now_ns: i64) -> Result<Vec<(String, SweepReport)>> {
        let mut out = Vec::new();
        for table in self.stored_tables().await? {
            let report = self.sweep_table(&table, now_ns).await?;
            out.push((table, report));
        }
        Ok(out)
    }

    /// Enforces `table`'s retention at `now_ns`.
    pub async fn sweep_table(&self, table: &str, now_ns: i64) -> Result<SweepReport> {
        let retention = self.retention(table);
        let age_ns = i64::try_from(retention.max_age.as_nanos()).unwrap_or(i64::MAX);
        let oldest_kept_hour_end = now_ns.saturating_sub(age_ns);
        let segments = self.segments(table).await?;
        let mut report = SweepReport::default();
        let mut kept = Vec::with_capacity(segments.len());
        for (hour, meta) in segments {
            if hour.saturating_add(HOUR_NS) <= oldest_kept_hour_end {
                self.delete(&meta).await?;
                report.expired_files += 1;
                report.deleted_bytes += meta.size;
            } else {
                kept.push(meta);
            }
        }
        let mut total: u64 = kept.iter().map(|m| m.size).sum();
        let mut kept = kept.into_iter();
        while total > retention.max_bytes {
            let Some(meta) = kept.next() else { break };
            self.delete(&meta).await?;
            total -= meta.size;
            report.evicted_files += 1;
            report.deleted_bytes += meta.size;
        }
        let rest: Vec<ObjectMeta> = kept.collect();
        report.kept_files = rest.len() as u64;
        report.kept_bytes = total;
        if report.expired_files + report.evicted_files > 0 {
            tracing::info!(
                table,
                expired = report.expired_files,
                evicted = report.evicted_files,
                deleted_bytes = report.deleted_bytes,
                kept_bytes = report.kept_bytes,
                "history retention swept"
            );
        }
        Ok(report)
    }

    /// Deletes one segment (already gone is fine: another writer of the vizier may sweep too), and on a local
    /// disk its hour directory once empty.
    async fn delete(&self, meta: &ObjectMeta) -> Result<()> {
        match self.store.delete(&meta.location).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        if let Some(root) = &self.local_root {
            let file = meta.location.parts().fold(root.clone(), |p, part| p.join(part.as_ref()));
            if let Some(dir) = file.parent() {
                // Fails while other segments remain, which is what we want.
                let _ = std::fs::remove_dir(dir);
            }
        }
        Ok(())
    }
}
