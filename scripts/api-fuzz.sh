#!/usr/bin/env bash
# Schema-driven fuzzing of the cloud REST API against a live server: starts a throwaway `loupe up --no-trace`,
# logs in as the bootstrap admin (changing the default password, as the first login must), creates an API key,
# and runs schemathesis with every check against the served document (/api/v1/openapi.json). Any response that
# breaks the document, any valid request refused, any invalid one accepted, any 5xx: non-zero exit.
#
# Two runs: every operation with the API key (an API key cannot end its own session: logout, refresh and
# password change answer 403 to it, as documented), then the session-only operations (logout, refresh,
# password change) with a session token of their own, which they may end. The success paths of the password
# change and of logout are also checked once by hand below, since a fuzzer cannot know the current password.
#
# Environment: LOUPE_BIN (default target/debug/loupe, built if missing), ST_VENV (a venv with schemathesis;
# default /tmp/st, created with pip if missing), FUZZ_EXAMPLES (test cases per operation, default 25),
# FUZZ_SEED (schemathesis seed, default random), FUZZ_REPORT_DIR (where reports go, default a temp dir).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)

LOUPE_BIN=$(realpath -m "${LOUPE_BIN:-target/debug/loupe}")
ST_VENV=$(realpath -m "${ST_VENV:-/tmp/st}")
FUZZ_EXAMPLES=${FUZZ_EXAMPLES:-25}
work=$(mktemp -d /tmp/loupe-api-fuzz.XXXXXX)
FUZZ_REPORT_DIR=$(realpath -m "${FUZZ_REPORT_DIR:-$work/report}")

if [ ! -x "$LOUPE_BIN" ]; then
  cargo build -p loupe-server --bin loupe
fi
if [ ! -x "$ST_VENV/bin/schemathesis" ]; then
  python3 -m venv "$ST_VENV"
  "$ST_VENV/bin/pip" install --quiet schemathesis
fi

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
api_port=$(free_port)
ops_port=$(free_port)
proxy_port=$(free_port)
base="http://127.0.0.1:$api_port"

"$LOUPE_BIN" up --no-trace --data-dir "$work/data" --api-listen "127.0.0.1:$api_port" \
  --metrics-listen "127.0.0.1:$ops_port" --proxy-listen "127.0.0.1:$proxy_port" >"$work/loupe.log" 2>&1 &
loupe_pid=$!
cleanup() {
  kill "$loupe_pid" 2>/dev/null || true
  wait "$loupe_pid" 2>/dev/null || true
}
trap cleanup EXIT

for _ in $(seq 1 150); do
  curl -fsS "http://127.0.0.1:$ops_port/readyz" >/dev/null 2>&1 && break
  if ! kill -0 "$loupe_pid" 2>/dev/null; then
    echo "loupe up exited; its log:" >&2
    cat "$work/loupe.log" >&2
    exit 1
  fi
  sleep 0.2
done

# POSTs JSON ($3) to $1 with header $2 (or none), insists on status $4, prints the body.
call() {
  local out status
  out=$(curl -sS -o "$work/body" -w '%{http_code}' -X POST "$base$1" -H 'content-type: application/json' \
    ${2:+-H "$2"} -d "$3")
  status=$out
  if [ "$status" != "$4" ]; then
    echo "POST $1 answered $status, expected $4: $(cat "$work/body")" >&2
    exit 1
  fi
  cat "$work/body"
}
field() { python3 -c "import json, sys; print(json.load(sys.stdin)$1)"; }

password="api fuzz $(date +%s%N)"
first=$(call /api/v1/auth/login "" '{"email":"admin@default.com","password":"admin"}' 200)
[ "$(echo "$first" | field '["must_change_password"]')" = True ]
token=$(echo "$first" | field '["token"]')
# The password change's own case: its success path, and the old session's end.
changed=$(call /api/v1/auth/password "authorization: Bearer $token" \
  "{\"current_password\":\"admin\",\"new_password\":\"$password\"}" 200)
[ "$(echo "$changed" | field '["must_change_password"]')" = False ]
call /api/v1/auth/refresh "authorization: Bearer $token" '{}' 401 >/dev/null
token=$(echo "$changed" | field '["token"]')
# Refresh's own case: the new session extends.
token=$(call /api/v1/auth/refresh "authorization: Bearer $token" '{}' 200 | field '["token"]')
key=$(call /api/v1/api-keys "authorization: Bearer $token" '{"description":"api-fuzz"}' 201 | field '["key"]')
# Logout's own case: a second session ends, and then answers 401.
second=$(call /api/v1/auth/login "" "{\"email\":\"admin@default.com\",\"password\":\"$password\"}" 200 | field '["token"]')
call /api/v1/auth/logout "authorization: Bearer $second" '{}' 200 >/dev/null
call /api/v1/auth/logout "authorization: Bearer $second" '{}' 401 >/dev/null

# Runs schemathesis with every check, authenticating through the document's security scheme $1 (so that the
# ignored-auth check can take the credential away) with the credential in $2.
st() {
  local config="$work/$1.toml"
  cp scripts/api-fuzz.toml "$config"
  case $1 in
    apiKey) printf '\n[auth.openapi.apiKey]\napi_key = "%s"\n' "$2" >>"$config" ;;
    bearer) printf '\n[auth.openapi.bearer]\nbearer = "%s"\n' "$2" >>"$config" ;;
  esac
  shift 2
  # From the scratch directory, where schemathesis keeps its cache.
  (cd "$work" && "$ST_VENV/bin/schemathesis" --config-file "$config" run "$base/api/v1/openapi.json" --checks all \
    --max-examples "$FUZZ_EXAMPLES" ${FUZZ_SEED:+--seed "$FUZZ_SEED"} --workers 1 --report junit \
    --report-dir "$FUZZ_REPORT_DIR" --suppress-health-check too_slow "$@")
}

# Taken now: the first run's login cases throttle this email, and it cannot end this session.
session=$(call /api/v1/auth/login "" "{\"email\":\"admin@default.com\",\"password\":\"$password\"}" 200 | field '["token"]')
status=0
echo "== every operation, with an API key"
st apiKey "$key" --phases examples,coverage,fuzzing,stateful || status=1
echo "== the session-only operations, with a session of their own"
st bearer "$session" --phases examples,coverage,fuzzing \
  --include-path-regex '^/api/v1/auth/(logout|refresh|password)$' || status=1

if grep -q 'panicked' "$work/loupe.log"; then
  echo "the server panicked:" >&2
  grep -A5 'panicked' "$work/loupe.log" >&2
  status=1
fi
echo "api-fuzz: $([ $status = 0 ] && echo passed || echo FAILED) in $(($(date +%s) - start))s (reports in $FUZZ_REPORT_DIR)"
exit $status
