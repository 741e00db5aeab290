//! The API server's own counters and their Prometheus text rendering for `GET /metrics`.
//!
//! Owns the counters (requests by method, route and status class; failed and throttled logins). Must not
//! count in tight loops: one increment per request or login attempt, under a short lock.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use loupe_common::prometheus::{Kind, Writer};

/// Counters served at `/metrics`.
#[derive(Debug, Default)]
pub struct Metrics {
    /// (method, route template, status class like `2xx`) → count.
    requests: Mutex<BTreeMap<(String, String, &'static str), u64>>,
    login_failures: AtomicU64,
    logins_throttled: AtomicU64,
}

impl Metrics {
    /// Counts one answered request. `route` is the matched template (`/api/v1/scripts/{*name}`) or
    /// `unmatched`, so the label set stays bounded whatever paths clients send.
    pub fn record_request(&self, method: &str, route: &str, status: u16) {
        let class = match status {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        // Only standard methods become labels; anything else is folded so clients cannot grow the map.
        let method = match method {
            "GET" | "POST" | "PUT" | "DELETE" | "PATCH" | "HEAD" | "OPTIONS" => method,
            _ => "OTHER",
        };
        if let Ok(mut map) = self.requests.lock() {
            *map.entry((method.to_owned(), route.to_owned(), class)).or_default() += 1;
        }
    }

    /// Counts a failed login (unknown email or wrong password).
    pub fn record_login_failure(&self) {
        self.login_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a login refused by throttling.
    pub fn record_login_throttled(&self) {
        self.logins_throttled.fetch_add(1, Ordering::Relaxed);
    }

    /// Prometheus text exposition format 0.0.4.
    pub fn render(&self) -> String {
        let mut w = Writer::new();
        // A copy, so the lock is not held while formatting.
        let requests: Vec<((String, String, &str), u64)> =
            self.requests.lock().map(|map| map.iter().map(|(k, n)| (k.clone(), *n)).collect()).unwrap_or_default();
        w.family(
            "loupe_cloud_http_requests_total",
            Kind::Counter,
            "HTTP requests answered, by route and status class.",
            requests.iter().map(|((method, route, class), count)| {
                ([("method", method.as_str()), ("route", route.as_str()), ("status", *class)], *count)
            }),
        );
        w.single(
            "loupe_cloud_login_failures_total",
            Kind::Counter,
            "Failed logins (unknown email or wrong password).",
            self.login_failures.load(Ordering::Relaxed),
        );
        w.single(
            "loupe_cloud_logins_throttled_total",
            Kind::Counter,
            "Logins refused by brute-force throttling.",
            self.logins_throttled.load(Ordering::Relaxed),
        );
        w.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_by_route_and_class() {
        let m = Metrics::default();
        m.record_request("GET", "/api/v1/org", 200);
        m.record_request("GET", "/api/v1/org", 204);
        m.record_request("BREW", "unmatched", 404);
        m.record_login_failure();
        let text = m.render();
        assert!(text.contains(r#"loupe_cloud_http_requests_total{method="GET",route="/api/v1/org",status="2xx"} 2"#));
        assert!(text.contains(r#"{method="OTHER",route="unmatched",status="4xx"} 1"#), "{text}");
        assert!(text.contains("loupe_cloud_login_failures_total 1"));
        assert!(text.contains("loupe_cloud_logins_throttled_total 0"));
    }
}
