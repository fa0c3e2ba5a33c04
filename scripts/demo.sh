#!/usr/bin/env bash
# The main job on the built-in local sandbox: set up, start the sandbox, crash the backend,
# let pflow-ops bring it back, and show the report of what it did.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"

pflow-ops sandbox up
pflow-ops sandbox heal >/dev/null
pflow-ops sandbox break backend-crash
rc=0
pflow-ops recover rb-01 --env local || rc=$?
run_id=$(pflow-ops history --output json | python -c 'import json,sys; print(json.load(sys.stdin)["runs"][0]["run_id"])')
echo
pflow-ops report "$run_id"
echo
echo "The sandbox is still running: 'pflow-ops sandbox status', 'pflow-ops sandbox down' to stop it."
exit "$rc"
