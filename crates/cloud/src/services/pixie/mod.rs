//! Pixie's public cloud API (`px.cloudapi`) over Loupe's services, so Pixie's own clients (`pxapi`, the Go
//! CLI) list clusters, manage keys, read scripts and see their user and org: `VizierClusterInfo`,
//! `APIKeyManager`, `VizierDeploymentKeyManager`, `ScriptMgr`, `UserService.GetUser` and
//! `OrganizationService.GetOrg`. Each call is answered by the Loupe call it corresponds to, run in process with
//! the same metadata, so credentials (`pixie-api-key` or a bearer token), roles and org scoping are exactly
//! Loupe's; only the messages differ. Methods Loupe does not serve answer `UNIMPLEMENTED` with a message.
//!
//! Owns the translation of messages (ids as Pixie's `UUID` high/low bits, statuses, timestamps). Must not
//! decide who may do what (the Loupe services do) nor touch the metastore.

mod clusters;
mod keys;
mod people;
mod scripts;

use loupe_proto::pixie::uuidpb;
use tonic::server::NamedService;
use tonic::{Request, Status};

use super::CloudServices;

/// Pixie's cloud services that no Loupe process serves: calls to them answer `UNIMPLEMENTED` with a message
/// (`unserved`), not a bare 404.
pub const UNSERVED_SERVICES: [&str; 7] = [
    "px.cloudapi.AuthService",
    "px.cloudapi.VizierImageAuthorization",
    "px.cloudapi.ArtifactTracker",
    "px.cloudapi.AutocompleteService",
    "px.cloudapi.ConfigService",
    "px.cloudapi.PluginService",
    "px.api.vizierpb.VizierDebugService",
];

/// The status of a call to a service in [`UNSERVED_SERVICES`].
pub fn unserved(path: &str) -> Status {
    Status::unimplemented(format!("{path} is part of Pixie's API that Loupe does not serve"))
}

/// The status of a method of a served Pixie service that Loupe does not serve.
pub(crate) fn unimplemented(method: &str, why: &str) -> Status {
    Status::unimplemented(format!("{method} is not served by Loupe: {why}"))
}

/// `message` as a request carrying `request`'s metadata (the credential), for the Loupe call that answers it.
pub(crate) fn relay<T, U>(request: &Request<T>, message: U) -> Request<U> {
    let mut relayed = Request::new(message);
    *relayed.metadata_mut() = crate::services::caller::relayed_metadata(request.metadata());
    relayed
}

/// A UUID in Pixie's form.
pub fn uuid_to_pb(id: uuid::Uuid) -> uuidpb::Uuid {
    let (high_bits, low_bits) = id.as_u64_pair();
    uuidpb::Uuid { high_bits, low_bits }
}

/// An id Loupe gives as text in Pixie's form; one that is not a UUID (none should be) is all zeros.
pub(crate) fn id_to_pb(id: &str) -> uuidpb::Uuid {
    uuid_to_pb(uuid::Uuid::parse_str(id).unwrap_or_default())
}

/// A Pixie `UUID` as Loupe's text form; absent is an invalid argument.
pub(crate) fn id_from_pb(id: Option<&uuidpb::Uuid>, what: &str) -> Result<String, Status> {
    let id = id.ok_or_else(|| Status::invalid_argument(format!("the {what} id is missing")))?;
    Ok(uuid::Uuid::from_u64_pair(id.high_bits, id.low_bits).to_string())
}

/// Unix seconds as a protobuf timestamp.
pub(crate) fn timestamp(secs: i64) -> loupe_proto::pixie::Timestamp {
    loupe_proto::pixie::Timestamp { seconds: secs, nanos: 0 }
}

type UserServiceServer = loupe_proto::pixie::cloudpb::user_service_server::UserServiceServer<CloudServices>;
type OrgServiceServer =
    loupe_proto::pixie::cloudpb::organization_service_server::OrganizationServiceServer<CloudServices>;
type ClusterInfoServer =
    loupe_proto::pixie::cloudpb::vizier_cluster_info_server::VizierClusterInfoServer<CloudServices>;
type ApiKeyServer = loupe_proto::pixie::cloudpb::api_key_manager_server::ApiKeyManagerServer<CloudServices>;
type DeployKeyServer =
    loupe_proto::pixie::cloudpb::vizier_deployment_key_manager_server::VizierDeploymentKeyManagerServer<CloudServices>;
type ScriptMgrServer = loupe_proto::pixie::cloudpb::script_mgr_server::ScriptMgrServer<CloudServices>;

/// The Pixie services the auth process serves (keys).
pub(crate) const AUTH_SERVICES: [&str; 2] = [ApiKeyServer::NAME, DeployKeyServer::NAME];
/// The Pixie services the profile process serves (clusters, user, org).
pub(crate) const PROFILE_SERVICES: [&str; 3] =
    [ClusterInfoServer::NAME, UserServiceServer::NAME, OrgServiceServer::NAME];
/// The Pixie services the scripts process serves.
pub(crate) const SCRIPTS_SERVICES: [&str; 1] = [ScriptMgrServer::NAME];

impl CloudServices {
    /// Adds the Pixie services of `kind` to `routes`.
    pub(crate) fn pixie_routes(
        &self,
        kind: super::ServiceKind,
        routes: tonic::service::Routes,
    ) -> tonic::service::Routes {
        use super::ServiceKind;
        match kind {
            ServiceKind::Auth => {
                routes.add_service(ApiKeyServer::new(self.clone())).add_service(DeployKeyServer::new(self.clone()))
            }
            ServiceKind::Profile => routes
                .add_service(ClusterInfoServer::new(self.clone()))
                .add_service(UserServiceServer::new(self.clone()))
                .add_service(OrgServiceServer::new(self.clone())),
            ServiceKind::Scripts => routes.add_service(ScriptMgrServer::new(self.clone())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_split_into_pixies_high_and_low_bits_and_back() {
        let id = uuid::Uuid::parse_str("00000000-0000-0001-0000-000000000002").expect("uuid");
        assert_eq!(uuid_to_pb(id), uuidpb::Uuid { high_bits: 1, low_bits: 2 });
        let id = "6ba7b810-9dad-11d1-80b4-00c04fd430c8";
        let pb = id_to_pb(id);
        assert_eq!((pb.high_bits, pb.low_bits), (0x6ba7_b810_9dad_11d1, 0x80b4_00c0_4fd4_30c8));
        assert_eq!(id_from_pb(Some(&pb), "cluster").expect("id"), id);
        assert_eq!(id_from_pb(None, "cluster").expect_err("missing").message(), "the cluster id is missing");
    }
}
