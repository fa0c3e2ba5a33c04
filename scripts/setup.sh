#!/usr/bin/env bash
# Set up everything pflow-ops needs on a Debian/Ubuntu machine, idempotently:
#   - Debian packages: PostgreSQL server (15 preferred), redis-server, Docker, Prometheus,
#     Alertmanager and the postgres/redis exporters, etcd-server (coordination tests), a Java
#     runtime (ansible-rulebook), Chromium and its driver (the runbook site's browser test),
#     a Python venv
#   - .venv with pflow-ops, its sandbox and test extras, pinned by constraints.txt (ansible 12,
#     ansible-runner, ...)
#   - .venv-alerta with alerta-server, pinned (the incident role's Alerta sink tests)
#   - community.docker 5.x from the ansible 13 bundle, under .cache/collections (Compose tests)
# Called by scripts/demo.sh and scripts/test.sh; safe to run again (it only adds what is missing).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[setup] %s\n' "$*" >&2; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else SUDO="__none__"; fi
fi

need_pkgs=()
have_pg_server() { ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; }
have_pg_server || need_pkgs+=(postgresql-15)
command -v redis-server >/dev/null 2>&1 || need_pkgs+=(redis-server)
# Docker engine for the compose service manager's tests and `sandbox up --runtime docker`
# (Debian's docker.io; no Compose plugin is needed: containers are found by their labels).
have_dockerd() { command -v dockerd >/dev/null 2>&1 || [ -x /usr/sbin/dockerd ]; }
have_dockerd || need_pkgs+=(docker.io)
# Monitoring stack of `sandbox up --monitoring`: Debian's packages, each binary named after its
# package in /usr/bin. Services the packages may start keep their own ports and configuration;
# the sandbox runs its own instances on free loopback ports.
for pkg in prometheus prometheus-alertmanager prometheus-postgres-exporter prometheus-redis-exporter; do
  [ -x "/usr/bin/$pkg" ] || need_pkgs+=("$pkg")
done
# etcd v3 (Debian's etcd-server, /usr/bin/etcd): the coordination tests and bench/coordination.py
# start their own on free loopback ports; a service the package may start is left alone.
[ -x /usr/bin/etcd ] || need_pkgs+=(etcd-server)
# Node.js >= 18 and npm: the sandbox's reference backend (pflow_ops/sandbox/node_backend) is a
# Node.js service. Debian's nodejs/npm unless a NodeSource nodejs (which carries npm) is there.
command -v node >/dev/null 2>&1 || need_pkgs+=(nodejs)
command -v npm >/dev/null 2>&1 || need_pkgs+=(npm)
# ansible-rulebook (the tests run the collection's EDA rulebook) embeds the Drools engine: Java 17+.
command -v java >/dev/null 2>&1 || need_pkgs+=(default-jre-headless)
# The runbook site's browser test (tests/integration/test_docs_site.py): headless Chromium and
# its WebDriver, driven by selenium (test extras).
command -v chromium >/dev/null 2>&1 || need_pkgs+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need_pkgs+=(chromium-driver)
PY=${PYTHON:-python3}
"$PY" -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null || need_pkgs+=(python3 python3-venv)
"$PY" -m venv --help >/dev/null 2>&1 || need_pkgs+=(python3-venv)

if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$SUDO" = "__none__" ]; then
    log "missing Debian packages: ${need_pkgs[*]}; install them as root (no sudo here)"; exit 1
  fi
  log "installing Debian packages: ${need_pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  # postgresql-15 is Debian 12's; other releases ship another major: fall back to theirs.
  if ! $SUDO apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null; then
    alt=("${need_pkgs[@]/postgresql-15/postgresql}")
    $SUDO apt-get install -y -qq --no-install-recommends "${alt[@]}" >/dev/null
  fi
  # The package may start its own default cluster; the sandbox uses its own data directory
  # and port, so that cluster is left alone.
fi

if [ ! -x .venv/bin/python ]; then
  log "creating .venv"
  "$PY" -m venv .venv
fi
stamp=.venv/.pflow-ops-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ constraints.txt -nt "$stamp" ]; then
  log "installing pflow-ops and its pinned dependencies into .venv (constraints.txt)"
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  # constraints.txt pins the whole environment (transitive packages too); the sandbox extra
  # brings the local sandbox's dependencies, which a production install leaves out.
  .venv/bin/python -m pip install -q -c constraints.txt -e '.[test,sandbox]'
  touch "$stamp"
fi
# Alerta (alerta-server from PyPI, PostgreSQL backend): the real ticket system the incident role's
# `alerta` sink is tested against (tests/integration/alerta.py starts it on the sandbox's
# PostgreSQL). Its own venv, pinned, so its Flask pins never reach .venv.
if [ ! -x .venv-alerta/bin/alertad ] || [ scripts/alerta-requirements.txt -nt .venv-alerta/.installed ]; then
  log "installing alerta-server into .venv-alerta"
  "$PY" -m venv .venv-alerta
  .venv-alerta/bin/python -m pip install -q -r scripts/alerta-requirements.txt
  touch .venv-alerta/.installed
fi
# community.docker 5.x, from the `ansible` 13 PyPI bundle (the pinned ansible 12 carries 4.x): the
# Compose modules are tested with each on the collections path
# (tests/integration/test_compose_community_docker.py). Only that collection is kept, under
# .cache/collections; the wheel (Python >= 3.12 metadata, never installed) is thrown away.
cd5_bundle=ansible==13.8.0
cd5=.cache/collections/community.docker-5
if [ ! -f "$cd5/ansible_collections/community/docker/MANIFEST.json" ]; then
  log "extracting community.docker 5.x from $cd5_bundle into $cd5"
  wheel_dir=$(mktemp -d)
  .venv/bin/python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --dest "$wheel_dir" "$cd5_bundle"
  rm -rf "$cd5.tmp"
  .venv/bin/python - "$wheel_dir" "$cd5.tmp" <<'EOF_PY'
import glob
import sys
import zipfile

(wheel,) = glob.glob(sys.argv[1] + "/ansible-*.whl")
with zipfile.ZipFile(wheel) as whl:
    whl.extractall(sys.argv[2], [n for n in whl.namelist() if n.startswith("ansible_collections/community/docker/")])
EOF_PY
  rm -rf "$wheel_dir" "$cd5"
  mv "$cd5.tmp" "$cd5"
fi
# The Node.js backend's dependencies (Express, pg, ioredis, prom-client) from the npm registry,
# exactly as the committed package-lock.json says (`npm ci`); nothing is fetched at run time.
# Skipped while the stamp matches the lock file's hash.
node_dir=pflow_ops/sandbox/node_backend
node_stamp=$node_dir/node_modules/.pflow-ops-lock.sha256
node_lock_hash=$(sha256sum "$node_dir/package-lock.json" | cut -d' ' -f1)
if [ ! -f "$node_stamp" ] || [ "$(cat "$node_stamp")" != "$node_lock_hash" ]; then
  log "installing the Node.js backend's dependencies (npm ci) in $node_dir"
  (cd "$node_dir" && npm ci --omit=dev --no-audit --no-fund --loglevel=error)
  printf '%s\n' "$node_lock_hash" > "$node_stamp"
fi
log "ready: $(.venv/bin/pflow-ops --version), $(.venv/bin/ansible --version | sed -n 1p)"
