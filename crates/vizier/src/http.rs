//! Plain HTTP routes beside the gRPC API: `/healthz`, `/readyz` and Prometheus `/metrics`.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::routing::get;
use loupe_collector::CollectorCounters;
use loupe_store::Store;

/// The routes, over this node's store and (when tracing) the collector's counters.
pub fn router(store: Arc<Store>, counters: Option<Arc<CollectorCounters>>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(|| async { "ok\n" }))
        .route("/metrics", get(move || async move { metrics_text(&store, counters.as_deref()) }))
}

/// Prometheus text exposition of the store's and collector's counters.
pub fn metrics_text(store: &Store, counters: Option<&CollectorCounters>) -> String {
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, samples: &[(String, u64)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, v) in samples {
            let _ = writeln!(out, "{name}{labels} {v}");
        }
    };
    let tables: Vec<_> = store.tables().iter().map(|t| (format!("{{table=\"{}\"}}", t.name()), t.stats())).collect();
    let per =
        |f: fn(&loupe_store::TableStats) -> u64| tables.iter().map(|(l, s)| (l.clone(), f(s))).collect::<Vec<_>>();
    family("loupe_table_rows", "gauge", "Rows held in the table store.", &per(|s| s.rows));
    family("loupe_table_bytes", "gauge", "Bytes held in the table store.", &per(|s| s.bytes));
    family("loupe_table_budget_bytes", "gauge", "Byte budget of each table.", &per(|s| s.budget_bytes));
    family("loupe_table_rows_appended_total", "counter", "Rows appended.", &per(|s| s.rows_appended));
    family(
        "loupe_table_rows_evicted_total",
        "counter",
        "Rows evicted to stay within budget.",
        &per(|s| s.rows_evicted),
    );
    family("loupe_table_rows_dropped_total", "counter", "Rows refused or cut.", &per(|s| s.rows_dropped));
    if let Some(c) = counters {
        let one = |v: &std::sync::atomic::AtomicU64| vec![(String::new(), v.load(Ordering::Relaxed))];
        family("loupe_collector_events_total", "counter", "Kernel events consumed.", &one(&c.events));
        family("loupe_collector_rows_total", "counter", "Rows appended by the collector.", &one(&c.rows));
        family("loupe_collector_store_errors_total", "counter", "Batches the store refused.", &one(&c.store_errors));
        family("loupe_collector_open_connections", "gauge", "Connections tracked now.", &one(&c.open_connections));
        family("loupe_collector_gap_bytes_total", "counter", "Bytes lost to capture gaps.", &one(&c.gap_bytes));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_list_every_table() {
        let store = Store::new(loupe_store::StoreConfig::default());
        store.register(&loupe_schema::http::http_events()).expect("register");
        let text = metrics_text(&store, Some(&CollectorCounters::default()));
        assert!(text.contains("loupe_table_rows{table=\"http_events\"} 0"), "{text}");
        assert!(text.contains("# TYPE loupe_collector_events_total counter"), "{text}");
    }
}
