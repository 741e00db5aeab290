#!/usr/bin/env bash
# The agent's cost: nginx on loopback under wrk, first without Loupe, then with `loupe up` tracing,
# in one run. Prints the throughput ratio and the agent's CPU time per 1,000 requests.
# Usage (as root): bash scripts/bench-agent.sh [seconds-per-run] [rounds]
# Needs: nginx-light, wrk (Debian); builds loupe in release mode.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
rounds=${2:-3}
for p in nginx wrk; do command -v $p >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light wrk >/dev/null; }; done
cargo build --release --bin loupe >/dev/null
loupe=${CARGO_TARGET_DIR:-target}/release/loupe
dir=$(mktemp -d)
port=18080
cat > "$dir/nginx.conf" <<CONF
daemon off; master_process off; worker_processes 1; pid $dir/nginx.pid; error_log $dir/error.log;
events { worker_connections 1024; }
http { access_log off; client_body_temp_path $dir; proxy_temp_path $dir; fastcgi_temp_path $dir; uwsgi_temp_path $dir; scgi_temp_path $dir;
  server { listen 127.0.0.1:$port; keepalive_requests 1000000; location / { return 200 'hello world\n'; } } }
CONF
nginx -c "$dir/nginx.conf" -p "$dir" & nginx_pid=$!
trap 'kill $nginx_pid ${loupe_pid:-} 2>/dev/null; rm -rf "$dir"' EXIT
sleep 0.5

run_wrk() { wrk -t1 -c20 -d"${secs}s" "http://127.0.0.1:$port/" | awk '/Requests\/sec/ {print $2}'; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

off_total=0; on_total=0; cpu_total=0; req_total=0
for r in $(seq "$rounds"); do
  off=$(run_wrk)
  LOUPE_LOG=warn "$loupe" up --listen 127.0.0.1:0 & loupe_pid=$!
  sleep 2
  t0=$(cpu_ticks $loupe_pid)
  on=$(run_wrk)
  t1=$(cpu_ticks $loupe_pid)
  kill $loupe_pid; wait $loupe_pid 2>/dev/null || true; loupe_pid=
  reqs=$(awk -v r="$on" -v s="$secs" 'BEGIN {print r * s}')
  printf 'round %d: off %.0f req/s, on %.0f req/s, ratio %.3f, agent cpu %.1f ms per 1k requests\n' \
    "$r" "$off" "$on" "$(awk -v a="$on" -v b="$off" 'BEGIN {print a / b}')" \
    "$(awk -v t=$((t1 - t0)) -v hz="$hz" -v n="$reqs" 'BEGIN {print t / hz * 1000 / (n / 1000)}')"
  off_total=$(awk -v a="$off_total" -v b="$off" 'BEGIN {print a + b}')
  on_total=$(awk -v a="$on_total" -v b="$on" 'BEGIN {print a + b}')
  cpu_total=$((cpu_total + t1 - t0)); req_total=$(awk -v a="$req_total" -v b="$reqs" 'BEGIN {print a + b}')
done
printf 'agent on/off throughput ratio: %.3f (mean of %d rounds, %ss each); agent CPU: %.2f ms per 1k requests\n' \
  "$(awk -v a="$on_total" -v b="$off_total" 'BEGIN {print a / b}')" "$rounds" "$secs" \
  "$(awk -v t="$cpu_total" -v hz="$hz" -v n="$req_total" 'BEGIN {print t / hz * 1000 / (n / 1000)}')"
