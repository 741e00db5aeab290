//! `px.cloudapi.VizierClusterInfo`: the org's viziers as Pixie's `ClusterInfo`s, from `VizierInfoService`.
//!
//! Owns the mapping of a vizier record onto a cluster (status names, heartbeat time). Must not read records
//! itself.

use loupe_proto::cloudpb::{self, vizier_info_service_server::VizierInfoService as _};
use loupe_proto::pixie::cloudpb as px;
use tonic::{Request, Response, Status};

use super::{id_from_pb, id_to_pb, relay, unimplemented};
use crate::services::CloudServices;

/// Pixie's status for Loupe's (`healthy`, `unhealthy`, `disconnected`).
fn status(loupe: &str) -> px::ClusterStatus {
    match loupe {
        "healthy" => px::ClusterStatus::CsHealthy,
        "unhealthy" => px::ClusterStatus::CsUnhealthy,
        "disconnected" => px::ClusterStatus::CsDisconnected,
        _ => px::ClusterStatus::CsUnknown,
    }
}

/// A vizier as a cluster. Loupe's viziers are always reached through the cloud: passthrough is on.
pub(crate) fn cluster_info(v: &cloudpb::Vizier) -> px::ClusterInfo {
    px::ClusterInfo {
        id: Some(id_to_pb(&v.id)),
        status: status(&v.status) as i32,
        last_heartbeat_ns: v.last_heartbeat_at.map_or(0, |s| s.saturating_mul(1_000_000_000)),
        config: Some(px::VizierConfig { passthrough_enabled: true }),
        cluster_uid: v.cluster_uid.clone(),
        cluster_name: v.name.clone(),
        pretty_cluster_name: v.name.clone(),
        vizier_version: v.version.clone(),
        // One agent (PEM) runs per node: the reported agent count is both.
        num_nodes: i32::try_from(v.num_agents).unwrap_or(i32::MAX),
        num_instrumented_nodes: i32::try_from(v.num_agents).unwrap_or(i32::MAX),
        ..Default::default()
    }
}

#[tonic::async_trait]
impl px::vizier_cluster_info_server::VizierClusterInfo for CloudServices {
    async fn create_cluster(
        &self,
        _: Request<px::CreateClusterRequest>,
    ) -> Result<Response<px::CreateClusterResponse>, Status> {
        Err(unimplemented("CreateCluster", "a vizier registers itself with a deploy key (px deploy-key create)"))
    }

    /// One cluster when an id is given (NOT_FOUND outside the caller's org), else every cluster of the org.
    async fn get_cluster_info(
        &self,
        request: Request<px::GetClusterInfoRequest>,
    ) -> Result<Response<px::GetClusterInfoResponse>, Status> {
        let viziers = match &request.get_ref().id {
            Some(id) => {
                let id = id_from_pb(Some(id), "cluster")?;
                vec![self.get_vizier(relay(&request, cloudpb::IdRequest { id })).await?.into_inner()]
            }
            None => self.list_viziers(relay(&request, cloudpb::Empty {})).await?.into_inner().viziers,
        };
        Ok(Response::new(px::GetClusterInfoResponse { clusters: viziers.iter().map(cluster_info).collect() }))
    }

    /// Loupe's viziers are reached through the cloud (passthrough), so there is no direct-connection token:
    /// the answer says the caller may reach the cluster (NOT_FOUND otherwise) and carries an empty token.
    async fn get_cluster_connection_info(
        &self,
        request: Request<px::GetClusterConnectionInfoRequest>,
    ) -> Result<Response<px::GetClusterConnectionInfoResponse>, Status> {
        let id = id_from_pb(request.get_ref().id.as_ref(), "cluster")?;
        self.get_vizier(relay(&request, cloudpb::IdRequest { id })).await?;
        Ok(Response::new(px::GetClusterConnectionInfoResponse { token: String::new() }))
    }

    async fn update_cluster_vizier_config(
        &self,
        _: Request<px::UpdateClusterVizierConfigRequest>,
    ) -> Result<Response<px::UpdateClusterVizierConfigResponse>, Status> {
        Err(unimplemented("UpdateClusterVizierConfig", "Loupe's viziers always run in passthrough mode"))
    }

    async fn update_or_install_cluster(
        &self,
        _: Request<px::UpdateOrInstallClusterRequest>,
    ) -> Result<Response<px::UpdateOrInstallClusterResponse>, Status> {
        Err(unimplemented("UpdateOrInstallCluster", "Loupe's viziers are updated by their deployment"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vizier_becomes_a_cluster_with_pixies_status_and_heartbeat_in_ns() {
        let v = cloudpb::Vizier {
            id: "00000000-0000-0001-0000-000000000002".into(),
            name: "host-a".into(),
            cluster_uid: "uid".into(),
            status: "healthy".into(),
            last_heartbeat_at: Some(1_700_000_000),
            version: "0.1.0".into(),
            created_at: 1,
            num_agents: 3,
            address: "10.0.0.1:50300".into(),
        };
        let c = cluster_info(&v);
        assert_eq!(
            c,
            px::ClusterInfo {
                id: Some(loupe_proto::pixie::uuidpb::Uuid { high_bits: 1, low_bits: 2 }),
                status: px::ClusterStatus::CsHealthy as i32,
                last_heartbeat_ns: 1_700_000_000_000_000_000,
                config: Some(px::VizierConfig { passthrough_enabled: true }),
                cluster_uid: "uid".into(),
                cluster_name: "host-a".into(),
                pretty_cluster_name: "host-a".into(),
                vizier_version: "0.1.0".into(),
                num_nodes: 3,
                num_instrumented_nodes: 3,
                ..Default::default()
            }
        );
        let statuses: Vec<_> = ["unhealthy", "disconnected", "other"].map(status).into();
        use px::ClusterStatus as S;
        assert_eq!(statuses, [S::CsUnhealthy, S::CsDisconnected, S::CsUnknown]);
    }
}
