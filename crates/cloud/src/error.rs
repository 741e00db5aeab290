//! The API's one error type, `ApiError`, and how every failure becomes a JSON answer.
//!
//! Owns the mapping from metastore, auth and extractor failures to an `ErrorCode` (and so to an HTTP status),
//! and the JSON error body `{"code": "INVALID_ARGUMENT", "message": "..."}`. Must not log user errors; internal
//! errors keep their detail out of the response and hand it to the request middleware, which logs it once.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use loupe_metastore::MetastoreError;
use loupe_proto::{ErrorCode, REASON_METADATA, RETRY_AFTER_METADATA};
use serde::Serialize;

/// Message for every failed login, whether the email is unknown or the password wrong.
pub const INVALID_LOGIN: &str = "invalid email or password";
/// Message of the 403 answered while a password change is pending.
pub const PASSWORD_CHANGE_REQUIRED: &str =
    "the password must be changed before anything else: POST /api/v1/auth/password";
/// `reason` of the 403 answered while a password change is pending, for clients that branch on it.
pub const PASSWORD_CHANGE_REQUIRED_REASON: &str = "PASSWORD_CHANGE_REQUIRED";

/// Every error a handler can return. The HTTP status is `code.http_status()` except for the few transport
/// errors HTTP has a more precise status for (413, 415, 405), which keep their code but refine the status.
#[derive(Debug)]
pub struct ApiError {
    /// The product-wide error code.
    pub code: ErrorCode,
    /// What went wrong, for the caller; never contains internal detail.
    pub message: String,
    /// A machine-readable refinement of `code` (e.g. `PASSWORD_CHANGE_REQUIRED`).
    pub reason: Option<&'static str>,
    status: StatusCode,
    retry_after_secs: Option<u64>,
    internal: Option<String>,
}

/// Internal error detail, carried from `ApiError::into_response` to the request middleware in the response's
/// extensions so that it is logged exactly once, inside the request's span, and never sent to the client.
#[derive(Debug, Clone)]
pub(crate) struct InternalErrorDetail(pub(crate) String);

/// The JSON body of every error answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    /// What kind of failure.
    #[schema(schema_with = error_code_schema)]
    pub code: &'static str,
    /// What went wrong, for a person.
    #[schema(min_length = 1)]
    pub message: String,
    /// A machine-readable refinement of `code`; absent when there is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = reason_schema)]
    pub reason: Option<&'static str>,
}

/// `code`: the names of every `ErrorCode` but `OK`, taken from the type itself.
fn error_code_schema() -> utoipa::openapi::schema::Object {
    let names = (1..).map_while(|n| ErrorCode::try_from(n).ok()).map(|code| code.as_str_name());
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(names))
        .build()
}

fn reason_schema() -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some([PASSWORD_CHANGE_REQUIRED_REASON]))
        .build()
}

/// `Result` with `ApiError` as the default error.
pub type ApiResult<T, E = ApiError> = std::result::Result<T, E>;

impl ApiError {
    /// An error with `code` and a message for the caller.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        let status = StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        Self { code, message: message.into(), reason: None, status, retry_after_secs: None, internal: None }
    }

    /// 400: the request is malformed or a field is invalid.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidArgument, message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    /// 401: no or unusable credentials.
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthenticated, message)
    }

    /// 403: authenticated but not allowed.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::PermissionDenied, message)
    }

    /// 409.
    pub fn already_exists(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::AlreadyExists, message)
    }

    /// 503: a dependency (database, session store) is unreachable.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unavailable, message)
    }

    /// 500 with an opaque message; `detail` is logged once by the middleware and never sent.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        let mut err = Self::new(ErrorCode::Internal, "internal error; the server log has details");
        err.internal = Some(detail.to_string());
        err
    }

    /// 429 with a `Retry-After` header.
    pub fn throttled(message: impl Into<String>, retry_after_secs: u64) -> Self {
        let mut err = Self::new(ErrorCode::ResourceExhausted, message);
        err.retry_after_secs = Some(retry_after_secs);
        err
    }

    /// The 403 answered to a session whose password must be changed first.
    pub fn password_change_required() -> Self {
        let mut err = Self::forbidden(PASSWORD_CHANGE_REQUIRED);
        err.reason = Some(PASSWORD_CHANGE_REQUIRED_REASON);
        err
    }

    /// Refines the HTTP status (413, 415, 405) while keeping the code.
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str_name(), self.message)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody { code: self.code.as_str_name(), message: self.message, reason: self.reason };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after_secs {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(detail) = self.internal {
            response.extensions_mut().insert(InternalErrorDetail(detail));
        }
        response
    }
}

/// How a service answers a failed call: the code's gRPC status, the message, and the reason and retry delay as
/// metadata. Internal detail is logged here, once, by the service that had it, and never sent.
impl From<ApiError> for tonic::Status {
    fn from(err: ApiError) -> Self {
        if let Some(detail) = &err.internal {
            if err.code == ErrorCode::Internal {
                tracing::error!(code = err.code.as_str_name(), error = %detail, "call failed");
            } else {
                tracing::warn!(code = err.code.as_str_name(), error = %detail, "dependency unavailable");
            }
        }
        let mut status = tonic::Status::new(err.code.grpc_code(), err.message);
        if let Some(reason) = err.reason {
            status.metadata_mut().insert(REASON_METADATA, tonic::metadata::MetadataValue::from_static(reason));
        }
        if let Some(secs) = err.retry_after_secs {
            status.metadata_mut().insert(RETRY_AFTER_METADATA, secs.into());
        }
        status
    }
}

/// How the gateway answers a failed service call over REST: the inverse of the conversion above. A status
/// that no service produced (the service unreachable, a transport failure) keeps its message: it says what
/// went wrong between the gateway and the service, which is the operator's and the caller's business alike.
impl From<tonic::Status> for ApiError {
    fn from(status: tonic::Status) -> Self {
        let code = ErrorCode::from_grpc(status.code());
        let mut err = ApiError::new(code, status.message());
        err.reason = match status.metadata().get(REASON_METADATA).and_then(|v| v.to_str().ok()) {
            Some(PASSWORD_CHANGE_REQUIRED_REASON) => Some(PASSWORD_CHANGE_REQUIRED_REASON),
            _ => None,
        };
        err.retry_after_secs =
            status.metadata().get(RETRY_AFTER_METADATA).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
        err
    }
}

impl From<MetastoreError> for ApiError {
    fn from(err: MetastoreError) -> Self {
        match err {
            MetastoreError::NotFound { entity } => ApiError::not_found(format!("{entity} not found")),
            MetastoreError::AlreadyExists { entity } => ApiError::already_exists(format!("{entity} already exists")),
            MetastoreError::Unavailable { .. } => {
                ApiError::unavailable("the metastore database is unavailable; retry shortly").with_internal_note(&err)
            }
            MetastoreError::Invalid { reason } => ApiError::invalid(reason),
            MetastoreError::Internal { .. } => ApiError::internal(DisplayChain(&err)),
        }
    }
}

impl ApiError {
    /// Attaches detail to log without changing the answer (used for 503s, which an operator should see).
    fn with_internal_note(mut self, err: &dyn std::error::Error) -> Self {
        self.internal = Some(DisplayChain(err).to_string());
        self
    }
}

/// Displays an error with its `source` chain, `a: b: c`.
pub(crate) struct DisplayChain<'a>(pub(crate) &'a dyn std::error::Error);

impl std::fmt::Display for DisplayChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(err) = source {
            write!(f, ": {err}")?;
            source = err.source();
        }
        Ok(())
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match &rejection {
            JsonRejection::MissingJsonContentType(_) => {
                ApiError::invalid("expected a request body with content type application/json")
                    .with_status(StatusCode::UNSUPPORTED_MEDIA_TYPE)
            }
            _ if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::invalid("request body is too large").with_status(StatusCode::PAYLOAD_TOO_LARGE)
            }
            // Syntax errors, wrong shapes and unknown fields (axum says 400 or 422) are all one 400 here; a body
            // that could not be read (connection reset) is the client's problem too, never a 5xx.
            _ => ApiError::invalid(rejection.body_text()),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::invalid(rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::invalid(rejection.body_text())
    }
}

impl From<loupe_auth::SessionError> for ApiError {
    fn from(err: loupe_auth::SessionError) -> Self {
        match err {
            // Revocations are never dropped to make room, so the store refuses new sessions instead: say so.
            loupe_auth::SessionError::Full { .. } => ApiError::unavailable(
                "the session store is full of revoked sessions that have not expired yet; no new session can be \
                 started now, retry later",
            )
            .with_internal_note(&err),
            _ => ApiError::unavailable("the session store is unavailable; retry shortly").with_internal_note(&err),
        }
    }
}

impl From<loupe_auth::HashingError> for ApiError {
    fn from(err: loupe_auth::HashingError) -> Self {
        match err {
            loupe_auth::HashingError::Busy(busy) => ApiError::throttled(
                "the server is busy checking other passwords; retry shortly",
                loupe_auth::throttle::ceil_secs(busy.retry_after),
            ),
            loupe_auth::HashingError::Task(detail) => ApiError::internal(detail),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_session_store_and_busy_hashing_say_what_happened() {
        let full = ApiError::from(loupe_auth::SessionError::Full { max_entries: 3 });
        assert_eq!(full.status().as_u16(), 503);
        assert!(full.message.starts_with("the session store is full of revoked sessions"), "{}", full.message);
        let busy = ApiError::from(loupe_auth::HashingError::Busy(loupe_auth::HashingBusy {
            retry_after: std::time::Duration::from_secs(1),
        }));
        assert_eq!((busy.status().as_u16(), busy.retry_after_secs), (429, Some(1)));
    }

    #[test]
    fn metastore_errors_map_to_codes() {
        let cases = [
            (MetastoreError::NotFound { entity: "script" }, 404),
            (MetastoreError::AlreadyExists { entity: "script" }, 409),
            (MetastoreError::Unavailable { source: "down".into() }, 503),
            (MetastoreError::invalid("bad"), 400),
            (MetastoreError::Internal { source: "secret detail".into() }, 500),
        ];
        for (err, status) in cases {
            let api = ApiError::from(err);
            assert_eq!(api.status().as_u16(), status, "{api}");
            assert!(!api.message.contains("secret detail"));
        }
    }

    #[test]
    fn internal_detail_stays_out_of_the_body() {
        let response = ApiError::internal("db password is hunter2").into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(response.extensions().get::<InternalErrorDetail>().is_some());
    }

    #[test]
    fn errors_survive_the_trip_through_grpc() {
        for err in [
            ApiError::password_change_required(),
            ApiError::throttled("slow down", 7),
            ApiError::not_found("script not found"),
            ApiError::already_exists("script already exists"),
            ApiError::unavailable("down"),
        ] {
            let (code, message, reason, retry, status) =
                (err.code, err.message.clone(), err.reason, err.retry_after_secs, err.status());
            let back = ApiError::from(tonic::Status::from(err));
            assert_eq!((back.code, &back.message, back.reason, back.retry_after_secs), (code, &message, reason, retry));
            assert_eq!(back.status(), status);
        }
        let internal = tonic::Status::from(ApiError::internal("db password is hunter2"));
        assert_eq!(internal.code(), tonic::Code::Internal);
        assert!(!internal.message().contains("hunter2"));
    }

    #[test]
    fn throttled_sets_retry_after() {
        let response = ApiError::throttled("slow down", 42).into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers().get(header::RETRY_AFTER).and_then(|v| v.to_str().ok()), Some("42"));
    }
}
