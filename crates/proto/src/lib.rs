//! Loupe's wire contracts: protobuf messages, generated gRPC clients and servers, the error code
//! shared by every service, Arrow IPC helpers for result batches, and drawing a compiler error
//! from its wire form (`CompilerError::render`).
//!
//! **API boundary.** Everything a client (`px`, the UI, another service) may rely on is defined
//! here. Must not depend on any server crate: services implement the generated traits elsewhere.

pub mod arrow_ipc;
pub mod codec;

/// `loupe.vizier.v1`: the query API (script execution, health) and the product-wide `ErrorCode`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod vizierpb {
    tonic::include_proto!("loupe.vizier.v1");
}

/// `loupe.vizier.cluster.v1`: the links inside one vizier (agents register with the query broker; the broker
/// asks Kelvins to merge, Kelvins pull streams from PEMs).
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod clusterpb {
    tonic::include_proto!("loupe.vizier.cluster.v1");
}

/// The gRPC path prefix of the query service, for routers that mount it by path.
pub const VIZIER_SERVICE_PATH: &str = "/loupe.vizier.v1.VizierService";

impl vizierpb::CompilerError {
    /// This error drawn under its line of `source`, with carets under its span (the compiler's own
    /// renderer, `loupe_common::caret`), so a client needs only the script text it sent.
    pub fn render(&self, source: &str, origin: &str) -> String {
        let span = usize::try_from(self.span_start).unwrap_or(usize::MAX)
            ..usize::try_from(self.span_end).unwrap_or(usize::MAX);
        loupe_common::caret::Caret {
            message: &self.message,
            line: self.line,
            column: self.column,
            span,
            notes: &self.notes,
            helps: &self.helps,
        }
        .render(source, origin)
    }
}

/// `loupe.cloud.v1`: the cloud API (auth, keys, scripts, profile, viziers), the gRPC twin of the REST API.
/// Its messages derive serde so they double as the REST JSON bodies.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod cloudpb {
    tonic::include_proto!("loupe.cloud.v1");
}

/// `loupe.vzconn.v1`: the vizier <-> cloud connection (registration, the bridge stream and its messages).
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod vzconnpb {
    tonic::include_proto!("loupe.vzconn.v1");
}

/// The topics of the VZConn bridge, spelled once for both ends (the cloud's `loupe-vzconn` and the vizier's
/// `loupe-connector`). A topic is the last part of a bus subject (`v2c.<shard>.<vizier id>.<topic>`).
pub mod vzconn_topic {
    /// The bridge's first message, vizier → cloud.
    pub const REGISTER: &str = "register";
    /// The answer to [`REGISTER`], cloud → vizier.
    pub const REGISTER_ACK: &str = "registerAck";
    /// A vizier's heartbeat, vizier → cloud.
    pub const HEARTBEAT: &str = "heartbeat";
    /// Run a query, cloud → vizier.
    pub const QUERY: &str = "query";
    /// Stop a query, cloud → vizier.
    pub const CANCEL: &str = "cancel";
    /// Prefix of a query's replies, vizier → cloud: `reply.<request id>`.
    pub const REPLY_PREFIX: &str = "reply.";
    /// A vizier asks the DNS manager for a certificate for its hostname, vizier → cloud.
    pub const DNS_CERT_REQUEST: &str = "dnsCertRequest";
    /// The DNS manager's answer to [`DNS_CERT_REQUEST`], cloud → vizier.
    pub const DNS_CERT: &str = "dnsCert";

    /// The topic of a query's replies.
    pub fn reply(request_id: &str) -> String {
        format!("{REPLY_PREFIX}{request_id}")
    }

    // Cron scripts (issue 11).
    /// A vizier asks for its cron scripts (with the checksum of those it holds), vizier → cloud.
    pub const CRON_REQUEST: &str = "cron.request";
    /// A vizier's whole set of cron scripts, cloud → vizier.
    pub const CRON_SYNC: &str = "cron.sync";
    /// One cron run's result, vizier → cloud.
    pub const CRON_RESULT: &str = "cron.result";
    /// Cron results stored, cloud → vizier.
    pub const CRON_ACK: &str = "cron.ack";
}

/// Pixie's public API, with Pixie's packages, message names and field numbers, so that Pixie's own clients
/// (`pxapi`, the Go CLI) talk to Loupe unchanged. Loupe's own protocol is `vizierpb` and `cloudpb` above.
pub mod pixie {
    /// `px.uuidpb`: a UUID as its high and low 64 bits.
    #[allow(missing_docs, clippy::all, clippy::pedantic)]
    pub mod uuidpb {
        tonic::include_proto!("px.uuidpb");
    }

    /// `px.api.vizierpb`: Pixie's query API (typed column batches, relations, compiler errors as error details).
    #[allow(missing_docs, clippy::all, clippy::pedantic)]
    pub mod vizierpb {
        tonic::include_proto!("px.api.vizierpb");
    }

    /// `px.cloudapi`: the cloud services Pixie's clients call (clusters, keys, scripts, user, org).
    #[allow(missing_docs, clippy::all, clippy::pedantic)]
    pub mod cloudpb {
        tonic::include_proto!("px.cloudapi");
    }

    /// The timestamp type of Pixie's messages (`google.protobuf.Timestamp`).
    pub use prost_types::Timestamp;

    /// The gRPC path of Pixie's `ExecuteScript`.
    pub const EXECUTE_SCRIPT_PATH: &str = "/px.api.vizierpb.VizierService/ExecuteScript";
    /// The gRPC path of Pixie's `HealthCheck`.
    pub const HEALTH_CHECK_PATH: &str = "/px.api.vizierpb.VizierService/HealthCheck";
}

pub use vizierpb::ErrorCode;

/// The names of the credential and forwarding headers, spelled once for every client and server. Each is both
/// an HTTP header and a gRPC metadata key (lowercase, as gRPC requires).
pub mod headers {
    /// A user's session (`Bearer <token>`) or an API key (`Bearer px-api-…`).
    pub const AUTHORIZATION: &str = "authorization";
    /// An API key, as Pixie's clients send it.
    pub const API_KEY: &str = "pixie-api-key";
    /// The shared secret a node agent's query port demands (`loupe vizier pem --query-token-file`).
    pub const VIZIER_TOKEN: &str = "loupe-vizier-token";
    /// The org's default OpenTelemetry endpoint (`vzconnpb::ExportDefault`, encoded), which the connector sends
    /// with its queries for a `px.export` that names none. Binary metadata (base64 on the wire).
    pub const EXPORT_DEFAULT: &str = "loupe-export-default-bin";
    /// The name of the cron script a query runs (UTF-8), which the connector sends with each cron run: the vizier
    /// keeps that run's outputs in its history (`loupe_history::results`). Binary metadata (base64 on the wire).
    pub const CRON_SCRIPT: &str = "loupe-cron-script-bin";
    /// The end client's address, stamped by the API gateway for the services behind it.
    pub const CLIENT_IP: &str = "x-loupe-client-ip";
    /// The gateway's proof that it stamped [`CLIENT_IP`], derived from the shared signing key.
    pub const GATEWAY_CREDENTIAL: &str = "x-loupe-gateway-credential";
    /// The per-process secret with which `loupe up`'s TLS proxy proves itself to the API.
    pub const PROXY_SECRET: &str = "x-loupe-proxy-secret";
    /// A deploy key (`px-dep-…`) on VZConn's `RegisterVizier` (where Pixie's connector sends it).
    pub const DEPLOY_KEY: &str = "x-api-key";
    /// The vizier id on VZConn's `Bridge`.
    pub const VIZIER_ID: &str = "x-loupe-vizier-id";
    /// The vizier's credential on VZConn's `Bridge`.
    pub const VIZIER_CREDENTIAL: &str = "x-loupe-vizier-credential";
    // Query passthrough.
    /// The vizier (its name or id) a query sent to the cloud runs on (`px run -c`); optional when the caller's
    /// org has exactly one vizier.
    pub const CLUSTER: &str = "x-loupe-cluster";
}

/// gRPC metadata key refining a status code for clients that branch on it (e.g. `PASSWORD_CHANGE_REQUIRED`).
pub const REASON_METADATA: &str = "loupe-reason";
/// gRPC metadata key with the seconds to wait before retrying a throttled call.
pub const RETRY_AFTER_METADATA: &str = "retry-after";

impl ErrorCode {
    /// The gRPC status code for this error code.
    pub fn grpc_code(self) -> tonic::Code {
        match self {
            ErrorCode::Ok => tonic::Code::Ok,
            ErrorCode::InvalidArgument => tonic::Code::InvalidArgument,
            ErrorCode::NotFound => tonic::Code::NotFound,
            ErrorCode::Unauthenticated => tonic::Code::Unauthenticated,
            ErrorCode::PermissionDenied => tonic::Code::PermissionDenied,
            ErrorCode::Unavailable => tonic::Code::Unavailable,
            ErrorCode::Internal => tonic::Code::Internal,
            ErrorCode::DeadlineExceeded => tonic::Code::DeadlineExceeded,
            ErrorCode::ResourceExhausted => tonic::Code::ResourceExhausted,
            ErrorCode::AlreadyExists => tonic::Code::AlreadyExists,
            ErrorCode::FailedPrecondition => tonic::Code::FailedPrecondition,
        }
    }

    /// The error code of a gRPC status code: the inverse of `grpc_code`, with the codes `ErrorCode` lacks
    /// folded into the nearest one (a cancelled or unknown call is `Internal`; `Aborted` is `Unavailable`).
    pub fn from_grpc(code: tonic::Code) -> Self {
        use tonic::Code;
        match code {
            Code::Ok => ErrorCode::Ok,
            Code::InvalidArgument | Code::OutOfRange => ErrorCode::InvalidArgument,
            Code::NotFound => ErrorCode::NotFound,
            Code::Unauthenticated => ErrorCode::Unauthenticated,
            Code::PermissionDenied => ErrorCode::PermissionDenied,
            Code::Unavailable | Code::Aborted => ErrorCode::Unavailable,
            Code::DeadlineExceeded => ErrorCode::DeadlineExceeded,
            Code::ResourceExhausted => ErrorCode::ResourceExhausted,
            Code::AlreadyExists => ErrorCode::AlreadyExists,
            Code::FailedPrecondition => ErrorCode::FailedPrecondition,
            Code::Internal | Code::Unknown | Code::Cancelled | Code::Unimplemented | Code::DataLoss => {
                ErrorCode::Internal
            }
        }
    }

    /// The HTTP status code for this error code.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::Ok => 200,
            ErrorCode::InvalidArgument => 400,
            ErrorCode::NotFound => 404,
            ErrorCode::Unauthenticated => 401,
            ErrorCode::PermissionDenied => 403,
            ErrorCode::Unavailable => 503,
            ErrorCode::Internal => 500,
            ErrorCode::DeadlineExceeded => 504,
            ErrorCode::ResourceExhausted => 429,
            ErrorCode::AlreadyExists => 409,
            ErrorCode::FailedPrecondition => 412,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_code_maps_consistently() {
        for code in 0..=10 {
            let c = ErrorCode::try_from(code).expect("known code");
            let http = c.http_status();
            assert_eq!(c == ErrorCode::Ok, http == 200);
            assert_eq!(c == ErrorCode::Ok, c.grpc_code() == tonic::Code::Ok);
            assert!((200..600).contains(&http));
            assert_eq!(ErrorCode::from_grpc(c.grpc_code()), c, "grpc round trip of {c:?}");
        }
    }

    #[test]
    fn a_compiler_error_renders_from_its_wire_fields() {
        let src = "import px\npx.display(px.DataFrame('http_event'))\n";
        let at = src.find("'http_event'").unwrap_or(0);
        let e = vizierpb::CompilerError {
            line: 2,
            column: 25,
            message: "unknown table `http_event`".into(),
            span_start: at as u64,
            span_end: (at + 12) as u64,
            notes: vec![],
            helps: vec!["did you mean `http_events`?".into()],
        };
        let expected = "error: unknown table `http_event`
 --> s.pxl:2:25
  |
2 | px.display(px.DataFrame('http_event'))
  |                         ^^^^^^^^^^^^
  = help: did you mean `http_events`?
";
        assert_eq!(e.render(src, "s.pxl"), expected);
        assert_eq!(VIZIER_SERVICE_PATH, format!("/{}", vizierpb::vizier_service_server::SERVICE_NAME));
    }
}
