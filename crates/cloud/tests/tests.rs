//! Integration tests of the cloud API: the real router (`app`) over a real SQLite metastore and the in-memory
//! session cache, driven with `tower::ServiceExt::oneshot` (REST) or generated gRPC clients over a real TCP
//! port (`grpc`).

mod bad_input;
mod common;
mod cron;
mod export;
mod flows;
mod fuzz;
mod grpc;
mod hardening;
mod isolation;
mod retention;
mod routes;
