#!/usr/bin/env bash
# PxL's query speed (issue 15), in one run on this host: the same 10 M `http_events` rows, 2 threads, two
# queries (filter + groupby + count/mean/p99, and a merge), through
#   pxl             the compiler and engine `px run` uses, minus the network (crates/engine/benches/pxl_vs.rs)
#   datafusion_sql  the same query as DataFusion SQL on a MemTable of the same batches
#   rust_loop       a hand-written loop over the Arrow arrays, one thread per partition, exact p99
#   polars, duckdb  the Python packages (exact quantiles), reading the very rows the Rust side wrote as
#                   an Arrow IPC file, each loaded once into its own memory format
# then prints a table of medians and each one's ratio to Polars and to DataFusion SQL (the baselines,
# measured in this same run). Every engine must count the same rows (the `check` column) or this fails.
# Other load on the host skews every figure: the load average is printed before and after.
# Usage: bash scripts/bench-pxl.sh        env: PXL_VS_ROWS (10000000), PXL_VS_THREADS (2), PXL_VS_RUNS (5),
#        PXL_VS_EXPLAIN=1 (DataFusion's per-operator times), PXL_BENCH_VENV (target/pxl-bench-venv).
# Needs: python3 with venv; pip installs polars, duckdb and pyarrow into the venv on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}
venv=${PXL_BENCH_VENV:-$target/pxl-bench-venv}
threads=${PXL_VS_THREADS:-2}
runs=${PXL_VS_RUNS:-5}
# In memory (about 1 GB): the Rust side writes it, Python reads it, then it is removed. An absolute path, since
# cargo runs the bench from the crate's directory.
data=${PXL_VS_DATA:-/dev/shm/pxl_vs_http_events.arrow}
out=$(mktemp)
trap 'rm -f "$out" "$data"' EXIT

if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q 'polars>=1.30' 'duckdb>=1.3' 'pyarrow>=20'
fi

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)  ($(nproc) cores)"
PXL_VS_DATA=$data PXL_VS_THREADS=$threads PXL_VS_RUNS=$runs \
    cargo bench -q -p loupe-engine --bench pxl_vs | tee -a "$out"
"$venv/bin/python" scripts/bench_pxl.py "$data" "$threads" "$runs" | tee -a "$out"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"

echo
awk '
$1 == "RESULT" { q[NR] = $2; e[NR] = $3; ms[NR] = $4; chk[NR] = $5; t[$2 "/" $3] = $4; c[$2] = c[$2] ? c[$2] : $5
                 if (chk[NR] != c[$2]) { bad = bad " " $2 "/" $3 } }
END {
    printf "%-8s %-15s %10s %10s %10s %12s\n", "query", "engine", "median_ms", "vs_polars", "vs_df_sql", "check"
    for (i = 1; i <= NR; i++) if (i in q) {
        p = t[q[i] "/polars"]; s = t[q[i] "/datafusion_sql"]
        printf "%-8s %-15s %10.1f %10s %10s %12s\n", q[i], e[i], ms[i], p ? sprintf("%.2f", ms[i] / p) : "-",
            s ? sprintf("%.2f", ms[i] / s) : "-", chk[i]
    }
    if (bad) { print "engines disagree:" bad; exit 1 }
    for (k in t) if (k ~ /\/pxl$/) { split(k, a, "/"); p = t[a[1] "/polars"]
        if (p) printf "%s: pxl/polars = %.2f (goal <= 1.00)\n", a[1], t[k] / p }
}' "$out"
