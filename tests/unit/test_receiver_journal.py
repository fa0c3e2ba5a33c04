"""The journal is the audit log and the durable queue: what survives a crash, and what the
receiver does with it at start (requeue the interrupted run, decide undecided receipts)."""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from bench.loadtest import alert, notification
from pflow_ops import routing
from pflow_ops.receiver import journal as journal_mod
from pflow_ops.receiver import payload
from pflow_ops.receiver.compaction import maybe_compact, threshold
from pflow_ops.receiver.core import Receiver
from pflow_ops.receiver.journal import Journal, JournalBusy
from pflow_ops.receiver.metrics import Metrics
from pflow_ops.receiver.policy import Policy
from pflow_ops.receiver.worker import RunResult

RID_A, RID_B = "18a2b3c4d5e6f708-00000a", "18a2b3c4d5e6f708-00000b"  # as core.new_rid makes them
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
            "rid": RID_A,
            **firing,
            "alertname": "BackendServiceDown",
            "fingerprint": "aa",
        },
        {
            "event": "decision",
            "rid": RID_A,
            "action": "queued",
            "runbook": "RB-01",
            "service": "backend",
        },
        {"event": "started", "rid": RID_A, "attempt": 1, "argv": []},
        {
            "event": "received",
            "rid": RID_B,
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
    assert kinds == [("requeued", RID_A), ("decision", RID_B)]
    _run_workers(app, launcher, expected=2)
    assert sorted(argv[1] for argv in launcher.calls) == [
        "BackendServiceDown",
        "DatabaseSlowQueries",
    ]
    finished = {e["rid"]: e for e in events(app.journal) if e["event"] == "finished"}
    assert set(finished) == {RID_A, RID_B}
    assert finished[RID_A]["outcome"] == "recovered"
    assert app.metrics.value("runs_total", runbook="RB-01", outcome="recovered") == 1
    app.journal.close()


def test_labels_reach_argv_only_as_the_checked_name_fingerprint_group_key(tmp_path: Path) -> None:
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
    [queued_rid] = [e["rid"] for e in events(app.journal) if e.get("action") == "queued"]
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
            # The notification's group key: checked text, one argv item, hashed by the run.
            '--group-key={}:{alertname=""}',
            "--check",
            "--receipt",
            queued_rid,
            "--runbook",
            "RB-01",
        ]
    ]
    app.journal.close()


# -- compaction: a bounded live journal, the history in archives -----------------------------


class _AnyTs:
    def __eq__(self, other: object) -> bool:
        return isinstance(other, float) and abs(other - time.time()) < 3600


ANY_TS: Any = _AnyTs()


def _snapshot_state(journal: Journal) -> list[dict[str, Any]]:
    """A minimal stand-in for the policy's snapshot: the pending rids in one record."""
    pending = sorted(
        {e["rid"] for e in journal.read() if e["event"] == "received"}
        - {e["rid"] for e in journal.read() if e["event"] == "finished"}
    )
    return [{"event": "snapshot", "pending": pending}]


def _archived(path: Path) -> list[dict[str, Any]]:
    with gzip.open(path, "rt", encoding="ascii") as fh:
        return [json.loads(line) for line in fh]


def test_compact_replaces_the_live_file_and_archives_the_old_one(tmp_path: Path) -> None:
    j = Journal(tmp_path / "r")
    j.open()
    j.append({"event": "received", "rid": "a"}, {"event": "received", "rid": "b"})
    j.append({"event": "finished", "rid": "a"})
    old = (tmp_path / "r" / "journal.jsonl").read_bytes()
    archive = j.compact(_snapshot_state(j))
    assert events(j) == [{"ts": ANY_TS, "event": "snapshot", "pending": ["b"]}]
    assert archive.parent == tmp_path / "r"
    assert re.fullmatch(r"journal-\d{8}T\d{6}\.\d{6}Z\.jsonl\.gz", archive.name)
    assert gzip.decompress(archive.read_bytes()) == old
    assert archive.stat().st_mode & 0o777 == 0o600
    # Appends after the compaction land in the new live file, after the snapshot.
    j.append({"event": "received", "rid": "c"})
    assert [e["event"] for e in events(j)] == ["snapshot", "received"]
    assert j.size_bytes() == (tmp_path / "r" / "journal.jsonl").stat().st_size
    assert j.compacted_bytes < j.size_bytes()
    j.close()
    assert Journal(tmp_path / "r").size_bytes() == j.size_bytes()
    assert not list((tmp_path / "r").glob("*.tmp"))


def test_compaction_keeps_the_newest_archives_only(tmp_path: Path) -> None:
    j = Journal(tmp_path / "r", archives=2)
    j.open()
    for n in range(4):
        j.append({"event": "received", "rid": f"r{n}"})
        j.compact([{"event": "snapshot", "n": n}])
    kept = j.archive_paths()
    assert len(kept) == 2
    # The newest two: the live file before the 3rd and the 4th compaction.
    assert [[e.get("rid") or e.get("n") for e in _archived(p)] for p in kept] == [
        [1, "r2"],
        [2, "r3"],
    ]
    j.close()
    with pytest.raises(ValueError):
        Journal(tmp_path / "x", archives=-1)


def _fail_on(monkeypatch: pytest.MonkeyPatch, point: str) -> None:
    """Make one step of a compaction fail, as a full disk or an I/O error would."""

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise OSError(28, f"No space left on device ({point})")

    if point == "temp_write":
        monkeypatch.setattr(journal_mod, "_write_all", boom)
    elif point == "archive":
        monkeypatch.setattr(journal_mod.shutil, "copyfileobj", boom)
    elif point == "rename":
        real = os.replace

        def replace(src: Any, dst: Any) -> None:
            if Path(dst).name == "journal.jsonl":
                boom()
            real(src, dst)

        monkeypatch.setattr(journal_mod.os, "replace", replace)


@pytest.mark.parametrize("point", ["temp_write", "archive", "rename"])
def test_a_compaction_that_fails_leaves_the_old_journal_live_and_writable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, point: str
) -> None:
    j = Journal(tmp_path / "r")
    j.open()
    j.append({"event": "received", "rid": "a"})
    before = (tmp_path / "r" / "journal.jsonl").read_bytes()
    with monkeypatch.context() as m:
        _fail_on(m, point)
        with pytest.raises(OSError, match="No space left"):
            j.compact([{"event": "snapshot"}])
    assert (tmp_path / "r" / "journal.jsonl").read_bytes() == before
    assert not list((tmp_path / "r").glob("*.tmp"))
    j.append({"event": "decision", "rid": "a", "action": "queued"})  # still the live file's fd
    assert [e["event"] for e in events(j)] == ["received", "decision"]
    # And a compaction after the failure goes through.
    j.compact([{"event": "snapshot"}])
    assert [e["event"] for e in events(j)] == ["snapshot"]
    j.close()


def test_leftovers_of_a_compaction_killed_before_its_rename_are_removed(tmp_path: Path) -> None:
    """A crash between the archive and the rename: the old live file, a temporary new one and
    a half-written archive. The old file is the journal; the temporaries go at the next start."""
    j = Journal(tmp_path / "r")
    j.open()
    j.append({"event": "received", "rid": "a"})
    j.close()
    (tmp_path / "r" / ".journal.jsonl.tmp").write_text('{"event": "snapshot"}\n')
    (tmp_path / "r" / "journal-20260101T000000.000000Z.jsonl.gz.tmp").write_bytes(b"\x1f\x8b")
    j = Journal(tmp_path / "r")
    j.open()
    assert [e["event"] for e in events(j)] == ["received"]
    assert not list((tmp_path / "r").glob("*.tmp"))
    j.close()


KILLED_COMPACTOR = """\
import sys
from pathlib import Path
from pflow_ops.receiver.journal import Journal
j = Journal(Path(sys.argv[1]), archives=1)
j.open()
a = [{"event": "snapshot", "set": "A", "n": n, "pad": "x" * 200} for n in range(3000)]
b = [{"event": "snapshot", "set": "B", "n": n, "pad": "y" * 200} for n in range(3000)]
j.compact(a)
print("ready", flush=True)
while True:
    j.compact(b)
    j.compact(a)
"""


@pytest.mark.parametrize("delay", [0.05, 0.2, 0.5])
def test_a_compactor_killed_at_any_moment_leaves_one_whole_journal(
    tmp_path: Path, delay: float
) -> None:
    """SIGKILL a process compacting in a loop: the live journal is always one of the two
    snapshots, whole (the kill lands wherever it lands; each set must read back complete)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_COMPACTOR, str(tmp_path / "r")],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    time.sleep(delay)
    proc.kill()
    proc.wait()
    j = Journal(tmp_path / "r")
    j.open()
    got = events(j)
    assert j.skipped == 0
    assert {e["set"] for e in got} in ({"A"}, {"B"})
    assert [e["n"] for e in got] == list(range(3000))
    j.append({"event": "received", "rid": "after"})
    assert events(j)[-1]["rid"] == "after"
    j.close()


def test_maybe_compact_only_above_the_threshold(tmp_path: Path) -> None:
    j = Journal(tmp_path / "r")
    j.open()
    metrics = Metrics()
    lines: list[tuple[str, dict[str, Any]]] = []

    def log(event: str, **fields: Any) -> None:
        lines.append((event, fields))

    def snapshot() -> list[dict[str, Any]]:
        return _snapshot_state(j)

    j.append({"event": "received", "rid": "a"})
    assert not maybe_compact(j, snapshot, max_bytes=10_000, metrics=metrics, log=log)
    for n in range(200):
        j.append({"event": "received", "rid": f"x{n}"}, {"event": "finished", "rid": f"x{n}"})
    assert j.size_bytes() > 10_000
    assert maybe_compact(j, snapshot, max_bytes=10_000, metrics=metrics, log=log)
    assert j.size_bytes() < 10_000
    assert [e["pending"] for e in events(j)] == [["a"]]
    assert metrics.value("journal_compactions_total") == 1
    assert lines[-1][0] == "journal_compacted"
    assert not maybe_compact(j, snapshot, max_bytes=10_000, metrics=metrics, log=log)
    j.close()


def test_a_snapshot_larger_than_the_limit_does_not_compact_on_every_append(
    tmp_path: Path,
) -> None:
    """The trigger is twice the last snapshot when that is above the limit: amortised work."""
    j = Journal(tmp_path / "r")
    j.open()
    big = [{"event": "snapshot", "pad": "z" * 5000}]
    j.append(*big, *big)
    assert maybe_compact(j, lambda: big, max_bytes=1000)
    assert j.compacted_bytes > 1000
    assert threshold(j, 1000) == 2 * j.compacted_bytes
    j.append({"event": "received", "rid": "a"})
    assert not maybe_compact(j, lambda: big, max_bytes=1000)
    j.append(*big)
    assert maybe_compact(j, lambda: big, max_bytes=1000)
    j.close()


def test_a_failed_compaction_is_logged_not_raised(tmp_path: Path) -> None:
    j = Journal(tmp_path / "r")
    j.open()
    j.append(*({"event": "received", "rid": f"x{n}"} for n in range(100)))
    before = (tmp_path / "r" / "journal.jsonl").read_bytes()
    lines: list[str] = []

    def broken() -> list[dict[str, Any]]:
        raise RuntimeError("policy bug")

    metrics = Metrics()
    assert not maybe_compact(
        j, broken, max_bytes=100, metrics=metrics, log=lambda e, **f: lines.append(e)
    )
    assert lines == ["journal_compaction_failed"]
    assert metrics.value("journal_compactions_total") == 0
    assert (tmp_path / "r" / "journal.jsonl").read_bytes() == before
    j.close()


# -- the receiver keeps its journal bounded, and says what Alertmanager left out ---------------
def test_the_receiver_compacts_its_journal_and_a_restart_replays_the_same_state(
    tmp_path: Path,
) -> None:
    """A small --journal-max-bytes: the live journal is compacted while alerts arrive, and a new
    receiver replaying the compacted journal holds exactly the queue the first one held."""
    launcher = RecordingLauncher()
    app = _receiver(tmp_path, launcher)
    app.journal_max_bytes = 4096
    for i in range(60):
        fp = f"{i:016x}"
        body = notification(alert("BackendServiceDown", fp))
        app.receive(payload.parse(json.dumps(body).encode()))
    assert app.metrics.value("journal_compactions_total") >= 1
    assert app.journal.archive_paths()
    live = app.policy.snapshot_records()
    app.journal.close()

    j = Journal(tmp_path / "r")
    j.open()
    again = Receiver(
        "local",
        Policy(ROUTES, throttle_window=600, dedupe_window=600),
        j,
        launcher,
        prefix=("pflow-alert",),
        log=lambda *a, **k: None,
    )
    again.recover()
    assert again.policy.snapshot_records() == live
    assert again.policy.queue_depth() == 1  # one run, the other 59 alerts attached to it
    j.close()


def test_truncated_alerts_are_journaled_counted_and_said(tmp_path: Path) -> None:
    lines: list[tuple[str, dict[str, Any]]] = []
    app = _receiver(tmp_path, RecordingLauncher())
    app.log = lambda event, **fields: lines.append((event, fields))
    body = notification(alert("BackendServiceDown", "00000000000000aa"))
    body["truncatedAlerts"] = 7
    app.receive(payload.parse(json.dumps(body).encode()))
    [rec] = [e for e in events(app.journal) if e["event"] == "truncated"]
    assert (rec["truncatedAlerts"], rec["received"]) == (7, 1)
    assert app.metrics.value("truncated_alerts_total") == 7
    assert any(event == "truncated_alerts" and f["count"] == 7 for event, f in lines)
    app.journal.close()
