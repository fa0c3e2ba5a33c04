#!/usr/bin/env bash
# Collection quality gates for pivotal.flow_ops: the changelog fragments lint, then
# `ansible-test sanity` on Python 3.11 (the controller version we support), then its compile and
# import tests on every other Python the modules declare (tests/config.yml, python_requires): the
# modules run on the managed hosts' Python, so a 3.10-only construct there breaks a 3.8 host.
#
#   scripts/collection_checks.sh                  # everything
#   scripts/collection_checks.sh --test pylint    # extra arguments go to `ansible-test sanity`
#                                                 # (on 3.11 only; the per-version step is skipped)
#
# The other interpreters are looked up in ~/.pyenv/versions (this machine's image carries 3.8 to
# 3.13 there), then on PATH; a declared version with no interpreter fails the check.
#
# ansible-test wants the collection at .../ansible_collections/pivotal/flow_ops and resolves
# symlinks, so the checkout's collections/ symlink does not do: the collection is copied into a
# throwaway tree, next to links to the collections it depends on (from the pinned `ansible` bundle).
#
# Offline except PyPI: every sanity test runs in a virtualenv ansible-test makes and fills with
# its own pinned requirements from PyPI (cached, keyed by the requirements). Seeding such a venv
# starts with get-pip.py from ci-files.testing.ansible.com, which is not reachable here; ansible-test
# reads it from a cache file first, so we put an equivalent there: pip's own wheel (from PyPI)
# installing pip, which is what get-pip.py does. Everything lives in one cache dir, used as HOME
# for ansible-test only, so the user's ~/.ansible is never touched.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export PATH="$root/.venv/bin:$PATH"
python=$root/.venv/bin/python

step() { printf '\n== %s\n' "$*"; }

step "antsibull-changelog lint"
(cd collection && antsibull-changelog lint)

step "ansible-test sanity (Python 3.11)"
cache=${PFLOW_ANSIBLE_TEST_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/pflow-ops/ansible-test}
pip_version=$("$python" - <<'EOF'
from types import SimpleNamespace

from ansible_test._internal.python_requirements import get_venv_packages

print(get_venv_packages(SimpleNamespace(version="3.11"))["pip"])
EOF
)
get_pip=$cache/.ansible/test/cache/get_pip_${pip_version//./_}.py
wheels=$cache/wheels
if ! compgen -G "$wheels/pip-$pip_version-*.whl" >/dev/null; then
  pip download --quiet --no-deps --only-binary=:all: --dest "$wheels" "pip==$pip_version"
fi
wheel=$(compgen -G "$wheels/pip-$pip_version-*.whl" | head -n 1)
mkdir -p "$(dirname "$get_pip")"
cat >"$get_pip" <<EOF
# Written by pflow-ops scripts/collection_checks.sh: stands in for get-pip.py $pip_version.
import sys

sys.path.insert(0, "$wheel")
from pip._internal.cli.main import main  # noqa: E402

args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.exit(main(["install", "--find-links", "$wheels", *args]))
EOF

tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
dest=$tree/ansible_collections/pivotal/flow_ops
mkdir -p "$(dirname "$dest")"
cp -a collection "$dest"
# What `ansible-galaxy collection build` leaves out is not the collection either.
find "$dest" -name __pycache__ -prune -exec rm -rf {} +
rm -rf "$dest/tests/output" "$dest/.ansible" "$dest"/*.tar.gz
# Dependencies (galaxy.yml) from the bundle, for the import, pylint and validate-modules tests.
"$python" - "$root/collection/galaxy.yml" "$tree/ansible_collections" <<'EOF'
import os
import sys

import ansible_collections
import yaml

galaxy, target = sys.argv[1], sys.argv[2]
with open(galaxy, encoding="utf-8") as fh:
    deps = yaml.safe_load(fh).get("dependencies") or {}
for fqcn in deps:
    namespace, name = fqcn.split(".")
    found = [p for p in ansible_collections.__path__ if os.path.isdir(os.path.join(p, namespace, name))]
    if not found:
        sys.exit(f"collection_checks: dependency {fqcn} is not installed (pip install the pinned ansible)")
    os.makedirs(os.path.join(target, namespace), exist_ok=True)
    os.symlink(os.path.join(found[0], namespace, name), os.path.join(target, namespace, name))
EOF

sanity() {
  (
    cd "$dest"
    # ANSIBLE_CONFIG would point ansible-doc and the import test at the checkout's collections/.
    env -u ANSIBLE_CONFIG -u ANSIBLE_COLLECTIONS_PATH HOME="$cache" \
      ansible-test sanity --local --color no "$@"
  )
}
sanity --python 3.11 "$@"
[ "$#" -eq 0 ] || exit 0

# The versions tests/config.yml declares for modules and module_utils, as ansible-test reads them.
versions=$("$python" - "$root/collection/tests/config.yml" <<'EOF'
import sys

import yaml
from ansible_test._internal.content_config import parse_python_requires

with open(sys.argv[1], encoding="utf-8") as fh:
    print(" ".join(parse_python_requires(yaml.safe_load(fh)["modules"]["python_requires"])))
EOF
)
for version in $versions; do
  [ "$version" != 3.11 ] || continue
  interpreter=""
  # pyenv's shims answer `command -v` for versions that are not selected: try each candidate.
  for candidate in $(compgen -G "$HOME/.pyenv/versions/$version.*/bin/python$version" | sort -V -r) \
    $(command -v "python$version" || true); do
    if "$candidate" -c "" 2>/dev/null; then interpreter=$candidate && break; fi
  done
  if [ -z "$interpreter" ]; then
    echo "collection_checks: no python$version (in ~/.pyenv/versions or on PATH): tests/config.yml declares it for the modules" >&2
    exit 1
  fi
  step "ansible-test sanity compile, import (Python $version, $interpreter)"
  PATH="$(dirname "$interpreter"):$PATH" sanity --python "$version" --test compile --test import
done
