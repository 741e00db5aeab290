//! The data plane's services. For now: the PEM (node agent), which owns a table store, runs the
//! collector into it and answers PxL scripts over gRPC (`loupe.vizier.v1.VizierService`, and Pixie's
//! `px.api.vizierpb.VizierService` in Pixie's format) to callers
//! holding its query token, within the operator's query limits.
//!
//! Owns wiring and serving. Must not parse wire protocols, compile PxL or plan queries itself
//! (that is `collector`, `pxl` and `engine`), and must not know about the cloud.

pub mod agent_config;
pub mod cluster;
mod cron_results;
mod export;
pub mod health;
pub mod http;
pub mod metadata;
pub mod pem;
pub mod pixie_service;
pub mod query_auth;
pub mod query_service;

pub use health::ProbeReport;
pub use metadata::PemMetadata;
pub use pem::{ClusterLink, Pem, PemConfig};
pub use query_auth::{QueryToken, TOKEN_METADATA};
