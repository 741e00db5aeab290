#!/usr/bin/env bash
# The Python side of loupe-history's tests: a virtualenv (LOUPE_HISTORY_VENV, default target/history-venv) with
# `moto` in server mode (a real S3 API on loopback, started by the tests) and DuckDB's Python package (reads a
# written partition as it is), both from PyPI, pinned. Idempotent: does nothing when both already import.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${LOUPE_HISTORY_VENV:-$here/../target/history-venv}"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import moto, duckdb, flask' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "moto[server]==5.2.5" "duckdb==1.4.3"
fi
echo "$venv"
