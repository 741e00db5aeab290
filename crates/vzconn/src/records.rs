//! Every metastore and key-hashing call VZConn makes, in one place: deploy key → org, and the vizier records.
//!
//! Owns the translation of metastore answers into what the connection rules need (`NotFound` → `None`).
//! Must not hold rules itself (they are in `register`, `bridge` and `manager`).

use std::sync::Arc;

use loupe_metastore::{
    CronScript, KeyKind, Metastore, MetastoreError, NewCronResult, NewVizier, Vizier, VizierStatusUpdate,
};
use uuid::Uuid;

/// The metastore, as VZConn uses it.
#[derive(Clone)]
pub(crate) struct Records {
    metastore: Arc<dyn Metastore>,
}

/// What a heartbeat reports besides the status; a `None` keeps the stored value.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Reported {
    pub(crate) version: Option<String>,
    pub(crate) num_agents: Option<i64>,
    pub(crate) address: Option<String>,
}

/// The org already has a vizier of that name.
pub(crate) struct NameTaken;

type Result<T> = std::result::Result<T, MetastoreError>;

impl Records {
    pub(crate) fn new(metastore: Arc<dyn Metastore>) -> Self {
        Records { metastore }
    }

    /// The org of an unrevoked deploy key, `None` for anything else. A string that is not shaped like a deploy
    /// key is refused without a lookup.
    pub(crate) async fn org_of_deploy_key(&self, key: &str) -> Result<Option<Uuid>> {
        if loupe_auth::key_kind(key) != Some(KeyKind::Deploy) {
            return Ok(None);
        }
        let hash = loupe_auth::hash_key(key);
        let found = none_if_missing(self.metastore.get_key_by_hash(KeyKind::Deploy, hash.as_str()).await)?;
        let Some(found) = found else { return Ok(None) };
        // The lookup is by hash; a revoked key is already NotFound, but say so here too.
        if found.revoked_at.is_some() {
            return Ok(None);
        }
        if let Err(error) = self.metastore.touch_key(KeyKind::Deploy, found.org_id, found.id).await {
            tracing::debug!(%error, "deploy key last-use time not recorded");
        }
        Ok(Some(found.org_id))
    }

    pub(crate) async fn vizier(&self, org_id: Uuid, vizier_id: Uuid) -> Result<Option<Vizier>> {
        none_if_missing(self.metastore.get_vizier(org_id, vizier_id).await)
    }

    pub(crate) async fn viziers(&self, org_id: Uuid) -> Result<Vec<Vizier>> {
        self.metastore.list_viziers(org_id).await
    }

    /// Every vizier of every org, for the status monitor.
    pub(crate) async fn all_viziers(&self) -> Result<Vec<Vizier>> {
        let mut all = Vec::new();
        for org in self.metastore.list_orgs().await? {
            all.extend(self.metastore.list_viziers(org.id).await?);
        }
        Ok(all)
    }

    pub(crate) async fn create_vizier(
        &self,
        org_id: Uuid,
        name: &str,
        cluster_uid: &str,
        version: &str,
    ) -> Result<std::result::Result<Vizier, NameTaken>> {
        let new = NewVizier {
            org_id,
            name: name.to_owned(),
            cluster_uid: cluster_uid.to_owned(),
            version: version.to_owned(),
        };
        match self.metastore.create_vizier(new).await {
            Ok(v) => Ok(Ok(v)),
            Err(MetastoreError::AlreadyExists { .. }) => Ok(Err(NameTaken)),
            Err(e) => Err(e),
        }
    }

    /// Records a status and what came with it; `None` when the vizier is gone.
    pub(crate) async fn set_status(
        &self,
        org_id: Uuid,
        vizier_id: Uuid,
        status: &str,
        heartbeat_ns: i64,
        reported: Reported,
    ) -> Result<Option<Vizier>> {
        let update = VizierStatusUpdate {
            status: status.to_owned(),
            last_heartbeat_ns: heartbeat_ns,
            version: reported.version,
            num_agents: reported.num_agents,
            address: reported.address,
        };
        none_if_missing(self.metastore.update_vizier_status(org_id, vizier_id, update).await)
    }
}

impl Records {
    /// The org's setting `key`, if set and not empty.
    pub(crate) async fn org_setting(&self, org_id: Uuid, key: &str) -> Result<Option<String>> {
        Ok(self.metastore.get_org_setting(org_id, key).await?.filter(|v| !v.is_empty()))
    }

    /// The enabled cron scripts of the org that run on this vizier (those naming it, and those naming none).
    pub(crate) async fn cron_scripts_of(&self, org_id: Uuid, vizier_id: Uuid) -> Result<Vec<CronScript>> {
        let all = self.metastore.list_cron_scripts(org_id).await?;
        Ok(all
            .into_iter()
            .filter(|c| c.enabled && (c.cluster_ids.is_empty() || c.cluster_ids.contains(&vizier_id)))
            .collect())
    }

    /// Whether the org's cron script `cron_id` runs on this vizier (enabled or not); `None` when there is none.
    pub(crate) async fn cron_script_runs_on(
        &self,
        org_id: Uuid,
        cron_id: Uuid,
        vizier_id: Uuid,
    ) -> Result<Option<bool>> {
        let script = none_if_missing(self.metastore.get_cron_script(org_id, cron_id).await)?;
        Ok(script.map(|c| c.cluster_ids.is_empty() || c.cluster_ids.contains(&vizier_id)))
    }

    /// Stores one run's result; `None` when its script is not the org's (any more).
    pub(crate) async fn record_cron_result(&self, result: NewCronResult, keep: u32) -> Result<Option<bool>> {
        none_if_missing(self.metastore.record_cron_result(result, keep).await)
    }
}

fn none_if_missing<T>(result: Result<T>) -> Result<Option<T>> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(MetastoreError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// A metastore failure as the vizier sees it: unavailable (retry) or internal, never the details.
pub(crate) fn status_of(error: &MetastoreError) -> tonic::Status {
    if error.is_unavailable() {
        tonic::Status::unavailable("the cloud's database is unavailable; retry later")
    } else {
        tracing::error!(%error, "metastore call failed");
        tonic::Status::internal("internal error")
    }
}
