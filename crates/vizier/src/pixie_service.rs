//! Pixie's query API (`px.api.vizierpb.VizierService`) over the same engine as Loupe's, so Pixie's own
//! clients (`pxapi`, the Go CLI, through the cloud's passthrough) run scripts on a Loupe vizier: each script
//! runs through `QueryService` and its answer is put in Pixie's format by `loupe-pixie-api` (typed column
//! batches, relations, compiler errors as error details), encrypted here when the client asks, so the cloud
//! relaying it never sees the rows.
//!
//! Owns the request mapping and the stream conversion. Must not run, compile or plan anything itself (that is
//! `QueryService`), nor check credentials (whoever mounts it puts the same check in front as for Loupe's).

use std::pin::Pin;

use futures::{Stream, StreamExt as _};
use loupe_pixie_api::Converter;
use loupe_proto::pixie::vizierpb as px;
use loupe_proto::pixie::vizierpb::vizier_service_server::{VizierService as PixieVizierService, VizierServiceServer};
use loupe_proto::vizierpb as lp;
use loupe_proto::vizierpb::vizier_service_server::VizierService as _;
use tonic::{Request, Response, Status};

use crate::query_service::QueryService;

/// Pixie's `VizierService` over a `QueryService`.
pub struct PixieQueryService {
    inner: QueryService,
}

impl PixieQueryService {
    /// Pixie's API over `inner`.
    pub fn new(inner: QueryService) -> Self {
        PixieQueryService { inner }
    }

    /// As a gRPC server, with the same message limits as Loupe's query service.
    pub fn into_server(self) -> VizierServiceServer<Self> {
        VizierServiceServer::new(self).max_decoding_message_size(2 << 20).max_encoding_message_size(64 << 20)
    }
}

type Responses<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// A stream of one answer: a status only.
fn only_status(query_id: String, status: px::Status) -> Responses<px::ExecuteScriptResponse> {
    let answer = px::ExecuteScriptResponse { status: Some(status), query_id, result: None };
    Box::pin(futures::stream::iter([Ok(answer)]))
}

#[tonic::async_trait]
impl PixieVizierService for PixieQueryService {
    type ExecuteScriptStream = Responses<px::ExecuteScriptResponse>;
    type HealthCheckStream = Responses<px::HealthCheckResponse>;

    async fn execute_script(
        &self,
        request: Request<px::ExecuteScriptRequest>,
    ) -> Result<Response<Self::ExecuteScriptStream>, Status> {
        let (metadata, extensions, req) = request.into_parts();
        // Features of Pixie's API that Loupe does not have answer as a status the client shows, not silently.
        let refused =
            if req.mutation { Some("mutations (tracepoint deployment) are not supported by Loupe") } else { None };
        if let Some(why) = refused {
            let status =
                px::Status { code: tonic::Code::Unimplemented as i32, message: why.into(), error_details: vec![] };
            return Ok(Response::new(only_status(req.query_id, status)));
        }
        let mut converter = match Converter::new(req.encryption_options.as_ref()) {
            Ok(c) => c,
            Err(e) => {
                let status = px::Status {
                    code: tonic::Code::InvalidArgument as i32,
                    message: e.to_string(),
                    error_details: vec![],
                };
                return Ok(Response::new(only_status(req.query_id, status)));
            }
        };
        // A vis spec's functions (Pixie's exec_funcs) pass through as they are.
        let exec_funcs = req
            .exec_funcs
            .into_iter()
            .map(|f| lp::ExecFunc {
                func_name: f.func_name,
                arg_values: f
                    .arg_values
                    .into_iter()
                    .map(|a| lp::exec_func::ArgValue { name: a.name, value: a.value })
                    .collect(),
                output_table_prefix: f.output_table_prefix,
            })
            .collect();
        let loupe = lp::ExecuteScriptRequest {
            query_str: req.query_str,
            query_name: req.query_name,
            exec_funcs,
            ..Default::default()
        };
        let inner = self.inner.execute_script(Request::from_parts(metadata, extensions, loupe)).await?.into_inner();
        let converted = inner.filter_map(move |item| {
            let out = match item {
                Err(status) => Some(Err(status)),
                Ok(response) => match converter.convert(response) {
                    Ok(r) => r.map(Ok),
                    Err(e) => {
                        tracing::error!(error = %e, "cannot put a result in Pixie's format");
                        Some(Err(Status::internal(format!("cannot put the result in Pixie's format: {e}"))))
                    }
                },
            };
            futures::future::ready(out)
        });
        Ok(Response::new(Box::pin(converted)))
    }

    async fn health_check(
        &self,
        request: Request<px::HealthCheckRequest>,
    ) -> Result<Response<Self::HealthCheckStream>, Status> {
        let (metadata, extensions, _) = request.into_parts();
        let health =
            self.inner.health_check(Request::from_parts(metadata, extensions, lp::HealthCheckRequest {})).await?;
        let status = health.into_inner().status.unwrap_or_default();
        let code = lp::ErrorCode::try_from(status.code).map_or(tonic::Code::Unknown, lp::ErrorCode::grpc_code);
        let answer = px::HealthCheckResponse {
            status: Some(px::Status { code: code as i32, message: status.message, error_details: vec![] }),
        };
        Ok(Response::new(Box::pin(futures::stream::iter([Ok(answer)]))))
    }

    async fn generate_o_tel_script(
        &self,
        _: Request<px::GenerateOTelScriptRequest>,
    ) -> Result<Response<px::GenerateOTelScriptResponse>, Status> {
        Err(Status::unimplemented("Loupe does not generate OpenTelemetry export scripts"))
    }
}
