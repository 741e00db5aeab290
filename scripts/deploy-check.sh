#!/usr/bin/env bash
# Offline checks of the Kubernetes manifests under deploy/ (see scripts/deploy_check.py): every overlay rendered
# with `kubectl kustomize`, validated against the Kubernetes schemas and the CRD schemas in deploy/schemas, the
# runtime rules (probes, limits, Secrets and ConfigMaps that exist, PDBs, one domain), and the PEM run under
# exactly the DaemonSet's capabilities; then the local replay of the rendered cloud and vizier
# (scripts/deploy_replay.py).
#
# Environment: KV_VENV (a venv with kubernetes-validate, jsonschema and PyYAML; default /tmp/kv, created with pip
# if missing), LOUPE_BIN and PX_BIN (default target/debug/loupe and target/debug/px; the PEM check is skipped
# when they are absent, unless CI=true).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v kubectl >/dev/null 2>&1; then
  echo "error: kubectl is missing: the manifests are rendered with \`kubectl kustomize\` (kubectl >= 1.27, kustomize v5)" >&2
  exit 1
fi
KV_VENV=${KV_VENV:-/tmp/kv}
if ! "$KV_VENV/bin/python" -c 'import kubernetes_validate, jsonschema, yaml' >/dev/null 2>&1; then
  python3 -m venv "$KV_VENV"
  "$KV_VENV/bin/pip" install --quiet kubernetes-validate jsonschema pyyaml
fi
LOUPE_BIN=${LOUPE_BIN:-target/debug/loupe}
PX_BIN=${PX_BIN:-target/debug/px}
args=()
if [ -x "$LOUPE_BIN" ] && [ -x "$PX_BIN" ] && [ "$(id -u)" = 0 ]; then
  args=(--loupe "$LOUPE_BIN" --px "$PX_BIN")
elif [ "${CI:-}" = "true" ]; then
  echo "error: CI=true needs $LOUPE_BIN and $PX_BIN, and root, to run the PEM under the DaemonSet's capabilities" >&2
  exit 1
else
  echo "note: skipping the PEM capability check (needs root and built $LOUPE_BIN, $PX_BIN)"
fi
"$KV_VENV/bin/python" scripts/deploy_check.py "${args[@]}"
# The rendered manifests run as local processes against real PostgreSQL, NATS and Redis, driven by px.
if ((${#args[@]})); then
  "$KV_VENV/bin/python" scripts/deploy_replay.py --loupe "$LOUPE_BIN" --px "$PX_BIN"
fi
