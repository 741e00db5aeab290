//! Pixie's query API on the cloud's port (`px.api.vizierpb.VizierService`), as Pixie's cloud serves it: a
//! request naming a cluster (`cluster_id`) goes to that vizier, and its answers come back as the vizier wrote
//! them (rows possibly encrypted for the client: the cloud relays, it does not read). The profile service
//! first decides whether the caller may reach that vizier (`VizierInfoService.GetVizier`: a cluster of another
//! org is NOT_FOUND, a bad credential is refused); the call itself travels over whatever [`VizierCalls`] the
//! binary wires (the bus passthrough to the vizier's connector).
//!
//! Owns the request path only. Must not decide who may reach a vizier (the profile service does) nor decode
//! or re-encode results.

use std::pin::Pin;
use std::sync::Arc;

use loupe_proto::cloudpb;
use loupe_proto::pixie::vizierpb as px;
use loupe_proto::pixie::vizierpb::vizier_service_server::{VizierService, VizierServiceServer};
use prost::Message as _;
use tonic::codegen::tokio_stream::{Stream, StreamExt as _};
use tonic::codegen::{Bytes, Future};
use tonic::{Request, Response, Status};

use super::Gateway;

/// A stream of encoded response messages from a vizier.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, Status>> + Send>>;

/// Runs one gRPC call on a vizier's query port: `method` (a path such as
/// `/px.api.vizierpb.VizierService/ExecuteScript`) with the encoded `request`, yielding encoded responses.
/// Implemented by the binary over `loupe-vzconn`'s passthrough, so this crate needs no bus.
pub trait VizierCalls: Send + Sync + 'static {
    /// Starts the call; an error is the vizier being unreachable or refusing it.
    fn call(
        &self,
        vizier_id: uuid::Uuid,
        method: &'static str,
        request: Bytes,
    ) -> Pin<Box<dyn Future<Output = Result<ByteStream, Status>> + Send + '_>>;
}

/// Pixie's `VizierService` on the cloud's port.
pub struct PixieQueries {
    gateway: Gateway,
    viziers: Arc<dyn VizierCalls>,
}

/// Pixie's query API for the cloud's port, reaching viziers through `viziers`.
pub fn pixie_query_service(gateway: Gateway, viziers: Arc<dyn VizierCalls>) -> VizierServiceServer<PixieQueries> {
    VizierServiceServer::new(PixieQueries { gateway, viziers })
        .max_decoding_message_size(2 << 20)
        .max_encoding_message_size(64 << 20)
}

type Responses<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

impl PixieQueries {
    /// The vizier `cluster_id` names, once the profile service says the caller may reach it.
    async fn vizier<T>(&self, request: &Request<T>, cluster_id: &str) -> Result<uuid::Uuid, Status> {
        if cluster_id.is_empty() {
            return Err(Status::invalid_argument("cluster_id is missing: name the cluster to run the script on"));
        }
        let id = uuid::Uuid::parse_str(cluster_id).map_err(|_| Status::not_found("cluster not found"))?;
        let mut check = Request::new(cloudpb::IdRequest { id: id.to_string() });
        *check.metadata_mut() = crate::services::caller::relayed_metadata(request.metadata());
        self.gateway.clients.viziers().get_vizier(check).await?;
        Ok(id)
    }

    /// Runs `method` on the vizier and decodes its answers as `T`.
    async fn relay<T: prost::Message + Default + Send + 'static>(
        &self,
        vizier: uuid::Uuid,
        method: &'static str,
        request: Bytes,
    ) -> Result<Responses<T>, Status> {
        let answers = self.viziers.call(vizier, method, request).await?;
        Ok(Box::pin(answers.map(|bytes| {
            T::decode(bytes?).map_err(|e| Status::internal(format!("the vizier's answer does not decode: {e}")))
        })))
    }
}

#[tonic::async_trait]
impl VizierService for PixieQueries {
    type ExecuteScriptStream = Responses<px::ExecuteScriptResponse>;
    type HealthCheckStream = Responses<px::HealthCheckResponse>;

    async fn execute_script(
        &self,
        request: Request<px::ExecuteScriptRequest>,
    ) -> Result<Response<Self::ExecuteScriptStream>, Status> {
        let vizier = self.vizier(&request, &request.get_ref().cluster_id).await?;
        let bytes = Bytes::from(request.get_ref().encode_to_vec());
        Ok(Response::new(self.relay(vizier, loupe_proto::pixie::EXECUTE_SCRIPT_PATH, bytes).await?))
    }

    async fn health_check(
        &self,
        request: Request<px::HealthCheckRequest>,
    ) -> Result<Response<Self::HealthCheckStream>, Status> {
        let vizier = self.vizier(&request, &request.get_ref().cluster_id).await?;
        let bytes = Bytes::from(request.get_ref().encode_to_vec());
        Ok(Response::new(self.relay(vizier, loupe_proto::pixie::HEALTH_CHECK_PATH, bytes).await?))
    }

    async fn generate_o_tel_script(
        &self,
        _: Request<px::GenerateOTelScriptRequest>,
    ) -> Result<Response<px::GenerateOTelScriptResponse>, Status> {
        Err(Status::unimplemented("GenerateOTelScript is not served by Loupe"))
    }
}
