//! The per-request middleware: request ids, the request's tracing span, metrics and the single log line of an
//! internal error.
//!
//! Owns `x-request-id` handling (accept a sane one, else generate one; always echo it) and the request span,
//! which carries the method, the matched route and the request id. Must not look at credentials or bodies.

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument as _;

use super::Gateway;
use crate::error::InternalErrorDetail;

/// The request id header, accepted from the client (or a proxy) and echoed on every answer.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");
/// Longest client-supplied request id kept; longer or odd ones are replaced by a generated id.
const MAX_REQUEST_ID_LEN: usize = 128;

/// A client-supplied request id is kept only if it is short, visible ASCII (no spaces); anything else could
/// forge log lines or bloat them, so it is replaced.
fn acceptable_request_id(value: &HeaderValue) -> Option<&str> {
    let text = value.to_str().ok()?;
    let ok = !text.is_empty() && text.len() <= MAX_REQUEST_ID_LEN && text.bytes().all(|b| b.is_ascii_graphic());
    ok.then_some(text)
}

/// The request middleware: see the module doc.
pub async fn track_request(State(gateway): State<Gateway>, request: Request, next: Next) -> Response {
    let request_id = request
        .headers()
        .get(&REQUEST_ID_HEADER)
        .and_then(acceptable_request_id)
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str).to_owned();
    let method = request.method().as_str().to_owned();

    let span = tracing::info_span!("request", %method, %route, request_id = %request_id);
    let mut response = next.run(request).instrument(span.clone()).await;

    let status = response.status();
    if let Some(InternalErrorDetail(detail)) = response.extensions_mut().remove::<InternalErrorDetail>() {
        span.in_scope(|| {
            if status.is_server_error() && status.as_u16() != 503 {
                tracing::error!(status = status.as_u16(), error = %detail, "request failed");
            } else {
                tracing::warn!(status = status.as_u16(), error = %detail, "dependency unavailable");
            }
        });
    }
    gateway.metrics.record_request(&method, &route, status.as_u16());
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_request_ids_are_replaced() {
        assert_eq!(acceptable_request_id(&HeaderValue::from_static("abc-123")), Some("abc-123"));
        assert_eq!(acceptable_request_id(&HeaderValue::from_static("a b")), None);
        assert_eq!(acceptable_request_id(&HeaderValue::from_static("")), None);
        let long = "x".repeat(MAX_REQUEST_ID_LEN + 1);
        assert_eq!(acceptable_request_id(&HeaderValue::from_str(&long).expect("ascii")), None);
    }
}
