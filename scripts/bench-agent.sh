#!/usr/bin/env bash
# The agent's cost (issue 13), in one run on this host:
#  1. worst case: nginx (1 worker, 12-byte body) on loopback under `wrk -t1 -c16`, alternating runs
#     without and with the agent tracing; prints each round, then the median on/off throughput ratio with
#     its spread (min..max) and the agent's CPU per traced request;
#  2. realistic case: the same server at a fixed 10 k req/s (the open-loop `loadgen` example), without and
#     with the agent: p50/p99 latency and the agent's CPU in cores;
#  3. completeness: 100,000 keep-alive requests at full speed, then the http_events rows of each side
#     (server: nginx, client: loadgen) against the requests sent, and the agent's drop counters;
#  4. memory: the agent under a 96 MiB budget (the smallest) (LOUPE_BENCH_BUDGET_MB) while http_events receives more
#     than 10x the rows it can hold; reports the peak resident size (VmHWM) against the budget.
# The agent is the collector alone (`crates/collector/examples/agent.rs`, the same code `loupe up`
# runs, built in a fraction of the time); LOUPE_BENCH_AGENT=<binary> measures another (e.g.
# target/release/loupe with LOUPE_BENCH_AGENT_ARGS="up --listen 127.0.0.1:0").
# Other load on the host skews every figure: compare within one run, and repeat.
# Usage (as root): bash scripts/bench-agent.sh [seconds-per-run] [rounds]     (defaults: 10 s, 5 rounds)
#        LOUPE_BENCH_ONLY=worst|realistic|completeness|memory runs one part.
#        LOUPE_BENCH_HTTP2=1 runs every part over cleartext HTTP/2 instead: nginx `listen ... http2`, driven by
#        h2load (nghttp2-client) with one request in flight per connection as wrk and loadgen have: `-t1 -c16
#        -m1` (worst case), `--rps` per connection for the fixed rate (p50/p99 from its per-request log), `-n`
#        for the counted runs.
#        LOUPE_BENCH_FLOOR=1 adds to each worst-case round two runs that split the cost: one with the probes
#        attached but every event filtered out in the kernel (the agent traces pid 1 only): the part that is
#        the tracepoints themselves; one that captures everything but parses nothing (LOUPE_BENCH_PARSE=none:
#        the kernel copies every event into the ring, user space decodes and tracks it, then drops it): the
#        capture apart from the parsers and rows.
# Needs: nginx-light, wrk (Debian); builds the two examples in release mode.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
rounds=${2:-5}
only=${LOUPE_BENCH_ONLY:-all}
http2=${LOUPE_BENCH_HTTP2:-0}
for p in nginx wrk; do command -v $p >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light wrk >/dev/null; }; done
if [[ $http2 == 1 ]] && ! command -v h2load >/dev/null; then
  apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nghttp2-client >/dev/null
fi
cargo build --release -p loupe-collector --example agent --example loadgen >/dev/null 2>&1
target=${CARGO_TARGET_DIR:-target}/release/examples
agent=${LOUPE_BENCH_AGENT:-$target/agent}
read -r -a agent_args <<< "${LOUPE_BENCH_AGENT_ARGS:-}"
loadgen=$target/loadgen
dir=$(mktemp -d)
port=18080
cat > "$dir/nginx.conf" <<CONF
daemon off; master_process off; worker_processes 1; pid $dir/nginx.pid; error_log $dir/error.log;
events { worker_connections 1024; }
http { access_log off; client_body_temp_path $dir; proxy_temp_path $dir; fastcgi_temp_path $dir; uwsgi_temp_path $dir; scgi_temp_path $dir;
  server { listen 127.0.0.1:$port$([[ $http2 == 1 ]] && echo ' http2'); keepalive_requests 1000000; location / { return 200 'hello world\n'; } } }
CONF
nginx -c "$dir/nginx.conf" -p "$dir" & nginx_pid=$!
agent_pid=
trap 'kill $nginx_pid $agent_pid 2>/dev/null; rm -rf "$dir"' EXIT
sleep 0.5

hz=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
start_agent() {
  # Emptied first, so the previous run's "tracing" is not taken for this one's. Loading (the verifier)
  # takes seconds, more on a busy host: wait up to a minute.
  : > "$dir/agent.out"
  LOUPE_LOG=warn "$agent" ${agent_args[@]+"${agent_args[@]}"} > "$dir/agent.out" 2>&1 & agent_pid=$!
  for _ in $(seq 600); do grep -q tracing "$dir/agent.out" 2>/dev/null && break; sleep 0.1; done
  sleep 1
}
stop_agent() { kill -TERM "$agent_pid"; wait "$agent_pid" 2>/dev/null || true; agent_pid=; }
# Prints "<req/s> <nginx us/request> <wrk us/request>": the CPU each side spent per request (user +
# system, BPF programs included), which other load on the host skews far less than throughput.
run_wrk() {
  local n0 n1 out
  n0=$(cpu_ticks "$nginx_pid")
  if [[ $http2 == 1 ]]; then
    out=$(sh -c 'h2load -t1 -c16 -m1 -D "$1" "$2" | awk "/^finished in/ {print \$4}"; awk "{print \$16 + \$17}" /proc/$$/stat' _ "$secs" "http://127.0.0.1:$port/" | tr '\n' ' ')
  else
    out=$(sh -c 'wrk -t1 -c16 -d"$1s" "$2" | awk "/Requests\/sec/ {print \$2}"; awk "{print \$16 + \$17}" /proc/$$/stat' _ "$secs" "http://127.0.0.1:$port/" | tr '\n' ' ')
  fi
  n1=$(cpu_ticks "$nginx_pid")
  echo "$out" | awk -v n=$((n1 - n0)) -v hz="$hz" -v s="$secs" '{r = $1 * s; printf "%s %.2f %.2f\n", $1, n / hz * 1e6 / r, $2 / hz * 1e6 / r}'
}
# Sends $1 keep-alive requests at full speed over 16 connections; prints "requests=<answered>".
send_n() {
  if [[ $http2 == 1 ]]; then
    h2load -t1 -c16 -m1 -n "$1" "http://127.0.0.1:$port/" | awk '/^requests:/ {print "requests=" $8}'
  else
    "$loadgen" "127.0.0.1:$port" 16 0 120 "$1"
  fi
}
# 10,000 requests a second over 16 connections for $secs; prints "requests=N p50_us=X p99_us=Y" (and more for
# loadgen).
fixed_rate() {
  if [[ $http2 == 1 ]]; then
    rm -f "$dir/h2load.log" # h2load appends to it
    h2load -t1 -c16 -m1 --rps=625 -D "$secs" --log-file="$dir/h2load.log" "http://127.0.0.1:$port/" > /dev/null
    sort -n -k3 "$dir/h2load.log" | awk '{v[NR] = $3} END {printf "requests=%d p50_us=%d p99_us=%d\n", NR, v[int(NR * 0.5)], v[int(NR * 0.99)]}'
  else
    "$loadgen" "127.0.0.1:$port" 16 10000 "$secs"
  fi
}
# median, min and max of the numbers on stdin
stats() { sort -g | awk '{v[NR]=$1} END {m = NR % 2 ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2; printf "%.3f (min %.3f, max %.3f, n %d)", m, v[1], v[NR], NR}'; }
field() { tr ' ' '\n' | awk -F= -v k="$1" '$1 == k {print $2}'; }
# $1 / $2
quotient() { awk -v a="$1" -v b="$2" 'BEGIN {print a / b}'; }
# Microseconds of CPU per request: $1 clock ticks over a run of $secs at $2 req/s.
us_per_request() { awk -v t="$1" -v hz="$hz" -v r="$2" -v s="$secs" 'BEGIN {print t / hz * 1e6 / (r * s)}'; }
# CPU per request that a traced run added to nginx and wrk: "<nginx traced> <nginx off> <wrk traced> <wrk off>".
added_us() { awk -v a="$1" -v b="$2" -v c="$3" -v d="$4" 'BEGIN {print a - b + c - d}'; }

if [[ $only == all || $only == worst ]]; then
  echo "== worst case: nginx, $([[ $http2 == 1 ]] && echo 'HTTP/2, h2load -t1 -c16 -m1' || echo 'wrk -t1 -c16'), ${secs}s runs, $rounds off/on alternations"
  : > "$dir/ratios"; : > "$dir/cpu"; : > "$dir/floor"; : > "$dir/kernel"; : > "$dir/floorcpu"
  : > "$dir/capture"; : > "$dir/capturecpu"; : > "$dir/captureagent"
  for r in $(seq "$rounds"); do
    if [[ ${LOUPE_BENCH_FLOOR:-} == 1 ]]; then
      LOUPE_BENCH_ONLY_TGID=1 start_agent
      read -r floor floor_nginx floor_wrk < <(run_wrk)
      stop_agent
      LOUPE_BENCH_PARSE=none start_agent
      t0=$(cpu_ticks "$agent_pid")
      read -r capture capture_nginx capture_wrk < <(run_wrk)
      t1=$(cpu_ticks "$agent_pid")
      stop_agent
      capture_us=$(us_per_request $((t1 - t0)) "$capture")
    fi
    read -r off off_nginx off_wrk < <(run_wrk)
    start_agent
    t0=$(cpu_ticks "$agent_pid")
    read -r on on_nginx on_wrk < <(run_wrk)
    t1=$(cpu_ticks "$agent_pid")
    stop_agent
    ratio=$(quotient "$on" "$off")
    us=$(us_per_request $((t1 - t0)) "$on")
    echo "$ratio" >> "$dir/ratios"; echo "$us" >> "$dir/cpu"
    printf 'round %d: off %.0f req/s, on %.0f req/s, ratio %.3f, agent CPU %.2f us per request\n' "$r" "$off" "$on" "$ratio" "$us"
    printf 'round %d: CPU per request (us) nginx off %.2f on %.2f, wrk off %.2f on %.2f\n' "$r" "$off_nginx" "$on_nginx" "$off_wrk" "$on_wrk"
    added_us "$on_nginx" "$off_nginx" "$on_wrk" "$off_wrk" >> "$dir/kernel"
    if [[ ${LOUPE_BENCH_FLOOR:-} == 1 ]]; then
      quotient "$floor" "$off" >> "$dir/floor"
      printf 'round %d: probes attached, all filtered in the kernel: %.0f req/s, nginx %.2f us, wrk %.2f us per request\n' "$r" "$floor" "$floor_nginx" "$floor_wrk"
      added_us "$floor_nginx" "$off_nginx" "$floor_wrk" "$off_wrk" >> "$dir/floorcpu"
      quotient "$capture" "$off" >> "$dir/capture"
      echo "$capture_us" >> "$dir/captureagent"
      printf 'round %d: captured, nothing parsed: %.0f req/s, nginx %.2f us, wrk %.2f us, agent %.2f us per request\n' "$r" "$capture" "$capture_nginx" "$capture_wrk" "$capture_us"
      added_us "$capture_nginx" "$off_nginx" "$capture_wrk" "$off_wrk" >> "$dir/capturecpu"
    fi
  done
  if [[ ${LOUPE_BENCH_FLOOR:-} == 1 ]]; then
    echo "worst case floor (probes attached, nothing traced) / off: median $(stats < "$dir/floor")"
    echo "worst case floor: CPU added to nginx + wrk per request (us): median $(stats < "$dir/floorcpu")"
    echo "worst case capture only (copied to the ring, drained, not parsed) / off: median $(stats < "$dir/capture")"
    echo "worst case capture only: CPU added to nginx + wrk per request (us): median $(stats < "$dir/capturecpu")"
    echo "worst case capture only: agent CPU per request (us): median $(stats < "$dir/captureagent")"
  fi
  echo "worst case on/off throughput ratio: median $(stats < "$dir/ratios")"
  echo "worst case agent CPU per traced request (us): median $(stats < "$dir/cpu")"
  echo "worst case CPU added to nginx + wrk per request, in their syscalls and BPF programs (us): median $(stats < "$dir/kernel")"
fi

if [[ $only == all || $only == realistic ]]; then
  echo "== realistic case: nginx at a fixed 10,000 req/s over 16 connections$([[ $http2 == 1 ]] && echo ', HTTP/2 (h2load --rps)'), ${secs}s runs, $rounds off/on alternations"
  : > "$dir/p99"; : > "$dir/cores"
  for r in $(seq "$rounds"); do
    off=$(fixed_rate)
    start_agent
    t0=$(cpu_ticks "$agent_pid")
    on=$(fixed_rate)
    t1=$(cpu_ticks "$agent_pid")
    stop_agent
    cores=$(awk -v t=$((t1 - t0)) -v hz="$hz" -v s="$secs" 'BEGIN {print t / hz / s}')
    p99_ratio=$(quotient "$(echo "$on" | field p99_us)" "$(echo "$off" | field p99_us)")
    echo "$p99_ratio" >> "$dir/p99"; echo "$cores" >> "$dir/cores"
    echo "round $r: off [$off]"
    echo "round $r: on  [$on] agent $cores cores, p99 on/off $p99_ratio"
  done
  echo "realistic p99 on/off: median $(stats < "$dir/p99")"
  echo "realistic agent CPU (cores): median $(stats < "$dir/cores")"
fi

if [[ $only == all || $only == completeness ]]; then
  echo "== completeness: 100,000 keep-alive requests at full speed over 16 connections$([[ $http2 == 1 ]] && echo ', HTTP/2')"
  LOUPE_BENCH_PORT=$port start_agent
  sent=$(send_n 100000)
  sleep 1
  stop_agent
  n=$(echo "$sent" | field requests)
  echo "client: $sent"
  grep -E '^(http_events|agent_stats)' "$dir/agent.out" || true
  server=$(awk '/^http_events/ {for (i = 1; i <= NF; i++) if ($i ~ /^server_rows=/) {sub(/.*=/, "", $i); print $i}}' "$dir/agent.out")
  client=$(awk '/^http_events/ {for (i = 1; i <= NF; i++) if ($i ~ /^client_rows=/) {sub(/.*=/, "", $i); print $i}}' "$dir/agent.out")
  printf 'completeness: server side %s/%s (%.3f%%), client side %s/%s (%.3f%%)\n' \
    "$server" "$n" "$(awk -v a="$server" -v b="$n" 'BEGIN {print 100 * a / b}')" \
    "$client" "$n" "$(awk -v a="$client" -v b="$n" 'BEGIN {print 100 * a / b}')"
fi

if [[ $only == all || $only == memory ]]; then
  budget=${LOUPE_BENCH_BUDGET_MB:-96}
  echo "== memory: a ${budget} MiB budget under more than 10x the traffic http_events holds"
  LOUPE_MEMORY_BUDGET_MB=$budget LOUPE_BENCH_PORT=$port start_agent
  rss_idle=$(awk '/^VmRSS/ {print $2}' "/proc/$agent_pid/status")
  sent=0
  # Batches of 200,000 requests (400,000 rows, both sides) until http_events has evicted 10x what it holds.
  for _ in $(seq 10); do
    send_n 200000 > /dev/null
    sent=$((sent + 200000))
    kill -USR1 "$agent_pid"
    sleep 1.5
    held=$(awk '/^http_events:/ {print $5}' "$dir/agent.out" | tail -1)
    evicted=$(awk '/^http_events:/ {print $12}' "$dir/agent.out" | tail -1)
    [[ -n $held && $held -gt 0 && $evicted -ge $((10 * held)) ]] && break
  done
  peak=$(awk '/^VmHWM/ {print $2}' "/proc/$agent_pid/status")
  stop_agent
  grep -E '^http_events:' "$dir/agent.out" | tail -1
  grep -E '^agent_stats .*(dropped|evicted|messages)' "$dir/agent.out" || true
  awk -v p="$peak" -v i="$rss_idle" -v b="$budget" -v s="$sent" 'BEGIN {
    printf "memory: %d requests; resident at start %.1f MiB, peak %.1f MiB = %.3f x the %d MiB budget\n", s, i / 1024, p / 1024, p / 1024 / b, b }'
fi
