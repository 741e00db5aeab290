#!/usr/bin/env bash
# The whole test suite, as CI runs it: system packages the end-to-end tests drive, then format,
# lint, build and test. Run as root: the eBPF tests load real programs.
set -euo pipefail
cd "$(dirname "$0")/.."

# Real peers for the end-to-end tests, from Debian (python3 and curl are usually present).
need=()
command -v nginx >/dev/null 2>&1 || need+=(nginx-light)
command -v curl >/dev/null 2>&1 || need+=(curl)
[ -x /usr/bin/python3 ] || need+=(python3)
# The metastore suite runs against a real PostgreSQL 15; sessions against a real Redis.
[ -x /usr/lib/postgresql/15/bin/postgres ] || need+=(postgresql-15)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
if ((${#need[@]})); then
  echo "installing test peers: ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

start=$(date +%s)
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# The end-to-end tests drive the real `loupe` and `px` binaries.
cargo build --workspace --bins --locked
cargo test --workspace --locked
echo "test suite finished in $(( $(date +%s) - start ))s"
