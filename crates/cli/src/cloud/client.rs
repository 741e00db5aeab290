//! A small blocking client for the cloud's REST API (`{addr}/api/v1/...`, JSON both ways).
//!
//! Owns URL building (`config::normalize_addr` picks the scheme when the address has none; `https://` uses rustls with the
//! trust `crate::tls::Trust` sets up), the credential headers (`Authorization: Bearer <token>` or `pixie-api-key: <key>`), and the
//! turning of a non-2xx answer into an [`ApiError`] that keeps the server's `{"code","message"}` intact. Must not
//! read or write the credential file, nor print anything.

use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::Value;

use crate::config::normalize_addr;
use crate::tls::Trust;

/// Header carrying an API key (Pixie's name).
const API_KEY_HEADER: &str = loupe_proto::headers::API_KEY;
/// The 403 `reason` of a session whose password must be changed first.
const PASSWORD_CHANGE_REQUIRED: &str = "PASSWORD_CHANGE_REQUIRED";
/// Longest answer read; the API's answers are small.
const MAX_BODY_BYTES: u64 = 16 << 20;

/// How a request proves who is calling.
#[derive(Debug, Clone)]
pub enum Auth {
    /// No credential (login).
    None,
    /// A session token.
    Token(String),
    /// An API key.
    ApiKey(String),
}

/// The server refused a request: its status and message (`{"code","message"}`), plus what the user can do
/// about it.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// The server's message, shown to the user intact.
    pub message: String,
    /// What to run next, if there is an obvious answer.
    pub hint: Option<String>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ApiError {}

impl ApiError {
    fn from_response(status: u16, body: &str) -> Self {
        let json: Option<Value> = serde_json::from_str(body).ok();
        let text = |k: &str| json.as_ref().and_then(|j| j.get(k)).and_then(Value::as_str).map(str::to_owned);
        let message = text("message").unwrap_or_else(|| {
            let snippet: String = body.trim().chars().take(200).collect();
            if snippet.is_empty() { format!("HTTP {status}") } else { format!("HTTP {status}: {snippet}") }
        });
        let reason = text("reason");
        let hint = match status {
            401 => Some("run `px auth login` to log in (again)".to_owned()),
            403 if reason.as_deref() == Some(PASSWORD_CHANGE_REQUIRED) => {
                Some("run `px auth password` to change your password".to_owned())
            }
            _ => None,
        };
        Self { status, message, hint }
    }
}

/// The REST client for one cloud address.
pub struct Client {
    base: String,
    agent: ureq::Agent,
    auth: Auth,
}

impl Client {
    /// A client for `addr` (`host:port` or a URL), without a credential.
    pub fn new(addr: &str, trust: &Trust) -> Self {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .tls_config(trust.ureq_config())
            .timeout_connect(Some(Duration::from_secs(5)))
            .timeout_global(Some(Duration::from_secs(60)))
            .user_agent(format!("px/{}", env!("CARGO_PKG_VERSION")))
            .build();
        Self { base: normalize_addr(addr), agent: config.into(), auth: Auth::None }
    }

    /// The same client sending `auth` with every request.
    pub fn with_auth(mut self, auth: Auth) -> Self {
        self.auth = auth;
        self
    }

    /// The normalised base address (`http://host:port`).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `GET {base}{path}`.
    pub fn get(&self, path: &str) -> Result<Value> {
        let req = self.authed(self.agent.get(self.url(path)));
        self.finish(path, req.call())
    }

    /// `POST {base}{path}` with a JSON body, or an empty one.
    pub fn post(&self, path: &str, body: Option<&Value>) -> Result<Value> {
        let req = self.authed(self.agent.post(self.url(path)));
        let answer = match body {
            Some(body) => req.send_json(body),
            None => req.send_empty(),
        };
        self.finish(path, answer)
    }

    /// `PATCH {base}{path}` with a JSON body.
    pub fn patch(&self, path: &str, body: &Value) -> Result<Value> {
        let req = self.authed(self.agent.patch(self.url(path)));
        self.finish(path, req.send_json(body))
    }

    /// `PUT {base}{path}` with a JSON body.
    pub fn put(&self, path: &str, body: &Value) -> Result<Value> {
        let req = self.authed(self.agent.put(self.url(path)));
        self.finish(path, req.send_json(body))
    }

    /// `DELETE {base}{path}`.
    pub fn delete(&self, path: &str) -> Result<Value> {
        let req = self.authed(self.agent.delete(self.url(path)));
        self.finish(path, req.call())
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn authed<B>(&self, req: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        let req = req.header("accept", "application/json");
        match &self.auth {
            Auth::None => req,
            Auth::Token(token) => req.header(loupe_proto::headers::AUTHORIZATION, format!("Bearer {token}")),
            Auth::ApiKey(key) => req.header(API_KEY_HEADER, key.as_str()),
        }
    }

    /// The answer's JSON (`null` for an empty 2xx body), or an [`ApiError`] for a non-2xx answer.
    fn finish(&self, path: &str, answer: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Result<Value> {
        let mut resp = answer.with_context(|| {
            format!(
                "failed to reach the Loupe cloud at {} (is `loupe up` running? set PX_CLOUD_ADDR or --cloud-addr)",
                self.base
            )
        })?;
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_BODY_BYTES)
            .read_to_string()
            .with_context(|| format!("failed to read the answer to {path} from {}", self.base))?;
        if !(200..300).contains(&status) {
            return Err(ApiError::from_response(status, &body).into());
        }
        if body.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&body)
            .with_context(|| format!("{} answered {path} with something other than JSON", self.base))
    }
}

/// `s` as one URL path segment: everything but unreserved characters is percent-encoded.
pub fn segment(s: &str) -> String {
    encode(s, false)
}

/// `s` as URL path segments: like [`segment`], but `/` is kept (script names such as `px/http_data`).
pub fn path(s: &str) -> String {
    encode(s, true)
}

fn encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') || (keep_slash && b == b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_errors_keep_their_message_and_get_hints() {
        let e = ApiError::from_response(401, r#"{"code":"UNAUTHENTICATED","message":"invalid session token"}"#);
        assert_eq!(e.to_string(), "invalid session token");
        assert!(e.hint.as_deref().is_some_and(|h| h.contains("px auth login")));
        let e = ApiError::from_response(
            403,
            r#"{"code":"PERMISSION_DENIED","message":"the password must be changed","reason":"PASSWORD_CHANGE_REQUIRED"}"#,
        );
        assert!(e.hint.as_deref().is_some_and(|h| h.contains("px auth password")));
        let e = ApiError::from_response(403, r#"{"code":"PERMISSION_DENIED","message":"only org admins may x"}"#);
        assert_eq!(e.hint, None);
        let e = ApiError::from_response(502, "<html>bad gateway</html>");
        assert_eq!(e.message, "HTTP 502: <html>bad gateway</html>");
    }

    #[test]
    fn names_are_encoded() {
        assert_eq!(path("px/http_data"), "px/http_data");
        assert_eq!(segment("a/b c"), "a%2Fb%20c");
    }
}
