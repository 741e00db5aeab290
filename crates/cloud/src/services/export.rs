//! `ExportTargetService`: the org's default OpenTelemetry endpoint, used by a `px.export` that names none.
//!
//! Owns the checks on an endpoint (URL form, header names and values, the timeout, their sizes) and the
//! redaction of header values on read: they are credentials, sent to the endpoint by the viziers and never
//! returned or logged. The endpoint is one org setting (`loupe_vzconn::EXPORT_DEFAULT_SETTING`, in VZConn's
//! encoding); members read it, admins change it (it decides where every vizier of the org sends); after each change the org's viziers are told through `CloudState::cron_changes` (the endpoint
//! travels with the cron script set). Must not send anything to a vizier itself.

use loupe_proto::cloudpb::{self, export_target_service_server::ExportTargetService};
use loupe_proto::vzconnpb::{ExportDefault, ExportHeader};
use tonic::{Request, Response, Status};

use super::CloudServices;
use crate::error::{ApiError, ApiResult};

/// Longest endpoint URL.
const MAX_URL_LEN: usize = 2048;
/// Most headers.
const MAX_HEADERS: usize = 8;
/// Longest header name.
const MAX_HEADER_NAME_LEN: usize = 128;
/// Longest header value.
const MAX_HEADER_VALUE_LEN: usize = 512;
/// Longest request timeout, seconds (as `px.otel.Endpoint`).
const MAX_TIMEOUT_S: u32 = 60;
/// What a header value reads as.
pub const REDACTED: &str = "<redacted>";

fn check(target: &cloudpb::ExportTarget) -> ApiResult<()> {
    let url = target.url.as_str();
    if url.is_empty() || url.len() > MAX_URL_LEN || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ApiError::invalid(format!("url must be 1 to {MAX_URL_LEN} characters without spaces")));
    }
    let rest = ["grpc://", "grpcs://", "http://", "https://"].iter().find_map(|p| url.strip_prefix(p));
    let authority = rest.unwrap_or(url).split('/').next().unwrap_or_default();
    if authority.is_empty() || (rest.is_none() && (url.contains("://") || !url.contains(':'))) {
        return Err(ApiError::invalid(
            "url must be host:port (OTLP/gRPC) or a grpc://, grpcs://, http:// or https:// URL",
        ));
    }
    if authority.contains('@') {
        // It would be kept and returned in clear: credentials go in headers.
        return Err(ApiError::invalid("put credentials in headers, not in the url"));
    }
    if target.headers.len() > MAX_HEADERS {
        return Err(ApiError::invalid(format!("at most {MAX_HEADERS} headers")));
    }
    for (name, value) in &target.headers {
        let name_ok = !name.is_empty()
            && name.len() <= MAX_HEADER_NAME_LEN
            && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
            && !name.ends_with("-bin");
        if !name_ok {
            return Err(ApiError::invalid(format!(
                "header names must be 1 to {MAX_HEADER_NAME_LEN} of [a-z0-9-_.], not ending in -bin"
            )));
        }
        if value.len() > MAX_HEADER_VALUE_LEN || !value.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            return Err(ApiError::invalid(format!(
                "header values must be at most {MAX_HEADER_VALUE_LEN} printable ASCII characters"
            )));
        }
        if value == REDACTED {
            return Err(ApiError::invalid(format!("header {name:?} has the redacted value: give the value itself")));
        }
    }
    if target.timeout_s > MAX_TIMEOUT_S {
        return Err(ApiError::invalid(format!("timeout_s must be at most {MAX_TIMEOUT_S}")));
    }
    Ok(())
}

/// `e` as a caller reads it: header values redacted.
fn view(e: ExportDefault) -> cloudpb::ExportTarget {
    cloudpb::ExportTarget {
        url: e.url,
        headers: e.headers.into_iter().map(|h| (h.name, REDACTED.to_owned())).collect(),
        insecure: e.insecure,
        timeout_s: e.timeout_s,
    }
}

impl CloudServices {
    fn export_changed(&self, org_id: uuid::Uuid) {
        if let Some(hook) = &self.state.cron_changes {
            hook.changed(org_id);
        }
    }
}

#[tonic::async_trait]
impl ExportTargetService for CloudServices {
    async fn get_export_target(
        &self,
        request: Request<cloudpb::Empty>,
    ) -> Result<Response<cloudpb::ExportTarget>, Status> {
        self.with_caller(request, |caller, _| async move {
            let stored = self.state.metastore.get_org_setting(caller.org_id(), loupe_vzconn::EXPORT_DEFAULT_SETTING);
            stored
                .await?
                .as_deref()
                .and_then(loupe_vzconn::decode_export_default)
                .map(view)
                .ok_or_else(|| ApiError::not_found("the org has no export target (px export set)"))
        })
        .await
    }

    async fn set_export_target(
        &self,
        request: Request<cloudpb::ExportTarget>,
    ) -> Result<Response<cloudpb::ExportTarget>, Status> {
        self.with_caller(request, |caller, req| async move {
            caller.require_admin("set the org's export target")?;
            check(&req)?;
            let stored = ExportDefault {
                url: req.url,
                // In name order: the map is a BTreeMap.
                headers: req.headers.into_iter().map(|(name, value)| ExportHeader { name, value }).collect(),
                insecure: req.insecure,
                timeout_s: req.timeout_s,
            };
            let key = self.state.settings_key.as_ref().ok_or_else(|| {
                ApiError::unavailable(
                    "this service has no settings key to seal header values with (--settings-key-file)",
                )
            })?;
            let value =
                loupe_vzconn::encode_export_default(&stored, key, caller.org_id()).map_err(ApiError::internal)?;
            self.state.metastore.put_org_setting(caller.org_id(), loupe_vzconn::EXPORT_DEFAULT_SETTING, &value).await?;
            tracing::info!(org_id = %caller.org_id(), url = %stored.url, "export target set");
            self.export_changed(caller.org_id());
            Ok(view(stored))
        })
        .await
    }

    async fn delete_export_target(&self, request: Request<cloudpb::Empty>) -> Result<Response<cloudpb::Empty>, Status> {
        self.with_caller(request, |caller, _| async move {
            caller.require_admin("delete the org's export target")?;
            let key = loupe_vzconn::EXPORT_DEFAULT_SETTING;
            let stored = self.state.metastore.get_org_setting(caller.org_id(), key).await?;
            if stored.as_deref().and_then(loupe_vzconn::decode_export_default).is_none() {
                return Err(ApiError::not_found("the org has no export target"));
            }
            // The metastore has no setting deletion: empty is none.
            self.state.metastore.put_org_setting(caller.org_id(), key, "").await?;
            self.export_changed(caller.org_id());
            Ok(cloudpb::Empty {})
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(url: &str) -> cloudpb::ExportTarget {
        cloudpb::ExportTarget { url: url.into(), ..Default::default() }
    }

    #[test]
    fn urls_take_the_forms_px_otel_endpoint_takes() {
        for ok in ["collector:4317", "127.0.0.1:4317", "grpc://c:4317", "https://otel.example/base", "http://c:4318"] {
            assert!(check(&target(ok)).is_ok(), "{ok}");
        }
        for bad in ["", "collector", "ftp://c:1", "https://user:pw@c:4318", "http://", "a b:1"] {
            assert!(check(&target(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn headers_are_bounded_and_read_back_redacted() {
        let mut t = target("c:4317");
        t.headers.insert("api-key".into(), "s3cret".into());
        assert!(check(&t).is_ok());
        let stored = ExportDefault {
            url: t.url.clone(),
            headers: vec![ExportHeader { name: "api-key".into(), value: "s3cret".into() }],
            ..Default::default()
        };
        assert_eq!(view(stored).headers["api-key"], REDACTED);
        t.headers.insert("Upper".into(), "v".into());
        assert!(check(&t).is_err());
        let mut t = target("c:4317");
        t.headers.insert("k".into(), "x".repeat(MAX_HEADER_VALUE_LEN + 1));
        assert!(check(&t).is_err());
        t.headers.insert("k".into(), REDACTED.into());
        assert!(check(&t).is_err());
        let t = cloudpb::ExportTarget { timeout_s: 61, ..target("c:4317") };
        assert!(check(&t).is_err());
    }
}
