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
step "ansible-playbook --syntax-check"
for pb in playbooks/*.yml; do
  ansible-playbook --syntax-check -i inventories/local/hosts.yml "$pb"
done
step "ansible-lint (production profile)"
ansible-lint --offline -q playbooks collection/roles
step "ansible-galaxy collection build"
out=$(mktemp -d)
ansible-galaxy collection build collection --output-path "$out" --force >/dev/null
ansible-galaxy collection install "$out"/pivotal-flow_ops-*.tar.gz -p "$out/installed" >/dev/null
test -f "$out/installed/ansible_collections/pivotal/flow_ops/MANIFEST.json"
rm -rf "$out"
step "pytest"
python -m pytest -q "$@"
