"""The pause switch: the file (atomic, 0600, fail closed when corrupt), the command, and the
receiver that follows it (journals it, decides while paused, starts nothing until resumed)."""

from __future__ import annotations

import json
import os
import stat
import threading
import time
from pathlib import Path

import pytest

from bench.loadtest import alert, notification
from pflow_ops import cli, routing
from pflow_ops.receiver import control, payload
from pflow_ops.receiver.core import Receiver
from pflow_ops.receiver.journal import Journal
from pflow_ops.receiver.policy import Policy
from pflow_ops.receiver.worker import RunResult


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PFLOW_OPS_HOME", str(tmp_path / "home"))


@pytest.mark.parametrize(
    ("raw", "paused", "error"),
    [
        (b'{"paused": true, "by": "a@b", "reason": "db upgrade", "since": 5}', True, False),
        (b'{"paused": true}', True, False),
        (b"", True, True),
        (b'{"paused": tr', True, True),
        (b"[1, 2]", True, True),
        (b'{"paused": false}', True, True),
        (b'{"paused": "yes"}', True, True),
        (b"\xff\xfe", True, True),
    ],
)
def test_a_pause_file_is_paused_whatever_its_content(raw: bytes, paused: bool, error: bool) -> None:
    state = control.parse_pause(raw, Path("pause.json"))
    assert state.paused is paused
    assert bool(state.error) is error


def test_no_file_is_not_paused_and_an_unreadable_one_is(tmp_path: Path) -> None:
    assert control.read_pause(tmp_path).paused is False
    (tmp_path / control.PAUSE_FILE).mkdir()  # reading it fails: EISDIR
    state = control.read_pause(tmp_path)
    assert state.paused and "cannot read" in state.error


def test_pause_writes_a_private_file_atomically_and_resume_removes_it(tmp_path: Path) -> None:
    d = tmp_path / "r"
    written = control.write_pause(d, "db upgrade", by="ops@host")
    path = d / control.PAUSE_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in d.iterdir()] == [control.PAUSE_FILE]  # no temporary file left
    assert control.read_pause(d) == written
    assert written.by == "ops@host" and written.reason == "db upgrade"
    assert control.clear_pause(d) is True
    assert control.clear_pause(d) is False
    assert control.read_pause(d).paused is False


def test_receiver_running_is_probed_without_taking_the_lock(tmp_path: Path) -> None:
    d = tmp_path / "r"
    assert control.receiver_running(d) is False
    journal = Journal(d)
    journal.open()
    assert control.receiver_running(d) is True
    journal.close()
    assert control.receiver_running(d) is False


def test_the_command_pauses_shows_and_resumes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["receiver", "pause", "--env", "local", "--reason", "db upgrade"]) == 0
    assert "paused by" in capsys.readouterr().out
    assert cli.main(["receiver", "status", "--env", "local", "--output", "json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["paused"] is True and shown["reason"] == "db upgrade"
    assert shown["receiver_running"] is False
    assert cli.main(["receiver", "resume", "--env", "local"]) == 0
    assert cli.main(["receiver", "status", "--env", "local"]) == 0
    assert "not paused" in capsys.readouterr().out.splitlines()[-1]
    assert cli.main(["receiver", "pause", "--env", "no-such-env"]) == 2


# -- the receiver follows the switch -----------------------------------------------------------
TABLE = routing.Table(
    targets={"RB-01": routing.Target("RB-01", "backend")},
    by_alert={"BackendServiceDown": "RB-01"},
    aliases={},
    alias_of={},
)


class Launcher:
    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def run(self, argv: list[str], timeout: float) -> RunResult:
        self.calls.append(argv)
        return RunResult(0, "recovered", 0.01)

    def abort(self) -> None:
        pass


def _app(tmp_path: Path, lines: list[str]) -> tuple[Receiver, Launcher]:
    journal = Journal(tmp_path / "r")
    journal.open()
    launcher = Launcher()
    app = Receiver(
        "local",
        Policy(TABLE, throttle_window=0, dedupe_window=0),
        journal,
        launcher,
        prefix=("pflow-alert",),
        log=lambda event, level="", **k: lines.append(f"{level} {event}".strip()),
    )
    return app, launcher


def _wait(predicate: object, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(predicate) and predicate():
            return
        time.sleep(0.02)
    raise AssertionError("timed out")


def test_paused_the_receiver_decides_but_starts_nothing_until_resumed(tmp_path: Path) -> None:
    lines: list[str] = []
    app, launcher = _app(tmp_path, lines)
    control.write_pause(app.pause_dir, "maintenance", by="ops@host")
    app.recover()  # a receiver started while paused begins paused
    assert app.policy.paused is not None
    thread = threading.Thread(target=app.work, args=("backend",))
    thread.start()
    try:
        note = payload.parse(json.dumps(notification(alert("BackendServiceDown", "aa"))).encode())
        assert app.receive(note)[0]["decision"] == "queued"
        time.sleep(2 * 1.0)  # two pause polls: still nothing started
        assert launcher.calls == []
        control.clear_pause(app.pause_dir)
        _wait(lambda: len(launcher.calls) == 1)
    finally:
        app.stop()
        thread.join(5)
    log = [e for e in app.journal.read() if e["event"] in ("paused", "resumed", "started")]
    assert [e["event"] for e in log] == ["paused", "resumed", "started"]
    assert (log[0]["by"], log[0]["reason"]) == ("ops@host", "maintenance")
    assert app.metrics.value("alerts_received_total", status="firing") == 1
    app.journal.close()


def test_a_corrupt_pause_file_pauses_with_one_warning_line(tmp_path: Path) -> None:
    lines: list[str] = []
    app, _ = _app(tmp_path, lines)
    app.pause_dir.mkdir(parents=True, exist_ok=True)
    (app.pause_dir / control.PAUSE_FILE).write_bytes(b"{garbage")
    app.recover()
    with app.cond:
        for _ in range(3):
            app.sync_pause(force=True)
    assert app.policy.paused is not None
    assert lines.count("WARNING pause_file_unreadable") == 1
    assert "pflow_receiver_paused 1" in app.metrics.render(0, 0)
    os.unlink(app.pause_dir / control.PAUSE_FILE)
    with app.cond:
        app.sync_pause(force=True)
    assert app.policy.paused is None
    assert "pflow_receiver_paused 0" in app.metrics.render(0, 0)
    app.journal.close()
