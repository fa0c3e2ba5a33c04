"""The journal is the audit log and the durable queue: what survives a crash, and what the
receiver does with it at start (requeue the interrupted run, decide undecided receipts)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from pflow_ops import routing
from pflow_ops.receiver import payload
from pflow_ops.receiver.core import Receiver
from pflow_ops.receiver.journal import Journal, JournalBusy
from pflow_ops.receiver.loadtest import alert, notification
from pflow_ops.receiver.policy import Policy
from pflow_ops.receiver.worker import RunResult

ROUTES = routing.Table(
    targets={
        "RB-01": routing.Target("RB-01", "backend"),
        "RB-02": routing.Target("RB-02", "database"),
    },
    by_alert={"BackendServiceDown": "RB-01", "DatabaseSlowQueries": "RB-02"},
    aliases={},
    alias_of={},
)


class RecordingLauncher:
    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def run(self, argv: list[str], timeout: float) -> RunResult:
        self.calls.append(argv)
        return RunResult(0, "recovered", 0.01, run_id=f"run-{len(self.calls)}", changed=1)

    def abort(self) -> None:
        pass


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PFLOW_OPS_HOME", str(tmp_path / "home"))


def events(journal: Journal) -> list[dict[str, Any]]:
    return list(journal.read())


def test_append_writes_whole_lines_that_read_back(tmp_path: Path) -> None:
    j = Journal(tmp_path / "r")
    j.open()
    j.append({"event": "received", "rid": "a"}, {"event": "decision", "rid": "a"})
    j.append()
    j.close()
    lines = (tmp_path / "r" / "journal.jsonl").read_text().splitlines()
    assert [json.loads(line)["event"] for line in lines] == ["received", "decision"]
    assert all("ts" in json.loads(line) for line in lines)


def test_a_torn_last_line_is_skipped_and_the_next_record_starts_clean(tmp_path: Path) -> None:
    j = Journal(tmp_path / "r")
    j.open()
    j.append({"event": "received", "rid": "a"})
    j.close()
    with (tmp_path / "r" / "journal.jsonl").open("ab") as fh:
        fh.write(b'{"event": "received", "ri')  # the crash cut this write short
        fh.write(b"\n\x00garbage\n[1]\n")
    with (tmp_path / "r" / "journal.jsonl").open("ab") as fh:
        fh.write(b'{"event": "decision", "rid": "a", "act')
    j = Journal(tmp_path / "r")
    j.open()
    j.append({"event": "decision", "rid": "a", "action": "queued"})
    got = events(j)
    j.close()
    assert [(e["event"], e["rid"]) for e in got] == [("received", "a"), ("decision", "a")]
    assert j.skipped == 4


def test_one_receiver_per_state_directory(tmp_path: Path) -> None:
    first = Journal(tmp_path / "r")
    first.open()
    with pytest.raises(JournalBusy, match="another receiver"):
        Journal(tmp_path / "r").open()
    first.close()
    second = Journal(tmp_path / "r")
    second.open()
    second.close()


def _receiver(tmp_path: Path, launcher: RecordingLauncher, dry_run: bool = False) -> Receiver:
    j = Journal(tmp_path / "r")
    j.open()
    policy = Policy(ROUTES, throttle_window=600, dedupe_window=600)
    return Receiver(
        "local",
        policy,
        j,
        launcher,
        prefix=("pflow-alert",),
        dry_run=dry_run,
        log=lambda *a, **k: None,
    )


def _run_workers(app: Receiver, launcher: RecordingLauncher, expected: int) -> None:
    threads = [threading.Thread(target=app.work, args=(s,)) for s in ("backend", "database")]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with app.cond:
            done = len(launcher.calls) >= expected and not app.policy.items
        if done:
            break
        time.sleep(0.02)
    app.stop()
    for t in threads:
        t.join(5)


def test_receive_journals_every_alert_before_its_decision(tmp_path: Path) -> None:
    app = _receiver(tmp_path, RecordingLauncher())
    note = payload.parse(
        json.dumps(
            notification(
                alert("BackendServiceDown", "aa"),
                alert("NoSuchAlert", "bb"),
                alert("BackendServiceDown", "aa"),
            )
        ).encode()
    )
    answer = app.receive(note)
    assert [a["decision"] for a in answer] == ["queued", "ignored", "deduplicated"]
    got = [(e["event"], e.get("action") or e.get("alertname")) for e in events(app.journal)]
    assert got == [
        ("received", "BackendServiceDown"),
        ("received", "NoSuchAlert"),
        ("received", "BackendServiceDown"),
        ("decision", "queued"),
        ("decision", "ignored"),
        ("decision", "deduplicated"),
    ]
    assert app.metrics.value("alerts_ignored_total", reason="unknown_alert") == 1
    app.journal.close()


def test_restart_requeues_the_interrupted_run_and_decides_what_was_undecided(
    tmp_path: Path,
) -> None:
    j = Journal(tmp_path / "r")
    j.open()
    firing = {"status": "firing", "labels": {}}
    j.append(
        {
            "event": "received",
            "rid": "a",
            **firing,
            "alertname": "BackendServiceDown",
            "fingerprint": "aa",
        },
        {
            "event": "decision",
            "rid": "a",
            "action": "queued",
            "runbook": "RB-01",
            "service": "backend",
        },
        {"event": "started", "rid": "a", "attempt": 1, "argv": []},
        {
            "event": "received",
            "rid": "b",
            **firing,
            "alertname": "DatabaseSlowQueries",
            "fingerprint": "bb",
        },
    )
    j.close()  # the receiver was killed here: "a" mid-run, "b" never decided
    launcher = RecordingLauncher()
    app = _receiver(tmp_path, launcher)
    app.recover()
    kinds = [(e["event"], e["rid"]) for e in events(app.journal)][4:]
    assert kinds == [("requeued", "a"), ("decision", "b")]
    _run_workers(app, launcher, expected=2)
    assert sorted(argv[1] for argv in launcher.calls) == [
        "BackendServiceDown",
        "DatabaseSlowQueries",
    ]
    finished = {e["rid"]: e for e in events(app.journal) if e["event"] == "finished"}
    assert set(finished) == {"a", "b"}
    assert finished["a"]["outcome"] == "recovered"
    assert app.metrics.value("runs_total", runbook="RB-01", outcome="recovered") == 1
    app.journal.close()


def test_labels_never_reach_argv_only_the_validated_name_and_fingerprint(tmp_path: Path) -> None:
    launcher = RecordingLauncher()
    app = _receiver(tmp_path, launcher, dry_run=True)
    nasty = {
        "instance": "$(touch /tmp/pwned)",
        "job": "`id`; rm -rf / &&",
        "env": "../../../etc",
        "service": "--extra-vars=@/etc/passwd",
    }
    body = notification(
        alert("BackendServiceDown", "00ff00ff00ff00ff", labels=nasty),
        alert("DatabaseSlowQueries;id", "11"),
        alert("DatabaseSlowQueries", "11 --check"),
        alert("../DatabaseSlowQueries", "22"),
    )
    app.receive(payload.parse(json.dumps(body).encode()))
    _run_workers(app, launcher, expected=1)
    assert launcher.calls == [
        [
            "pflow-alert",
            "BackendServiceDown",
            "--env",
            "local",
            "--output",
            "json",
            "--yes",
            "--fingerprint",
            "00ff00ff00ff00ff",
            "--check",
            "--runbook",
            "RB-01",
        ]
    ]
    app.journal.close()
