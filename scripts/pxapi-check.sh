#!/usr/bin/env bash
# Pixie's Python client against a Loupe cloud: makes a virtualenv (PXAPI_VENV, default target/pxapi-venv), installs
# `pxapi` from PyPI into it unchanged (PXAPI_VERSION, default 0.9.0), and runs scripts/pxapi_check.py with the
# arguments given (see its --help). Used by the e2e test `pixie_api` and usable by hand against any Loupe cloud.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${PXAPI_VENV:-$here/../target/pxapi-venv}"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import pxapi' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "pxapi==${PXAPI_VERSION:-0.9.0}"
fi
exec "$venv/bin/python" "$here/pxapi_check.py" "$@"
