//! Loupe's small shared vocabulary: process identities (UPID) and clock conversion.
//!
//! Owns types every other crate may name. Must stay tiny and dependency-free (only `libc`):
//! no Arrow, no async, no I/O beyond reading the clocks and `/proc/<pid>/stat`.

pub mod time;
pub mod upid;

pub use time::ClockConverter;
pub use upid::Upid;
