#!/usr/bin/env bash
# Client libraries the protocol captures drive that Debian does not package, from PyPI, pinned, in a virtualenv
# (LOUPE_CLIENT_VENV, default target/client-venv): nats-py (NATS's own asyncio client) and psycopg 3 (its binary
# wheel carries libpq; it speaks PostgreSQL's extended protocol). Prints the venv's python.
# Idempotent: installs nothing when they already import.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${LOUPE_CLIENT_VENV:-$here/../target/client-venv}"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import nats, psycopg' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "nats-py==2.9.0" "psycopg[binary]==3.2.3" >&2
fi
echo "$venv/bin/python"
