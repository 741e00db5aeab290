//! Wire-protocol parsers: bytes of a captured connection in, parsed records out.
//!
//! Owns protocol framing and request/response pairing: the shape every protocol has
//! ([`ConnParser`], in `conn_parser`), the generic stitchers ([`stitch::FifoStitcher`],
//! [`stitch::KeyedStitcher`]), one module per protocol (`amqp`, `cql`, `dns`, `http1`, `http2`, `kafka`, `mongodb`, `mqtt`, `mysql`, `nats`, `pgsql`, `redis`),
//! the length-prefixed framing three of them share (`framed`), and `redact`, the
//! credential redaction all of them share. Architecture invariant: this crate does no I/O, uses no async runtime and no `unsafe`,
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

pub mod amqp;
mod conn_parser;
pub mod cql;
pub mod dns;
mod framed;
pub mod http1;
pub mod http2;
pub mod kafka;
pub mod mongodb;
pub mod mqtt;
pub mod mysql;
pub mod nats;
pub mod pgsql;
pub mod redact;
pub mod redis;
pub mod stitch;

pub use conn_parser::{ConnParser, Side};

/// Ends a stored value (an HTTP body, Redis arguments or reply) that holds less than the whole
/// value: longer than the configured limit, or partly not captured. Pixie's marker.
pub const TRUNCATED_MARKER: &str = "... [TRUNCATED]";
