//! The query API on the cloud's port (`loupe.vizier.v1.VizierService`): every script a user sends to the cloud
//! runs on one of their org's viziers, through VZConn and the bus (`loupe_vzconn::Passthrough`), and its
//! replies stream back as the vizier produces them.
//!
//! A call names its vizier, by name or id, in the `x-loupe-cluster` metadata (`px run -c`); with exactly one
//! vizier in the caller's org the name may be left out. The vizier is looked up in the caller's org only,
//! through the profile service (`VizierInfoService.ListViziers` with the caller's own credential, which also
//! checks it), so a vizier of another org is "not found" with the same words as one that does not exist, and
//! the gateway needs no metastore of its own. The client going away drops the reply stream, which cancels the
//! query on the vizier; the passthrough's timeout bounds it; a vizier that does not answer is named in the
//! error. `HealthCheck` answers from the vizier's record (its heartbeats carry its query service's health).
//!
//! Owns target selection and turning passthrough failures into statuses that name the vizier. Must not decide
//! who the caller is or what they may see (the services do), and must not touch the bus protocol (that is
//! `loupe_vzconn`'s); the vizier enforces its own limits (row cap, memory, its own timeout).

use std::convert::Infallible;
use std::pin::Pin;

use axum::extract::{FromRequestParts as _, Request};
use axum::response::Response;
use futures::{Stream, StreamExt as _};
use loupe_proto::cloudpb;
use loupe_proto::vizierpb::vizier_service_server::{VizierService, VizierServiceServer};
use loupe_proto::vizierpb::{
    ErrorCode, ExecuteScriptRequest, ExecuteScriptResponse, HealthCheckRequest, HealthCheckResponse,
};
use loupe_vzconn::{Passthrough, PassthroughError};
use prost::Message as _;
use tonic::Status;
use tower::{Service, ServiceExt as _};

use crate::gateway::{CallContext, Gateway, PROXY_SECRET_HEADER};

/// The metadata key naming the vizier a query goes to.
pub const CLUSTER_METADATA: &str = loupe_proto::headers::CLUSTER;

/// The status text of a vizier whose last heartbeat said healthy.
const HEALTHY: &str = "healthy";

/// The query API in front of the viziers. `passthrough` is `None` where the process has no bus (a `loupe cloud
/// api` without `--nats-url`): every query is then refused with a status that says so.
#[derive(Clone)]
pub struct QueryPassthrough {
    gateway: Gateway,
    passthrough: Option<Passthrough>,
}

/// `QueryPassthrough` as a service to mount on the cloud's router at `loupe_proto::VIZIER_SERVICE_PATH`: it
/// attaches the call's credentials and client address (a `CallContext`, as REST calls get) for the lookups it
/// makes with them, and drops the proxy secret.
pub fn service(
    gateway: Gateway,
    passthrough: Option<Passthrough>,
) -> impl Service<Request, Response = Response, Error = Infallible, Future: Send> + Clone + Send + Sync + 'static {
    let grpc = VizierServiceServer::new(QueryPassthrough { gateway: gateway.clone(), passthrough })
        .max_decoding_message_size(2 << 20)
        .max_encoding_message_size(64 << 20);
    tower::service_fn(move |request: Request| {
        let (gateway, grpc) = (gateway.clone(), grpc.clone());
        async move {
            let (mut parts, body) = request.into_parts();
            let Ok(context) = CallContext::from_request_parts(&mut parts, &gateway).await;
            parts.headers.remove(PROXY_SECRET_HEADER);
            parts.extensions.insert(context);
            let Ok(response) = grpc.oneshot(Request::from_parts(parts, body)).await;
            Ok(response.map(axum::body::Body::new))
        }
    })
}

/// The replies of one query, as the query API streams them.
type Replies = Pin<Box<dyn Stream<Item = Result<ExecuteScriptResponse, Status>> + Send>>;

impl QueryPassthrough {
    /// The query API of `gateway`'s callers, reaching viziers through `passthrough`.
    pub fn new(gateway: Gateway, passthrough: Option<Passthrough>) -> Self {
        Self { gateway, passthrough }
    }

    /// The caller's org's viziers: the profile service checks the credential and scopes the list to its org.
    async fn viziers<T>(&self, request: &tonic::Request<T>) -> Result<Vec<cloudpb::Vizier>, Status> {
        let context = request
            .extensions()
            .get::<CallContext>()
            .ok_or_else(|| Status::internal("the query API was mounted without its call context"))?;
        Ok(self.gateway.clients.viziers().list_viziers(context.request(cloudpb::Empty {})).await?.into_inner().viziers)
    }
}

/// The vizier named in the call's metadata, if any.
fn target<T>(request: &tonic::Request<T>) -> Result<Option<String>, Status> {
    match request.metadata().get(CLUSTER_METADATA) {
        None => Ok(None),
        Some(value) => {
            let text = value
                .to_str()
                .map_err(|_| Status::invalid_argument(format!("`{CLUSTER_METADATA}` must be a vizier's name or id")))?;
            let text = text.trim();
            Ok((!text.is_empty()).then(|| text.to_owned()))
        }
    }
}

/// The vizier `target` names among the org's `viziers` (its id, any case, or its exact name), or the only one
/// when no target is given. A vizier of another org is simply not in the list, so it is refused with the same
/// words as one that does not exist.
pub fn pick(viziers: Vec<cloudpb::Vizier>, target: Option<&str>) -> Result<cloudpb::Vizier, Status> {
    match target {
        Some(target) => {
            viziers.into_iter().find(|v| v.id.eq_ignore_ascii_case(target) || v.name == target).ok_or_else(|| {
                Status::not_found(format!("no vizier {target:?} in your org (`px get viziers` lists them)"))
            })
        }
        None => {
            let names: Vec<&str> = viziers.iter().map(|v| v.name.as_str()).collect();
            let several = format!(
                "your org has {} viziers ({}): name one with `px run -c NAME` (metadata `{CLUSTER_METADATA}`)",
                names.len(),
                names.join(", ")
            );
            let mut all = viziers.iter();
            match (all.next(), all.next()) {
                (Some(only), None) => Ok(only.clone()),
                (None, _) => Err(Status::failed_precondition(
                    "no vizier is registered in your org yet: start one with `loupe vizier up` and a deploy key \
                     (`px deploy-key create`)",
                )),
                (Some(_), Some(_)) => Err(Status::invalid_argument(several)),
            }
        }
    }
}

/// `vizier-name (id)`, how errors name a vizier.
fn named(v: &cloudpb::Vizier) -> String {
    format!("{} ({})", v.name, v.id)
}

/// A passthrough failure as the caller sees it, naming the vizier where the vizier is the reason.
fn failure(error: PassthroughError, v: &cloudpb::Vizier) -> Status {
    match error {
        PassthroughError::NotConnected { .. } => {
            let last = match v.last_heartbeat_at {
                Some(at) => format!("last heartbeat {}s ago", (loupe_common::time::now_unix_secs() - at).max(0)),
                None => "no heartbeat yet".to_owned(),
            };
            Status::unavailable(format!(
                "vizier {} is not connected to the cloud (status {}, {last})",
                named(v),
                v.status
            ))
        }
        PassthroughError::TimedOut { after } => {
            Status::deadline_exceeded(format!("vizier {} did not finish within {after:?}", named(v)))
        }
        PassthroughError::Vizier { code, message } => Status::new(code, message),
        other => {
            let status = Status::from(other);
            Status::new(status.code(), format!("vizier {}: {}", named(v), status.message()))
        }
    }
}

#[tonic::async_trait]
impl VizierService for QueryPassthrough {
    type ExecuteScriptStream = Replies;

    async fn execute_script(
        &self,
        request: tonic::Request<ExecuteScriptRequest>,
    ) -> Result<tonic::Response<Replies>, Status> {
        let target = target(&request)?;
        let vizier = pick(self.viziers(&request).await?, target.as_deref())?;
        let Some(passthrough) = &self.passthrough else {
            return Err(Status::unavailable(
                "this API server has no message bus (`loupe cloud api --nats-url`), so it cannot reach viziers",
            ));
        };
        let id =
            uuid::Uuid::parse_str(&vizier.id).map_err(|_| Status::internal("a vizier record has a malformed id"))?;
        tracing::debug!(vizier = %vizier.name, %id, "query passthrough");
        let body = request.into_inner().encode_to_vec();
        let replies = passthrough.execute(id, body.into()).await.map_err(|e| failure(e, &vizier))?;
        let replies = replies.map(move |reply| {
            let bytes = reply.map_err(|e| failure(e, &vizier))?;
            ExecuteScriptResponse::decode(bytes)
                .map_err(|_| Status::internal(format!("vizier {} sent an undecodable response", named(&vizier))))
        });
        Ok(tonic::Response::new(Box::pin(replies)))
    }

    /// The named vizier's health as its heartbeats last reported it. Without a name, and with other than exactly
    /// one vizier in the org, the cloud answers for itself (so `px version` works with any number of viziers).
    async fn health_check(
        &self,
        request: tonic::Request<HealthCheckRequest>,
    ) -> Result<tonic::Response<HealthCheckResponse>, Status> {
        let target = target(&request)?;
        let viziers = self.viziers(&request).await?;
        if target.is_none() && viziers.len() != 1 {
            let ok = loupe_proto::vizierpb::Status { code: ErrorCode::Ok.into(), ..Default::default() };
            return Ok(tonic::Response::new(HealthCheckResponse {
                status: Some(ok),
                version: env!("CARGO_PKG_VERSION").to_owned(),
                probes: Vec::new(),
            }));
        }
        let vizier = pick(viziers, target.as_deref())?;
        let status = if vizier.status == HEALTHY {
            loupe_proto::vizierpb::Status { code: ErrorCode::Ok.into(), ..Default::default() }
        } else {
            loupe_proto::vizierpb::Status {
                code: ErrorCode::Unavailable.into(),
                message: format!("vizier {} is {}", named(&vizier), vizier.status),
                compiler_errors: Vec::new(),
            }
        };
        Ok(tonic::Response::new(HealthCheckResponse {
            status: Some(status),
            version: vizier.version,
            probes: Vec::new(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vizier(id: &str, name: &str) -> cloudpb::Vizier {
        cloudpb::Vizier { id: id.into(), name: name.into(), status: "healthy".into(), ..Default::default() }
    }

    const A: &str = "0b7e5a7c-9f3e-4c1a-8d2b-1f0e2d3c4b5a";
    const B: &str = "6f1d2c3b-4a59-4867-9a8b-7c6d5e4f3a2b";

    #[test]
    fn a_target_is_an_id_or_a_name_of_the_org() {
        let two = || vec![vizier(A, "alpha"), vizier(B, "beta")];
        assert_eq!(pick(two(), Some("beta")).expect("by name").id, B);
        assert_eq!(pick(two(), Some(A)).expect("by id").name, "alpha");
        assert_eq!(pick(two(), Some(&A.to_uppercase())).expect("by id, any case").name, "alpha");
        // Names are exact: a vizier named like another's id prefix, or in another case, is not matched.
        let missing = pick(two(), Some("Alpha")).expect_err("case");
        assert_eq!(missing.code(), tonic::Code::NotFound);
        assert_eq!(missing.message(), "no vizier \"Alpha\" in your org (`px get viziers` lists them)");
    }

    #[test]
    fn another_orgs_vizier_reads_exactly_like_a_missing_one() {
        // The list is the caller's org's: org B's vizier is absent from it, as is a made-up one.
        let foreign = pick(vec![vizier(A, "alpha")], Some(B)).expect_err("foreign");
        let made_up = pick(vec![vizier(A, "alpha")], Some("6f1d2c3b-0000-4867-9a8b-7c6d5e4f3a2b")).expect_err("none");
        assert_eq!(foreign.code(), made_up.code());
        assert_eq!(
            foreign.message().replace(B, "X"),
            made_up.message().replace("6f1d2c3b-0000-4867-9a8b-7c6d5e4f3a2b", "X")
        );
    }

    #[test]
    fn without_a_target_only_a_single_vizier_is_chosen() {
        assert_eq!(pick(vec![vizier(A, "alpha")], None).expect("only one").name, "alpha");
        let none = pick(Vec::new(), None).expect_err("none");
        assert_eq!(none.code(), tonic::Code::FailedPrecondition);
        assert!(none.message().starts_with("no vizier is registered in your org yet"), "{}", none.message());
        let several = pick(vec![vizier(A, "alpha"), vizier(B, "beta")], None).expect_err("two");
        assert_eq!(several.code(), tonic::Code::InvalidArgument);
        assert_eq!(
            several.message(),
            "your org has 2 viziers (alpha, beta): name one with `px run -c NAME` (metadata `x-loupe-cluster`)"
        );
    }

    #[test]
    fn failures_name_the_vizier() {
        let mut v = vizier(A, "alpha");
        v.status = "disconnected".into();
        let gone = failure(PassthroughError::NotConnected { vizier_id: uuid::Uuid::nil() }, &v);
        assert_eq!(gone.code(), tonic::Code::Unavailable);
        assert_eq!(
            gone.message(),
            format!("vizier alpha ({A}) is not connected to the cloud (status disconnected, no heartbeat yet)")
        );
        let slow = failure(PassthroughError::TimedOut { after: std::time::Duration::from_secs(3) }, &v);
        assert_eq!(
            (slow.code(), slow.message()),
            (tonic::Code::DeadlineExceeded, &*format!("vizier alpha ({A}) did not finish within 3s"))
        );
        let own =
            failure(PassthroughError::Vizier { code: tonic::Code::ResourceExhausted, message: "memory".into() }, &v);
        assert_eq!((own.code(), own.message()), (tonic::Code::ResourceExhausted, "memory"));
        let lost = failure(PassthroughError::ReplyLost, &v);
        assert_eq!(
            lost.message(),
            format!("vizier alpha ({A}): a reply from the vizier was lost; the results are incomplete")
        );
    }
}
