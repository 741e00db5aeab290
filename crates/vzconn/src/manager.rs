//! The vizier manager: heartbeats from the bus into the metastore, and the status monitor that marks a vizier
//! DISCONNECTED when its heartbeats stop.
//!
//! Heartbeats are consumed with a queue group, so each is recorded once however many replicas run. The cloud
//! records its own receive time as the heartbeat time (a vizier's clock may be off). The status is HEALTHY when
//! the vizier reports itself healthy and UNHEALTHY otherwise; the monitor alone sets DISCONNECTED, after
//! `disconnect_after` without a heartbeat (Pixie: 120 s). Owns these rules; must not touch the bridge.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt as _;
use loupe_bus::{Bus, subject};
use loupe_metastore::Metastore;
use loupe_proto::vzconnpb::{BusEnvelope, Heartbeat, VizierStatus};
use prost::Message as _;
use uuid::Uuid;

use crate::records::{Records, Reported};
use crate::{Result, topic};

/// Status text of a vizier whose last report was healthy.
pub const HEALTHY: &str = "healthy";
/// Status text of a vizier that reports a problem.
pub const UNHEALTHY: &str = "unhealthy";
/// Status text of a vizier without a recent heartbeat (and of a new record, see `VIZIER_INITIAL_STATUS`).
pub const DISCONNECTED: &str = "disconnected";

/// The status text stored for a reported status.
pub fn status_name(reported: VizierStatus) -> &'static str {
    match reported {
        VizierStatus::Healthy => HEALTHY,
        VizierStatus::Unhealthy | VizierStatus::Unknown | VizierStatus::Disconnected => UNHEALTHY,
    }
}

/// The manager's settings.
#[derive(Debug, Clone)]
pub struct ManagerConfig {
    /// A vizier without a heartbeat for this long is DISCONNECTED (Pixie: 120 s).
    pub disconnect_after: Duration,
    /// How often the monitor looks (Pixie: 5 s).
    pub check_every: Duration,
    /// The queue group heartbeat consumers share.
    pub queue_group: String,
    /// Heartbeats recorded at once (the metastore is the limit).
    pub concurrency: usize,
}

impl Default for ManagerConfig {
    fn default() -> Self {
        ManagerConfig {
            disconnect_after: Duration::from_secs(120),
            check_every: Duration::from_secs(5),
            queue_group: "vzmgr".into(),
            concurrency: 16,
        }
    }
}

/// Latency buckets of 1 ms up to 10 s (the last bucket holds everything slower).
const BUCKETS: usize = 10_001;

/// Counters of the manager, for metrics and the load bench.
#[derive(Debug)]
pub struct ManagerStats {
    recorded: AtomicU64,
    failed: AtomicU64,
    marked_disconnected: AtomicU64,
    /// Heartbeat latency, from the vizier's send time to the record written, per millisecond.
    latency_ms: Box<[AtomicU64]>,
}

impl ManagerStats {
    fn new() -> Self {
        ManagerStats {
            recorded: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            marked_disconnected: AtomicU64::new(0),
            latency_ms: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Heartbeats recorded.
    pub fn recorded(&self) -> u64 {
        self.recorded.load(Ordering::Relaxed)
    }

    /// Heartbeats that could not be decoded or recorded.
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    /// Viziers the monitor marked DISCONNECTED.
    pub fn marked_disconnected(&self) -> u64 {
        self.marked_disconnected.load(Ordering::Relaxed)
    }

    /// The `q` quantile (0..=1) of heartbeat latency (vizier send → record written), in whole milliseconds
    /// rounded up; `None` before the first heartbeat.
    pub fn latency_quantile_ms(&self, q: f64) -> Option<u64> {
        let counts: Vec<u64> = self.latency_ms.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (ms, n) in counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(ms as u64);
            }
        }
        Some(BUCKETS as u64 - 1)
    }

    /// Starts a new latency window (the counters keep counting).
    pub fn reset_latency(&self) {
        for bucket in &self.latency_ms {
            bucket.store(0, Ordering::Relaxed);
        }
    }

    fn observe(&self, sent_ns: i64, done_ns: i64) {
        let ms = (done_ns.saturating_sub(sent_ns).max(0) as u64).div_ceil(1_000_000);
        let bucket = (ms as usize).min(BUCKETS - 1);
        self.latency_ms[bucket].fetch_add(1, Ordering::Relaxed);
    }
}

/// The running manager; dropping it stops both loops.
pub struct VizierManager {
    stats: Arc<ManagerStats>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for VizierManager {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl VizierManager {
    /// Subscribes to heartbeats and starts the status monitor.
    pub async fn start(metastore: Arc<dyn Metastore>, bus: Arc<dyn Bus>, config: ManagerConfig) -> Result<Self> {
        let records = Records::new(metastore);
        let stats = Arc::new(ManagerStats::new());
        let heartbeats = bus.queue_subscribe(&subject::v2c_all(topic::HEARTBEAT), &config.queue_group).await?;
        let consumer = {
            let (records, stats) = (records.clone(), Arc::clone(&stats));
            tokio::spawn(async move {
                heartbeats
                    .for_each_concurrent(config.concurrency.max(1), |m| {
                        let (records, stats) = (records.clone(), Arc::clone(&stats));
                        async move { record_heartbeat(&records, &stats, &m.payload).await }
                    })
                    .await;
                tracing::warn!("heartbeat subscription ended");
            })
        };
        let monitor = {
            let stats = Arc::clone(&stats);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(config.check_every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    mark_disconnected(&records, &stats, config.disconnect_after).await;
                }
            })
        };
        Ok(VizierManager { stats, tasks: vec![consumer, monitor] })
    }

    /// The manager's counters.
    pub fn stats(&self) -> &Arc<ManagerStats> {
        &self.stats
    }
}

/// Longest address a vizier may report (a DNS name of 253 characters and a port).
const MAX_ADDRESS_CHARS: usize = 260;

/// What a heartbeat reports besides its status. The stored version and address are kept when the heartbeat
/// leaves them empty, or sends something unusable as an address (a vizier's report is not trusted to be
/// well-formed).
fn reported(beat: &Heartbeat) -> Reported {
    let address = beat.address.trim();
    let usable = !address.is_empty()
        && address.chars().count() <= MAX_ADDRESS_CHARS
        && !address.chars().any(|c| c.is_control() || c.is_whitespace());
    Reported {
        version: (!beat.version.is_empty()).then(|| beat.version.clone()),
        num_agents: Some(i64::from(beat.num_agents)),
        address: usable.then(|| address.to_owned()),
    }
}

async fn record_heartbeat(records: &Records, stats: &ManagerStats, payload: &[u8]) {
    let fail = |why: &str| {
        stats.failed.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(why, "heartbeat not recorded");
    };
    // Only VZConn publishes on v2c subjects, with the ids it authenticated, so the envelope is trusted.
    let Ok(envelope) = BusEnvelope::decode(payload) else { return fail("undecodable envelope") };
    let (Ok(org_id), Ok(vizier_id)) = (Uuid::parse_str(&envelope.org_id), Uuid::parse_str(&envelope.vizier_id)) else {
        return fail("envelope without ids");
    };
    let Ok(beat) = Heartbeat::decode(envelope.payload.as_slice()) else { return fail("undecodable heartbeat") };
    let status = status_name(beat.status());
    let reported = reported(&beat);
    let now = loupe_common::time::now_unix_ns();
    match records.set_status(org_id, vizier_id, status, now, reported).await {
        Ok(Some(_)) => {
            stats.recorded.fetch_add(1, Ordering::Relaxed);
            stats.observe(beat.time_ns, loupe_common::time::now_unix_ns());
            tracing::trace!(%vizier_id, status, seq = beat.sequence_number, "heartbeat");
        }
        Ok(None) => fail("vizier deleted"),
        Err(error) => {
            tracing::warn!(%error, %vizier_id, "heartbeat not recorded");
            stats.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn mark_disconnected(records: &Records, stats: &ManagerStats, after: Duration) {
    let viziers = match records.all_viziers().await {
        Ok(v) => v,
        Err(error) => return tracing::warn!(%error, "status monitor cannot list viziers"),
    };
    let cutoff = loupe_common::time::now_unix_ns() - after.as_nanos() as i64;
    for v in viziers {
        if v.status == DISCONNECTED || v.last_heartbeat_ns.is_some_and(|t| t > cutoff) {
            continue;
        }
        // Re-read right before writing, so a heartbeat that just landed is not overwritten.
        let fresh = match records.vizier(v.org_id, v.id).await {
            Ok(Some(f)) => f,
            Ok(None) => continue,
            Err(error) => return tracing::warn!(%error, "status monitor cannot read a vizier"),
        };
        if fresh.status == DISCONNECTED || fresh.last_heartbeat_ns.is_some_and(|t| t > cutoff) {
            continue;
        }
        let last = fresh.last_heartbeat_ns.unwrap_or(0);
        match records.set_status(v.org_id, v.id, DISCONNECTED, last, Reported::default()).await {
            Ok(_) => {
                stats.marked_disconnected.fetch_add(1, Ordering::Relaxed);
                tracing::info!(vizier_id = %v.id, name = %v.name, "vizier disconnected: no heartbeat in {after:?}");
            }
            Err(error) => tracing::warn!(%error, vizier_id = %v.id, "cannot mark vizier disconnected"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_quantiles_come_from_the_buckets() {
        let s = ManagerStats::new();
        assert_eq!(s.latency_quantile_ms(0.99), None);
        for ms in 1..=100 {
            s.observe(0, ms * 1_000_000);
        }
        assert_eq!(s.latency_quantile_ms(0.99), Some(99));
        assert_eq!(s.latency_quantile_ms(0.5), Some(50));
        assert_eq!(s.latency_quantile_ms(1.0), Some(100));
        s.observe(0, 60_000_000_000);
        assert_eq!(s.latency_quantile_ms(1.0), Some(10_000));
        s.reset_latency();
        assert_eq!(s.latency_quantile_ms(0.5), None);
    }

    #[test]
    fn a_heartbeat_reports_agents_and_a_usable_address() {
        let beat = |address: &str| Heartbeat {
            num_agents: 4,
            version: "1.2.3".into(),
            address: address.into(),
            ..Heartbeat::default()
        };
        assert_eq!(
            reported(&beat(" 10.1.2.3:50300 ")),
            Reported { version: Some("1.2.3".into()), num_agents: Some(4), address: Some("10.1.2.3:50300".into()) }
        );
        let long = "a".repeat(MAX_ADDRESS_CHARS + 1);
        for unusable in ["", "a b:1", "x\n:1", long.as_str()] {
            assert_eq!(reported(&beat(unusable)).address, None, "{unusable:?}");
        }
        assert_eq!(reported(&Heartbeat::default()), Reported { num_agents: Some(0), ..Reported::default() });
    }

    #[test]
    fn only_a_healthy_report_is_healthy() {
        assert_eq!(status_name(VizierStatus::Healthy), "healthy");
        assert_eq!(status_name(VizierStatus::Unhealthy), "unhealthy");
        assert_eq!(status_name(VizierStatus::Unknown), "unhealthy");
        assert_eq!(DISCONNECTED, loupe_metastore::VIZIER_INITIAL_STATUS);
    }
}
