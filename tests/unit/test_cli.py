"""The CLI contract that does not need services: usage errors, guards, JSON shapes, speed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pflow_ops import cli
from pflow_ops.errors import UsageError
from pflow_ops.lock import LockHeld, RunLock
from pflow_ops.request import parse_extra_vars

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PFLOW_OPS_HOME", str(tmp_path / "home"))


def test_list_json_carries_every_runbook(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["list", "--output", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [rb["id"] for rb in data["runbooks"]] == ["RB-01", "RB-02", "RB-03"]
    assert data["runbooks"][0]["severity"] == "critical"
    assert "BackendServiceDown" in data["runbooks"][0]["alerts"]
    assert {job["service"]: job["schedule"] for job in data["maintenance"]} == {
        "database": "0 3 * * 0",
        "cache": "30 4 * * *",
    }


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["recover", "rb-99", "--env", "local"], "choose one of rb-01, rb-02, rb-03"),
        (["recover", "rb-01", "--env", "moon"], "choose one of local, prod, staging"),
        (["diagnose", "RB-01", "--env", "moon"], "unknown environment 'moon'"),
        (["recover", "rb-01", "-e", "no-equals"], "expected KEY=VALUE"),
        (["report", "nope"], "no report for run 'nope'"),
        (["maintain", "redis", "--env", "local"], "choose one of database, cache"),
        (["alert", "DiskFull", "--env", "local"], "known alerts are BackendEventLoopBlocked, "),
        (["alert", "HighErrorRate", "--env", "moon"], "unknown environment 'moon'"),
        (
            ["alert", "HighErrorRate", "--env", "local", "--fingerprint", "$(reboot)"],
            "expected up to 32 hex digits",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err
    assert len(err.splitlines()) == 1
    assert "Traceback" not in err


def test_protected_env_without_yes_and_without_terminal_is_refused() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pflow_ops",
            "recover",
            "rb-01",
            "--env",
            "prod",
            "--output",
            "json",
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 3
    assert "protected" in proc.stderr and "--yes" in proc.stderr
    assert json.loads(proc.stdout)["outcome"] == "refused"


def test_a_held_lock_refuses_a_second_holder(tmp_path: Path) -> None:
    first = RunLock("local", "backend", "run-1", directory=tmp_path)
    first.acquire()
    with pytest.raises(LockHeld, match="run-1"):
        RunLock("local", "backend", "run-2", directory=tmp_path).acquire()
    first.release()
    with RunLock("local", "backend", "run-3", directory=tmp_path):
        pass


def test_lock_is_released_when_the_holder_is_killed(tmp_path: Path) -> None:
    code = (
        f"import sys, time; sys.path.insert(0, {str(ROOT)!r})\n"
        "from pathlib import Path\nfrom pflow_ops.lock import RunLock\n"
        f"RunLock('local', 'backend', 'victim', directory=Path({str(tmp_path)!r})).acquire()\n"
        "print('held', flush=True); time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    with pytest.raises(LockHeld):
        RunLock("local", "backend", "other", directory=tmp_path).acquire()
    proc.kill()
    proc.wait()
    with RunLock("local", "backend", "after-kill", directory=tmp_path):
        pass


def test_extra_vars_are_text_until_typed_by_the_specs_and_never_templates() -> None:
    # The roles' argument specs type them (pflow_ops.validate): a str keeps what was typed.
    assert parse_extra_vars(["a=0", "b=true", "c=1.5", "d=text", "e=", "f=0123"]) == {
        "a": "0",
        "b": "true",
        "c": "1.5",
        "d": "text",
        "e": "",
        "f": "0123",
    }
    with pytest.raises(UsageError, match="template markers"):
        parse_extra_vars(["x={{ lookup('pipe', 'id') }}"])


@pytest.mark.parametrize(
    "argv",
    [
        ["recover", "rb-99", "--output", "json"],
        ["recover", "rb-01", "--env", "moon", "--output=json"],
        ["recover", "rb-01", "-e", "backend_health_gate_timout=40", "--output", "json"],
        ["diagnose", "rb-01", "-e", "no-equals", "--output", "json"],
        ["recover", "--output", "json"],  # argparse: the runbook is missing
        ["recover", "rb-01", "--output", "json", "--bogus"],
        ["report", "nope", "--output", "json"],
    ],
)
def test_every_exit_prints_one_json_object_with_output_json(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    data = json.loads(captured.out)  # exactly one object: json.loads refuses trailing text
    assert (data["outcome"], data["exit_code"], data["run_id"]) == ("usage", 2, None)
    assert data["reason"] and data["reason"] in captured.err
    assert (data["changed"], data["actions"], data["report"]) == (0, [], None)


def test_text_output_usage_errors_print_nothing_on_stdout(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["recover", "rb-01", "-e", "backend_health_gate_timout=40"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "did you mean backend_health_gate_timeout?" in captured.err


def test_help_and_list_do_not_import_ansible() -> None:
    code = (
        "import sys\nfrom pflow_ops.cli import main\n"
        "main(['list'])\n"
        "bad = sorted(m for m in sys.modules if m.startswith(('ansible', 'ansible_runner')))\n"
        "print(bad)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip().splitlines()[-1] == "[]"
