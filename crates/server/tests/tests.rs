//! End-to-end tests: the real `loupe` and `px` binaries, real HTTP servers and clients.

mod common;
mod e2e;
mod hardening_query;
mod px_cloud;
mod split;
mod tls;
