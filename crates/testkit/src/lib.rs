//! Test support shared by every package's tests: real servers from Debian packages (PostgreSQL 15, Redis, NATS with JetStream),
//! each started by the test itself on a free loopback port in a temp dir, and stopped with it.
//!
//! Owns process management only. Must not contain assertions about the code under test, and must never be a
//! normal (non-dev) dependency of any crate: tidy refuses that edge.

mod daemon;
pub mod nats;
pub mod postgres;
pub mod redis;

pub use nats::NatsServer;
pub use postgres::PgServer;
pub use redis::RedisServer;

/// A loopback port free right now.
///
/// # Panics
/// When no port can be bound on 127.0.0.1 (the tests cannot run at all then).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("bind a free port")
}
