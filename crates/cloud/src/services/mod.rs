//! The cloud's services, as gRPC servers: auth (sessions, API and deploy keys), profile (org, users, settings,
//! invitations, the vizier registry), scripts and cron scripts, and Pixie's public cloud API over them (`pixie`).
//! This is where the rules live; the REST API and the public
//! gRPC port reach them only through the generated clients (`crate::clients`), in process or over the network.
//!
//! Owns credential checking on every call (the `authorization` or `pixie-api-key` metadata, exactly as the HTTP
//! headers), org scoping (every call passes the caller's org id to the metastore, never one from the request),
//! and the mapping of `ApiError` onto gRPC statuses. Must not know about HTTP routes, JSON or status codes.

mod auth;
pub mod caller;
mod cron;
mod export;
mod keys;
pub mod pixie;
mod profile;
mod retention;
mod scripts;

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use loupe_auth::{SigningKey, TokenError};
use loupe_proto::cloudpb::{self, api_key_service_server::ApiKeyServiceServer, auth_service_server::AuthServiceServer};
use loupe_proto::cloudpb::{
    cron_script_service_server::CronScriptServiceServer, deploy_key_service_server::DeployKeyServiceServer,
    export_target_service_server::ExportTargetServiceServer, profile_service_server::ProfileServiceServer,
    retention_service_server::RetentionServiceServer, script_service_server::ScriptServiceServer,
    service_health_server::ServiceHealthServer, vizier_info_service_server::VizierInfoServiceServer,
};
use tonic::server::NamedService;
use tonic::{Request, Response, Status};

use self::caller::{Authenticated, Caller, PendingCaller};
use crate::error::{ApiError, ApiResult};
use crate::state::CloudState;

pub use scripts::{BUNDLED_PREFIX, ORG_PREFIX};

/// Who may make a call: the credential rule of each operation, which the calls enforce (`with_caller` for
/// `User`, `pending_caller` for `UserPendingAllowed`, `require_admin` on top for `Admin`) and which the REST
/// layer names in its document and uses to order its refusals (a bad credential before a bad body).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No credential (login, invitation acceptance, the OpenAPI document).
    Public,
    /// A session token or an API key; refused while a password change is pending.
    User,
    /// Like `User`, but also allowed while a password change is pending.
    UserPendingAllowed,
    /// Like `User`, and only org admins.
    Admin,
}

impl Access {
    /// The name the OpenAPI document uses (`x-access`).
    pub fn name(self) -> &'static str {
        match self {
            Access::Public => "public",
            Access::User => "user",
            Access::UserPendingAllowed => "user-pending-allowed",
            Access::Admin => "admin",
        }
    }

    /// Whether the caller `me` (the answer of `AuthService.Me` for the call's credential) passes this rule's
    /// password-change gate. The role is left to the call itself.
    pub fn admits(self, me: &cloudpb::MeResponse) -> ApiResult<()> {
        if me.must_change_password && !matches!(self, Access::Public | Access::UserPendingAllowed) {
            return Err(ApiError::password_change_required());
        }
        Ok(())
    }
}

/// Metadata key carrying the end client's address, set by the API gateway (which knows the TCP peer or trusts
/// a proxy's `X-Forwarded-For`), used for login throttling. Believed only next to a valid
/// `GATEWAY_CREDENTIAL_METADATA`: anyone else who reaches a service port is throttled by their own address.
pub const CLIENT_IP_METADATA: &str = loupe_proto::headers::CLIENT_IP;
/// Metadata key carrying the gateway's credential (`GatewayCredential`), which the services check before
/// believing `CLIENT_IP_METADATA`.
pub const GATEWAY_CREDENTIAL_METADATA: &str = loupe_proto::headers::GATEWAY_CREDENTIAL;

/// What the gateway proves itself to the services with: derived from the token signing key they all share
/// (so nothing new to distribute), and useless for signing tokens. Its `Debug` hides it.
#[derive(Clone)]
pub struct GatewayCredential(Arc<str>);

impl GatewayCredential {
    /// The credential of every process holding `key`.
    pub fn derive(key: &SigningKey) -> Result<Self, TokenError> {
        Ok(Self(key.derive_credential("gateway to services")?.into()))
    }

    /// The header value.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Constant-time check of a presented value.
    fn accepts(&self, presented: &[u8]) -> bool {
        loupe_auth::secrets_match(presented, self.0.as_bytes())
    }
}

impl std::fmt::Debug for GatewayCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GatewayCredential(<redacted>)")
    }
}

/// The three service processes of the cloud, each serving some of the gRPC services.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceKind {
    /// Sessions, API keys and deploy keys (`AuthService`, `ApiKeyService`, `DeployKeyService`).
    Auth,
    /// Org, users, settings, invitations and viziers (`ProfileService`, `VizierInfoService`).
    Profile,
    /// The script manager (`ScriptService`, `CronScriptService`, `ExportTargetService`, `RetentionService`).
    Scripts,
}

impl ServiceKind {
    /// Every kind, in start order.
    pub const ALL: [ServiceKind; 3] = [ServiceKind::Auth, ServiceKind::Profile, ServiceKind::Scripts];

    /// Name used in flags and logs.
    pub fn name(self) -> &'static str {
        match self {
            ServiceKind::Auth => "auth",
            ServiceKind::Profile => "profile",
            ServiceKind::Scripts => "scripts",
        }
    }

    /// The gRPC service names (`package.Service`) this kind serves, for routing: the generated servers' own
    /// names, so they cannot drift from what `CloudServices::router` registers.
    pub fn grpc_services(self) -> &'static [&'static str] {
        match self {
            ServiceKind::Auth => &[
                <AuthServiceServer<CloudServices> as NamedService>::NAME,
                <ApiKeyServiceServer<CloudServices> as NamedService>::NAME,
                <DeployKeyServiceServer<CloudServices> as NamedService>::NAME,
                pixie::AUTH_SERVICES[0],
                pixie::AUTH_SERVICES[1],
            ],
            ServiceKind::Profile => &[
                <ProfileServiceServer<CloudServices> as NamedService>::NAME,
                <VizierInfoServiceServer<CloudServices> as NamedService>::NAME,
                pixie::PROFILE_SERVICES[0],
                pixie::PROFILE_SERVICES[1],
                pixie::PROFILE_SERVICES[2],
            ],
            ServiceKind::Scripts => &[
                <ScriptServiceServer<CloudServices> as NamedService>::NAME,
                <CronScriptServiceServer<CloudServices> as NamedService>::NAME,
                <ExportTargetServiceServer<CloudServices> as NamedService>::NAME,
                <RetentionServiceServer<CloudServices> as NamedService>::NAME,
                pixie::SCRIPTS_SERVICES[0],
            ],
        }
    }
}

/// The implementation of every cloud gRPC service over one `CloudState`. Cheap to clone.
#[derive(Debug, Clone)]
pub struct CloudServices {
    state: CloudState,
    gateway: GatewayCredential,
}

impl CloudServices {
    /// Services over `state`; a gateway proves itself with the credential derived from `state`'s signing key.
    pub fn new(state: CloudState) -> Self {
        // Deriving is an HMAC, which takes a key of any length: it cannot fail for a key the signer holds.
        let gateway = GatewayCredential::derive(state.signer.key())
            .unwrap_or_else(|_| GatewayCredential(loupe_auth::generate_shared_secret().unwrap_or_default().into()));
        Self { state, gateway }
    }

    /// The credential a gateway in front of these services must present.
    pub fn gateway_credential(&self) -> &GatewayCredential {
        &self.gateway
    }

    /// The end client's address: what an authenticated gateway put in `CLIENT_IP_METADATA`, else the peer of
    /// this call, else `0.0.0.0` (in-process calls without a gateway). A caller without the gateway's
    /// credential cannot choose the address it is throttled under.
    fn client_ip<T>(&self, request: &Request<T>) -> IpAddr {
        let metadata = request.metadata();
        let from_gateway =
            metadata.get(GATEWAY_CREDENTIAL_METADATA).is_some_and(|value| self.gateway.accepts(value.as_bytes()));
        if !from_gateway && metadata.contains_key(GATEWAY_CREDENTIAL_METADATA) {
            // Most likely a gateway started with another signing key: every client would then share the
            // gateway's address for throttling. Said once, since it repeats on every call.
            static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
            if !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
                tracing::warn!(
                    "a caller presented a gateway credential that does not match this service's signing key; its \
                     client addresses are ignored (give the gateway the same --signing-key-file)"
                );
            }
        }
        from_gateway
            .then(|| metadata.get(CLIENT_IP_METADATA))
            .flatten()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok())
            .or_else(|| request.remote_addr().map(|a| a.ip().to_canonical()))
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    }

    /// The state the services run on.
    pub fn state(&self) -> &CloudState {
        &self.state
    }

    /// A router serving the gRPC services of `kind`, plus the health service every process has, behind the
    /// framing check (`check_unary_frame`).
    pub fn router(&self, kind: ServiceKind) -> axum::Router {
        self.routes(kind).prepare().into_axum_router().layer(axum::middleware::from_fn(check_unary_frame))
    }

    fn routes(&self, kind: ServiceKind) -> tonic::service::Routes {
        let mut routes = tonic::service::Routes::new(ServiceHealthServer::new(self.clone()));
        match kind {
            ServiceKind::Auth => {
                routes = routes
                    .add_service(AuthServiceServer::new(self.clone()))
                    .add_service(ApiKeyServiceServer::new(self.clone()))
                    .add_service(DeployKeyServiceServer::new(self.clone()));
            }
            ServiceKind::Profile => {
                routes = routes
                    .add_service(ProfileServiceServer::new(self.clone()))
                    .add_service(VizierInfoServiceServer::new(self.clone()));
            }
            ServiceKind::Scripts => {
                routes = routes
                    .add_service(ScriptServiceServer::new(self.clone()))
                    .add_service(CronScriptServiceServer::new(self.clone()))
                    .add_service(ExportTargetServiceServer::new(self.clone()))
                    .add_service(RetentionServiceServer::new(self.clone()));
            }
        }
        self.pixie_routes(kind, routes)
    }

    /// The authenticated caller of `request`, refused while a password change is pending.
    async fn caller<T>(&self, request: &Request<T>) -> ApiResult<Caller> {
        Caller::from_headers(request.metadata().as_ref(), &self.state).await
    }

    /// Answers `request` with `op`, run for its authenticated caller (refused while a password change is
    /// pending) and its message: the shape of nearly every call.
    async fn with_caller<T, R, F>(
        &self,
        request: Request<T>,
        op: impl FnOnce(Caller, T) -> F,
    ) -> Result<Response<R>, Status>
    where
        F: Future<Output = ApiResult<R>>,
    {
        reply(
            async {
                let caller = self.caller(&request).await?;
                op(caller, request.into_inner()).await
            }
            .await,
        )
    }

    /// The authenticated caller of `request`, even with a password change pending.
    async fn pending_caller<T>(&self, request: &Request<T>) -> ApiResult<Authenticated> {
        Ok(PendingCaller::from_headers(request.metadata().as_ref(), &self.state).await?.0)
    }
}

/// Largest request message a cloud RPC takes.
const MAX_MESSAGE_BYTES: usize = 4 << 20;

/// Every cloud RPC is unary: its request body must be exactly one uncompressed length-prefixed message. tonic
/// answers a missing, truncated or surplus frame as an internal error; it is the caller's mistake, so it is
/// refused here as `INVALID_ARGUMENT` (or `RESOURCE_EXHAUSTED` when too big) before tonic sees it.
async fn check_unary_frame(request: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    let refuse = |status: Status| status.into_http::<axum::body::Body>();
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_MESSAGE_BYTES + 5).await else {
        return refuse(Status::resource_exhausted(format!(
            "the request is larger than {MAX_MESSAGE_BYTES} bytes or could not be read"
        )));
    };
    let problem = match bytes.get(..5) {
        None => Some("the request carries no message".to_owned()),
        Some(&[0, a, b, c, d]) => {
            let declared = u32::from_be_bytes([a, b, c, d]) as usize;
            match (bytes.len() - 5).cmp(&declared) {
                std::cmp::Ordering::Equal => None,
                std::cmp::Ordering::Less => Some(format!("the message is cut short: {declared} bytes announced")),
                std::cmp::Ordering::Greater => Some("a unary call takes exactly one message".to_owned()),
            }
        }
        Some(_) => Some("compressed messages are not accepted".to_owned()),
    };
    match problem {
        Some(problem) => refuse(Status::invalid_argument(problem)),
        None => next.run(axum::extract::Request::from_parts(parts, axum::body::Body::from(bytes))).await,
    }
}

/// A handler's result as a gRPC answer.
fn reply<T>(result: ApiResult<T>) -> Result<Response<T>, Status> {
    result.map(Response::new).map_err(Status::from)
}

#[tonic::async_trait]
impl cloudpb::service_health_server::ServiceHealth for CloudServices {
    async fn ready(&self, _request: Request<cloudpb::Empty>) -> Result<Response<cloudpb::ReadyResponse>, Status> {
        reply(
            async {
                self.state.metastore.health_check().await?;
                Ok(cloudpb::ReadyResponse { metastore: self.state.metastore.backend().to_owned() })
            }
            .await,
        )
    }
}

/// Unix nanoseconds (the metastore's unit) to Unix seconds (the API's unit).
pub(crate) fn to_secs(ns: i64) -> i64 {
    ns.div_euclid(1_000_000_000)
}

/// Parses an id. Anything that is not a UUID names nothing, so callers answer "not found" (as for an id of
/// another org) rather than explaining id syntax.
pub(crate) fn parse_id(id: &str, what: &'static str) -> ApiResult<uuid::Uuid> {
    uuid::Uuid::parse_str(id).map_err(|_| ApiError::not_found(format!("{what} not found")))
}
