//! The vizier's query service, as the connector calls it: ExecuteScript with the node's query token, and
//! HealthCheck for the heartbeat's status. The only module that knows the query API's messages; the bridge
//! carries them as opaque bytes.
//!
//! Owns the calls. Must not touch the bridge.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt as _};
use loupe_proto::vizierpb::vizier_service_client::VizierServiceClient;
use loupe_proto::vizierpb::{ErrorCode, ExecuteScriptRequest, HealthCheckRequest};
use prost::Message as _;
use tonic::transport::Channel;

/// The methods of the query port the cloud may ask for by name (`QueryRequest.method`), besides Loupe's
/// ExecuteScript (the default): Pixie's public query API. Anything else is refused.
pub(crate) const FORWARDED_METHODS: [&str; 2] =
    [loupe_proto::pixie::EXECUTE_SCRIPT_PATH, loupe_proto::pixie::HEALTH_CHECK_PATH];

/// The query service of this vizier.
#[derive(Clone)]
pub(crate) struct QueryClient {
    channel: Channel,
    token: tonic::metadata::MetadataValue<tonic::metadata::Ascii>,
    /// The org's default export endpoint (`ExportDefault`, encoded), sent with every request as
    /// `EXPORT_DEFAULT` metadata; set by the cron scheduler from the cloud's set.
    export_default: Arc<RwLock<Option<tonic::metadata::MetadataValue<tonic::metadata::Binary>>>>,
}

impl QueryClient {
    /// A client over `channel` if given, else one that connects to `addr` when first used (the query service
    /// may start after the connector).
    pub(crate) fn new(addr: &str, channel: Option<Channel>, token: &str) -> Result<Self, String> {
        let channel = match channel {
            Some(c) => c,
            None => tonic::transport::Endpoint::from_shared(addr.to_owned())
                .map_err(|e| e.to_string())?
                .connect_timeout(Duration::from_secs(5))
                .connect_lazy(),
        };
        let token = token.parse().map_err(|_| "the query token is not ASCII".to_owned())?;
        Ok(QueryClient { channel, token, export_default: Arc::default() })
    }

    fn client(&self) -> VizierServiceClient<Channel> {
        VizierServiceClient::new(self.channel.clone()).max_decoding_message_size(64 << 20)
    }

    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.metadata_mut().insert(loupe_proto::headers::VIZIER_TOKEN, self.token.clone());
        if let Some(value) = self.export_default.read().unwrap_or_else(PoisonError::into_inner).clone() {
            request.metadata_mut().insert_bin(loupe_proto::headers::EXPORT_DEFAULT, value);
        }
        request
    }

    /// Hands the vizier the org's history retention per table (replacing what it had).
    pub(crate) async fn set_history_retention(
        &self,
        tables: std::collections::HashMap<String, loupe_proto::clusterpb::RetentionLimits>,
    ) -> Result<(), tonic::Status> {
        use loupe_proto::clusterpb::vizier_config_service_client::VizierConfigServiceClient;
        let mut request = tonic::Request::new(loupe_proto::clusterpb::SetHistoryRetentionRequest { tables });
        request.metadata_mut().insert(loupe_proto::headers::VIZIER_TOKEN, self.token.clone());
        request.set_timeout(Duration::from_secs(10));
        VizierConfigServiceClient::new(self.channel.clone()).set_history_retention(request).await.map(|_| ())
    }

    /// Sends `endpoint` with every later request as the default of a `px.export` that names none (none: no
    /// default).
    pub(crate) fn set_export_default(&self, endpoint: Option<&loupe_proto::vzconnpb::ExportDefault>) {
        let value = endpoint.map(|e| tonic::metadata::MetadataValue::from_bytes(&e.encode_to_vec()));
        *self.export_default.write().unwrap_or_else(PoisonError::into_inner) = value;
    }

    /// Runs an encoded ExecuteScriptRequest; each response comes back encoded.
    pub(crate) async fn execute(
        &self,
        request: &[u8],
        timeout: Option<Duration>,
    ) -> Result<impl Stream<Item = Result<Bytes, tonic::Status>> + Send + use<>, tonic::Status> {
        let request = ExecuteScriptRequest::decode(request)
            .map_err(|_| tonic::Status::invalid_argument("undecodable ExecuteScriptRequest"))?;
        let mut request = self.request(request);
        if let Some(t) = timeout {
            request.set_timeout(t);
        }
        let stream = self.client().execute_script(request).await?.into_inner();
        Ok(stream.map(|m| m.map(|response| Bytes::from(response.encode_to_vec()))))
    }

    /// Forwards an encoded request to `method` of the query service (one of [`FORWARDED_METHODS`]) and streams
    /// its encoded responses, without decoding either: Pixie's API travels this way.
    pub(crate) async fn forward(
        &self,
        method: &'static str,
        request: Bytes,
        timeout: Option<Duration>,
    ) -> Result<impl Stream<Item = Result<Bytes, tonic::Status>> + Send + use<>, tonic::Status> {
        let mut grpc = tonic::client::Grpc::new(self.channel.clone()).max_decoding_message_size(64 << 20);
        grpc.ready().await.map_err(|e| tonic::Status::unavailable(format!("query service: {e}")))?;
        let mut request = self.request(request);
        if let Some(t) = timeout {
            request.set_timeout(t);
        }
        let path = tonic::codegen::http::uri::PathAndQuery::from_static(method);
        Ok(grpc.server_streaming(request, path, loupe_proto::codec::BytesCodec).await?.into_inner())
    }

    /// Whether the query service answers and reports itself OK, with why not.
    pub(crate) async fn health(&self, timeout: Duration) -> Result<(), String> {
        let mut client = self.client();
        match tokio::time::timeout(timeout, client.health_check(self.request(HealthCheckRequest {}))).await {
            Err(_) => Err(format!("query service health check took over {timeout:?}")),
            Ok(Err(status)) => Err(format!("query service: {}", status.message())),
            Ok(Ok(answer)) => match answer.into_inner().status {
                Some(s) if s.code == ErrorCode::Ok as i32 => Ok(()),
                Some(s) => Err(s.message),
                None => Err("query service health check without a status".into()),
            },
        }
    }
}

/// What one run of a script returned.
#[derive(Debug, Clone, Default)]
pub(crate) struct RunSummary {
    /// Rows over every output.
    pub(crate) records: i64,
    /// Arrow IPC bytes of those rows.
    pub(crate) bytes: i64,
    /// The rows by output table, when they fit in `latest::MAX_KEPT_BYTES`.
    pub(crate) tables: Option<crate::latest::Tables>,
}

impl QueryClient {
    /// Runs PxL `script` (a cron script) to its end, counting what it returns; an error status the service streams
    /// (a compile error, a limit) is the run's error.
    pub(crate) async fn run_script(
        &self,
        script: &str,
        name: &str,
        timeout: Duration,
    ) -> Result<RunSummary, tonic::Status> {
        use loupe_proto::vizierpb::execute_script_response::Result as Part;
        let mut request = self.request(ExecuteScriptRequest {
            query_str: script.to_owned(),
            query_name: name.to_owned(),
            now_ns: 0,
            ..Default::default()
        });
        request.set_timeout(timeout);
        // The vizier keeps a cron run's outputs in its history under the script's name.
        request
            .metadata_mut()
            .insert_bin(loupe_proto::headers::CRON_SCRIPT, tonic::metadata::MetadataValue::from_bytes(name.as_bytes()));
        let mut stream = self.client().execute_script(request).await?.into_inner();
        let mut summary = RunSummary::default();
        let mut tables: crate::latest::Tables = Vec::new();
        let mut ids: Vec<(String, usize)> = Vec::new();
        let mut kept = true;
        while let Some(response) = stream.message().await? {
            match response.result {
                Some(Part::MetaData(m)) => {
                    ids.push((m.id, tables.len()));
                    tables.push((m.name, Vec::new()));
                }
                Some(Part::Data(data)) => {
                    summary.records += data.num_rows as i64;
                    summary.bytes += data.arrow_batch.len() as i64;
                    kept &= summary.bytes <= crate::latest::MAX_KEPT_BYTES as i64;
                    if kept && !data.arrow_batch.is_empty() {
                        let at = ids.iter().find(|(id, _)| *id == data.table_id).map(|(_, i)| *i);
                        match (at, loupe_proto::arrow_ipc::decode_batches(&data.arrow_batch)) {
                            (Some(i), Ok(batches)) => tables[i].1.extend(batches),
                            _ => kept = false,
                        }
                    }
                }
                Some(Part::Status(s)) if s.code != ErrorCode::Ok as i32 => {
                    let code = ErrorCode::try_from(s.code).unwrap_or(ErrorCode::Internal).grpc_code();
                    return Err(tonic::Status::new(code, s.message));
                }
                _ => {}
            }
        }
        summary.tables = kept.then_some(tables);
        Ok(summary)
    }
}
