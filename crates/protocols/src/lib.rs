//! Wire-protocol parsers: bytes of a captured connection in, parsed records out.
//!
//! Owns protocol framing and request/response pairing, one module per protocol (`http1` so
//! far), and `redact`, the credential redaction all of them share. Architecture invariant: this crate does no I/O, uses no async runtime and no `unsafe`,
//! and never panics on any input; memory per connection is bounded by configuration. Must not
//! touch connection tracking, eBPF events or table storage: the collector feeds bytes in and
//! turns records into rows.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::unreachable,
        clippy::todo
    )
)]

pub mod http1;
pub mod redact;
