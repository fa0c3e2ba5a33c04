"""compose_service and compose_service_info next to community.docker 4.x and 5.x.

Up to 0.5.0 compose_service was built on community.docker's API client, which 5.0 made private:
with 5.x first on the collections path, ansible-doc and the module failed. They now use the Docker
SDK, so whichever community.docker is installed, the docs load and the modules read and restart
the sandbox's containers on the private engine (docker_engine.py). 4.x is the pinned `ansible` 12
bundle's; 5.x is the `ansible` 13 bundle's, extracted by scripts/setup.sh under .cache/ (no network
here). community.docker's own docker_host_info runs in the same play, so the version the play
loaded is the one on the engine too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ansible
import pytest

from tests.integration.conftest import ROOT

if TYPE_CHECKING:
    from tests.integration.docker_engine import ComposeStack

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.integration.docker_engine"]

BIN = Path(sys.executable).parent
# The pinned `ansible` package's collections sit next to ansible-core in site-packages. Not
# ansible_collections.__path__[0]: once a test has loaded Ansible's collection finder, that
# namespace path starts with the checkout's collections/ (it depends on the tests run before).
BUNDLE = Path(ansible.__file__).resolve().parent.parent
CACHED_5 = ROOT / ".cache" / "collections" / "community.docker-5"

PLAYBOOK = """\
- name: The Compose modules next to community.docker
  hosts: localhost
  gather_facts: false
  vars:
    engine: "{{ docker_host }}"
  tasks:
    - name: Ask the engine through community.docker itself
      community.docker.docker_host_info:
        docker_host: "{{ engine }}"
      register: host_info

    - name: Read the redis service
      pivotal.flow_ops.compose_service_info:
        project: pivotal-flow
        service: redis
        docker_host: "{{ engine }}"
        log_lines: 5
      register: before

    - name: Restart the redis service, gated on its healthcheck
      pivotal.flow_ops.compose_service:
        project: pivotal-flow
        service: redis
        docker_host: "{{ engine }}"
        state: restarted
        log_lines: 0
        stop_timeout: 2
        health_timeout: 30
      register: restart

    - name: Fail on the info state the module had before 0.6.0
      pivotal.flow_ops.compose_service:
        project: pivotal-flow
        service: redis
        docker_host: "{{ engine }}"
        state: info
      register: old_state
      ignore_errors: true
"""


def _collection_version(path: Path) -> str:
    manifest = json.loads((path / "MANIFEST.json").read_text())
    return str(manifest["collection_info"]["version"])


def _env(tmp_path: Path, extra_path: Path | None) -> dict[str, str]:
    """Only the checkout's pivotal.flow_ops and the community.docker under test: no ansible.cfg
    of the checkout (its collections_path), nothing from ANSIBLE_* of the caller."""
    cfg = tmp_path / "ansible.cfg"
    cfg.write_text("[defaults]\nretry_files_enabled = false\n")
    paths = [str(ROOT / "collections")] + ([str(extra_path)] if extra_path else [])
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(
        ANSIBLE_CONFIG=str(cfg),
        ANSIBLE_COLLECTIONS_PATH=os.pathsep.join(paths),
        ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
        ANSIBLE_LOCALHOST_WARNING="false",
        ANSIBLE_INVENTORY_UNPARSED_WARNING="false",
    )
    return env


def _run(argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, env=env, cwd=cwd, capture_output=True, text=True, check=False, timeout=300,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip


@pytest.fixture(params=["4", "5"], ids=["community.docker-4", "community.docker-5"])
def community_docker(request: pytest.FixtureRequest) -> tuple[str, Path | None, Path]:
    """(major, extra collections path, the community.docker directory that must load)."""
    if request.param == "4":
        return "4", None, BUNDLE / "ansible_collections" / "community" / "docker"
    assert (CACHED_5 / "ansible_collections" / "community" / "docker").is_dir(), (
        f"{CACHED_5} is missing: run scripts/setup.sh (it extracts community.docker 5.x)"
    )
    return "5", CACHED_5, CACHED_5 / "ansible_collections" / "community" / "docker"


def test_compose_modules_work_next_to_community_docker(
    compose: ComposeStack, community_docker: tuple[str, Path | None, Path], tmp_path: Path
) -> None:
    major, extra_path, expected = community_docker
    assert _collection_version(expected).startswith(f"{major}.")
    env = _env(tmp_path, extra_path)

    names = [
        "community.docker.docker_host_info",
        "pivotal.flow_ops.compose_service",
        "pivotal.flow_ops.compose_service_info",
    ]
    doc = _run([str(BIN / "ansible-doc"), "--json", *names], env, tmp_path)
    assert doc.returncode == 0, doc.stderr[-2000:]
    docs = json.loads(doc.stdout)
    assert docs[names[0]]["doc"]["filename"].startswith(str(expected) + os.sep)
    assert docs[names[1]]["doc"]["options"]["state"]["choices"] == ["restarted"]
    assert "docker_host" in docs[names[2]]["doc"]["options"]

    redis_before = compose.runs("redis")
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAYBOOK)
    proc = _run(
        [
            str(BIN / "ansible-playbook"),
            str(playbook),
            "-e",
            f"docker_host={compose.engine.base_url}",
        ],
        env,
        tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    results: dict[str, Any] = {
        task["task"]["name"]: task["hosts"]["localhost"]
        for play in json.loads(proc.stdout)["plays"]
        for task in play["tasks"]
    }
    host_info = results["Ask the engine through community.docker itself"]
    assert host_info["host_info"]["Containers"] >= 3

    before = results["Read the redis service"]
    assert (before["reachable"], before["running"], before["changed"]) == (True, True, False)
    assert [i["name"] for i in before["instances"]] == ["pivotal-flow-redis-1"]
    assert before["instances"][0]["health"] == "healthy"

    restart = results["Restart the redis service, gated on its healthcheck"]
    assert (restart["ok"], restart["changed"]) == (True, True), restart["msg"]
    assert "healthy after" in restart["restarted"][0]["detail"]
    after = compose.runs("redis")
    assert after != redis_before and after[0][0] == redis_before[0][0], "restarted, not recreated"
    assert compose.container("redis").attrs["State"]["Health"]["Status"] == "healthy"

    old = results["Fail on the info state the module had before 0.6.0"]
    assert old["failed"] and "value of state must be one of: restarted, got: info" in old["msg"]
