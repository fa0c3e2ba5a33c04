"""The docker runtime's pure parts: the base image, Compose labels and the CLI option."""

from __future__ import annotations

import io
import tarfile

from pflow_ops.cli import build_parser
from pflow_ops.sandbox.docker import image
from pflow_ops.sandbox.docker import project as proj


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
