#!/usr/bin/env bash
# The CPU profiler's cost (issue 19), in one run on this host: a CPU-bound program (one copy per core, so
# every core is busy) counts loop iterations for a fixed time, alternately without and with the profiler
# sampling at 99 Hz. Prints each round, then the median on/off throughput ratio with its spread
# (min..max); the same ratio of work per CPU-second of the busy program less the profiler's own share
# of the machine (steadier where the hypervisor takes time away); and
# the profiler's own CPU (user + system of its process; the BPF program runs in the
# sampled processes' context and shows up as their lost throughput instead).
# The profiler is `crates/collector/examples/profile.rs`: the same `Profiler` source `loupe up` runs,
# without the socket tracer. Other load on the host skews every figure: compare within one run, and repeat.
# Usage (as root): bash scripts/bench-profiler.sh [seconds-per-run] [rounds]   (defaults: 10 s, 5 rounds)
#        LOUPE_PROFILER_STACK_BYTES=0 measures frame-pointer stacks counted in the kernel instead of the
#        default copy of 16 KiB of user stack per sample for .eh_frame unwinding.
#        LOUPE_BENCH_PROFILER=<binary> runs that build of the example instead of building a release one.
# Needs: clang (or cc); builds the example in release mode.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
rounds=${2:-5}
hz=${LOUPE_PROFILER_HZ:-99}
cores=$(nproc)
# LOUPE_BENCH_PROFILER=<binary> measures another build of the example (e.g. a debug one).
profiler=${LOUPE_BENCH_PROFILER:-${CARGO_TARGET_DIR:-target}/release/examples/profile}
[ -n "${LOUPE_BENCH_PROFILER:-}" ] || cargo build --release -p loupe-collector --example profile >/dev/null 2>&1
dir=$(mktemp -d)
agent_pid=
trap 'kill $agent_pid 2>/dev/null; rm -rf "$dir"' EXIT

cat > "$dir/busy.c" <<'C'
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
volatile unsigned long sink;
__attribute__((noinline)) unsigned long hot(unsigned long n) {
    unsigned long x = 0;
    for (unsigned long i = 0; i < n; i++) x = x * 31 + (i ^ (x >> 7));
    return x;
}
static double elapsed(struct timespec a, struct timespec b) {
    return (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;
}
/* Prints rounds per wall second and rounds per second of its own CPU time. */
int main(int argc, char **argv) {
    struct timespec t0, t, c0, c;
    double secs = atof(argv[1]);
    unsigned long rounds = 0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
    do {
        sink += hot(100000);
        rounds++;
        clock_gettime(CLOCK_MONOTONIC, &t);
    } while (elapsed(t0, t) < secs);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c);
    printf("%.0f %.0f\n", rounds / elapsed(t0, t), rounds / elapsed(c0, c));
    return 0;
}
C
cc=$(command -v clang || command -v cc)
"$cc" -O2 -fomit-frame-pointer -o "$dir/busy" "$dir/busy.c"

clk=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# Runs one busy copy per core for $secs; prints their summed rounds per second.
run_busy() {
  local pids=() i
  for i in $(seq "$cores"); do "$dir/busy" "$secs" > "$dir/busy.$i" & pids+=($!); done
  wait "${pids[@]}"
  cat "$dir"/busy.* | awk '{w += $1; c += $2} END {printf "%.0f %.0f", w, c}'
}
start_profiler() {
  : > "$dir/profiler.out"
  LOUPE_LOG=warn LOUPE_PROFILER_HZ=$hz "$profiler" > "$dir/profiler.out" 2>&1 & agent_pid=$!
  for _ in $(seq 600); do grep -q profiling "$dir/profiler.out" 2>/dev/null && break; sleep 0.1; done
  sleep 1
}
stop_profiler() { kill -TERM "$agent_pid"; wait "$agent_pid" 2>/dev/null || true; agent_pid=; }

echo "busy loop on $cores cores, ${secs}s per run, $rounds rounds, profiler at ${hz} Hz, stack copy ${LOUPE_PROFILER_STACK_BYTES:-16384} bytes"
ratios=()
cpus=()
work=()
for r in $(seq "$rounds"); do
  read -r off off_cpu <<< "$(run_busy)"
  start_profiler
  t0=$(cpu_ticks "$agent_pid")
  read -r on on_cpu <<< "$(run_busy)"
  t1=$(cpu_ticks "$agent_pid")
  stop_profiler
  ratio=$(awk -v a="$on" -v b="$off" 'BEGIN {printf "%.4f", a / b}')
  cpu=$(awk -v t="$((t1 - t0))" -v hz="$clk" -v s="$secs" 'BEGIN {printf "%.2f", 100 * t / hz / s}')
  # Work per CPU-second of the busy program, less the machine share the profiler's own process took:
  # time the hypervisor gave elsewhere is in neither, while the sampling interrupts and the BPF program
  # are charged to the busy program (on kernels without CONFIG_IRQ_TIME_ACCOUNTING; with it, interrupt
  # time is left out and only the wall figure shows it).
  per_cpu=$(awk -v a="$on_cpu" -v b="$off_cpu" -v p="$cpu" -v n="$cores" 'BEGIN {printf "%.4f", a / b - p / 100 / n}')
  ratios+=("$ratio")
  cpus+=("$cpu")
  work+=("$per_cpu")
  echo "round $r: off $off/s, on $on/s, on/off $ratio (per CPU-second, profiler included: $per_cpu), profiler CPU ${cpu}% of one core"
done
tail -n 2 "$dir/profiler.out" | sed 's/^/last run: /'
printf '%s\n' "${ratios[@]}" | sort -n | awk '{v[NR] = $1} END {
  m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
  printf "throughput on/off: median %.4f (loss %.2f%%), spread %.4f..%.4f over %d rounds\n", m, 100 * (1 - m), v[1], v[NR], NR }'
printf '%s\n' "${work[@]}" | sort -n | awk '{v[NR] = $1} END {
  m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
  printf "work per CPU-second on/off, the profiler'"'"'s own CPU taken off: median %.4f (loss %.2f%%), spread %.4f..%.4f\n", m, 100 * (1 - m), v[1], v[NR] }'
printf '%s\n' "${cpus[@]}" | sort -n | awk '{v[NR] = $1} END {
  m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
  printf "profiler CPU while profiling the busy cores: median %.2f%% of one core, spread %.2f..%.2f%%\n", m, v[1], v[NR] }'
