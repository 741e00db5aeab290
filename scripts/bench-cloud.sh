#!/usr/bin/env bash
# The cloud's speed and footprint on this machine: idle RSS of `loupe up` (no tracing), then
# login and authenticated GET throughput and latency under wrk on loopback.
# Usage: bash scripts/bench-cloud.sh [seconds-per-run]
# Needs: wrk, curl (Debian); builds loupe in release mode.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
command -v wrk >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
cargo build --release --bin loupe >/dev/null
loupe=${CARGO_TARGET_DIR:-target}/release/loupe
dir=$(mktemp -d)
api=127.0.0.1:18200
tls=127.0.0.1:18400
LOUPE_LOG=warn "$loupe" up --no-trace --listen 127.0.0.1:18300 --api-listen $api --proxy-listen $tls --data-dir "$dir" & pid=$!
trap 'kill $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 100); do curl -sf "http://$api/healthz" >/dev/null && break; sleep 0.1; done
sleep 2
printf 'idle RSS of loupe up (agent store + cloud services, gateway and TLS proxy, no tracing): %d MiB\n' $(( $(awk '/VmRSS/ {print $2}' /proc/$pid/status) / 1024 ))

json='content-type: application/json'
token=$(curl -sf -H "$json" -d '{"email":"admin@default.com","password":"admin"}' "http://$api/api/v1/auth/login" | sed 's/.*"token":"\([^"]*\)".*/\1/')
token=$(curl -sf -H "$json" -H "authorization: Bearer $token" \
  -d '{"current_password":"admin","new_password":"bench passphrase 1"}' "http://$api/api/v1/auth/password" | sed 's/.*"token":"\([^"]*\)".*/\1/')

cat > "$dir/login.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"email":"admin@default.com","password":"bench passphrase 1"}'
wrk.headers["content-type"] = "application/json"
LUA
echo "== authenticated GET /api/v1/auth/me (2 threads, 16 connections)"
wrk -t2 -c16 -d"${secs}s" --latency -H "authorization: Bearer $token" "http://$api/api/v1/auth/me" | grep -E "Requests/sec|99%|50%"
echo "== the same over TLS through the proxy (2 threads, 16 connections)"
wrk -t2 -c16 -d"${secs}s" --latency -H "authorization: Bearer $token" "https://$tls/api/v1/auth/me" | grep -E "Requests/sec|99%|50%"
# Logins from one address would trip the brute-force throttle after 20 failures, but these succeed:
# each costs one argon2id verification, which is the point of measuring it.
echo "== POST /api/v1/auth/login (2 threads, 4 connections)"
wrk -t2 -c4 -d"${secs}s" --latency -s "$dir/login.lua" "http://$api/api/v1/auth/login" | grep -E "Requests/sec|99%|50%|Non-2xx"
printf 'RSS after load: %d MiB\n' $(( $(awk '/VmRSS/ {print $2}' /proc/$pid/status) / 1024 ))
