//! The layout is plain Hive-style partitioned Parquet: DuckDB's Python package reads a written history as it
//! is (partition columns from the directory names, `time_` as a timestamp) and counts what we count.

use std::process::Command;

use loupe_history::reader::TimeBounds;

use crate::common::{DAY0, HOUR, count, local, rows, runtime, venv_python};

#[test]
fn duckdb_reads_a_written_partition_with_the_same_counts() {
    let Some(python) = venv_python("the DuckDB test") else { return };
    let rt = runtime();
    let (h, dir) = local("duckdb");
    let schema = loupe_schema::http::http_events().arrow_schema();
    // Three hours, uneven counts, two paths.
    let batches =
        [rows(1_200, "/a", DAY0, HOUR), rows(700, "/b", DAY0 + HOUR, HOUR), rows(333, "/a", DAY0 + 2 * HOUR, HOUR)];
    rt.block_on(h.write_batches("http_events", &batches, DAY0 + 3 * HOUR)).expect("write");
    let (ours, _) = rt.block_on(h.read("http_events", &schema, None, TimeBounds::default())).expect("read");
    assert_eq!(count(&ours), 2_233);

    let script = "import sys, duckdb\n\
        root = sys.argv[1]\n\
        q = f\"SELECT org, vizier, hour, req_path, count(*), min(epoch_ns(time_)) FROM read_parquet('{root}/http_events/*/*/*/*.parquet', hive_partitioning=true) GROUP BY ALL ORDER BY ALL\"\n\
        for r in duckdb.sql(q).fetchall():\n\
        \x20   print('|'.join(str(c) for c in r))\n\
        one = f\"SELECT count(*) FROM read_parquet('{root}/http_events/org=acme/vizier=vz-1/hour=2026-12-03T01/*.parquet')\"\n\
        print(duckdb.sql(one).fetchone()[0])\n";
    let out = Command::new(&python).args(["-c", script, &dir.display().to_string()]).output().expect("run python");
    assert!(out.status.success(), "duckdb: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        [
            format!("acme|vz-1|2026-12-03T00|/a|1200|{DAY0}"),
            format!("acme|vz-1|2026-12-03T01|/b|700|{}", DAY0 + HOUR),
            format!("acme|vz-1|2026-12-03T02|/a|333|{}", DAY0 + 2 * HOUR),
            "700".to_string(),
        ],
        "{text}"
    );
}
