"""The Node.js backend's dependencies for a wheel install (pflow_ops/sandbox/node_deps.py): where
they go, when an install counts as done, and that a failed or stale one is never used. npm here is
a stand-in script (the real `npm ci` from the packaged lock runs in
tests/integration/test_wheel_install.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pflow_ops.sandbox import node_deps
from pflow_ops.sandbox.errors import SandboxError


@pytest.fixture
def src(tmp_path: Path) -> Path:
    d = tmp_path / "src"
    d.mkdir()
    for name in node_deps.FILES:
        (d / name).write_text(f"{name} v1\n")
    return d


def fake_npm(tmp_path: Path, body: str) -> Path:
    npm = tmp_path / "npm"
    npm.write_text("#!/bin/sh\n" + body + "\n")
    npm.chmod(0o755)
    return npm


GOOD = 'test "$1" = ci && test -f package-lock.json && mkdir -p node_modules/express'


def test_the_packaged_files_are_the_three_the_wheel_carries() -> None:
    for name in node_deps.FILES:
        assert (node_deps.PACKAGED / name).is_file(), name


def test_the_hash_covers_every_file(src: Path) -> None:
    before = node_deps.files_hash(src)
    (src / "server.js").write_text("server.js v2\n")
    assert node_deps.files_hash(src) != before


def test_user_dir_is_under_the_cache_and_ends_in_node_backend(tmp_path: Path) -> None:
    got = node_deps.user_dir("ab" * 32, {"XDG_CACHE_HOME": str(tmp_path)})
    assert got == tmp_path / "pflow-ops" / "node-backend" / ("ab" * 8) / "node_backend"
    home = node_deps.user_dir("cd" * 32, {})
    assert (
        home
        == Path("~/.cache").expanduser()
        / "pflow-ops"
        / "node-backend"
        / ("cd" * 8)
        / "node_backend"
    )


def test_installed_wants_the_stamp_and_the_modules(tmp_path: Path) -> None:
    d = tmp_path / "node_backend"
    assert not node_deps.installed(d, "h")
    (d / "node_modules" / "express").mkdir(parents=True)
    assert not node_deps.installed(d, "h"), "no stamp: an install that did not finish"
    (d / node_deps.STAMP).write_text("other\n")
    assert not node_deps.installed(d, "h"), "another version's install"
    (d / node_deps.STAMP).write_text("h\n")
    assert node_deps.installed(d, "h")


def test_install_runs_npm_ci_once_in_place_and_leaves_no_scratch(src: Path, tmp_path: Path) -> None:
    digest = node_deps.files_hash(src)
    target = tmp_path / "cache" / digest[:16] / "node_backend"
    got = node_deps.install(src, digest, target, fake_npm(tmp_path, GOOD))
    assert got == target and node_deps.installed(target, digest)
    assert sorted(p.name for p in target.iterdir()) == sorted(
        [*node_deps.FILES, "node_modules", node_deps.STAMP]
    )
    assert os.listdir(target.parent) == ["node_backend"]


def test_a_failed_npm_ci_is_one_line_and_leaves_nothing(src: Path, tmp_path: Path) -> None:
    digest = node_deps.files_hash(src)
    target = tmp_path / "cache" / "x" / "node_backend"
    npm = fake_npm(tmp_path, 'echo "npm ERR! 404 Not Found - GET express" >&2; exit 1')
    with pytest.raises(
        SandboxError, match=r"npm ci for the Node.js backend failed \(exit 1: npm ERR! 404"
    ):
        node_deps.install(src, digest, target, npm)
    assert not target.exists() and os.listdir(target.parent) == []


def test_a_stale_directory_is_replaced_not_trusted(src: Path, tmp_path: Path) -> None:
    digest = node_deps.files_hash(src)
    target = tmp_path / "cache" / "x" / "node_backend"
    (target / "node_modules" / "express").mkdir(parents=True)  # no stamp: half done, or by hand
    node_deps.install(src, digest, target, fake_npm(tmp_path, GOOD))
    assert node_deps.installed(target, digest)


def test_without_npm_the_refusal_names_the_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(node_deps.shutil, "which", lambda *_a, **_k: None)
    with pytest.raises(SandboxError) as err:
        node_deps.find_npm()
    assert "\n" not in str(err.value) and str(err.value).endswith("apt-get install npm")
