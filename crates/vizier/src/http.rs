//! The operational routes of an agent, for a listener apart from the query port: `/healthz`,
//! `/readyz` (503 naming the probes that failed to attach) and Prometheus `/metrics`.
//!
//! Owns their rendering. Must not serve queries, and needs no credential: bind it where only
//! kubelet and Prometheus reach it (loopback by default).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use loupe_collector::CollectorCounters;
use loupe_common::prometheus::{Kind, Writer};
use loupe_store::Store;

use crate::health::ProbeReport;

/// What an agent's operational routes read: its store, the collector's counters (when tracing) and
/// its probe report. Cheap to clone.
#[derive(Debug, Clone)]
pub struct PemOps {
    store: Arc<Store>,
    counters: Option<Arc<CollectorCounters>>,
    probes: ProbeReport,
    running_queries: Arc<AtomicU64>,
    link: Option<Arc<crate::cluster::LinkState>>,
    history: Option<(Arc<loupe_history::History>, Option<Arc<loupe_history::writer::WriterStats>>)>,
}

impl PemOps {
    /// The routes' inputs.
    pub fn new(store: Arc<Store>, counters: Option<Arc<CollectorCounters>>, probes: ProbeReport) -> Self {
        PemOps { store, counters, probes, running_queries: Arc::default(), link: None, history: None }
    }

    /// Reports `running` as the number of queries running now.
    pub fn with_running_queries(mut self, running: Arc<AtomicU64>) -> Self {
        self.running_queries = running;
        self
    }

    /// Reports the agent's link with a query broker (registered, configuration version) in its metrics.
    pub fn with_link(mut self, link: Arc<crate::cluster::LinkState>) -> Self {
        self.link = Some(link);
        self
    }

    /// Reports the history this agent writes: its writer's counters and each table's retention in force.
    pub fn with_history(
        mut self,
        history: Arc<loupe_history::History>,
        stats: Option<Arc<loupe_history::writer::WriterStats>>,
    ) -> Self {
        self.history = Some((history, stats));
        self
    }

    /// Prometheus text of the store's, collector's and query service's counters.
    pub fn metrics_text(&self) -> String {
        let mut w = Writer::new();
        write_metrics(&mut w, &self.store, self.counters.as_deref());
        w.single(
            "loupe_queries_running",
            Kind::Gauge,
            "Queries running now.",
            self.running_queries.load(Ordering::Relaxed),
        );
        if let Some(link) = &self.link {
            link.write_metrics(&mut w);
        }
        if let Some((history, stats)) = &self.history {
            write_history_metrics(&mut w, &self.store, history, stats.as_deref());
        }
        w.finish()
    }

    /// `Ok` when the agent is ready, else why not.
    pub fn readiness(&self) -> Result<(), String> {
        self.probes.readiness()
    }
}

/// The routes.
pub fn router(ops: PemOps) -> Router {
    let metrics = ops.clone();
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(move || async move {
                match ops.readiness() {
                    Ok(()) => (StatusCode::OK, "ok\n".to_string()),
                    Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {why}\n")),
                }
            }),
        )
        .route("/metrics", get(move || async move { metrics.metrics_text() }))
}

/// The same routes for a node without a store (the query broker, a Kelvin): `/healthz`, `/readyz` from
/// `readiness` and `/metrics` from `metrics`.
pub fn node_router(
    readiness: impl Fn() -> Result<(), String> + Clone + Send + Sync + 'static,
    metrics: impl Fn() -> String + Clone + Send + Sync + 'static,
) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(move || async move {
                match readiness() {
                    Ok(()) => (StatusCode::OK, "ok\n".to_string()),
                    Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {why}\n")),
                }
            }),
        )
        .route("/metrics", get(move || async move { metrics() }))
}

fn write_history_metrics(
    w: &mut Writer,
    store: &Store,
    history: &loupe_history::History,
    stats: Option<&loupe_history::writer::WriterStats>,
) {
    if let Some(s) = stats {
        let load = |v: &std::sync::atomic::AtomicU64| v.load(Ordering::Relaxed);
        w.single("loupe_history_rows_written_total", Kind::Counter, "Rows written to history.", load(&s.rows_written));
        w.single(
            "loupe_history_segments_written_total",
            Kind::Counter,
            "Parquet segments written to history.",
            load(&s.segments_written),
        );
        w.single(
            "loupe_history_bytes_written_total",
            Kind::Counter,
            "Bytes written to history.",
            load(&s.bytes_written),
        );
        w.single(
            "loupe_history_batches_missed_total",
            Kind::Counter,
            "Store batches evicted before history wrote them (rows lost to history).",
            load(&s.batches_missed),
        );
        w.single(
            "loupe_history_errors_total",
            Kind::Counter,
            "History flushes or sweeps that failed.",
            load(&s.errors),
        );
    }
    let retention: Vec<(String, loupe_history::Retention)> =
        store.tables().iter().map(|t| (t.name().to_string(), history.retention(t.name()))).collect();
    w.family(
        "loupe_history_retention_max_age_seconds",
        Kind::Gauge,
        "Age past which a table's history is deleted (the org's `px retention`, else the agent's flags).",
        retention.iter().map(|(table, r)| ([("table", table.as_str())], r.max_age.as_secs())),
    );
    w.family(
        "loupe_history_retention_max_bytes",
        Kind::Gauge,
        "Bytes of a table's history past which the oldest is deleted.",
        retention.iter().map(|(table, r)| ([("table", table.as_str())], r.max_bytes)),
    );
}

/// Prometheus text exposition of the store's and collector's counters.
pub fn metrics_text(store: &Store, counters: Option<&CollectorCounters>) -> String {
    let mut w = Writer::new();
    write_metrics(&mut w, store, counters);
    w.finish()
}

fn write_metrics(w: &mut Writer, store: &Store, counters: Option<&CollectorCounters>) {
    let tables: Vec<_> = store.tables().iter().map(|t| (t.name().to_string(), t.stats())).collect();
    let mut per_table = |name: &str, kind: Kind, help: &str, f: fn(&loupe_store::TableStats) -> u64| {
        w.family(name, kind, help, tables.iter().map(|(table, s)| ([("table", table.as_str())], f(s))));
    };
    per_table("loupe_table_rows", Kind::Gauge, "Rows held in the table store.", |s| s.rows);
    per_table("loupe_table_bytes", Kind::Gauge, "Bytes held in the table store.", |s| s.bytes);
    per_table("loupe_table_budget_bytes", Kind::Gauge, "Byte budget of each table.", |s| s.budget_bytes);
    per_table("loupe_table_rows_appended_total", Kind::Counter, "Rows appended.", |s| s.rows_appended);
    per_table("loupe_table_rows_evicted_total", Kind::Counter, "Rows evicted to stay within budget.", |s| {
        s.rows_evicted
    });
    per_table("loupe_table_rows_dropped_total", Kind::Counter, "Rows refused or cut.", |s| s.rows_dropped);
    if let Some(c) = counters {
        let load = |v: &std::sync::atomic::AtomicU64| v.load(Ordering::Relaxed);
        w.single("loupe_collector_events_total", Kind::Counter, "Kernel events consumed.", load(&c.events));
        w.single("loupe_collector_rows_total", Kind::Counter, "Rows appended by the collector.", load(&c.rows));
        w.single(
            "loupe_collector_store_errors_total",
            Kind::Counter,
            "Batches the store refused.",
            load(&c.store_errors),
        );
        w.single(
            "loupe_collector_open_connections",
            Kind::Gauge,
            "Connections tracked now.",
            load(&c.open_connections),
        );
        w.single("loupe_collector_gap_bytes_total", Kind::Counter, "Bytes lost to capture gaps.", load(&c.gap_bytes));
        let stats = c.agent_stats();
        w.family(
            "loupe_agent_stat_total",
            Kind::Counter,
            "What the agent traced, dropped or could not parse, by counter and cause (the agent_stats table).",
            stats.iter().map(|s| ([("counter", s.counter), ("cause", s.cause)], s.value)),
        );
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use loupe_collector::ProbeStatus;
    use tower::ServiceExt as _;

    use super::*;

    async fn get_text(router: Router, path: &str) -> (u16, String) {
        let answer = router.oneshot(Request::get(path).body(Body::empty()).expect("request")).await.expect("answer");
        let status = answer.status().as_u16();
        let body = axum::body::to_bytes(answer.into_body(), 1 << 20).await.expect("body");
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn readyz_names_the_probes_that_failed() {
        let store = Arc::new(Store::new(loupe_store::StoreConfig::default()));
        let probes = [
            ProbeStatus { name: "syscalls/sys_enter_read".into(), attached: true, error: None },
            ProbeStatus {
                name: "syscalls/sys_enter_nope".into(),
                attached: false,
                error: Some("no such tracepoint".into()),
            },
        ];
        let failing = PemOps::new(store.clone(), None, ProbeReport::tracing(&probes));
        assert_eq!(
            get_text(router(failing.clone()), "/readyz").await,
            (503, "not ready: 1 of 2 probes not attached: syscalls/sys_enter_nope (no such tracepoint)\n".into())
        );
        assert_eq!(get_text(router(failing), "/healthz").await, (200, "ok\n".into()));
        let attached = PemOps::new(store.clone(), None, ProbeReport::tracing(&probes[..1]));
        assert_eq!(get_text(router(attached), "/readyz").await, (200, "ok\n".into()));
        let no_trace = PemOps::new(store, None, ProbeReport::not_tracing());
        assert_eq!(get_text(router(no_trace.clone()), "/readyz").await, (200, "ok\n".into()));
        let (status, text) = get_text(router(no_trace), "/metrics").await;
        assert_eq!(status, 200);
        assert!(text.contains("# TYPE loupe_table_rows gauge"), "{text}");
    }

    #[test]
    fn metrics_list_every_table() {
        let store = Store::new(loupe_store::StoreConfig::default());
        store.register(&loupe_schema::http::http_events()).expect("register");
        let counters = CollectorCounters::default();
        *counters.agent_stats.lock().expect("lock") =
            vec![loupe_collector::AgentStat { counter: "kernel_records_dropped", cause: "ring_full", value: 7 }];
        let text = metrics_text(&store, Some(&counters));
        assert!(text.contains("loupe_table_rows{table=\"http_events\"} 0"), "{text}");
        assert!(text.contains("# TYPE loupe_collector_events_total counter"), "{text}");
        assert!(
            text.contains("loupe_agent_stat_total{counter=\"kernel_records_dropped\",cause=\"ring_full\"} 7"),
            "{text}"
        );
    }
}
