"""The collection in an execution environment, with the artifact Galaxy ships (built and installed
into a temporary collections path by the fixture of test_collection_install.py):

- `ansible-builder introspect` lists what any EE that installs it must add: psycopg2, requests,
  the etcd client, libpq;
- which copy an AWX job loads: AWX points ANSIBLE_COLLECTIONS_PATHS at its paths and the EE's,
  a name ansible-core 2.19 no longer reads, so the project's ansible.cfg decides; it puts the
  checkout's collections/ first, whose pivotal.flow_ops is the project's own collection/, of the
  same commit as the playbooks. The EE's copy is the fallback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from packaging.requirements import Requirement

# The fixture is shared by import: one build-and-install recipe for the artifact.
from tests.integration.test_collection_install import FQCN, Installed, installed  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# What AWX's RunJob.build_env sets for a job (requirements_collections from a project sync, then
# the defaults, of which /usr/share/ansible/collections is the EE's); the EE stands in here.
AWX_ENV_VAR = "ANSIBLE_COLLECTIONS_PATHS"


def _introspect(path: Path, *extra: str) -> dict[str, Any]:
    proc = subprocess.run(
        [str(BIN / "ansible-builder"), "introspect", str(path), *extra],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    data: dict[str, Any] = yaml.safe_load(proc.stdout)
    return data


def test_introspect_lists_the_collections_python_and_system_requirements(
    installed: Installed,  # noqa: F811
) -> None:
    data = _introspect(installed.path)
    python = {Requirement(line.split("#")[0]).name: line for line in data["python"]}
    assert {"psycopg2-binary", "requests", "etcd3gw"} <= set(python)
    assert all(line.endswith(f"# from collection {FQCN}") for line in python.values())
    assert f"libpq [platform:rpm]  # from collection {FQCN}" in data["system"]


def test_introspect_of_an_empty_path_lists_nothing(tmp_path: Path) -> None:
    # The requirements above come from the installed collection, not from anywhere else.
    (tmp_path / "ansible_collections").mkdir()
    data = _introspect(tmp_path)
    assert (data["python"], data["system"]) == ([], [])


def _module_file(cwd: Path, env: dict[str, str]) -> Path:
    proc = subprocess.run(
        [str(BIN / "ansible-doc"), "-t", "module", f"{FQCN}.alert_status", "--json"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return Path(json.loads(proc.stdout)[f"{FQCN}.alert_status"]["doc"]["filename"])


def test_an_awx_job_loads_the_collection_of_its_project_checkout(
    installed: Installed,  # noqa: F811
    tmp_path: Path,
) -> None:
    # The job's project directory: AWX clones the project (symlinks kept) and runs from there.
    project = tmp_path / "project"
    project.mkdir()
    for name in ("ansible.cfg", "collections", "collection"):
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, project / name, symlinks=True)
        else:
            shutil.copy2(source, project / name)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("ANSIBLE_") and k not in ("PYTHONPATH", "HOME")
    }
    env["HOME"] = str(tmp_path / "home")
    env[AWX_ENV_VAR] = f"/runner/requirements_collections:~/.ansible/collections:{installed.path}"
    found = _module_file(project, env)
    assert found.is_relative_to(project / "collections"), found
    assert found.resolve().is_relative_to((project / "collection").resolve())
    # The EE's copy (/usr/share/ansible/collections in the image) is still on the path, after
    # the checkout's: a job only reaches it if the project's were missing.
    proc = subprocess.run(
        [str(BIN / "ansible-config"), "dump", "--format", "json"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    settings = json.loads(proc.stdout)
    [paths] = [s["value"] for s in settings if s.get("name") == "COLLECTIONS_PATHS"]
    assert paths[0] == str(project / "collections")
    assert "/usr/share/ansible/collections" in paths[1:]
    assert not any(p.startswith("/runner") for p in paths), "AWX's variable is not read"
