//! The local directory backend: layout, modes, pruning by hour and row group, the writer following a store,
//! and retention by age and by bytes.

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::Duration;

use loupe_history::reader::TimeBounds;
use loupe_history::{Retention, WriterConfig, WriterHandle};

use crate::common::{DAY0, HOUR, count, local, rows, runtime};

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).expect("meta").permissions().mode() & 0o777
}

#[test]
fn segments_are_partitioned_by_hour_private_and_pruned_on_read() {
    let rt = runtime();
    let (h, dir) = local("layout");
    let schema = loupe_schema::http::http_events().arrow_schema();
    // Three hours, 1,000 rows each.
    let batch = rows(3_000, "/p", DAY0, 3 * HOUR);
    let r = rt.block_on(h.write_batches("http_events", &[batch], DAY0 + 4 * HOUR)).expect("write");
    assert_eq!((r.rows, r.segments), (3_000, 3));
    let part = dir.join("http_events/org=acme/vizier=vz-1/hour=2026-12-03T01");
    let files: Vec<_> = std::fs::read_dir(&part).expect("hour dir").flatten().map(|e| e.path()).collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("node-a-")));
    assert_eq!(mode(&files[0]), 0o600);
    for d in [&dir, &dir.join("http_events"), &part] {
        assert_eq!(mode(d), 0o700, "{}", d.display());
    }

    // All of it, then one hour: only that hour's partition is opened.
    let (all, stats) = rt.block_on(h.read("http_events", &schema, None, TimeBounds::default())).expect("read");
    assert_eq!((count(&all), stats.hours, stats.hours_read), (3_000, 3, 3));
    let one = TimeBounds { start_ns: Some(DAY0 + HOUR), end_ns: Some(DAY0 + 2 * HOUR - 1), before_ns: None };
    let (got, stats) = rt.block_on(h.read("http_events", &schema, None, one)).expect("read");
    assert_eq!((count(&got), stats.hours_read, stats.segments), (1_000, 1, 1));
    // `before_ns` (memory's oldest row) cuts exactly.
    let before = TimeBounds { before_ns: Some(DAY0 + HOUR + HOUR / 2), ..TimeBounds::default() };
    let (got, _) = rt.block_on(h.read("http_events", &schema, None, before)).expect("read");
    assert_eq!(count(&got), 1_500);
    // A projection returns just those columns.
    let path_col = schema.index_of("req_path").expect("req_path");
    let (got, _) = rt.block_on(h.read("http_events", &schema, Some(&[path_col]), one)).expect("read");
    assert_eq!(got[0].num_columns(), 1);
    assert_eq!(got[0].schema().field(0).name(), "req_path");
    // Another writer of the same vizier reads only its own segments.
    let mut cfg = crate::common::config(&dir.display().to_string());
    cfg.writer = "node-b".into();
    let other = loupe_history::History::open(&cfg).expect("open");
    let (got, _) = rt.block_on(other.read("http_events", &schema, None, TimeBounds::default())).expect("read");
    assert_eq!(count(&got), 0);
}

#[test]
fn row_groups_outside_the_range_are_not_read() {
    let rt = runtime();
    let (h, _dir) = local("rowgroups");
    let schema = loupe_schema::http::http_events().arrow_schema();
    // 4 row groups of 65,536 rows in one hour.
    let n = 4 * loupe_history::ROW_GROUP_ROWS;
    let batch = rows(n, "/p", DAY0, HOUR);
    rt.block_on(h.write_batches("http_events", &[batch], DAY0 + HOUR)).expect("write");
    let step = HOUR / n as i64;
    let narrow = TimeBounds { start_ns: Some(DAY0), end_ns: Some(DAY0 + step * 999), before_ns: None };
    let (got, stats) = rt.block_on(h.read("http_events", &schema, None, narrow)).expect("read");
    assert_eq!(count(&got), 1_000);
    assert_eq!((stats.row_groups, stats.row_groups_read), (4, 1));
}

#[test]
fn the_writer_follows_the_store_and_flushes_when_stopped() {
    let (h, _dir) = local("writer");
    let store = Arc::new(loupe_store::Store::new(loupe_store::StoreConfig::default()));
    let table = store.register(&loupe_schema::http::http_events()).expect("register");
    let config = WriterConfig {
        tables: vec!["http_events".into()],
        flush_interval: Duration::from_secs(3600),
        sweep_interval: Duration::from_secs(3600),
    };
    table.append(rows(100, "/a", DAY0, HOUR / 2)).expect("append");
    let writer = WriterHandle::start(Arc::clone(&store), Arc::clone(&h), config.clone()).expect("start");
    table.append(rows(50, "/b", DAY0 + HOUR, HOUR / 2)).expect("append");
    // Stopping flushes what the interval had not yet written.
    drop(writer);
    let rt = runtime();
    let schema = table.schema();
    let (got, _) = rt.block_on(h.read("http_events", &schema, None, TimeBounds::default())).expect("read");
    assert_eq!(count(&got), 150);
    // A second writer over the same store starts from its own cursor: each row once per writer lifetime.
    let mut flusher = loupe_history::writer::Flusher::default();
    let r = rt.block_on(flusher.flush(&store, &h, &config.tables)).expect("flush");
    assert_eq!(r.rows, 150);
    let r = rt.block_on(flusher.flush(&store, &h, &config.tables)).expect("flush");
    assert_eq!(r.rows, 0, "nothing new");
}

#[test]
fn retention_deletes_hours_past_the_age_then_the_oldest_past_the_bytes() {
    let rt = runtime();
    let (h, dir) = local("retention");
    let schema = loupe_schema::http::http_events().arrow_schema();
    // Ten hours of 2,000 rows each.
    for i in 0..10 {
        let batch = rows(2_000, "/p", DAY0 + i * HOUR, HOUR);
        rt.block_on(h.write_batches("http_events", &[batch], DAY0 + 11 * HOUR)).expect("write");
    }
    let now = DAY0 + 10 * HOUR;
    // Age: hours that ended more than 3 h ago go (hours 0..=6), hours 7, 8, 9 stay.
    h.set_retention("http_events", Retention { max_age: Duration::from_secs(3 * 3600), max_bytes: 1 << 40 })
        .expect("set");
    let r = rt.block_on(h.sweep_table("http_events", now)).expect("sweep");
    assert_eq!((r.expired_files, r.evicted_files, r.kept_files), (7, 0, 3));
    let (got, _) = rt.block_on(h.read("http_events", &schema, None, TimeBounds::default())).expect("read");
    assert_eq!(count(&got), 6_000);
    let hours = std::fs::read_dir(dir.join("http_events/org=acme/vizier=vz-1")).expect("dir").count();
    assert_eq!(hours, 3, "emptied hour directories are removed");

    // Bytes: a limit just under the three segments' total leaves the newest two.
    let total = r.kept_bytes;
    h.set_retention("http_events", Retention { max_age: Duration::from_secs(3 * 3600), max_bytes: total - 1 })
        .expect("set");
    let r = rt.block_on(h.sweep_table("http_events", now)).expect("sweep");
    assert_eq!((r.expired_files, r.evicted_files, r.kept_files), (0, 1, 2));
    assert!(r.kept_bytes < total);
    let (got, _) = rt.block_on(h.read("http_events", &schema, None, TimeBounds::default())).expect("read");
    assert_eq!(count(&got), 4_000);
    let first = got.iter().flat_map(|b| {
        let t = b.column(0).as_any().downcast_ref::<arrow::array::TimestampNanosecondArray>().expect("time_");
        t.values().to_vec()
    });
    assert!(first.min().is_some_and(|t| t >= DAY0 + 8 * HOUR), "the oldest hour went first");
    // Limits are bounded: a zero is raised to the floor, an age of years lowered to the ceiling.
    let b = Retention { max_age: Duration::from_secs(100 * 365 * 86_400), max_bytes: 0 }.bounded();
    assert_eq!((b.max_age, b.max_bytes), (Retention::MAX_AGE, Retention::MIN_BYTES));
}

#[test]
fn cron_results_are_written_with_a_time_and_found_again_after_reopening() {
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use loupe_history::results::{MAX_RESULT_RUN_BYTES, MAX_RESULT_TABLES};

    let rt = runtime();
    let (h, dir) = local("results");
    // Per-service counts without a time_: each row gets the run's time.
    let schema = Arc::new(Schema::new(vec![
        Field::new("service", DataType::Utf8, false),
        Field::new("n", DataType::Int64, false),
    ]));
    let run = |n: i64| {
        arrow::array::RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(StringArray::from(vec!["a", "b", "c"])), Arc::new(Int64Array::from(vec![n; 3]))],
        )
        .expect("batch")
    };
    for (i, at) in [DAY0 + 60_000_000_000, DAY0 + 2 * HOUR].into_iter().enumerate() {
        let outputs = vec![("output".to_string(), vec![run(i as i64)])];
        let r = rt.block_on(h.write_results("Service Stats", &outputs, at)).expect("write");
        assert_eq!((r.written.rows, r.tables.as_slice()), (3, ["cron_service_stats".to_string()].as_slice()));
    }
    assert_eq!(h.result_tables(), ["cron_service_stats"]);
    let stored = h.result_schema("cron_service_stats").expect("schema");
    assert_eq!(stored.field(0).name(), "time_");
    assert!(dir.join("cron_service_stats/org=acme/vizier=vz-1/hour=2026-12-03T02").is_dir());

    // A reopened history knows nothing until it looks; then it reads both runs back, each at its time.
    drop(h);
    let h = loupe_history::History::open(&crate::common::config(&dir.display().to_string())).expect("reopen");
    assert!(h.result_schema("cron_service_stats").is_none());
    assert_eq!(rt.block_on(h.load_result_tables()).expect("load"), 1);
    let schema = h.result_schema("cron_service_stats").expect("found again");
    assert_eq!(schema, stored);
    let (got, _) = rt.block_on(h.read("cron_service_stats", &schema, None, TimeBounds::default())).expect("read");
    assert_eq!(count(&got), 6);
    let late = TimeBounds { start_ns: Some(DAY0 + HOUR), ..TimeBounds::default() };
    let (got, _) = rt.block_on(h.read("cron_service_stats", &schema, None, late)).expect("read");
    assert_eq!(count(&got), 3, "the second run only");

    // A run past the byte bound is not written; a time_ that is not a timestamp leaves that output out.
    let big = arrow::array::RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("s", DataType::Utf8, false)])),
        vec![Arc::new(StringArray::from(vec!["x".repeat(MAX_RESULT_RUN_BYTES + 1)]))],
    )
    .expect("batch");
    assert!(rt.block_on(h.write_results("big", &[("output".into(), vec![big])], DAY0)).is_err());
    let bad = arrow::array::RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("time_", DataType::Int64, false)])),
        vec![Arc::new(Int64Array::from(vec![1]))],
    )
    .expect("batch");
    let r = rt.block_on(h.write_results("bad", &[("output".into(), vec![bad])], DAY0)).expect("write");
    assert_eq!((r.written.rows, r.skipped.len()), (0, 1));
    // At most MAX_RESULT_TABLES tables.
    for i in 0..MAX_RESULT_TABLES + 1 {
        let outputs = vec![(format!("o{i}"), vec![run(0)])];
        let r = rt.block_on(h.write_results("many", &outputs, DAY0)).expect("write");
        assert_eq!(r.skipped.len(), usize::from(i + 1 >= MAX_RESULT_TABLES), "table {i}");
    }
    assert_eq!(h.result_tables().len(), MAX_RESULT_TABLES);
    let _ = std::fs::remove_dir_all(&dir);
}
