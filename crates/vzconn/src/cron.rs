//! The cloud side of cron scripts: which scripts each vizier runs, sent down the bridge, and the results of
//! their runs, stored as they come back up.
//!
//! A vizier asks for its set on `cron.request` (when its bridge opens and every 30 s) with the checksum of the
//! set it holds; the set is answered on `c2v.<id>.cron.sync` unless the checksums match. A change made through
//! the cron service reaches the org's viziers at once through [`CronPusher::push_org`] (wired in process), and
//! otherwise at their next request. Each result on `cron.result` from a vizier the script runs on is stored
//! (once per run, the newest `keep_results` per script) and acknowledged on `c2v.<id>.cron.ack`, so the vizier
//! forgets it; a result that cannot be stored now (the database is down) is not acknowledged and comes again.
//! Both subscriptions use a queue group, so several replicas share the work.
//!
//! Owns the cron topics' protocol on the cloud side. Must not parse schedules or run scripts (the vizier does),
//! nor touch SQL (`records`).

use std::sync::Arc;

use futures::StreamExt as _;
use loupe_bus::{Bus, subject};
use loupe_metastore::{CronScript, Metastore, NewCronResult};
use loupe_proto::vzconnpb::{
    BusEnvelope, CronResultAck, CronRunKey, CronRunResult, CronScriptSet, CronScriptSpec, CronSyncRequest,
    ExportDefault, HistoryRetention,
};
use prost::Message as _;
use sha2::Digest as _;
use uuid::Uuid;

use crate::records::Records;
use crate::settings_key::{SettingsKey, SettingsKeyError};
use crate::{Result, topic};

/// The cron side's settings.
#[derive(Debug, Clone)]
pub struct CronConfig {
    /// Results kept per script (the newest).
    pub keep_results: u32,
    /// The queue group the consumers share.
    pub queue_group: String,
    /// Messages handled at once (the metastore is the limit).
    pub concurrency: usize,
    /// Opens the export endpoint's sealed header values before they are sent to the viziers; without it, an
    /// endpoint with sealed headers is not sent (and that is logged).
    pub settings_key: Option<SettingsKey>,
}

impl Default for CronConfig {
    /// 100 results per script, queue group `cron`, 16 at once, no settings key.
    fn default() -> Self {
        CronConfig { keep_results: 100, queue_group: "cron".into(), concurrency: 16, settings_key: None }
    }
}

/// The running cron consumers; dropping it stops them.
pub struct CronService {
    pusher: CronPusher,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for CronService {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Sends viziers their cron scripts. Cheap to clone.
#[derive(Clone)]
pub struct CronPusher {
    records: Records,
    bus: Arc<dyn Bus>,
    settings_key: Option<SettingsKey>,
}

impl CronService {
    /// Subscribes to sync requests and results.
    pub async fn start(metastore: Arc<dyn Metastore>, bus: Arc<dyn Bus>, config: CronConfig) -> Result<Self> {
        let pusher = CronPusher {
            records: Records::new(metastore),
            bus: Arc::clone(&bus),
            settings_key: config.settings_key.clone(),
        };
        let requests = bus.queue_subscribe(&subject::v2c_all(topic::CRON_REQUEST), &config.queue_group).await?;
        let results = bus.queue_subscribe(&subject::v2c_all(topic::CRON_RESULT), &config.queue_group).await?;
        let concurrency = config.concurrency.max(1);
        let on_requests = {
            let pusher = pusher.clone();
            tokio::spawn(async move {
                requests
                    .for_each_concurrent(concurrency, |m| {
                        let pusher = pusher.clone();
                        async move { pusher.answer_request(&m.payload).await }
                    })
                    .await;
                tracing::warn!("cron request subscription ended");
            })
        };
        let on_results = {
            let pusher = pusher.clone();
            let keep = config.keep_results.max(1);
            tokio::spawn(async move {
                results
                    .for_each_concurrent(concurrency, |m| {
                        let pusher = pusher.clone();
                        async move { pusher.store_result(&m.payload, keep).await }
                    })
                    .await;
                tracing::warn!("cron result subscription ended");
            })
        };
        Ok(CronService { pusher, tasks: vec![on_requests, on_results] })
    }

    /// The handle that pushes changes.
    pub fn pusher(&self) -> CronPusher {
        self.pusher.clone()
    }
}

/// The org setting that holds the org's default export endpoint (`encode_export_default`; empty for none).
pub const EXPORT_DEFAULT_SETTING: &str = "export.default";

/// `endpoint` as `org`'s setting stores it: the encoded message in hex, each header value sealed with `key`
/// (header values are credentials: only the cloud's export service and this module read them, neither returns
/// or logs them, and the metastore holds them sealed).
pub fn encode_export_default(
    endpoint: &ExportDefault,
    key: &SettingsKey,
    org: Uuid,
) -> std::result::Result<String, SettingsKeyError> {
    let mut sealed = endpoint.clone();
    for h in &mut sealed.headers {
        h.value = key.seal(org, &h.name, &h.value)?;
    }
    Ok(crate::hex::encode(&sealed.encode_to_vec()))
}

/// The endpoint an org setting holds, header values as stored (sealed); `None` for none (empty) or an
/// unreadable value.
pub fn decode_export_default(setting: &str) -> Option<ExportDefault> {
    if setting.is_empty() {
        return None;
    }
    ExportDefault::decode(crate::hex::decode(setting)?.as_slice()).ok()
}

/// The endpoint `org`'s setting holds with its header values opened, as a vizier is sent it. `None` for none,
/// and (logged, naming the org, never a value) for one whose headers cannot be opened: no key here, or another
/// key sealed them. A value an older version stored in clear is used as it is, with a warning to set it again.
pub fn open_export_default(setting: &str, key: Option<&SettingsKey>, org: Uuid) -> Option<ExportDefault> {
    let mut endpoint = decode_export_default(setting)?;
    for h in &mut endpoint.headers {
        if !crate::settings_key::is_sealed(&h.value) {
            tracing::warn!(%org, header = %h.name, "an export header is stored in clear (by an older version): set the export target again (px export set) to seal it");
            continue;
        }
        let Some(key) = key else {
            tracing::warn!(%org, "the org's export target is not sent: this process has no settings key (--settings-key-file) to open its headers");
            return None;
        };
        match key.open(org, &h.name, &h.value) {
            Ok(v) => h.value = v,
            Err(error) => {
                tracing::warn!(%org, header = %h.name, %error, "the org's export target is not sent: set it again (px export set)");
                return None;
            }
        }
    }
    Some(endpoint)
}

/// The org setting that holds the org's history retention per table (`encode_retention`; empty for none).
pub const RETENTION_SETTING: &str = "history.retention";

/// Retention entries as the org setting stores them: `table=max_age_s:max_bytes`, comma-separated, in table
/// order.
pub fn encode_retention(tables: &[HistoryRetention]) -> String {
    let mut sorted: Vec<&HistoryRetention> = tables.iter().collect();
    sorted.sort_by(|a, b| a.table.cmp(&b.table));
    sorted.iter().map(|t| format!("{}={}:{}", t.table, t.max_age_s, t.max_bytes)).collect::<Vec<_>>().join(",")
}

/// The entries an org setting holds, in table order; an unreadable entry is left out.
pub fn decode_retention(setting: &str) -> Vec<HistoryRetention> {
    let mut out: Vec<HistoryRetention> = setting
        .split(',')
        .filter_map(|entry| {
            let (table, limits) = entry.split_once('=')?;
            let (age, bytes) = limits.split_once(':')?;
            if table.is_empty() {
                return None;
            }
            Some(HistoryRetention {
                table: table.to_owned(),
                max_age_s: age.parse().ok()?,
                max_bytes: bytes.parse().ok()?,
            })
        })
        .collect();
    out.sort_by(|a, b| a.table.cmp(&b.table));
    out.dedup_by(|a, b| a.table == b.table);
    out
}

/// The set of `scripts` as a vizier receives it, with the org's default export endpoint, its history retention
/// and its checksum.
pub fn script_set(
    scripts: &[CronScript],
    export_default: Option<ExportDefault>,
    retention: Vec<HistoryRetention>,
) -> CronScriptSet {
    let scripts: Vec<CronScriptSpec> = scripts
        .iter()
        .map(|c| CronScriptSpec {
            id: c.id.to_string(),
            name: c.name.clone(),
            script: c.script.clone(),
            frequency_s: c.frequency_s,
            cron_expr: c.cron_expr.clone(),
        })
        .collect();
    let mut set = CronScriptSet { scripts, checksum: String::new(), export_default, retention };
    let digest = sha2::Sha256::digest(set.encode_to_vec());
    set.checksum = crate::hex::encode(&digest[..16]);
    set
}

impl CronPusher {
    /// Sends every vizier of the org its set (a vizier that is not connected asks when it is).
    pub async fn push_org(&self, org_id: Uuid) {
        let viziers = match self.records.viziers(org_id).await {
            Ok(v) => v,
            Err(error) => return tracing::warn!(%error, %org_id, "cron scripts not pushed; viziers will ask"),
        };
        for v in viziers {
            self.push(org_id, v.id, None).await;
        }
    }

    /// Sends one vizier its set, unless it already holds a set with checksum `held`.
    async fn push(&self, org_id: Uuid, vizier_id: Uuid, held: Option<&str>) {
        let scripts = match self.records.cron_scripts_of(org_id, vizier_id).await {
            Ok(s) => s,
            Err(error) => return tracing::warn!(%error, %vizier_id, "cron scripts not read; the vizier asks again"),
        };
        let export_default = match self.records.org_setting(org_id, EXPORT_DEFAULT_SETTING).await {
            Ok(s) => s.as_deref().and_then(|s| open_export_default(s, self.settings_key.as_ref(), org_id)),
            Err(error) => return tracing::warn!(%error, %vizier_id, "export default not read; the vizier asks again"),
        };
        let retention = match self.records.org_setting(org_id, RETENTION_SETTING).await {
            Ok(s) => s.as_deref().map(decode_retention).unwrap_or_default(),
            Err(error) => return tracing::warn!(%error, %vizier_id, "retention not read; the vizier asks again"),
        };
        let set = script_set(&scripts, export_default, retention);
        if held == Some(set.checksum.as_str()) {
            return;
        }
        tracing::debug!(%vizier_id, scripts = set.scripts.len(), "cron scripts sent");
        self.send(vizier_id, topic::CRON_SYNC, set.encode_to_vec()).await;
    }

    async fn send(&self, vizier_id: Uuid, topic: &str, payload: Vec<u8>) {
        let envelope = BusEnvelope { payload, ..Default::default() };
        let subject = subject::c2v(&vizier_id.to_string(), topic);
        if let Err(error) = self.bus.publish(&subject, envelope.encode_to_vec().into()).await {
            tracing::warn!(%error, %vizier_id, topic, "cron message not sent");
        }
    }

    async fn answer_request(&self, payload: &[u8]) {
        let Some((org_id, vizier_id, body)) = open(payload) else { return };
        let Ok(request) = CronSyncRequest::decode(body.as_slice()) else {
            return tracing::debug!(%vizier_id, "undecodable cron request dropped");
        };
        self.push(org_id, vizier_id, Some(&request.checksum)).await;
    }

    async fn store_result(&self, payload: &[u8], keep: u32) {
        let Some((org_id, vizier_id, body)) = open(payload) else { return };
        let Ok(run) = CronRunResult::decode(body.as_slice()) else {
            return tracing::debug!(%vizier_id, "undecodable cron result dropped");
        };
        let key = CronRunKey { cron_id: run.cron_id.clone(), run_at_ns: run.run_at_ns };
        let stored = match Uuid::parse_str(&run.cron_id) {
            // An id that names nothing is acknowledged too: it can never be stored.
            Err(_) => None,
            Ok(cron_id) => {
                let result = NewCronResult {
                    org_id,
                    cron_id,
                    vizier_id,
                    run_at: run.run_at_ns,
                    duration_ns: run.duration_ns.max(0),
                    error_code: i64::from(run.error_code),
                    error: run.error.chars().take(4096).collect::<String>().replace('\0', ""),
                    records: run.records.max(0),
                    bytes: run.bytes.max(0),
                };
                // Only a vizier the script runs on reports its runs; anything else is dropped (and acknowledged:
                // sending it again cannot help).
                let stored = match self.records.cron_script_runs_on(org_id, cron_id, vizier_id).await {
                    Ok(Some(true)) => self.records.record_cron_result(result, keep).await,
                    Ok(_) => Ok(None),
                    Err(error) => Err(error),
                };
                match stored {
                    Ok(stored) => stored,
                    Err(error) => {
                        // Not acknowledged: the vizier sends it again.
                        return tracing::warn!(%error, %vizier_id, "cron result not stored yet");
                    }
                }
            }
        };
        if stored.is_none() {
            tracing::debug!(%vizier_id, cron_id = %run.cron_id, "result of a cron script not run here dropped");
        }
        self.send(vizier_id, topic::CRON_ACK, CronResultAck { runs: vec![key] }.encode_to_vec()).await;
    }
}

/// The authenticated org and vizier of a v2c message, and its payload. Only VZConn publishes on v2c subjects,
/// with the ids it authenticated, so the envelope is trusted.
fn open(payload: &[u8]) -> Option<(Uuid, Uuid, Vec<u8>)> {
    let envelope = BusEnvelope::decode(payload).ok()?;
    let org_id = Uuid::parse_str(&envelope.org_id).ok()?;
    let vizier_id = Uuid::parse_str(&envelope.vizier_id).ok()?;
    Some((org_id, vizier_id, envelope.payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(name: &str, frequency_s: i64) -> CronScript {
        CronScript {
            id: Uuid::from_u128(7),
            org_id: Uuid::from_u128(1),
            name: name.into(),
            script: "px.display(px.DataFrame('http_events'))".into(),
            cluster_ids: vec![],
            frequency_s,
            cron_expr: String::new(),
            enabled: true,
            configs: String::new(),
            created_at: 1,
            updated_at: 2,
        }
    }

    #[test]
    fn the_checksum_follows_what_the_vizier_runs() {
        let a = script_set(&[script("a", 10)], None, vec![]);
        assert_eq!(a.checksum.len(), 32);
        assert_eq!(a.scripts.len(), 1);
        assert_eq!(script_set(&[script("a", 10)], None, vec![]).checksum, a.checksum, "stable");
        assert_ne!(script_set(&[script("a", 20)], None, vec![]).checksum, a.checksum, "the schedule counts");
        let mut touched = script("a", 10);
        touched.updated_at = 99;
        assert_eq!(
            script_set(&[touched], None, vec![]).checksum,
            a.checksum,
            "what the vizier does not run does not count"
        );
        assert_ne!(script_set(&[], None, vec![]).checksum, a.checksum);
        let kept = HistoryRetention { table: "http_events".into(), max_age_s: 3600, max_bytes: 1 << 20 };
        assert_ne!(
            script_set(&[script("a", 10)], None, vec![kept]).checksum,
            a.checksum,
            "a retention change reaches the vizier"
        );
    }

    #[test]
    fn retention_settings_read_back_in_table_order_and_skip_junk() {
        let t = |table: &str, age: u64| HistoryRetention { table: table.into(), max_age_s: age, max_bytes: 1 << 20 };
        let text = encode_retention(&[t("redis_events", 60), t("http_events", 7200)]);
        assert_eq!(text, "http_events=7200:1048576,redis_events=60:1048576");
        assert_eq!(decode_retention(&text), vec![t("http_events", 7200), t("redis_events", 60)]);
        assert_eq!(decode_retention(""), vec![]);
        assert_eq!(decode_retention("x=1,=2:3,y=a:1,http_events=7200:1048576"), vec![t("http_events", 7200)]);
    }
}
