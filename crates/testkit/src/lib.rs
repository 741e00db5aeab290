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

/// A loopback port free right now, and never handed out before by this process.
///
/// Not `bind(0)`: that picks from the kernel's ephemeral range, where outgoing connections also take
/// their local ports and where a port given out a moment ago can be given again. A server a test started
/// on such a port then failed to bind, and the test, seeing something listen there, talked to another
/// test's server (a login answered by an HTTP test server, under parallel load). Ports come instead from
/// below the ephemeral range, each once per process, starting at an offset taken from the process id so
/// that two test binaries running at once rarely meet; each is checked free before it is handed out.
///
/// # Panics
/// When no port in the range can be bound on 127.0.0.1 (the tests cannot run at all then).
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 12_000;
    const COUNT: u32 = 20_000; // up to 31_999, below Linux's default ephemeral range (32768–60999)
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let offset = (std::process::id() % 40) * 500;
    for _ in 0..COUNT {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (FIRST + (offset + n) % COUNT) as u16;
        let free = std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
            && std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok();
        if free {
            return port;
        }
    }
    panic!("no free loopback port between {FIRST} and {}", FIRST + COUNT - 1)
}
