"""Sandbox paths, ports and state: pure logic."""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

import pytest

from pflow_ops.sandbox import SandboxError, SandboxPorts, sandbox_dir
from pflow_ops.sandbox import layout as lay


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in [*lay.PORT_ENV.values(), lay.MAXMEMORY_ENV, "PFLOW_OPS_HOME"]:
        monkeypatch.delenv(var, raising=False)


def test_sandbox_dir_follows_pflow_ops_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PFLOW_OPS_HOME", str(tmp_path / "h"))
    assert sandbox_dir() == tmp_path / "h" / "sandbox"
    assert sandbox_dir(tmp_path / "other") == tmp_path / "other" / "sandbox"


def test_sandbox_dir_defaults_to_home_dot_pflow_ops(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/someone")
    assert sandbox_dir() == Path("/home/someone/.pflow-ops/sandbox")


def test_default_ports_and_env_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    assert lay.default_ports() == SandboxPorts(3000, 55432, 56379)
    monkeypatch.setenv("PFLOW_SANDBOX_PG_PORT", "45432")
    monkeypatch.setenv("PFLOW_SANDBOX_BACKEND_PORT", " 3100 ")
    assert lay.default_ports() == SandboxPorts(backend=3100, postgres=45432)


def test_bad_port_env_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PFLOW_SANDBOX_REDIS_PORT", "six")
    with pytest.raises(SandboxError, match="PFLOW_SANDBOX_REDIS_PORT must be a port number") as exc:
        lay.default_ports()
    assert exc.value.exit_code == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"backend": 0}, "backend port must be an integer 1-65535"),
        ({"redis": 70000}, "redis port must be an integer 1-65535"),
        ({"postgres": 3000}, "postgres and backend cannot share port 3000"),
    ],
)
def test_ports_are_validated(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(SandboxError, match=message):
        SandboxPorts(**kwargs)


def test_unprivileged_layout_keeps_postgres_under_the_sandbox(tmp_path: Path) -> None:
    layout = lay.Layout(tmp_path / "sandbox", privileged=False)
    assert layout.pg_data == tmp_path / "sandbox" / "postgres" / "data"
    assert layout.pg_socket_dir.parent == layout.pg_parent


def test_privileged_layout_moves_postgres_to_var_lib(tmp_path: Path) -> None:
    root = tmp_path / "sandbox"
    layout = lay.Layout(root, privileged=True)
    digest = hashlib.sha256(str(root).encode()).hexdigest()[:12]
    assert layout.pg_parent == Path("/var/lib/pflow-ops") / f"sandbox-{digest}"
    assert layout.pg_data == layout.pg_parent / "data"


def test_long_socket_path_is_refused_clearly(tmp_path: Path) -> None:
    layout = lay.Layout(tmp_path / ("x" * 120) / "sandbox", privileged=True)
    with pytest.raises(SandboxError, match="over the 107-byte limit; set PFLOW_OPS_HOME"):
        layout.check_socket_paths(55432)
    lay.Layout(Path("/tmp/pfo-x/sandbox"), privileged=False).check_socket_paths(55432)


def test_state_round_trips_and_keeps_passwords(tmp_path: Path) -> None:
    layout = lay.Layout(tmp_path / "sandbox", privileged=False)
    state = lay.SandboxState(ports=SandboxPorts(backend=3001))
    assert len({state.superuser_password, state.app_password, state.monitor_password}) == 3
    lay.save_state(layout, state)
    mode = stat.S_IMODE(layout.state_file.stat().st_mode)
    assert mode == 0o600
    loaded = lay.load_state(layout)
    assert loaded == state


def test_missing_state_is_none_and_corrupt_state_is_an_error(tmp_path: Path) -> None:
    layout = lay.Layout(tmp_path / "sandbox", privileged=False)
    assert lay.load_state(layout) is None
    layout.root.mkdir()
    layout.state_file.write_text(json.dumps({"ports": {"backend": "x"}}))
    with pytest.raises(SandboxError, match="is corrupt"):
        lay.load_state(layout)
    layout.state_file.write_text("{not json")
    with pytest.raises(SandboxError, match="cannot read"):
        lay.load_state(layout)


def test_error_messages_are_single_lines() -> None:
    err = SandboxError("initdb failed:\n  line one\n  line two")
    assert str(err) == "initdb failed: line one line two"
    assert err.exit_code == 1


def test_redis_maxmemory_comes_from_env_and_is_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    assert lay.default_maxmemory() == "64mb"
    assert lay.default_maxmemory("128mb") == "128mb"
    monkeypatch.setenv(lay.MAXMEMORY_ENV, "256MB")
    assert lay.default_maxmemory("128mb") == "256mb"
    monkeypatch.setenv(lay.MAXMEMORY_ENV, "lots")
    with pytest.raises(SandboxError, match="must be a size such as 64mb, got 'lots'"):
        lay.default_maxmemory()
