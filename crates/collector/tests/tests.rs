//! The collector's integration tests: one binary, one module per area.
//!
//! Owns end-to-end checks that need a real kernel (root, BPF, tracefs). Must not test protocol
//! parsing or connection tracking internals: those have unit tests next to their code.

mod host;
mod loader;
mod preflight;
