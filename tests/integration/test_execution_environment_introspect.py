"""`ansible-builder introspect` over the collection as Galaxy ships it: build the artifact, install
it into a temporary collections path (the fixture of test_collection_install.py), and ask
ansible-builder what an execution environment that installs it must add. Any EE, not only
this repository's, gets psycopg2, requests and the etcd client, and libpq."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from packaging.requirements import Requirement

# The fixture is shared by import: one build-and-install recipe for the artifact.
from tests.integration.test_collection_install import FQCN, Installed, installed  # noqa: F401

BUILDER = Path(sys.executable).parent / "ansible-builder"


def _introspect(path: Path, *extra: str) -> dict[str, Any]:
    proc = subprocess.run(
        [str(BUILDER), "introspect", str(path), *extra],
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
