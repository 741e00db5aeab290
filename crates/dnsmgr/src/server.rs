//! The DNS listeners, UDP and TCP on one address, with the limits any public listener needs: a query rate per
//! client address (over it, queries are dropped unanswered, so the server is no amplifier), a cap on
//! concurrent TCP connections, an idle timeout and a query count per connection, and a largest accepted
//! message.
//!
//! Owns the sockets and the limits. Must not decide answers (that is `answer`).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

use crate::{DnsStats, Shared};

/// Largest query accepted over UDP (a query is one question: tens of bytes; EDNS adds a few).
const MAX_UDP_QUERY: usize = 1232;
/// Largest query accepted over TCP.
const MAX_TCP_QUERY: usize = 4096;
/// TCP connections served at once; more are closed at once.
const MAX_TCP_CONNECTIONS: usize = 64;
/// A TCP connection idle for this long is closed.
const TCP_IDLE: Duration = Duration::from_secs(10);
/// Queries answered per TCP connection.
const MAX_QUERIES_PER_CONNECTION: usize = 100;
/// Client addresses tracked for the rate limit; past this the table starts over.
const MAX_TRACKED_CLIENTS: usize = 10_000;

/// Queries allowed per client address per second (a bucket of twice that absorbs bursts).
#[derive(Debug)]
pub(crate) struct RateLimit {
    per_second: u32,
    buckets: Mutex<HashMap<IpAddr, (Instant, f64)>>,
}

impl RateLimit {
    pub(crate) fn new(per_second: u32) -> Self {
        RateLimit { per_second, buckets: Mutex::default() }
    }

    /// Whether `client` may be answered now.
    pub(crate) fn allow(&self, client: IpAddr) -> bool {
        let now = Instant::now();
        let rate = f64::from(self.per_second.max(1));
        let mut buckets = self.buckets.lock();
        if buckets.len() >= MAX_TRACKED_CLIENTS && !buckets.contains_key(&client) {
            buckets.clear();
        }
        let (last, tokens) = buckets.entry(client).or_insert((now, 2.0 * rate));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * rate).min(2.0 * rate);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Answers UDP queries on `socket` until the task is dropped.
pub(crate) async fn serve_udp(socket: UdpSocket, shared: Arc<Shared>) {
    let mut buf = vec![0u8; MAX_UDP_QUERY + 1];
    loop {
        let (n, peer) = match socket.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(error) => {
                tracing::debug!(%error, "dns udp receive failed");
                continue;
            }
        };
        if n > MAX_UDP_QUERY || !shared.rate.allow(peer.ip()) {
            DnsStats::add(&shared.stats.dropped);
            continue;
        }
        match shared.answer(&buf[..n], false) {
            Some(reply) => {
                DnsStats::add(&shared.stats.answered);
                let _ = socket.send_to(&reply, peer).await;
            }
            None => DnsStats::add(&shared.stats.unanswerable),
        }
    }
}

/// Answers TCP queries (two-byte length prefix) on `listener` until the task is dropped.
pub(crate) async fn serve_tcp(listener: TcpListener, shared: Arc<Shared>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_TCP_CONNECTIONS));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(error) => {
                tracing::debug!(%error, "dns tcp accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else { continue };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let _slot = slot;
            let _ = tokio::time::timeout(TCP_IDLE * 3, connection(stream, peer, &shared)).await;
        });
    }
}

async fn connection(mut stream: TcpStream, peer: SocketAddr, shared: &Shared) -> std::io::Result<()> {
    for _ in 0..MAX_QUERIES_PER_CONNECTION {
        let len = match tokio::time::timeout(TCP_IDLE, stream.read_u16()).await {
            Ok(Ok(len)) => usize::from(len),
            _ => return Ok(()),
        };
        if len > MAX_TCP_QUERY || !shared.rate.allow(peer.ip()) {
            DnsStats::add(&shared.stats.dropped);
            return Ok(());
        }
        let mut query = vec![0u8; len];
        tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut query)).await??;
        let Some(reply) = shared.answer(&query, true) else {
            DnsStats::add(&shared.stats.unanswerable);
            return Ok(());
        };
        DnsStats::add(&shared.stats.answered);
        let Ok(reply_len) = u16::try_from(reply.len()) else { return Ok(()) };
        let mut framed = Vec::with_capacity(reply.len() + 2);
        framed.extend_from_slice(&reply_len.to_be_bytes());
        framed.extend_from_slice(&reply);
        stream.write_all(&framed).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_over_its_rate_is_dropped_and_others_are_not() {
        let limit = RateLimit::new(5);
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().expect("a"), "10.0.0.2".parse().expect("b"));
        let allowed = (0..20).filter(|_| limit.allow(a)).count();
        assert_eq!(allowed, 10, "a burst of twice the rate, then nothing");
        assert!(limit.allow(b));
    }
}
