//! The metadata service's stream to PEMs, and the PEM's side that follows it.
//!
//! `GET /v1/metadata/watch` with the vizier's token in `loupe-vizier-token` answers newline-delimited JSON:
//! one `{"Snapshot":…}` line with every object, then one `{"Update":…}` line per change (`"Ping"` when idle, so a
//! follower tells a dead service from a quiet cluster). A follower too slow
//! to keep up is cut off; it reconnects and starts again from a snapshot, as after any break.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State as AxState;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt as _;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq as _;
use tokio::sync::Semaphore;

use crate::Hub;
use crate::model::{Objects, Update};

/// The path of the stream.
pub const WATCH_PATH: &str = "/v1/metadata/watch";

/// The header carrying the vizier's token (the one the query ports demand).
pub const TOKEN_HEADER: &str = "loupe-vizier-token";

/// Followers served at once; more are refused with 503 (each holds a snapshot's worth of memory a while).
pub const MAX_FOLLOWERS: usize = 1024;

/// The longest line a follower accepts (a snapshot of a large cluster is tens of MB).
pub const MAX_LINE: usize = 256 << 20;

/// One line of the stream.
#[derive(Debug, Serialize, Deserialize)]
pub enum Message {
    /// Every object.
    Snapshot(Objects),
    /// One change.
    Update(Update),
    /// Nothing changed for [`PING_EVERY`]: the service is alive.
    Ping,
}

/// How often an idle stream carries a [`Message::Ping`].
pub const PING_EVERY: Duration = Duration::from_secs(20);

/// A follower that hears nothing (not even a ping) for this long reconnects: the service or the path to it died
/// without closing the connection.
pub const SILENCE_LIMIT: Duration = Duration::from_secs(60);

#[derive(Clone)]
struct Served {
    hub: Arc<Hub>,
    token: Arc<str>,
    slots: Arc<Semaphore>,
}

/// The service's routes over `hub`, demanding `token`.
pub fn router(hub: Arc<Hub>, token: &str) -> Router {
    let served = Served { hub, token: token.into(), slots: Arc::new(Semaphore::new(MAX_FOLLOWERS)) };
    Router::new().route(WATCH_PATH, get(watch)).with_state(served)
}

fn line(m: &Message) -> Bytes {
    let mut v = serde_json::to_vec(m).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

async fn watch(AxState(s): AxState<Served>, headers: HeaderMap) -> Response {
    let given = headers.get(TOKEN_HEADER).map(|v| v.as_bytes()).unwrap_or_default();
    if !bool::from(given.ct_eq(s.token.as_bytes())) {
        return (StatusCode::UNAUTHORIZED, "the vizier's token is required\n").into_response();
    }
    let Ok(permit) = s.slots.clone().try_acquire_owned() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "too many followers\n").into_response();
    };
    let (snapshot, updates) = s.hub.subscribe();
    let first =
        futures::stream::once(async move { Ok::<_, std::convert::Infallible>(line(&Message::Snapshot(snapshot))) });
    let rest = futures::stream::unfold((updates, permit), |(mut rx, permit)| async move {
        // A lagging follower ends here (the stream closes); it reconnects for a snapshot.
        let m = match tokio::time::timeout(PING_EVERY, rx.recv()).await {
            Ok(u) => Message::Update(u.ok()?),
            Err(_) => Message::Ping,
        };
        Some((Ok(line(&m)), (rx, permit)))
    });
    Response::builder()
        .header("content-type", "application/x-ndjson")
        .body(Body::from_stream(futures::StreamExt::chain(first, rest)))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// The service's operational routes, without a credential (for probes and Prometheus only): `/healthz`,
/// `/readyz` (503 naming the kinds not listed yet) and `/metrics` (watch counters, objects per kind).
pub fn ops_router(hub: Arc<Hub>, stats: Arc<crate::watch::WatchStats>) -> Router {
    let ready = stats.clone();
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(move || async move {
                let missing = ready.unlisted();
                if missing.is_empty() {
                    (StatusCode::OK, "ok\n".to_owned())
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, format!("not listed yet: {missing:?}\n"))
                }
            }),
        )
        .route(
            "/metrics",
            get(move || async move {
                let mut out = stats.prometheus();
                let counts = hub.read(|s| {
                    let o = s.objects();
                    [
                        ("pod", o.pods.values().filter(|p| p.stop_ns == 0).count()),
                        ("service", o.services.values().filter(|v| v.stop_ns == 0).count()),
                        ("endpoints", o.endpoints.len()),
                        ("namespace", o.namespaces.len()),
                        ("node", o.nodes.len()),
                        ("replicaset", o.replica_sets.len()),
                        ("deployment", o.deployments.len()),
                        ("deleted_remembered", o.deleted.len()),
                    ]
                });
                out.push_str("# HELP loupe_metadata_objects Kubernetes objects held, by kind\n# TYPE loupe_metadata_objects gauge\n");
                for (kind, n) in counts {
                    out.push_str(&format!("loupe_metadata_objects{{kind=\"{kind}\"}} {n}\n"));
                }
                ([("content-type", "text/plain; version=0.0.4")], out)
            }),
        )
}

/// Errors following the service.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    /// No connection.
    #[error("connecting to the metadata service at {addr}: {source}")]
    Connect {
        /// Where (`HOST:PORT`).
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// HTTP failed.
    #[error("metadata stream: {0}")]
    Http(#[from] hyper::Error),
    /// The service refused the call.
    #[error("the metadata service answered {0}")]
    Status(StatusCode),
    /// A line was too long or not a message.
    #[error("bad metadata stream: {0}")]
    Bad(String),
}

/// What a follower has done, for readiness and tests.
#[derive(Debug, Default)]
pub struct FollowStats {
    /// Snapshots received (1 per connection).
    pub snapshots: AtomicU64,
    /// Updates applied.
    pub updates: AtomicU64,
}

/// Follows the service at `addr` (`HOST:PORT`, a name resolved again at each connection, as a Kubernetes
/// Service's) into `hub` for ever, reconnecting (after a wait, doubling to 30 s) when the stream breaks or is
/// refused.
pub async fn follow(addr: impl std::fmt::Display, token: String, hub: Arc<Hub>, stats: Arc<FollowStats>) {
    let addr = addr.to_string();
    let mut backoff = Duration::from_millis(100);
    loop {
        let before = stats.snapshots.load(Ordering::Relaxed);
        match follow_once(&addr, &token, &hub, &stats).await {
            Ok(()) => tracing::info!(%addr, "metadata stream ended; reconnecting"),
            Err(error) => tracing::warn!(%addr, %error, "metadata stream failed; reconnecting"),
        }
        if stats.snapshots.load(Ordering::Relaxed) > before {
            backoff = Duration::from_millis(100);
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

/// One connection: the snapshot, then updates until the stream ends.
pub async fn follow_once(
    addr: impl std::fmt::Display,
    token: &str,
    hub: &Hub,
    stats: &FollowStats,
) -> Result<(), FollowError> {
    let addr = addr.to_string();
    let tcp = tokio::net::TcpStream::connect(addr.as_str())
        .await
        .map_err(|source| FollowError::Connect { addr: addr.clone(), source })?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp)).await?;
    let conn = tokio::spawn(conn);
    let req = hyper::Request::get(WATCH_PATH)
        .header("host", addr.as_str())
        .header(TOKEN_HEADER, token)
        .body(http_body_util::Empty::<Bytes>::new())
        .map_err(|e| FollowError::Bad(e.to_string()))?;
    let resp = send.send_request(req).await?;
    if resp.status() != StatusCode::OK {
        conn.abort();
        return Err(FollowError::Status(resp.status()));
    }
    let mut body = resp.into_body();
    let mut buf = BytesMut::new();
    let result = loop {
        let Ok(frame) = tokio::time::timeout(SILENCE_LIMIT, body.frame()).await else {
            break Err(FollowError::Bad(format!("nothing heard for {SILENCE_LIMIT:?}")));
        };
        let Some(frame) = frame else { break Ok(()) };
        let Ok(data) = frame?.into_data() else { continue };
        buf.extend_from_slice(&data);
        while let Some(end) = buf.iter().position(|&b| b == b'\n') {
            let text = buf.split_to(end + 1);
            match serde_json::from_slice::<Message>(&text[..end]) {
                Ok(Message::Snapshot(objects)) => {
                    hub.reset(objects);
                    stats.snapshots.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Message::Update(u)) => {
                    hub.apply(vec![u]);
                    stats.updates.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Message::Ping) => {}
                Err(e) => return Err(FollowError::Bad(e.to_string())),
            }
        }
        if buf.len() > MAX_LINE {
            break Err(FollowError::Bad(format!("a line longer than {MAX_LINE} bytes")));
        }
    };
    conn.abort();
    result
}
