"""The docker runtime's pure parts: the base image, Compose labels and the CLI option."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from pflow_ops.cli import build_parser
from pflow_ops.sandbox.docker import faults as docker_faults
from pflow_ops.sandbox.docker import image
from pflow_ops.sandbox.docker import project as proj
from pflow_ops.sandbox.faults import FAULT_FILE
from pflow_ops.sandbox.layout import Layout


def test_rootfs_is_a_minimal_merged_usr_tree() -> None:
    data = image.rootfs_tar()
    assert data == image.rootfs_tar(), "deterministic, so the image is the same on every host"
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert members["bin"].issym() and members["bin"].linkname == "usr/bin"
    assert members["tmp"].isdir() and members["tmp"].mode == 0o1777
    assert {"etc/passwd", "etc/group", "usr", "proc", "sys", "dev"} <= set(members)


def test_containers_carry_the_labels_compose_sets() -> None:
    spec = proj.ServiceSpec(service="backend", command=["python", "-m", "x"])
    labels = proj.labels("pivotal-flow", spec, 2)
    assert labels[proj.LABEL_PROJECT] == "pivotal-flow"
    assert labels[proj.LABEL_SERVICE] == "backend"
    assert labels[proj.LABEL_NUMBER] == "2"
    assert labels[proj.LABEL_ONEOFF] == "False"
    assert labels[proj.LABEL_HASH] == spec.config_hash() and len(spec.config_hash()) == 64
    assert proj.LABEL_VERSION in labels
    other = proj.ServiceSpec(service="backend", command=["python", "-m", "y"])
    assert other.config_hash() != spec.config_hash()
    assert proj.container_name("pivotal-flow", "backend", 2) == "pivotal-flow-backend-2"


def test_host_mounts_cover_usr_and_this_python_without_nesting() -> None:
    mounts = proj.host_runtime_mounts()
    assert "/usr" in mounts
    for path in mounts:
        others = [m for m in mounts if m != path]
        assert not any(path.startswith(m + "/") for m in others), path


def test_sandbox_up_runtime_defaults_to_supervisor() -> None:
    args = build_parser().parse_args(["sandbox", "up"])
    assert args.runtime == "supervisor" and args.docker_host is None
    args = build_parser().parse_args(
        ["sandbox", "up", "--runtime", "docker", "--docker-host", "unix:///tmp/d.sock"]
    )
    assert (args.runtime, args.docker_host) == ("docker", "unix:///tmp/d.sock")


class _Container:
    """A stand-in for a Docker SDK container: its state, the signals sent, the restarts."""

    def __init__(self, service: str, exits_on: str = "") -> None:
        self.name = f"pivotal-flow-{service}-1"
        self.labels = {proj.LABEL_SERVICE: service}
        self.attrs: dict[str, Any] = {"State": {"Running": True, "ExitCode": 0}}
        self.exits_on, self.signals, self.restarts = exits_on, [], 0

    def kill(self, signal: str) -> None:
        self.signals.append(signal)
        if signal == self.exits_on:
            self.attrs["State"] = {"Running": False, "ExitCode": 1}

    def reload(self) -> None:
        pass

    def restart(self, timeout: int) -> None:
        self.restarts += 1


def _docker_sandbox(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, *containers: _Container
) -> Layout:
    layout = Layout.for_home(tmp_path)
    layout.backend_dir.mkdir(parents=True)
    monkeypatch.setattr(
        docker_faults, "_client", lambda layout: SimpleNamespace(close=lambda: None)
    )
    monkeypatch.setattr(
        proj,
        "project_containers",
        lambda client, project, service=None: [
            c for c in containers if service in (None, c.labels[proj.LABEL_SERVICE])
        ],
    )
    monkeypatch.setattr(docker_faults.lifecycle, "wait_healthy", lambda c, timeout: None)
    return layout


@pytest.mark.parametrize(
    ("fault", "word", "exits"),
    [
        ("backend-eventloop-block", "eventloop-block", False),
        ("backend-heap-leak", "heap-leak", True),
        ("backend-heap-high", "heap-high", False),
        ("backend-unhandled-rejection", "unhandled-rejection", True),
    ],
)
def test_node_faults_reach_the_container_through_its_fault_file_and_sighup(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fault: str, word: str, exits: bool
) -> None:
    backend = _Container("backend", exits_on="SIGHUP" if exits else "")
    layout = _docker_sandbox(monkeypatch, tmp_path, backend)
    said = docker_faults.break_fault(fault, tmp_path)
    assert (layout.backend_dir / FAULT_FILE).read_text(encoding="utf-8") == word + "\n"
    assert backend.signals == ["SIGHUP"]
    assert ("exited (1)" in said) is exits and word in said


def test_heal_restarts_a_blocked_backend_and_forgets_the_fault(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    backend, redis = _Container("backend"), _Container("redis")
    layout = _docker_sandbox(monkeypatch, tmp_path, backend, redis)
    docker_faults.break_fault("backend-eventloop-block", tmp_path)
    assert docker_faults.heal(tmp_path) == ["restarted pivotal-flow-backend-1 (event loop blocked)"]
    assert backend.restarts == 1 and redis.restarts == 0 and redis.signals == ["SIGCONT"]
    assert not (layout.backend_dir / FAULT_FILE).exists()
    # Healed: the next heal only thaws (SIGCONT), it restarts nothing.
    assert docker_faults.heal(tmp_path) == [] and backend.restarts == 1
    docker_faults.break_fault("backend-heap-high", tmp_path)
    healed = docker_faults.heal(tmp_path)
    assert healed == ["restarted pivotal-flow-backend-1 (heap held near its limit)"]
    assert backend.restarts == 2
