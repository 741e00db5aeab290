//! `ScriptService`: the bundled catalog (`px/…`, read-only) merged with the org's saved scripts (`org/…`).
//!
//! Owns script naming (`org/<[a-z0-9_-]+>` for saved scripts) and who may write them (admins). Scripts are
//! compiled when saved (errors at line and column) but never run here.

use loupe_metastore::{NewScript, Script, ScriptUpdate};
use loupe_proto::cloudpb::{self, script_service_server::ScriptService};
use tonic::{Request, Response, Status};

use super::{CloudServices, to_secs};
use crate::error::{ApiError, ApiResult};

/// Prefix of bundled (read-only) scripts.
pub const BUNDLED_PREFIX: &str = "px/";
/// Prefix of org scripts.
pub const ORG_PREFIX: &str = "org/";
/// Longest name after `org/`.
const MAX_NAME_LEN: usize = 64;
/// Largest PxL source or vis spec (as JSON text).
const MAX_SCRIPT_BYTES: usize = 256 * 1024;
/// Longest description.
const MAX_DESCRIPTION_LEN: usize = 4096;

fn org_script_view(s: Script) -> cloudpb::Script {
    cloudpb::Script {
        name: s.name,
        description: s.description,
        source: "org".to_owned(),
        read_only: false,
        pxl: s.pxl,
        vis_json: s.vis,
        created_at: Some(to_secs(s.created_at)),
        updated_at: Some(to_secs(s.updated_at)),
    }
}

/// Checks an org script name: `org/` then 1–64 of `[a-z0-9_-]`. Bundled names are refused as read-only.
fn check_org_name(name: &str) -> ApiResult<()> {
    if name.starts_with(BUNDLED_PREFIX) {
        return Err(ApiError::forbidden("bundled scripts (px/…) are read-only; save a copy as org/<name>"));
    }
    let valid = name.strip_prefix(ORG_PREFIX).is_some_and(|rest| {
        !rest.is_empty()
            && rest.len() <= MAX_NAME_LEN
            && rest.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    });
    if valid {
        Ok(())
    } else {
        Err(ApiError::invalid(format!("script names must look like org/<name> with 1 to {MAX_NAME_LEN} of [a-z0-9_-]")))
    }
}

/// Checks a script's content; the vis spec must be JSON (or empty).
fn check_content(req: &cloudpb::SaveScriptRequest) -> ApiResult<()> {
    if req.pxl.trim().is_empty() {
        return Err(ApiError::invalid("pxl must not be empty"));
    }
    // Characters, as the REST schema's `maxLength` counts them.
    if req.pxl.chars().count() > MAX_SCRIPT_BYTES {
        return Err(ApiError::invalid(format!("pxl must be at most {MAX_SCRIPT_BYTES} characters")));
    }
    if req.description.chars().count() > MAX_DESCRIPTION_LEN {
        return Err(ApiError::invalid(format!("description must be at most {MAX_DESCRIPTION_LEN} characters")));
    }
    if req.vis_json.len() > MAX_SCRIPT_BYTES {
        return Err(ApiError::invalid(format!("vis must be at most {MAX_SCRIPT_BYTES} bytes of JSON")));
    }
    if !req.vis_json.is_empty() && serde_json::from_str::<serde_json::Value>(&req.vis_json).is_err() {
        return Err(ApiError::invalid("vis_json must be JSON text"));
    }
    check_saved_script(&req.pxl, &req.vis_json)
}

/// Compiles the script against the tables this Loupe knows, so a mistake is reported when the script is
/// saved, at its line and column, rather than when someone first runs it. A script run as it stands (a
/// cron script) must display something.
pub(super) fn check_pxl(pxl: &str) -> ApiResult<()> {
    let options = loupe_pxl::CompileOptions { now_ns: loupe_metastore::now_ns() };
    loupe_pxl::compile(pxl, &loupe_pxl::SchemaCatalog, &options).map(|_| ()).map_err(not_compiling)
}

/// [`check_pxl`] for a saved script, which may be function-form (functions a vis spec calls, nothing
/// displayed at top level): each function the vis spec calls is checked with the spec's variable
/// defaults; a call needing a variable without a default is left to run time.
fn check_saved_script(pxl: &str, vis_json: &str) -> ApiResult<()> {
    let options = loupe_pxl::CompileOptions { now_ns: loupe_metastore::now_ns() };
    let calls = vis_default_calls(vis_json);
    loupe_pxl::check_script(pxl, &loupe_pxl::SchemaCatalog, &options, &calls).map_err(not_compiling)
}

/// The calls a vis spec (`px.vispb.Vis` JSON) makes with its variables at their defaults: global
/// functions, then widgets' functions. Calls reading a variable with no default are skipped.
fn vis_default_calls(vis_json: &str) -> Vec<loupe_pxl::ExecFunc> {
    use serde_json::Value;
    let Ok(vis) = serde_json::from_str::<Value>(vis_json) else { return Vec::new() };
    let list = |key: &str| vis.get(key).and_then(Value::as_array).cloned().unwrap_or_default();
    let defaults: std::collections::HashMap<String, String> = list("variables")
        .iter()
        .filter_map(|v| Some((v.get("name")?.as_str()?.to_owned(), v.get("defaultValue")?.as_str()?.to_owned())))
        .collect();
    let call = |func: &Value, output: String| -> Option<loupe_pxl::ExecFunc> {
        let name = func.get("name")?.as_str()?.to_owned();
        let mut args = Vec::new();
        for a in func.get("args").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default() {
            let param = a.get("name")?.as_str()?.to_owned();
            let value = match (a.get("value").and_then(Value::as_str), a.get("variable").and_then(Value::as_str)) {
                (Some(v), _) => v.to_owned(),
                (None, Some(var)) => defaults.get(var)?.clone(),
                (None, None) => continue,
            };
            args.push((param, value));
        }
        Some(loupe_pxl::ExecFunc { name, args, output_prefix: output })
    };
    let mut calls = Vec::new();
    for g in list("globalFuncs") {
        let output = g.get("outputName").and_then(Value::as_str).unwrap_or_default().to_owned();
        calls.extend(g.get("func").and_then(|f| call(f, output)));
    }
    for (i, w) in list("widgets").iter().enumerate() {
        let output = match w.get("name").and_then(Value::as_str) {
            Some(n) if !n.is_empty() => n.to_owned(),
            _ => format!("widget_{i}"),
        };
        calls.extend(w.get("func").and_then(|f| call(f, output)));
    }
    calls
}

fn not_compiling(diagnostics: Vec<loupe_pxl::Diagnostic>) -> ApiError {
    let Some(first) = diagnostics.first() else { return ApiError::invalid("pxl does not compile") };
    let more = match diagnostics.len() {
        1 => String::new(),
        n => format!(" (and {} more)", n - 1),
    };
    let help = first.helps.first().map(|h| format!("; help: {h}")).unwrap_or_default();
    ApiError::invalid(format!(
        "pxl does not compile: line {}, column {}: {}{help}{more}",
        first.line, first.column, first.message
    ))
}

#[tonic::async_trait]
impl ScriptService for CloudServices {
    /// Bundled scripts, then the org's, each by name.
    async fn list_scripts(&self, request: Request<cloudpb::Empty>) -> Result<Response<cloudpb::ScriptList>, Status> {
        self.with_caller(request, |caller, _| async move {
            let mut scripts: Vec<cloudpb::ScriptSummary> = loupe_pxl::bundled::scripts()
                .iter()
                .map(|s| cloudpb::ScriptSummary {
                    name: s.name.to_owned(),
                    description: s.short.to_owned(),
                    source: "bundled".to_owned(),
                    read_only: true,
                    updated_at: None,
                })
                .collect();
            for s in self.state.metastore.list_scripts(caller.org_id()).await? {
                scripts.push(cloudpb::ScriptSummary {
                    name: s.name,
                    description: s.description,
                    source: "org".to_owned(),
                    read_only: false,
                    updated_at: Some(to_secs(s.updated_at)),
                });
            }
            Ok(cloudpb::ScriptList { scripts })
        })
        .await
    }

    async fn get_script(&self, request: Request<cloudpb::ScriptName>) -> Result<Response<cloudpb::Script>, Status> {
        self.with_caller(request, |caller, req| async move {
            let name = &req.name;
            if name.starts_with(BUNDLED_PREFIX) {
                let script = loupe_pxl::bundled::scripts()
                    .iter()
                    .find(|s| s.name == name)
                    .ok_or_else(|| ApiError::not_found("script not found"))?;
                return Ok(cloudpb::Script {
                    name: script.name.to_owned(),
                    description: script.short.to_owned(),
                    source: "bundled".to_owned(),
                    read_only: true,
                    pxl: script.pxl.to_owned(),
                    // A function-form script is a live view: the UI and `px` call its functions by this spec.
                    vis_json: script.vis.unwrap_or_default().to_owned(),
                    created_at: None,
                    updated_at: None,
                });
            }
            if check_org_name(name).is_err() {
                return Err(ApiError::not_found("script not found"));
            }
            Ok(org_script_view(self.state.metastore.get_script(caller.org_id(), name).await?))
        })
        .await
    }

    async fn create_script(
        &self,
        request: Request<cloudpb::SaveScriptRequest>,
    ) -> Result<Response<cloudpb::Script>, Status> {
        self.with_caller(request, |caller, req| async move {
            caller.require_admin("save org scripts")?;
            check_org_name(&req.name)?;
            check_content(&req)?;
            let script = self
                .state
                .metastore
                .create_script(NewScript {
                    org_id: caller.org_id(),
                    name: req.name,
                    pxl: req.pxl,
                    vis: req.vis_json,
                    description: req.description,
                })
                .await?;
            Ok(org_script_view(script))
        })
        .await
    }

    async fn update_script(
        &self,
        request: Request<cloudpb::SaveScriptRequest>,
    ) -> Result<Response<cloudpb::Script>, Status> {
        self.with_caller(request, |caller, req| async move {
            caller.require_admin("change org scripts")?;
            check_org_name(&req.name)?;
            check_content(&req)?;
            let update = ScriptUpdate { pxl: req.pxl, vis: req.vis_json, description: req.description };
            Ok(org_script_view(self.state.metastore.update_script(caller.org_id(), &req.name, update).await?))
        })
        .await
    }

    async fn delete_script(&self, request: Request<cloudpb::ScriptName>) -> Result<Response<cloudpb::Empty>, Status> {
        self.with_caller(request, |caller, req| async move {
            caller.require_admin("delete org scripts")?;
            let name = &req.name;
            check_org_name(name)?;
            self.state.metastore.delete_script(caller.org_id(), name).await?;
            Ok(cloudpb::Empty {})
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pxl_mistakes_are_reported_at_their_line_and_column() {
        assert!(check_pxl("import px\ndf = px.DataFrame('http_events')\npx.display(df)\n").is_ok());
        let err = check_pxl("import px\ndf = px.DataFrame('http_events')\ndf = df[df.resp_stat == 200]\n")
            .expect_err("unknown column");
        assert_eq!(err.status().as_u16(), 400);
        assert!(err.message.contains("line 3, column"), "{}", err.message);
        assert!(err.message.contains("resp_status"), "did you mean: {}", err.message);
        let err = check_pxl("import px\ndf = px.DataFrame('http_events'\n").expect_err("syntax");
        assert!(err.message.starts_with("pxl does not compile: line "), "{}", err.message);
    }

    #[test]
    fn function_form_scripts_are_checked_through_their_vis_spec() {
        let pxl = "import px\n\ndef errors(start_time: str, path: str):\n    df = px.DataFrame('http_events', start_time=start_time)\n    return df[df.req_path == path]\n";
        let vis = r#"{"variables":[{"name":"start_time","type":"PX_STRING","defaultValue":"-5m"},{"name":"path","type":"PX_STRING"}],
            "widgets":[{"name":"errs","func":{"name":"errors","args":[{"name":"start_time","variable":"start_time"},{"name":"path","value":"/a"}]}}]}"#;
        assert!(check_saved_script(pxl, vis).is_ok());
        // Without a vis spec the functions are kept for one to call later.
        assert!(check_saved_script(pxl, "").is_ok());
        // The vis spec's call reaches a mistake in the function body, at its line.
        let broken = pxl.replace("df.req_path", "df.req_pat");
        let err = check_saved_script(&broken, vis).expect_err("unknown column");
        assert!(err.message.contains("line 5, column"), "{}", err.message);
        // A call to a function the script lacks.
        let err = check_saved_script(pxl, &vis.replace(r#""name":"errors""#, r#""name":"nope""#)).expect_err("nope");
        assert!(err.message.contains("nope"), "{}", err.message);
        // A variable with no default leaves that call to run time.
        let unset = vis.replace(r#"{"name":"path","value":"/a"}"#, r#"{"name":"path","variable":"path"}"#);
        assert!(check_saved_script(&broken, &unset).is_ok());
        // A script that defines nothing and displays nothing is refused still; cron scripts must display.
        assert!(check_saved_script("import px\ndf = px.DataFrame('http_events')\n", "").is_err());
        assert!(check_pxl(pxl).is_err());
    }

    #[test]
    fn org_names_are_checked() {
        assert!(check_org_name("org/my_script-1").is_ok());
        for bad in ["org/", "org/A", "org/a b", "org/a/b", "mine", "org/x'; DROP TABLE scripts;--", ""] {
            assert_eq!(check_org_name(bad).map_err(|e| e.status().as_u16()), Err(400), "{bad}");
        }
        assert_eq!(check_org_name("px/http_data").map_err(|e| e.status().as_u16()), Err(403));
        assert!(check_org_name(&format!("org/{}", "a".repeat(65))).is_err());
    }
}
