"""The collection as Galaxy ships it: `ansible-galaxy collection build`, install the artifact into a
temporary collections path, and run a runbook playbook by its FQCN from there against the real
sandbox. Only the installed copy is on the collections path, and the run proves it: every play and
task it ran comes from the installed tree, never from the checkout's collection/."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.conftest import ROOT, Stack

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
GALAXY = yaml.safe_load((ROOT / "collection" / "galaxy.yml").read_text())
FQCN = f"{GALAXY['namespace']}.{GALAXY['name']}"
GALAXY_CMD = [str(BIN / "ansible-galaxy"), "collection"]
INVENTORY = ROOT / "inventories" / "local" / "hosts.yml"


@dataclass
class Installed:
    path: Path  # the collections path: <path>/ansible_collections/pivotal/flow_ops
    env: dict[str, str]

    @property
    def collection(self) -> Path:
        return self.path / "ansible_collections" / str(GALAXY["namespace"]) / str(GALAXY["name"])


def _run(argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv,
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    tmp = tmp_path_factory.mktemp("collection")
    # No ANSIBLE_CONFIG from the checkout (its collections_path puts collection/ first), no
    # PYTHONPATH into the repo: the installed copy is the only pivotal.flow_ops there is.
    cfg = tmp / "ansible.cfg"
    cfg.write_text("[defaults]\nretry_files_enabled = false\n")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("ANSIBLE_") and k not in ("PYTHONPATH", "PFLOW_OPS_HOME")
    }
    env.update(ANSIBLE_CONFIG=str(cfg), ANSIBLE_COLLECTIONS_PATH=str(tmp / "installed"))
    build = _run(
        [*GALAXY_CMD, "build", str(ROOT / "collection"), "--output-path", str(tmp / "dist")],
        env,
        tmp,
    )
    assert build.returncode == 0, build.stderr
    (artifact,) = (tmp / "dist").glob("*.tar.gz")
    assert artifact.name == f"{GALAXY['namespace']}-{GALAXY['name']}-{GALAXY['version']}.tar.gz"
    # --no-deps: community.general comes with the pinned `ansible` bundle (Galaxy is not reachable).
    install = _run(
        [*GALAXY_CMD, "install", "--no-deps", str(artifact), "-p", str(tmp / "installed")],
        env,
        tmp,
    )
    assert install.returncode == 0, install.stderr
    yield Installed(path=tmp / "installed", env=env)


def test_the_artifact_is_the_only_copy_on_the_collections_path(installed: Installed) -> None:
    listed = _run(
        [*GALAXY_CMD, "list", FQCN, "--format", "json"],
        installed.env,
        installed.path,
    )
    assert listed.returncode == 0, listed.stderr
    found = {path: cols[FQCN]["version"] for path, cols in json.loads(listed.stdout).items()}
    assert found == {str(installed.path / "ansible_collections"): GALAXY["version"]}
    manifest = json.loads((installed.collection / "MANIFEST.json").read_text())
    assert manifest["collection_info"]["version"] == GALAXY["version"]
    listing = json.loads((installed.collection / "FILES.json").read_text())
    files = {f["name"] for f in listing["files"]}
    assert {
        "playbooks/rb_01_backend_down.yml",
        "roles/backend/meta/argument_specs.yml",
        "plugins/modules/alert_status.py",
        "extensions/eda/rulebooks/pivotal_flow_alerts.yml",
        "changelogs/config.yaml",
    } <= files
    assert not any("__pycache__" in name or name.endswith(".tar.gz") for name in files)


def _playbook_by_fqcn(installed: Installed, sandbox: Stack, *extra: str) -> dict[str, Any]:
    """Run the runbook by FQCN from a directory outside the checkout; the json callback is the
    structured channel (play and task paths, set_stats)."""
    env = {
        **installed.env,
        "PFLOW_OPS_HOME": str(sandbox.home),
        "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
        "ANSIBLE_SHOW_CUSTOM_STATS": "true",
    }
    proc = _run(
        [str(BIN / "ansible-playbook"), f"{FQCN}.rb_01_backend_down", "-i", str(INVENTORY), *extra],
        env,
        installed.path,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


def test_runbook_by_fqcn_from_the_installed_collection(
    installed: Installed, sandbox: Stack
) -> None:
    pid = sandbox.backend_pid()
    run = _playbook_by_fqcn(installed, sandbox, "-e", "pflow_mode=diagnose", "--check")

    paths = [play["play"]["path"] for play in run["plays"]]
    paths += [task["task"]["path"] for play in run["plays"] for task in play["tasks"]]
    tasks = [task["task"]["name"] for play in run["plays"] for task in play["tasks"]]
    assert paths and any(name.endswith(" : Publish the runbook result") for name in tasks)
    inside = str(installed.collection) + os.sep
    assert [p for p in paths if not p.startswith(inside)] == [], "ran something not installed"

    result = run["global_custom_stats"]["pflow_results"]["localhost"]
    assert (result["runbook"], result["mode"]) == ("RB-01", "diagnose")
    assert result["outcome"] == "healthy", result["reason"]
    assert result["actions"] == []
    assert run["stats"]["localhost"]["failures"] == 0
    assert run["stats"]["localhost"]["changed"] == 0
    # A dry-run diagnosis touches nothing: same process, still healthy.
    assert sandbox.backend_pid() == pid and sandbox.health() == 200
