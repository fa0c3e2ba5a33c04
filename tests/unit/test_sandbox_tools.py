"""Locating PostgreSQL and Redis, with the install hint users need when they are missing."""

from __future__ import annotations

from pathlib import Path

import pytest

from pflow_ops.sandbox import SandboxError, tools


def _fake_pg(root: Path, version: str) -> Path:
    bin_dir = root / version / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "postgres").write_text("#!/bin/sh\necho 'postgres (PostgreSQL) 15.18 (Debian)'\n")
    (bin_dir / "postgres").chmod(0o755)
    return bin_dir


def test_prefers_postgresql_15(tmp_path: Path) -> None:
    _fake_pg(tmp_path, "16")
    fifteen = _fake_pg(tmp_path, "15")
    assert tools.find_pg_bin(tmp_path) == fifteen


def test_falls_back_to_the_highest_version(tmp_path: Path) -> None:
    _fake_pg(tmp_path, "9.6")
    _fake_pg(tmp_path, "13")
    sixteen = _fake_pg(tmp_path, "16")
    assert tools.find_pg_bin(tmp_path) == sixteen


def test_missing_postgresql_says_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(SandboxError, match=r"apt-get install postgresql-15"):
        tools.find_pg_bin(tmp_path)


def test_pg_version_is_read_from_the_binary(tmp_path: Path) -> None:
    assert tools.pg_version(_fake_pg(tmp_path, "15")) == "15.18"


def test_missing_redis_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shutil.which", lambda *a, **k: None)
    with pytest.raises(SandboxError, match=r"apt-get install redis-server"):
        tools.find_redis_server()


def test_supervisor_comes_from_this_interpreters_bin(monkeypatch: pytest.MonkeyPatch) -> None:
    daemon, ctl = tools.find_supervisor()
    assert daemon.name == "supervisord" and ctl.name == "supervisorctl"
    monkeypatch.setattr("sys.executable", "/nonexistent/bin/python")
    with pytest.raises(SandboxError, match=r"supervisord not found in /nonexistent/bin"):
        tools.find_supervisor()
