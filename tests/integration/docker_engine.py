"""A real Docker engine for the Compose tests, loaded as a pytest plugin by test_compose.py.

The session starts its own ``dockerd`` (vfs storage, no iptables, no bridge, its own data root,
exec root and socket under a short /tmp directory), brings the sandbox up on it with
``pflow-ops sandbox up --runtime docker`` (containers labelled as the Compose project
``pivotal-flow``, image imported locally), and tears everything down afterwards, checking that
no dockerd, containerd or container process and no mount is left behind.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pflow_ops.sandbox.docker import project as proj
from pflow_ops.sandbox.docker.engine import Engine, dockerd_path
from pflow_ops.sandbox.net import free_ports
from tests.integration.conftest import ROOT, Run, Stack


def _install_docker() -> str | None:
    """dockerd's path, installing Debian's docker.io first when it is absent (root only)."""
    found = dockerd_path()
    if found or os.geteuid() != 0 or not shutil.which("apt-get"):
        return found
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], env=env, check=False, capture_output=True)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "docker.io"],
        env=env,
        check=False,
        capture_output=True,
    )
    return dockerd_path()


@dataclass
class ComposeStack(Stack):
    """The sandbox as containers of the Compose project ``pivotal-flow`` on a private engine."""

    engine: Engine
    client: Any

    def containers(self, service: str) -> list[Any]:
        return proj.project_containers(self.client, proj.PROJECT, service)

    def container(self, service: str, number: int = 1) -> Any:
        return self.client.containers.get(proj.container_name(proj.PROJECT, service, number))

    def runs(self, service: str) -> list[tuple[str, str]]:
        """(container id, start time) of each replica: both change when a replica is restarted."""
        return [(c.id, c.attrs["State"]["StartedAt"]) for c in self.containers(service)]

    def recover(self, *extra: str) -> Run:
        # The sandbox's containers stop in well under a second; 2 s bounds a frozen one.
        return super().recover("-e", "service_manager_stop_timeout=2", *extra)

    def playbook(self, playbook: Path, *extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                str(ROOT / ".venv" / "bin" / "ansible-playbook"),
                *("-i", "inventories/local/hosts.yml", str(playbook)),
                *extra,
            ],
            env={**self.env, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")},
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
            timeout=180,
        )

    def add_backend_replica(self, number: int = 2) -> Any:
        """Scale the backend to ``number`` replicas: a clone of replica 1 on its own port."""
        first = self.container("backend")
        port = str(self.endpoints["backend"]["port"])
        new_port = str(free_ports(1)[0])
        config, host = first.attrs["Config"], first.attrs["HostConfig"]
        labels = {**config["Labels"], proj.LABEL_NUMBER: str(number)}
        health = dict(config["Healthcheck"])
        health["Test"] = [part.replace(port, new_port) for part in health["Test"]]
        return self.client.containers.run(
            config["Image"],
            [part if part != port else new_port for part in config["Cmd"]],
            name=proj.container_name(proj.PROJECT, "backend", number),
            detach=True,
            labels=labels,
            environment=config["Env"],
            volumes=host["Binds"],
            network_mode="host",
            mem_limit=host["Memory"] or None,
            memswap_limit=host["MemorySwap"] or None,
            healthcheck={
                "test": health["Test"],
                "interval": health["Interval"],
                "timeout": health["Timeout"],
                "retries": health["Retries"],
            },
            working_dir="/tmp",
        )

    def scale_backend_down(self) -> None:
        for container in self.containers("backend")[1:]:
            container.remove(force=True)


def _leftovers(root: Path) -> list[str]:
    mounts = [
        line.split()[1]
        for line in Path("/proc/self/mounts").read_text().splitlines()
        if str(root) in line
    ]
    procs = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(root) in cmdline:
            procs.append(f"{pid}: {cmdline[:120]}")
    return mounts + procs


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[Engine]:
    if os.geteuid() != 0:
        pytest.skip("COMPOSE TESTS SKIPPED: a private dockerd needs root and this run is not root")
    if _install_docker() is None:
        pytest.skip("COMPOSE TESTS SKIPPED: dockerd is absent and docker.io could not be installed")
    engine = Engine(Path(tempfile.mkdtemp(prefix="pfo-dk-", dir="/tmp")))
    engine.start()
    try:
        yield engine
    finally:
        engine.stop()
        engine.purge()  # also unmounts what dockerd leaves mounted (its netns/default)
        left = _leftovers(engine.root)
        assert left == [], f"the private Docker engine left these behind: {left}"


@pytest.fixture(scope="session")
def compose_stack(docker_engine: Engine) -> Iterator[ComposeStack]:
    import docker

    home = Path(tempfile.mkdtemp(prefix="pfo-ct-", dir="/tmp"))
    env = {**os.environ, "PFLOW_OPS_HOME": str(home), "PYTHONPATH": str(ROOT)}
    client = docker.DockerClient(base_url=docker_engine.base_url, timeout=60)
    stack = ComposeStack(home=home, env=env, engine=docker_engine, client=client)
    ports = [str(p) for p in free_ports(3)]
    up = stack.cli(
        "sandbox", "up", "--runtime", "docker", "--docker-host", docker_engine.base_url,
        "--backend-port", ports[0], "--postgres-port", ports[1], "--redis-port", ports[2],
    )  # fmt: skip
    assert up.rc == 0, up.stderr
    try:
        yield stack
    finally:
        down = stack.cli("sandbox", "down", "--purge")
        client.close()
        shutil.rmtree(home, ignore_errors=True)
        assert down.rc == 0, down.stderr


@pytest.fixture
def compose(compose_stack: ComposeStack) -> ComposeStack:
    """A healed project: one backend replica, every container healthy, fresh budget, no locks."""
    compose_stack.scale_backend_down()
    healed = compose_stack.cli("sandbox", "heal")
    assert healed.rc == 0, healed.stderr
    shutil.rmtree(compose_stack.home / "budget", ignore_errors=True)
    shutil.rmtree(compose_stack.home / "locks", ignore_errors=True)
    assert compose_stack.health() == 200
    return compose_stack
