//! `import pxviews`: Loupe's implementation of the views Pixie's scripts import, run over known rows of
//! `process_stats`, `http_events` and `conn_stats`, with the figures worked out by hand.

use std::sync::Arc;

use loupe_engine::Engine;
use loupe_schema::host::{ProcessStatsBuilder, ProcessStatsRow, process_stats};
use loupe_schema::http::{HttpEventsBuilder, http_events};
use loupe_schema::protocols::{ConnStatsBuilder, ConnStatsRow, conn_stats};
use loupe_store::{Store, StoreConfig};

use crate::common::{NOW, SEC, lines, row, run};

/// Process `upid` at `ago_s` seconds before now, with CPU and I/O counters and memory gauges.
fn proc(upid: &str, ago_s: i64, cpu_s: i64, read: i64, rss: i64) -> ProcessStatsRow {
    ProcessStatsRow {
        time_ns: NOW - ago_s * SEC,
        upid: upid.into(),
        // Half of the CPU time in user mode, half in the kernel: the views add both.
        cpu_utime_ns: cpu_s * SEC / 2,
        cpu_ktime_ns: cpu_s * SEC / 2,
        read_bytes: read,
        rchar_bytes: 2 * read,
        rss_bytes: rss,
        vsize_bytes: 10 * rss,
        ..ProcessStatsRow::default()
    }
}

fn conns(upid: &str, ago_s: i64, remote: &str, role: i64, opened: i64) -> ConnStatsRow {
    ConnStatsRow {
        time_ns: NOW - ago_s * SEC,
        upid: upid.into(),
        remote_addr: remote.into(),
        remote_port: 5000,
        trace_role: role,
        conn_open: opened,
        ..ConnStatsRow::default()
    }
}

fn engine() -> Engine {
    let store = Arc::new(Store::new(StoreConfig::default()));
    let procs = store.register(&process_stats()).expect("register");
    let mut b = ProcessStatsBuilder::new();
    // Over the last 60 s: process A used 3 s of CPU and read 600 bytes, B 6 s and 1,200 bytes.
    for r in [
        proc("1:10:1", 55, 1, 100, 1000),
        proc("1:10:1", 45, 1, 250, 2000),
        proc("1:10:1", 25, 2, 400, 3000),
        proc("1:10:1", 5, 4, 700, 2000),
        proc("1:20:1", 50, 0, 0, 500),
        proc("1:20:1", 10, 6, 1200, 500),
    ] {
        b.append(&r);
    }
    procs.append(b.finish().expect("batch")).expect("append");

    let http = store.register(&http_events()).expect("register");
    let mut b = HttpEventsBuilder::new();
    let mut probe = row(15, "/healthz", "GET", 200, 1);
    probe.upid = "1:10:1".into();
    for r in [row(20, "/a", "GET", 200, 10), row(30, "/a", "GET", 500, 30), row(40, "/b", "POST", 404, 20), probe] {
        b.append(&r);
    }
    http.append(b.finish().expect("batch")).expect("append");

    let cs = store.register(&conn_stats()).expect("register");
    let mut b = ConnStatsBuilder::new();
    // Process A accepted 5 connections from 10.0.0.2 in the window and opened 2 to 10.0.0.9.
    for r in [
        conns("1:10:1", 50, "10.0.0.2", 2, 10),
        conns("1:10:1", 10, "10.0.0.2", 2, 15),
        conns("1:10:1", 50, "10.0.0.9", 1, 1),
        conns("1:10:1", 10, "10.0.0.9", 1, 3),
    ] {
        b.append(&r);
    }
    cs.append(b.finish().expect("batch")).expect("append");
    Engine::new(store)
}

fn one(script_body: &str) -> Vec<String> {
    let script = format!("import px\nimport pxviews\n{script_body}");
    let out = run(&engine(), &script);
    lines(&out[0], true)
}

#[test]
fn container_summary_adds_its_processes_counters_over_the_window() {
    // Window 60 s: A 3 s + B 6 s of CPU = 15 % of a core; reads (600 + 1200) / 60e9 per ns; rss the mean
    // of each process (2000 + 500).
    let got = one("df = pxviews.container_process_summary('-60s', px.now())\n\
         px.display(df[['pod_id', 'node', 'cpu_usage', 'actual_disk_read_throughput', 'total_disk_read_throughput', 'rss', 'vsize']])");
    let host = hostname();
    assert_eq!(got.len(), 5, "one container: {got:#?}");
    let c = cells(&got[3]);
    assert_eq!((c[0].as_str(), c[1].as_str()), ("", host.as_str()));
    close(&c[2], 0.15);
    close(&c[3], 1800.0 / 60e9);
    close(&c[4], 3600.0 / 60e9);
    close(&c[5], 2500.0);
    close(&c[6], 25000.0);
}

/// The cells of a table line.
fn cells(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
    inner.split('|').map(|c| c.trim().to_string()).collect()
}

/// `cell` is `want` but for floating-point rounding.
fn close(cell: &str, want: f64) {
    let got: f64 = cell.parse().unwrap_or_else(|_| panic!("`{cell}` is not a number"));
    assert!((got - want).abs() <= want.abs() * 1e-9, "{got} is not {want}");
}

#[test]
fn container_timeseries_takes_each_windows_growth() {
    // 30 s windows from the epoch (now is :20 past a minute): [-80, -50) holds A at -55 alone, [-50, -20) A
    // at -45 (1 s of CPU) and -25 (2 s) and B at -50 alone, [-20, 10) A at -5 and B at -10, each alone. Only
    // the middle window shows growth: 1 s over 30 s.
    let got = one("df = pxviews.container_process_timeseries('-60s', px.now(), 30 * 1000 * 1000 * 1000)\n\
         px.display(df[['time_', 'cpu_usage']])");
    let cpu: Vec<f64> = got[3..got.len() - 1]
        .iter()
        .map(|l| l.split('|').nth(2).unwrap_or("").trim().parse().expect("a number"))
        .collect();
    assert_eq!(cpu.len(), 3, "{got:#?}");
    assert_eq!(cpu[0], 0.0);
    assert!((cpu[1] - 1.0 / 30.0).abs() < 1e-12, "{cpu:?}");
    assert_eq!(cpu[2], 0.0);
}

#[test]
fn pod_resource_stats_counts_containers_and_sums_usage() {
    let got = one("df = pxviews.pod_resource_stats('-60s', px.now())\n\
         px.display(df[['pod', 'container_count', 'cpu_usage', 'rss']])");
    assert_eq!(got.len(), 5, "one pod: {got:#?}");
    let c = cells(&got[3]);
    assert_eq!((c[0].as_str(), c[1].as_str()), ("", "1"));
    close(&c[2], 0.15);
    close(&c[3], 2500.0);
}

#[test]
fn inbound_http_summary_leaves_probes_out_and_counts_errors() {
    // The fixture's three served requests (one 500, one 404) and a `/healthz` probe left out.
    let got = one("df = pxviews.inbound_http_summary('-60s', px.now())\n\
         px.display(df[['requestor_ip', 'num_requests', 'num_errors', 'latency_sum']])");
    assert_eq!(got[3], "| 10.0.0.2     | 3            | 2          | 60000000    |");
    assert_eq!(got.len(), 5, "{got:#?}");
}

#[test]
fn connection_throughput_splits_inbound_and_outbound_growth() {
    let got = one("df = pxviews.connection_throughput_stats('-60s', px.now())\n\
         px.display(df[['remote_addr', 'inbound_conn_throughput', 'outbound_conn_throughput']])");
    assert_eq!(got[3], "| 10.0.0.2    | 5                       | 0                        |");
    assert_eq!(got[4], "| 10.0.0.9    | 0                       | 2                        |");
}

#[test]
fn every_view_runs_and_keeps_its_columns() {
    let views = [
        ("inbound_http_summary('-5m', px.now())", 15),
        ("http_graph('-5m', px.now())", 20),
        ("container_process_timeseries('-5m', px.now(), 10 * 1000 * 1000 * 1000)", 14),
        ("container_process_summary('-5m', px.now())", 14),
        ("pod_resource_stats('-5m', px.now())", 16),
        ("pod_network_timeseries('-5m', px.now(), 10 * 1000 * 1000 * 1000)", 12),
        ("pod_network_summary('-5m', px.now())", 12),
        ("inbound_http_throughput_timeseries('-5m', px.now(), 10 * 1000 * 1000 * 1000)", 9),
        ("inbound_http_latency_timeseries('-5m', px.now(), 10 * 1000 * 1000 * 1000)", 12),
        ("stacktraces('-5m', px.now())", 11),
        ("connection_throughput_stats('-5m', px.now())", 9),
        ("processes('-5m', px.now())", 12),
    ];
    let engine = engine();
    for (call, columns) in views {
        let script = format!("import px\nimport pxviews\npx.display(pxviews.{call}, 'out')");
        let out = run(&engine, &script);
        assert_eq!(out[0].schema.fields().len(), columns, "{call}");
    }
}

fn hostname() -> String {
    let out = run(
        &engine(),
        "import px\ndf = px.DataFrame('process_stats')\ndf.h = px._exec_hostname()\npx.display(df[['h']].head(1))",
    );
    lines(&out[0], false)[3].trim_matches(|c| c == '|' || c == ' ').to_string()
}
