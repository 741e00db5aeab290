//! `RetentionService`: how long, and how much of, each table the org's viziers keep in history.
//!
//! Owns the checks on an entry (a known table, bounds on age and bytes) and the org setting that holds the
//! policy (`loupe_vzconn::RETENTION_SETTING`, in VZConn's encoding). Members read it; admins change it (it
//! decides what every vizier of the org deletes); after each change the org's viziers are told through
//! `CloudState::cron_changes` (the policy travels with the cron script set). Must not send anything to a vizier
//! itself nor know how a vizier enforces it.

use loupe_proto::cloudpb::{self, retention_service_server::RetentionService};
use loupe_proto::vzconnpb::HistoryRetention;
use tonic::{Request, Response, Status};

use super::CloudServices;
use crate::error::{ApiError, ApiResult};

/// Shortest age: one minute (as the viziers' history accepts).
const MIN_AGE_S: u64 = 60;
/// Longest age: 400 days.
const MAX_AGE_S: u64 = 400 * 86_400;
/// Fewest bytes per table and vizier: 1 MiB.
const MIN_BYTES: u64 = 1 << 20;
/// Most bytes per table and vizier: 16 TiB.
const MAX_BYTES: u64 = 16 << 40;

/// Whether `table` is a name a cron script's results can have in history (`loupe_history::result_table_name`:
/// `cron_` then `[a-z0-9_]`, at most 102 characters). The cloud does not know which exist; a vizier ignores a
/// retention for a table it does not hold.
fn is_cron_result_table(table: &str) -> bool {
    table.len() <= 102
        && table.strip_prefix("cron_").is_some_and(|rest| {
            !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        })
}

fn check(entry: &cloudpb::TableRetention) -> ApiResult<()> {
    if !loupe_schema::all_tables().iter().any(|t| t.name == entry.table) && !is_cron_result_table(&entry.table) {
        return Err(ApiError::invalid(format!(
            "unknown table {:?} (px.GetTables() lists them; a cron script's results are cron_<script>)",
            entry.table
        )));
    }
    if !(MIN_AGE_S..=MAX_AGE_S).contains(&entry.max_age_s) {
        return Err(ApiError::invalid(format!("max_age_s must be from {MIN_AGE_S} (1m) to {MAX_AGE_S} (400d)")));
    }
    if !(MIN_BYTES..=MAX_BYTES).contains(&entry.max_bytes) {
        return Err(ApiError::invalid(format!("max_bytes must be from {MIN_BYTES} (1 MiB) to {MAX_BYTES} (16 TiB)")));
    }
    Ok(())
}

fn view(entries: Vec<HistoryRetention>) -> cloudpb::RetentionPolicy {
    cloudpb::RetentionPolicy {
        tables: entries
            .into_iter()
            .map(|e| cloudpb::TableRetention { table: e.table, max_age_s: e.max_age_s, max_bytes: e.max_bytes })
            .collect(),
    }
}

impl CloudServices {
    async fn retention_of(&self, org_id: uuid::Uuid) -> ApiResult<Vec<HistoryRetention>> {
        let stored = self.state.metastore.get_org_setting(org_id, loupe_vzconn::RETENTION_SETTING).await?;
        Ok(stored.as_deref().map(loupe_vzconn::decode_retention).unwrap_or_default())
    }

    async fn store_retention(&self, org_id: uuid::Uuid, entries: &[HistoryRetention]) -> ApiResult<()> {
        let value = loupe_vzconn::encode_retention(entries);
        self.state.metastore.put_org_setting(org_id, loupe_vzconn::RETENTION_SETTING, &value).await?;
        if let Some(hook) = &self.state.cron_changes {
            hook.changed(org_id);
        }
        Ok(())
    }
}

#[tonic::async_trait]
impl RetentionService for CloudServices {
    async fn get_retention(
        &self,
        request: Request<cloudpb::Empty>,
    ) -> Result<Response<cloudpb::RetentionPolicy>, Status> {
        self.with_caller(request, |caller, _| async move { Ok(view(self.retention_of(caller.org_id()).await?)) }).await
    }

    async fn set_table_retention(
        &self,
        request: Request<cloudpb::TableRetention>,
    ) -> Result<Response<cloudpb::RetentionPolicy>, Status> {
        self.with_caller(request, |caller, req| async move {
            caller.require_admin("set the org's history retention")?;
            check(&req)?;
            let mut entries = self.retention_of(caller.org_id()).await?;
            entries.retain(|e| e.table != req.table);
            entries.push(HistoryRetention {
                table: req.table.clone(),
                max_age_s: req.max_age_s,
                max_bytes: req.max_bytes,
            });
            entries.sort_by(|a, b| a.table.cmp(&b.table));
            self.store_retention(caller.org_id(), &entries).await?;
            tracing::info!(
                org_id = %caller.org_id(),
                table = %req.table,
                max_age_s = req.max_age_s,
                max_bytes = req.max_bytes,
                "history retention set"
            );
            Ok(view(entries))
        })
        .await
    }

    async fn delete_table_retention(
        &self,
        request: Request<cloudpb::DeleteTableRetentionRequest>,
    ) -> Result<Response<cloudpb::RetentionPolicy>, Status> {
        self.with_caller(request, |caller, req| async move {
            caller.require_admin("change the org's history retention")?;
            let mut entries = self.retention_of(caller.org_id()).await?;
            let before = entries.len();
            entries.retain(|e| e.table != req.table);
            if entries.len() == before {
                return Err(ApiError::not_found(format!("no retention of the org's own for table {:?}", req.table)));
            }
            self.store_retention(caller.org_id(), &entries).await?;
            tracing::info!(org_id = %caller.org_id(), table = %req.table, "history retention back to the viziers' defaults");
            Ok(view(entries))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(table: &str, max_age_s: u64, max_bytes: u64) -> cloudpb::TableRetention {
        cloudpb::TableRetention { table: table.into(), max_age_s, max_bytes }
    }

    #[test]
    fn entries_name_a_known_table_within_bounds() {
        assert!(check(&entry("http_events", 7 * 86_400, 1 << 30)).is_ok());
        assert!(check(&entry("process_stats", MIN_AGE_S, MIN_BYTES)).is_ok());
        assert!(check(&entry("process_stats", MAX_AGE_S, MAX_BYTES)).is_ok());
        // A cron script's results (`cron_<script>`): any such name, as the cloud cannot know which exist.
        assert!(check(&entry("cron_service_stats_1m", 86_400, 1 << 30)).is_ok());
        for bad in [
            entry("no_such_table", 3600, 1 << 30),
            entry("cron_", 3600, 1 << 30),
            entry("cron_Upper", 3600, 1 << 30),
            entry("cron_../x", 3600, 1 << 30),
            entry(&format!("cron_{}", "x".repeat(98)), 3600, 1 << 30),
            entry("", 3600, 1 << 30),
            entry("http_events", MIN_AGE_S - 1, 1 << 30),
            entry("http_events", MAX_AGE_S + 1, 1 << 30),
            entry("http_events", 3600, MIN_BYTES - 1),
            entry("http_events", 3600, MAX_BYTES + 1),
        ] {
            assert!(check(&bad).is_err(), "{bad:?}");
        }
    }
}
