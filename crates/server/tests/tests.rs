//! End-to-end tests: the real `loupe` and `px` binaries, real HTTP servers and clients.

mod capture;
mod common;
mod e2e;
mod px_cloud;
mod split;
mod tls;
