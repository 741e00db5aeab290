"""Polars and DuckDB sides of `scripts/bench-pxl.sh`: the two queries of `pxl_vs` over the same rows.

Reads the Arrow IPC file the Rust bench wrote (only the columns the queries use, as a column store
would), loads it into each engine's own memory format once, then times each query: the median of
`runs` runs after one warm-up. Prints `RESULT <query> <engine> <median_ms> <check>` lines in the
Rust bench's format; the check is the same total (rows counted) that every engine must agree on.
Quantiles are exact in both (Polars has no sketch; DuckDB's `quantile_cont`), as in the Rust loop.

Usage: bench_pxl.py DATA.arrow THREADS RUNS
"""

import os
import statistics
import sys
import time

path, threads, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
# Both read their thread counts when imported or connected: set before.
os.environ["POLARS_MAX_THREADS"] = str(threads)

import duckdb  # noqa: E402
import polars as pl  # noqa: E402
import pyarrow.ipc as ipc  # noqa: E402

COLUMNS = ["time_", "remote_addr", "req_method", "req_path", "resp_status", "latency"]


def timed(f):
    f()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        out = f()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3, out


def polars_side():
    assert pl.thread_pool_size() == threads, pl.thread_pool_size()
    df = pl.read_ipc(path, columns=COLUMNS).rechunk()

    def groupby():
        return (
            df.lazy()
            .filter(pl.col("resp_status") >= 200)
            .group_by("req_path")
            .agg(
                pl.col("latency").count().alias("n"),
                pl.col("latency").mean().alias("mean"),
                pl.col("latency").quantile(0.99, interpolation="linear").alias("p99"),
            )
            .collect()
        )

    def merge():
        lf = df.lazy()
        peers = lf.group_by("remote_addr").agg(pl.col("latency").mean().alias("peer_mean"))
        return (
            lf.join(peers, on="remote_addr", how="inner")
            .filter(pl.col("latency") > pl.col("peer_mean") * 2)
            .group_by("req_path")
            .agg(pl.col("latency").count().alias("slow"))
            .collect()
        )

    ms, out = timed(groupby)
    print(f"RESULT groupby polars {ms:.1f} {out['n'].sum()}", flush=True)
    ms, out = timed(merge)
    print(f"RESULT merge polars {ms:.1f} {out['slow'].sum()}", flush=True)


def duckdb_side():
    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    arrow_table = ipc.open_file(path).read_all().select(COLUMNS)
    con.register("src", arrow_table)
    # DuckDB's own table format, as Polars gets its own: the queries then scan native storage.
    con.execute("CREATE TABLE http_events AS SELECT * FROM src")
    con.unregister("src")
    del arrow_table

    groupby_sql = (
        "SELECT req_path, count(latency) AS n, avg(latency) AS mean, quantile_cont(latency, 0.99) AS p99 "
        "FROM http_events WHERE resp_status >= 200 GROUP BY req_path"
    )
    merge_sql = (
        "WITH peers AS (SELECT remote_addr, avg(latency) AS peer_mean FROM http_events GROUP BY remote_addr) "
        "SELECT e.req_path, count(e.latency) AS slow FROM http_events e JOIN peers p "
        "ON e.remote_addr = p.remote_addr WHERE e.latency > p.peer_mean * 2 GROUP BY e.req_path"
    )
    ms, out = timed(lambda: con.execute(groupby_sql).fetchall())
    print(f"RESULT groupby duckdb {ms:.1f} {sum(r[1] for r in out)}", flush=True)
    ms, out = timed(lambda: con.execute(merge_sql).fetchall())
    print(f"RESULT merge duckdb {ms:.1f} {sum(r[1] for r in out)}", flush=True)


print(f"INFO polars={pl.__version__} duckdb={duckdb.__version__}", flush=True)
polars_side()
duckdb_side()
