//! `loupe-proxy`: the cloud's TLS edge.
//!
//! Owns the secrets directory that `loupe setup init-secrets` and `loupe up` fill (a private CA, the server
//! certificate it signs, random signing keys and passwords: [`secrets`]), and the TLS-terminating reverse proxy
//! that serves REST, gRPC and, later, the UI on one port in front of the plain-HTTP cloud API ([`proxy`]).
//! [`k8s`] keeps that directory in a Kubernetes Secret instead, for `init-secrets` run as a Job.
//! Must not touch the cloud's routes, auth or data: it forwards by HTTP semantics alone, and depends on no
//! other Loupe crate.

pub mod k8s;
pub mod proxy;
pub mod secrets;

pub use crate::proxy::{Proxy, ProxyConfig, ProxyError, ProxyStats};
pub use crate::secrets::{Outcome, Report, San, SecretsError, init_secrets, init_secrets_with_internal};
