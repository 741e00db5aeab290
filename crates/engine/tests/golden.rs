//! Golden tests that check more than one table: counts, names, errors, ranges and settings. Scripts whose whole
//! answer is a table live as data in `tests/golden/` (`golden_files`).

use crate::common::{NOW, engine, engine_with, execute, lines, row, run};

#[test]
fn head_limits_rows() {
    let out = run(
        &engine(),
        "import px\ndf = px.DataFrame('http_events')\npx.display(df.head(2))\npx.display(df.head(n=4), 'four')\npx.display(df.head(), 'five')",
    );
    let rows: Vec<usize> = out.iter().map(|o| o.num_rows()).collect();
    assert_eq!(rows, vec![2, 4, 5]);
}

#[test]
fn drop_removes_columns() {
    let out = run(
        &engine(),
        "import px
df = px.DataFrame('http_events', select=['time_', 'req_path', 'resp_status', 'latency'])
df = df.drop(['time_', 'latency'])
px.display(df.drop('resp_status'), 'only_path')",
    );
    let names: Vec<&str> = out[0].schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, vec!["req_path"]);
    assert_eq!(out[0].num_rows(), 6);
}

#[test]
fn display_names_and_order() {
    let out = run(
        &engine(),
        "import px
df = px.DataFrame('http_events')
px.display(df[df.resp_status == 200], 'ok')
px.display(df[df.resp_status != 200])
px.debug(df.head(1), 'peek')",
    );
    let names: Vec<(&str, usize)> = out.iter().map(|o| (o.name.as_str(), o.num_rows())).collect();
    assert_eq!(names, vec![("ok", 4), ("output", 2), ("_peek", 1)]);
}

#[test]
fn relative_and_absolute_time_ranges_prune_exactly() {
    let e = engine();
    let count = |script: &str| run(&e, script)[0].num_rows();
    assert_eq!(count("import px\npx.display(px.DataFrame('http_events'))"), 6);
    assert_eq!(count("import px\npx.display(px.DataFrame('http_events', start_time='-5m'))"), 5);
    assert_eq!(count("import px\npx.display(px.DataFrame('http_events', start_time='-30s'))"), 3);
    assert_eq!(count("import px\npx.display(px.DataFrame('http_events', start_time='-45s', end_time='-15s'))"), 3);
    assert_eq!(
        count(
            "import px\npx.display(px.DataFrame('http_events', start_time=px.now() - px.minutes(1), end_time=px.now() - px.seconds(20)))"
        ),
        4
    );
    let abs = format!("import px\npx.display(px.DataFrame('http_events', start_time={}))", NOW - 20_000_000_000);
    assert_eq!(count(&abs), 2);
    // Time comparisons in filters, against px.now() arithmetic.
    assert_eq!(
        count("import px\ndf = px.DataFrame('http_events')\npx.display(df[df.time_ >= px.now() - px.seconds(25)])"),
        2
    );
}

#[test]
fn quantiles_and_direct_percentiles() {
    let rows: Vec<_> = (1..=100).map(|i| row(i, "/q", "GET", 200, i)).collect();
    let e = engine_with(&rows);
    let out = run(
        &e,
        "import px
df = px.DataFrame('http_events')
df.ms = df.latency / 1000000
s = df.groupby('req_path').agg(q=('ms', px.quantiles), p50=('ms', px.p50), p99=('ms', px.p99), p90=('latency', px.p90))
s.q50 = px.pluck_float64(s.q, 'p50')
s.q99 = px.DurationNanos(px.pluck_float64(s.q, 'p99'))
px.display(s)",
    );
    let b = &out[0].batches[0];
    let f = |name: &str| -> f64 {
        let i = out[0].schema.index_of(name).expect(name);
        datafusion::arrow::array::AsArray::as_primitive::<datafusion::arrow::datatypes::Float64Type>(b.column(i))
            .value(0)
    };
    assert!((f("p50") - 50.5).abs() <= 1.0, "p50 {}", f("p50"));
    assert!((f("p99") - 99.0).abs() <= 1.5, "p99 {}", f("p99"));
    assert!((f("p90") - 90.5e6).abs() <= 1.5e6, "p90 {}", f("p90"));
    assert_eq!(f("q50"), f("p50"));
    assert_eq!(f("q99"), f("p99"));
    let q = datafusion::arrow::array::AsArray::as_string::<i32>(b.column(1)).value(0).to_string();
    for key in ["p01", "p10", "p25", "p50", "p75", "p90", "p99"] {
        assert!(q.contains(&format!("\"{key}\":")), "{q}");
    }
    assert!(q.starts_with('{') && q.ends_with('}'), "{q}");
}

#[test]
fn outputs_carry_semantic_types_and_percentiles_of_many_groups_merge() {
    // 40 groups: the sketch's grouped accumulator, its partial states (encoded) and their merge.
    let rows: Vec<_> = (0..4000).map(|i| row(i % 50, &format!("/g{}", i % 40), "GET", 200, 1 + i % 100)).collect();
    let e = engine_with(&rows);
    let out = run(
        &e,
        "import px
df = px.DataFrame('http_events')
s = df.groupby('req_path').agg(n=('latency', px.count), p99=('latency', px.p99), p0=('latency', px.p01), q=('latency', px.quantiles))
s.ratio = px.Percent(s.n / 4000)
px.display(s)",
    );
    let semantic = |name: &str| {
        let f = out[0].schema.field_with_name(name).expect(name);
        f.metadata().get("px.semantic_type").cloned().unwrap_or_default()
    };
    assert_eq!(semantic("req_path"), "ST_NONE");
    assert_eq!(semantic("n"), "ST_NONE");
    assert_eq!(semantic("p99"), "ST_DURATION_NS");
    assert_eq!(semantic("q"), "ST_DURATION_NS_QUANTILES");
    assert_eq!(semantic("ratio"), "ST_PERCENT");
    assert_eq!(out[0].num_rows(), 40);
    for b in &out[0].batches {
        let col = |name: &str| {
            datafusion::arrow::array::AsArray::as_primitive::<datafusion::arrow::datatypes::Float64Type>(
                b.column(out[0].schema.index_of(name).expect(name)),
            )
            .clone()
        };
        let (p99, p0) = (col("p99"), col("p0"));
        for i in 0..b.num_rows() {
            // Group g holds latencies 1 + g%20 + 20j ms (j = 0..4), 20 times each: p01 is the smallest, p99 the largest.
            assert!(p0.value(i) >= 1e6 && p0.value(i) <= 40e6, "p01 {}", p0.value(i));
            assert!(p99.value(i) >= 61e6 && p99.value(i) <= 100e6, "p99 {}", p99.value(i));
            assert!(p99.value(i) - p0.value(i) >= 79e6 * 0.99, "p99 {} p01 {}", p99.value(i), p0.value(i));
        }
    }
}

#[test]
fn time_functions_and_bins() {
    let out = run(
        &engine(),
        "import px
df = px.DataFrame('http_events', start_time='-5m')
df.age_s = (px.now() - df.time_) / 1000000000
df.t = px.bin(df.time_, px.seconds(60))
df.ns = px.time_to_int64(df.time_)
df.back = px.int64_to_time(df.ns)
df = df[df.back == df.time_]
s = df.groupby('t').agg(n=('age_s', px.count), oldest=('age_s', px.max))
px.display(s)",
    );
    // NOW is 20 s past a minute boundary: rows 10 s and 20 s old share the newest bucket.
    let l = lines(&out[0], true);
    assert_eq!(out[0].num_rows(), 2, "{l:?}");
    assert!(l[3].contains("| 3 | 50.0"), "{l:?}");
    assert!(l[4].contains("| 2 | 20.0"), "{l:?}");
}

#[test]
fn user_functions_and_settings() {
    let out = run(
        &engine(),
        "#px:set max_output_rows_per_table=2
import px

def recent(start_time: str, path='/a'):
    df = px.DataFrame('http_events', start_time=start_time)
    return df[df.req_path == path]

px.display(recent('-5m'), 'a')
px.display(recent(start_time='-10m', path='/old'), 'old')",
    );
    let rows: Vec<(&str, usize)> = out.iter().map(|o| (o.name.as_str(), o.num_rows())).collect();
    assert_eq!(rows, vec![("a", 2), ("old", 1)]);
}

#[test]
fn max_output_rows_caps_every_output() {
    let e = engine();
    let opts = loupe_engine::ExecOptions { max_output_rows: 3, ..Default::default() };
    let out = execute(&e, "import px\npx.display(px.DataFrame('http_events'))", &opts).expect("runs");
    assert_eq!(out[0].num_rows(), 3);
}

#[test]
fn registered_but_empty_table_yields_no_rows() {
    // http_events is known to loupe_schema but not registered in this store.
    let store = std::sync::Arc::new(loupe_store::Store::new(loupe_store::StoreConfig::default()));
    let e = loupe_engine::Engine::new(store);
    let out = run(
        &e,
        "import px\ndf = px.DataFrame('http_events')\npx.display(df.groupby('req_path').agg(n=('latency', px.count)))",
    );
    assert_eq!(out[0].num_rows(), 0);
    let names: Vec<&str> = out[0].schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, vec!["req_path", "n"]);
}

#[test]
fn compile_errors_against_the_store_catalog_are_reported_with_positions() {
    // The engine takes plans; its catalog is what callers compile against, with column suggestions.
    let e = engine();
    let src = "import px\ndf = px.DataFrame('http_events')\ndf = df[df.resp_statu >= 400]\n";
    let d = loupe_pxl::compile(src, &e.catalog(), &loupe_pxl::CompileOptions { now_ns: NOW }).expect_err("must fail");
    assert_eq!((d[0].line, d[0].column), (3, 12));
    assert_eq!(d[0].helps, vec!["did you mean `resp_status`?".to_string()]);
}
