"""Issue 13 section 6: a dependency check that could not run is not a passing check.

The target here is a Python without psycopg2 (a bare venv: what a host without python3-psycopg2
looks like to the dependency check), so PostgreSQL cannot be validated from it. 0.3.0 counted
that as ok and restarted the backend; now it escalates without spending the restart budget,
unless the inventory opts out explicitly."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.integration.conftest import Stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory: pytest.TempPathFactory) -> str:
    venv = tmp_path_factory.mktemp("bare") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    probe = subprocess.run([str(python), "-c", "import psycopg2"], capture_output=True, check=False)
    assert probe.returncode != 0, "the bare interpreter must not have psycopg2"
    return str(python)


def test_unvalidated_postgresql_blocks_the_restart(sandbox: Stack, bare_python: str) -> None:
    assert sandbox.cli("sandbox", "break", "backend-crash").rc == 0
    run = sandbox.recover("-e", f"ansible_python_interpreter={bare_python}")
    data = run.json
    assert (run.rc, data["outcome"]) == (4, "escalate"), data["reason"]
    assert "cannot validate PostgreSQL from this host" in data["reason"]
    assert "backend_allow_unvalidated_dependencies" in data["reason"]
    pg = next(f for f in data["findings"] if f["check"] == "dependency_postgresql")
    assert pg["status"] == "critical" and "psycopg2" in pg["detail"]
    assert sandbox.budget_entries() == [], "no restart budget is spent"
    assert sandbox.backend_pid() is None, "the backend was not restarted"


def test_the_inventory_may_opt_out(sandbox: Stack, bare_python: str) -> None:
    assert sandbox.cli("sandbox", "break", "backend-crash").rc == 0
    run = sandbox.recover(
        "-e",
        f"ansible_python_interpreter={bare_python}",
        "-e",
        "backend_allow_unvalidated_dependencies=true",
    )
    data = run.json
    assert (run.rc, data["outcome"]) == (0, "recovered"), data["reason"]
    pg = next(f for f in data["findings"] if f["check"] == "dependency_postgresql")
    assert pg["status"] == "warning"
    assert len(sandbox.budget_entries()) == 1
    assert sandbox.backend_pid() is not None
