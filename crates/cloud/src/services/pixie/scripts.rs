//! `px.cloudapi.ScriptMgr` over Loupe's `ScriptService`: scripts (bundled `px/…` and the org's `org/…`) by
//! name, which serves as the id; a script with a vis spec is also a live view. The vis spec itself (Pixie's
//! `px.vispb.Vis` message) is not sent: Loupe keeps vis specs as JSON text.
//!
//! Owns the message mapping. Must not read scripts itself.

use loupe_proto::cloudpb::{self, script_service_server::ScriptService as _};
use loupe_proto::pixie::cloudpb as px;
use tonic::{Request, Response, Status};

use super::relay;
use crate::services::CloudServices;

fn metadata(s: &cloudpb::Script) -> px::ScriptMetadata {
    px::ScriptMetadata {
        id: s.name.clone(),
        desc: s.description.clone(),
        name: s.name.clone(),
        has_live_view: !s.vis_json.trim().is_empty(),
    }
}

impl CloudServices {
    /// Every script the caller may read, whole (the list lacks whether each has a vis spec).
    async fn all_scripts<T>(&self, request: &Request<T>) -> Result<Vec<cloudpb::Script>, Status> {
        let list = self.list_scripts(relay(request, cloudpb::Empty {})).await?.into_inner().scripts;
        let mut scripts = Vec::with_capacity(list.len());
        for s in list {
            scripts.push(self.get_script(relay(request, cloudpb::ScriptName { name: s.name })).await?.into_inner());
        }
        Ok(scripts)
    }

    async fn script<T>(&self, request: &Request<T>, name: String) -> Result<cloudpb::Script, Status> {
        Ok(self.get_script(relay(request, cloudpb::ScriptName { name })).await?.into_inner())
    }
}

#[tonic::async_trait]
impl px::script_mgr_server::ScriptMgr for CloudServices {
    async fn get_live_views(
        &self,
        request: Request<px::GetLiveViewsReq>,
    ) -> Result<Response<px::GetLiveViewsResp>, Status> {
        let live_views = self
            .all_scripts(&request)
            .await?
            .iter()
            .map(metadata)
            .filter(|m| m.has_live_view)
            .map(|m| px::LiveViewMetadata { id: m.id, desc: m.desc, name: m.name })
            .collect();
        Ok(Response::new(px::GetLiveViewsResp { live_views }))
    }

    async fn get_live_view_contents(
        &self,
        request: Request<px::GetLiveViewContentsReq>,
    ) -> Result<Response<px::GetLiveViewContentsResp>, Status> {
        let s = self.script(&request, request.get_ref().live_view_id.clone()).await?;
        let m = metadata(&s);
        if !m.has_live_view {
            return Err(Status::not_found(format!("{} has no live view", s.name)));
        }
        Ok(Response::new(px::GetLiveViewContentsResp {
            metadata: Some(px::LiveViewMetadata { id: m.id, desc: m.desc, name: m.name }),
            pxl_contents: s.pxl,
        }))
    }

    async fn get_scripts(&self, request: Request<px::GetScriptsReq>) -> Result<Response<px::GetScriptsResp>, Status> {
        let scripts = self.all_scripts(&request).await?.iter().map(metadata).collect();
        Ok(Response::new(px::GetScriptsResp { scripts }))
    }

    async fn get_script_contents(
        &self,
        request: Request<px::GetScriptContentsReq>,
    ) -> Result<Response<px::GetScriptContentsResp>, Status> {
        let s = self.script(&request, request.get_ref().script_id.clone()).await?;
        Ok(Response::new(px::GetScriptContentsResp { metadata: Some(metadata(&s)), contents: s.pxl }))
    }
}
