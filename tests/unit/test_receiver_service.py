"""``pflow-ops serve`` start-up guards: the token, protected environments, one receiver per
environment, a cheap options module."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from pflow_ops.receiver import service
from pflow_ops.receiver.journal import Journal

TOKEN = "s3cret-token-0123456789"


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PFLOW_OPS_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("PFLOW_OPS_RECEIVER_TOKEN", raising=False)


def test_token_from_the_environment_or_a_file(tmp_path: Path) -> None:
    assert service.load_token(None, {"PFLOW_OPS_RECEIVER_TOKEN": f" {TOKEN}\n"}) == TOKEN.encode()
    path = tmp_path / "token"
    path.write_text("file-token-abcdefghijk\n")
    path.chmod(0o600)
    assert service.load_token(str(path), {"PFLOW_OPS_RECEIVER_TOKEN": TOKEN}) == (
        b"file-token-abcdefghijk"
    )


@pytest.mark.parametrize(
    ("token_file", "environ", "message"),
    [
        (None, {}, "no bearer token"),
        (None, {"PFLOW_OPS_RECEIVER_TOKEN": "   "}, "no bearer token"),
        (None, {"PFLOW_OPS_RECEIVER_TOKEN": "short"}, "at least 16"),
        (None, {"PFLOW_OPS_RECEIVER_TOKEN": "has a space in it, sixteen+"}, "without spaces"),
        ("/nonexistent/token", {}, "cannot read the token file"),
    ],
)
def test_no_usable_token_is_refused(
    token_file: str | None, environ: dict[str, str], message: str
) -> None:
    with pytest.raises(service.ServeError, match=message) as info:
        service.load_token(token_file, environ)
    assert info.value.code == 2


def test_serve_without_a_token_exits_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert service.main(["--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "no bearer token" in err


def test_protected_environment_needs_yes(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PFLOW_OPS_RECEIVER_TOKEN", TOKEN)
    assert service.main(["--env", "prod", "--port", "0"]) == 3
    assert "environment 'prod' is protected: pass --yes" in capsys.readouterr().err


def test_unknown_environment_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PFLOW_OPS_RECEIVER_TOKEN", TOKEN)
    assert service.main(["--env", "moon"]) == 2
    assert "unknown environment 'moon'" in capsys.readouterr().err


def test_a_second_receiver_for_the_same_environment_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PFLOW_OPS_RECEIVER_TOKEN", TOKEN)
    first = Journal(tmp_path / "home" / "receiver" / "local")
    first.open()
    try:
        assert service.main(["--port", "0"]) == 3
    finally:
        first.close()
    assert "another receiver is already using" in capsys.readouterr().err


def test_address_in_use_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PFLOW_OPS_RECEIVER_TOKEN", TOKEN)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert service.main(["--port", str(port)]) == 2
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


def test_the_options_module_imports_nothing_heavy() -> None:
    code = (
        "import sys, pflow_ops.receiver.options as o, argparse; "
        "o.add_serve_args(argparse.ArgumentParser()); "
        "heavy = ('yaml', 'http.server', 'ansible_runner', 'sqlite3', 'pflow_ops.receiver.core'); "
        "print([m for m in heavy if m in sys.modules])"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    assert out.stdout.strip() == "[]"


def test_launcher_cmd_is_hidden_from_help() -> None:
    text = service.build_parser().format_help()
    assert "--launcher-cmd" not in text
    assert "--token-file" in text and "--dry-run" in text
