#!/usr/bin/env bash
# The test command: set-up (scripts/setup.sh), static checks, then unit and integration tests
# against a real sandbox (PostgreSQL, Redis, supervisord) on free loopback ports.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
export ANSIBLE_CONFIG="$PWD/ansible.cfg"

step() { printf '\n== %s\n' "$*"; }

step "ruff"
ruff check pflow_ops tests bench
ruff format --check pflow_ops tests bench
step "mypy --strict"
mypy --strict pflow_ops
step "generated runbooks are what the automation generates (drift check)"
python -m pflow_ops docs build --check
step "ansible-playbook --syntax-check"
for pb in playbooks/*.yml; do
  ansible-playbook --syntax-check -i inventories/local/hosts.yml "$pb"
done
ansible-playbook --syntax-check awx/configure.yml awx/recovery_gate.yml
step "ansible-lint (production profile, the whole repository: .ansible-lint)"
ansible-lint --offline -q
step "ansible-builder create (the execution environment's build context, no engine needed)"
ee=$(mktemp -d)
ansible-builder create --file execution-environment.yml --context "$ee/context" \
  --output-filename Containerfile >/dev/null
test -f "$ee/context/Containerfile"
rm -rf "$ee"
step "ansible-galaxy collection build"
out=$(mktemp -d)
ansible-galaxy collection build collection --output-path "$out" --force >/dev/null
# Install the artifact on its own and load a module and the role from it, not from the checkout.
# --no-deps: community.general comes with the pinned `ansible` bundle (Galaxy is not reachable).
ANSIBLE_COLLECTIONS_PATH="$out/installed" ansible-galaxy collection install --force --no-deps \
  "$out"/pivotal-flow_ops-*.tar.gz -p "$out/installed" >/dev/null 2>&1
test -f "$out/installed/ansible_collections/pivotal/flow_ops/MANIFEST.json"
printf '[defaults]\ncollections_path = %s\n' "$out/installed" >"$out/ansible.cfg"
for module in collection/plugins/modules/*.py; do
  ANSIBLE_CONFIG="$out/ansible.cfg" ansible-doc -t module "pivotal.flow_ops.$(basename "$module" .py)" >/dev/null
done
for role in collection/roles/*/; do
  ANSIBLE_CONFIG="$out/ansible.cfg" ansible-doc -t role "pivotal.flow_ops.$(basename "$role")" >/dev/null
done
rm -rf "$out"
step "changelog lint and ansible-test sanity"
scripts/collection_checks.sh
step "pytest"
python -m pytest -q --durations=25 "$@"
