#!/usr/bin/env bash
# Runs every PxL script under a directory you give (Pixie's layout: <dir>/<name>/<name>.pxl or any one .pxl,
# with an optional vis.json) through `px run -f SCRIPT [--vis vis.json]` against a running Loupe, and reports
# how many compile and run without error, then the most common first error lines.
#
# Usage: scripts/pxl-compat.sh DIR [PX_BINARY]
#   DIR        a directory of script directories, e.g. a checkout's src/pxl_scripts/px (not shipped here)
#   PX_BINARY  the px client (default: target/debug/px)
# px's own environment picks the endpoint: PX_CLOUD_ADDR (and PX_VIZIER_TOKEN or PX_VIZIER_TOKEN_FILE for a node
# agent's query port, `loupe vizier pem --listen`). A vis variable without a default gets a stand-in value by
# its type (PX_NAMESPACE "default", PX_POD/PX_SERVICE "default/none", PX_NODE this host's name, others "x"),
# as a user would have to type one. Empty results count as success. Needs python3 (to read vis.json).
# Set VERBOSE=1 to print every failure in full. Exit code: 0 when every script ran.
set -u
dir=${1:?usage: scripts/pxl-compat.sh DIR [PX_BINARY]}
px=${2:-target/debug/px}
[ -x "$px" ] || { echo "no px client at $px (cargo build --bins)" >&2; exit 2; }
ok=0
total=0
reasons=$(mktemp)
trap 'rm -f "$reasons"' EXIT
for d in "$dir"/*/; do
  script=$(ls "$d"*.pxl 2>/dev/null | head -n 1)
  [ -n "$script" ] || continue
  total=$((total + 1))
  name=$(basename "$d")
  args=()
  if [ -f "$d/vis.json" ]; then
    args+=(--vis "$d/vis.json" --)
    while IFS= read -r a; do [ -n "$a" ] && args+=("$a"); done < <(python3 - "$d/vis.json" "$(hostname)" <<'PY'
import json, sys
host = sys.argv[2]
stand_in = {"PX_NAMESPACE": "default", "PX_POD": "default/none", "PX_SERVICE": "default/none", "PX_NODE": host}
for v in json.load(open(sys.argv[1])).get("variables", []):
    if "defaultValue" not in v:
        print("--%s=%s" % (v["name"], stand_in.get(v.get("type", ""), "x")))
PY
)
  fi
  if out=$("$px" run -o json -f "$script" "${args[@]}" 2>&1 >/dev/null); then
    ok=$((ok + 1))
    echo "ok    $name"
  else
    first=$(printf '%s\n' "$out" | grep -m1 -E '^(error|Error)' || printf '%s\n' "$out" | head -n 1)
    echo "FAIL  $name: $first"
    [ "${VERBOSE:-0}" = 1 ] && printf '%s\n' "$out" | sed 's/^/      /'
    # Group by the message with names and numbers blurred, so one missing feature counts once.
    printf '%s\n' "$first" | sed -E 's/`[^`]*`/`_`/g; s/[0-9]+/N/g' >> "$reasons"
  fi
done
echo
echo "$ok of $total scripts compiled and ran without error"
if [ -s "$reasons" ]; then
  echo "top reasons:"
  sort "$reasons" | uniq -c | sort -rn | head -n 15
fi
[ "$ok" = "$total" ]
