//! `CronScriptService`: the org's cron scripts (scripts its viziers run on a schedule) and their last results.
//!
//! Owns cron script naming (1–64 of `[a-z0-9_-]`, unique in the org), the schedule check (a period of at least
//! 1 s or a five-field cron expression, `loupe_common::schedule`), resolving target viziers by name or id within
//! the org, and compiling the script when it is saved. Every member may read and write them: a cron script runs
//! what the member could run by hand. After each change the org's viziers are told through
//! `CloudState::cron_changes` when this process has VZConn's pusher; otherwise they learn it at their next
//! request. Must not send anything to a vizier itself, nor store results (VZConn's cron side does both).

use loupe_common::schedule::Schedule;
use loupe_metastore::{CronResult, CronScript, CronScriptUpdate, NewCronScript};
use loupe_proto::cloudpb::{self, cron_script_service_server::CronScriptService};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::caller::Caller;
use super::{CloudServices, to_secs};
use crate::error::{ApiError, ApiResult};

/// Longest cron script name.
const MAX_NAME_LEN: usize = 64;
/// Largest script.
const MAX_SCRIPT_CHARS: usize = 256 * 1024;

fn view(c: CronScript) -> cloudpb::CronScript {
    cloudpb::CronScript {
        id: c.id.to_string(),
        name: c.name,
        script: c.script,
        frequency_s: c.frequency_s,
        cron: c.cron_expr,
        viziers: c.cluster_ids.iter().map(Uuid::to_string).collect(),
        enabled: c.enabled,
        created_at: to_secs(c.created_at),
        updated_at: to_secs(c.updated_at),
    }
}

fn result_view(r: CronResult) -> cloudpb::CronScriptResult {
    cloudpb::CronScriptResult {
        vizier_id: r.vizier_id.to_string(),
        run_at: to_secs(r.run_at),
        duration_ms: r.duration_ns / 1_000_000,
        error_code: i32::try_from(r.error_code).unwrap_or(i32::MAX),
        error: r.error,
        records: r.records,
        bytes: r.bytes,
        received_at: to_secs(r.received_at),
    }
}

fn check_name(name: &str) -> ApiResult<()> {
    let valid = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(ApiError::invalid(format!("cron script names are 1 to {MAX_NAME_LEN} of [a-z0-9_-]")))
    }
}

fn check_script(script: &str) -> ApiResult<()> {
    if script.trim().is_empty() {
        return Err(ApiError::invalid("script must not be empty"));
    }
    if script.chars().count() > MAX_SCRIPT_CHARS {
        return Err(ApiError::invalid(format!("script must be at most {MAX_SCRIPT_CHARS} characters")));
    }
    super::scripts::check_pxl(script)
}

/// Longest cron expression.
const MAX_CRON_CHARS: usize = 256;

fn check_schedule(frequency_s: i64, cron: &str) -> ApiResult<()> {
    if cron.chars().count() > MAX_CRON_CHARS {
        return Err(ApiError::invalid(format!("a cron expression is at most {MAX_CRON_CHARS} characters")));
    }
    Schedule::new(frequency_s, cron).map(drop).map_err(|e| ApiError::invalid(e.to_string()))
}

/// The schedule of a request: each field, when given, must hold a value (a period ≥ 1 s, a non-empty
/// expression); `(0, "")` stands for absent in the store.
fn given_schedule(frequency_s: Option<i64>, cron: Option<String>) -> ApiResult<(i64, String)> {
    if frequency_s.is_some_and(|f| f < 1) {
        return Err(ApiError::invalid("a period must be at least 1 second"));
    }
    let cron = cron.map(|c| c.trim().to_owned());
    if cron.as_deref() == Some("") {
        return Err(ApiError::invalid("a cron expression must not be empty"));
    }
    let (frequency_s, cron) = (frequency_s.unwrap_or(0), cron.unwrap_or_default());
    check_schedule(frequency_s, &cron)?;
    Ok((frequency_s, cron))
}

impl CloudServices {
    /// The org's cron script with this name (or id).
    async fn cron_script(&self, caller: &Caller, name: &str) -> ApiResult<CronScript> {
        let all = self.state.metastore.list_cron_scripts(caller.org_id()).await?;
        all.into_iter()
            .find(|c| c.name == name || c.id.to_string() == name)
            .ok_or_else(|| ApiError::not_found(format!("no cron script named {name:?}")))
    }

    /// The ids of the org's viziers named (by name or id) in `wanted`.
    async fn vizier_ids(&self, caller: &Caller, wanted: &[String]) -> ApiResult<Vec<Uuid>> {
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let viziers = self.state.metastore.list_viziers(caller.org_id()).await?;
        let mut ids = Vec::with_capacity(wanted.len());
        for w in wanted {
            let v = viziers
                .iter()
                .find(|v| &v.name == w || &v.id.to_string() == w)
                .ok_or_else(|| ApiError::invalid(format!("the org has no vizier named {w:?}")))?;
            if !ids.contains(&v.id) {
                ids.push(v.id);
            }
        }
        Ok(ids)
    }

    fn cron_changed(&self, org_id: Uuid) {
        if let Some(hook) = &self.state.cron_changes {
            hook.changed(org_id);
        }
    }
}

#[tonic::async_trait]
impl CronScriptService for CloudServices {
    async fn list_cron_scripts(
        &self,
        request: Request<cloudpb::Empty>,
    ) -> Result<Response<cloudpb::CronScriptList>, Status> {
        self.with_caller(request, |caller, _| async move {
            let all = self.state.metastore.list_cron_scripts(caller.org_id()).await?;
            Ok(cloudpb::CronScriptList { scripts: all.into_iter().map(view).collect() })
        })
        .await
    }

    async fn get_cron_script(
        &self,
        request: Request<cloudpb::CronScriptName>,
    ) -> Result<Response<cloudpb::CronScript>, Status> {
        self.with_caller(request, |caller, req| async move { Ok(view(self.cron_script(&caller, &req.name).await?)) })
            .await
    }

    async fn create_cron_script(
        &self,
        request: Request<cloudpb::CreateCronScriptRequest>,
    ) -> Result<Response<cloudpb::CronScript>, Status> {
        self.with_caller(request, |caller, req| async move {
            check_name(&req.name)?;
            let (frequency_s, cron_expr) = given_schedule(req.frequency_s, req.cron)?;
            check_script(&req.script)?;
            let cluster_ids = self.vizier_ids(&caller, &req.viziers).await?;
            let new = NewCronScript {
                org_id: caller.org_id(),
                name: req.name,
                script: req.script,
                cluster_ids,
                frequency_s,
                cron_expr,
                enabled: req.enabled.unwrap_or(true),
                configs: String::new(),
            };
            let created = self.state.metastore.create_cron_script(new).await?;
            tracing::info!(org_id = %caller.org_id(), name = %created.name, "cron script created");
            self.cron_changed(caller.org_id());
            Ok(view(created))
        })
        .await
    }

    async fn update_cron_script(
        &self,
        request: Request<cloudpb::UpdateCronScriptRequest>,
    ) -> Result<Response<cloudpb::CronScript>, Status> {
        self.with_caller(request, |caller, req| async move {
            let current = self.cron_script(&caller, &req.name).await?;
            let (frequency_s, cron_expr) = match (req.frequency_s, req.cron) {
                (None, None) => (current.frequency_s, current.cron_expr.clone()),
                (f, c) => given_schedule(f, c)?,
            };
            let script = match req.script {
                Some(s) => {
                    check_script(&s)?;
                    s
                }
                None => current.script.clone(),
            };
            let update = CronScriptUpdate {
                script,
                cluster_ids: current.cluster_ids.clone(),
                frequency_s,
                cron_expr,
                enabled: req.enabled.unwrap_or(current.enabled),
                configs: current.configs.clone(),
            };
            let updated = self.state.metastore.update_cron_script(caller.org_id(), current.id, update).await?;
            self.cron_changed(caller.org_id());
            Ok(view(updated))
        })
        .await
    }

    async fn delete_cron_script(
        &self,
        request: Request<cloudpb::CronScriptName>,
    ) -> Result<Response<cloudpb::Empty>, Status> {
        self.with_caller(request, |caller, req| async move {
            let current = self.cron_script(&caller, &req.name).await?;
            self.state.metastore.delete_cron_script(caller.org_id(), current.id).await?;
            tracing::info!(org_id = %caller.org_id(), name = %current.name, "cron script deleted");
            self.cron_changed(caller.org_id());
            Ok(cloudpb::Empty {})
        })
        .await
    }

    async fn list_cron_script_results(
        &self,
        request: Request<cloudpb::CronScriptName>,
    ) -> Result<Response<cloudpb::CronScriptResultList>, Status> {
        self.with_caller(request, |caller, req| async move {
            let current = self.cron_script(&caller, &req.name).await?;
            let results = self.state.metastore.list_cron_results(caller.org_id(), current.id).await?;
            Ok(cloudpb::CronScriptResultList { results: results.into_iter().map(result_view).collect() })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_schedules_are_checked() {
        for ok in ["a", "nightly-http_5xx", &"x".repeat(64)] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Upper", "a/b", "a b", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_schedule(10, "").is_ok());
        assert!(check_schedule(0, "*/5 * * * *").is_ok());
        let refused = |f, c| check_schedule(f, c).expect_err("refused").to_string();
        assert!(refused(0, "").contains("at least 1 second"));
        assert!(refused(10, "* * * * *").contains("not both"));
        assert!(refused(0, "61 * * * *").contains("outside 0-59"));
        assert!(refused(0, &"* ".repeat(200)).contains("at most 256"));
        let given = |f, c: Option<&str>| given_schedule(f, c.map(str::to_owned));
        assert_eq!(given(Some(10), None).expect("period"), (10, String::new()));
        assert_eq!(given(None, Some(" @daily ")).expect("expression"), (0, "@daily".to_owned()));
        assert!(given(Some(0), Some("* * * * *")).expect_err("zero").to_string().contains("at least 1 second"));
        assert!(given(None, Some(" ")).expect_err("blank").to_string().contains("must not be empty"));
        assert!(given(None, None).expect_err("neither").to_string().contains("at least 1 second"));
    }
}
