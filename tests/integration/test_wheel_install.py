"""pflow-ops as a production host installs it: the wheel (no sandbox extra) in a fresh venv outside
the checkout, the collection from its built artifact, and a project that is only an inventory.
`pflow-ops --project DIR recover rb-01` then recovers the real sandbox's crashed backend with the
wheel's catalogue and ansible.cfg and the installed collection's playbook, by its FQCN. The
sandbox's Node.js backend comes as its three files; the wheel installs its dependencies with the
real `npm ci`, once, into a per-user directory."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.conftest import ROOT, Run, Stack

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
# What the wheel is built from: the package and the files pyproject.toml names (the package's
# project/ links to catalogue.yml and ansible.cfg, which the wheel carries as copies).
SOURCES = ("pyproject.toml", "README.md", "catalogue.yml", "ansible.cfg")


@dataclass
class Install:
    root: Path  # outside the checkout: venv/, collections/, project/
    env: dict[str, str]

    def pflow(self, *args: str, timeout: float = 300) -> Run:
        proc = subprocess.run(
            [str(self.root / "venv" / "bin" / "pflow-ops"), *args],
            env=self.env,
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        return Run(proc.returncode, proc.stdout, proc.stderr)


def _run(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=900, check=False
    )
    assert proc.returncode == 0, f"{argv}: {proc.stderr[-2000:]}"
    return proc.stdout


def _wheel(tmp: Path) -> Path:
    src = tmp / "src"
    shutil.copytree(
        ROOT / "pflow_ops",
        src / "pflow_ops",
        symlinks=True,
        # node_modules is the checkout's npm install, never package data: not worth copying.
        ignore=shutil.ignore_patterns("*.pyc", "node_modules"),
    )
    for name in SOURCES:
        shutil.copy(ROOT / name, src / name)
    _run(
        [
            str(BIN / "python"),
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "-q",
            "-w",
            str(tmp / "dist"),
            str(src),
        ],
        tmp,
    )
    (wheel,) = (tmp / "dist").glob("pflow_ops-*.whl")
    return wheel


@pytest.fixture(scope="module")
def install(stack: Stack) -> Iterator[Install]:
    root = Path(tempfile.mkdtemp(prefix="pfo-wheel-", dir="/tmp"))
    try:
        wheel = _wheel(root)
        venv = root / "venv"
        _run([sys.executable, "-m", "venv", str(venv)], root)
        # The pinned environment; pip's cache and the configured indexes serve it offline.
        _run(
            [
                str(venv / "bin" / "pip"),
                "install",
                "-q",
                "-c",
                str(ROOT / "constraints.txt"),
                str(wheel),
            ],
            root,
        )
        _run(
            [
                str(BIN / "ansible-galaxy"),
                "collection",
                "build",
                str(ROOT / "collection"),
                "--output-path",
                str(root / "dist"),
            ],
            root,
        )
        (artifact,) = (root / "dist").glob("pivotal-flow_ops-*.tar.gz")
        env = {
            "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
            "HOME": os.environ.get("HOME", str(root)),
            "PFLOW_OPS_HOME": str(stack.home),
            "ANSIBLE_COLLECTIONS_PATH": str(root / "collections"),
        }
        _run(
            [
                str(venv / "bin" / "ansible-galaxy"),
                "collection",
                "install",
                "--no-deps",
                str(artifact),
                "-p",
                str(root / "collections"),
            ],
            root,
            env,
        )
        # The project: the environment's inventory and nothing else.
        shutil.copytree(ROOT / "inventories" / "local", root / "project" / "inventories" / "local")
        yield Install(root=root, env=env)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_the_wheel_runs_from_its_venv_without_the_sandbox_s_dependencies(install: Install) -> None:
    python = install.root / "venv" / "bin" / "python"
    probe = (
        "import importlib.metadata as m, importlib.util as u, json, pflow_ops; "
        "print(json.dumps([pflow_ops.__file__, m.requires('pflow-ops'), "
        "[n for n in ('supervisor', 'redis') if u.find_spec(n)]]))"
    )
    where, requires, found = json.loads(_run([str(python), "-c", probe], install.root, install.env))
    assert where.startswith(str(install.root / "venv"))
    core = [r.split("=")[0].split("<")[0].split(">")[0] for r in requires if "extra ==" not in r]
    assert not set(core) & {"supervisor", "docker", "redis", "psycopg2-binary"}
    assert {"supervisor", "docker", "redis", "psycopg2-binary"} <= {
        r.split("=")[0] for r in requires if 'extra == "sandbox"' in r
    }
    assert found == []
    run = install.pflow("sandbox", "status")
    assert run.rc == 2
    assert run.stderr.strip().splitlines()[-1].endswith("pip install 'pflow-ops[sandbox]'")


def test_list_reads_the_wheel_s_catalogue(install: Install) -> None:
    run = install.pflow("--project", str(install.root / "project"), "list", "--output", "json")
    assert run.rc == 0, run.stderr
    assert [rb["id"] for rb in run.json["runbooks"]] == ["RB-01", "RB-02", "RB-03"]


def test_recover_rb01_from_the_wheel_and_the_installed_collection(
    install: Install, sandbox: Stack
) -> None:
    # The local environment's managed host is this machine, running the wheel's interpreter: it
    # gets what the collection declares for the hosts its modules run on (psycopg2, ...).
    installed = install.root / "collections" / "ansible_collections" / "pivotal" / "flow_ops"
    pip = [str(install.root / "venv" / "bin" / "pip"), "install", "-q"]
    constraints = ["-c", str(ROOT / "constraints.txt")]
    _run([*pip, *constraints, "-r", str(installed / "requirements.txt")], install.root)
    assert sandbox.cli("sandbox", "break", "backend-crash").rc == 0
    assert sandbox.health() is None
    project = install.root / "project"
    recover = "recover rb-01 --env local --output json -e backend_soak_seconds=1"
    run = install.pflow("--project", str(project), *recover.split())
    data = run.json
    assert run.rc == 0, (data.get("reason"), data.get("findings"), run.stderr)
    assert data["outcome"] == "recovered" and data["changed"] >= 1
    assert sandbox.health() == 200
    assert [a["action"] for a in data["actions"]] == ["restart_budget", "restart"]
    md = Path(data["report"]["md"]).read_text()
    assert "RECOVERED" in md and "Restart the service backend" in md
    # ansible-playbook ran the collection's playbook by its FQCN, in the project.
    runner = sandbox.home / "runs" / data["run_id"] / "artifacts" / "runner"
    command = json.loads((runner / "command").read_text())
    assert "pivotal.flow_ops.rb_01_backend_down" in command["command"]
    assert command["cwd"] == str(project)


def test_the_wheel_carries_the_catalogue_and_ansible_cfg_as_files(install: Install) -> None:
    (packaged,) = (install.root / "venv" / "lib").glob("python3*/site-packages/pflow_ops/project")
    for name in ("catalogue.yml", "ansible.cfg"):
        assert not (packaged / name).is_symlink()
        assert (packaged / name).read_text() == (ROOT / name).read_text()


def test_the_node_backend_installs_once_from_the_packaged_lock(install: Install) -> None:
    """A wheel user of the sandbox (its own venv, the [sandbox] extra): the wheel's three backend
    files, then the real `npm ci` from its lock into the per-user directory, once."""
    (wheel,) = (install.root / "dist").glob("pflow_ops-*.whl")
    venv = install.root / "venv-sandbox"
    _run([sys.executable, "-m", "venv", str(venv)], install.root)
    pip = [str(venv / "bin" / "pip"), "install", "-q", "-c", str(ROOT / "constraints.txt")]
    _run([*pip, f"{wheel}[sandbox]"], install.root)
    (site,) = (venv / "lib").glob("python3*/site-packages")
    packaged = site / "pflow_ops" / "sandbox" / "node_backend"
    assert sorted(p.name for p in packaged.iterdir()) == [
        "package-lock.json",
        "package.json",
        "server.js",
    ]
    env = {**install.env, "XDG_CACHE_HOME": str(install.root / "cache")}
    locate = "from pflow_ops.sandbox import node_deps; print(node_deps.backend_script())"
    python = str(venv / "bin" / "python")

    def backend_script(timeout: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [python, "-c", locate],
            cwd=install.root,  # not the checkout: its pflow_ops must not shadow the wheel's
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    first = backend_script(600)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "npm ci, once" in first.stderr
    server_js = Path(first.stdout.strip())
    assert server_js.is_relative_to(install.root / "cache" / "pflow-ops" / "node-backend")
    assert server_js.read_text() == (ROOT / "pflow_ops/sandbox/node_backend/server.js").read_text()
    # The backend's own modules resolve from there, as `node server.js` will load them.
    needs = "for (const m of ['express', 'pg', 'ioredis', 'prom-client']) require.resolve(m)"
    _run(["node", "-e", needs], server_js.parent, env)
    # Once: the second call finds the stamp and runs no npm (nothing to say, same place).
    again = backend_script(60)
    assert (again.returncode, again.stdout, again.stderr) == (0, first.stdout, "")
