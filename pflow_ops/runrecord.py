"""The run record ``runs/ID/run.json``: every run is on disk from its first second.

A run writes ``state: running`` (with its pid) before its guards run, and ``finished`` or
``refused`` when it ends. A ``running`` record whose process is gone is an *interrupted* run
(its CLI was killed, the machine rebooted): the next run, ``history`` and ``report ID`` find it,
rebuild what it did from the runner events it left in ``artifacts/``, and settle it. Run
directories are 0700 and records 0600: they hold the run's inputs and outputs; old runs go with
``history --prune`` and the default retention (:data:`RETENTION_DAYS`).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import psutil

from pflow_ops import outcome, paths
from pflow_ops.runner import EventConsumer, RunResult

RECORD = "run.json"
RUNNING, FINISHED, REFUSED, INTERRUPTED = "running", "finished", "refused", "interrupted"
RETENTION_DAYS = 90  # runs older than this are removed when a new run starts
RETENTION_ENV = "PFLOW_OPS_RETENTION_DAYS"
# How far back the receiver looks for the run of one of its receipts: a receipt is only ever
# looked up by the receiver that restarted after launching it.
RECEIPT_SCAN_LIMIT = 200
RECEIPT_MAX_AGE_S = 86400.0


def private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) readable by the owner only."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read, atomically."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    os.replace(tmp, path)


def _start_time(pid: int) -> str:
    """The process's start time (hundredths of a second since the epoch, through psutil): a pid
    reused later does not match."""
    try:
        return str(round(psutil.Process(pid).create_time() * 100))
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return ""


def start(run_dir: Path, fields: dict[str, Any]) -> None:
    private_dir(run_dir.parent)
    private_dir(run_dir)
    pid = os.getpid()
    record = {**fields, "state": RUNNING, "pid": pid, "pid_start": _start_time(pid)}
    record["started"] = time.time()
    write_private(run_dir / RECORD, json.dumps(record, indent=2) + "\n")


def load(run_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((run_dir / RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def update(run_dir: Path, **fields: Any) -> None:
    record = load(run_dir) or {}
    record.update(fields)
    write_private(run_dir / RECORD, json.dumps(record, indent=2) + "\n")


def _playbook_lives(run_id: str) -> bool:
    """Whether a process of the run (its watchdog, ansible-playbook, a worker) still lives:
    their command lines carry the run id and ansible-playbook)."""
    if not run_id:
        return False
    me = os.getpid()
    for proc in psutil.process_iter(["pid", "cmdline"]):
        line = " ".join(proc.info["cmdline"] or [])
        if proc.info["pid"] != me and run_id in line and "ansible-playbook" in line:
            return True
    return False


def state(record: dict[str, Any]) -> str:
    """``running`` while the recording process or any process of its playbook lives (a killed
    CLI's playbook takes a moment to stop); ``interrupted`` once all are gone."""
    current = str(record.get("state", ""))
    if current != RUNNING:
        return current
    pid = int(record.get("pid") or 0)
    alive = pid > 0 and _start_time(pid) == str(record.get("pid_start", ""))
    if alive or _playbook_lives(str(record.get("run_id", ""))):
        return RUNNING
    return INTERRUPTED


def replay(run_dir: Path) -> RunResult:
    """What an interrupted run did, from the runner events it left on disk."""
    events_dir = run_dir / "artifacts" / "runner" / "job_events"
    events: list[dict[str, Any]] = []
    for path in events_dir.glob("*.json"):
        try:
            events.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
    consumer = EventConsumer()
    for event in sorted(events, key=lambda e: int(e.get("counter") or 0)):
        consumer.dispatch(event)
    return RunResult(
        status=INTERRUPTED,
        rc=None,
        steps=consumer.steps,
        stats=consumer.stats,
        artifact_data=consumer.artifact_data,
        artifacts_dir=str(events_dir.parent),
        stdout_tail=consumer.stdout_tail,
        warnings=consumer.warnings,
    )


def last_step(result: RunResult) -> str:
    return result.steps[-1].name if result.steps else "before its first step"


def records(runs_dir: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Every run directory with its record, newest first."""
    for run_dir in sorted(runs_dir.glob("*/"), reverse=True):
        record = load(run_dir)
        if record is not None:
            yield run_dir, record


def previous_interrupted(runs_dir: Path, env: str, service: str, run_id: str) -> Path | None:
    """The newest earlier run on this env and service, when it was interrupted and no run has
    said so yet."""
    for run_dir, record in records(runs_dir):
        if run_dir.name == run_id or record.get("env") != env:
            continue
        if record.get("service") != service:
            continue
        if state(record) == INTERRUPTED and not record.get("noticed_by"):
            return run_dir
        return None
    return None


def prune(runs_dir: Path, older_than_days: float, now: float | None = None) -> list[str]:
    """Remove finished, refused and interrupted runs older than ``older_than_days``."""
    cutoff = (now or time.time()) - older_than_days * 86400
    removed = []
    for run_dir in sorted(runs_dir.glob("*/")):
        record = load(run_dir) or {}
        if record and state(record) == RUNNING:
            continue
        started = float(record.get("started") or run_dir.stat().st_mtime)
        if started < cutoff:
            shutil.rmtree(run_dir, ignore_errors=True)
            removed.append(run_dir.name)
    return removed


def retention_days() -> float:
    raw = os.environ.get(RETENTION_ENV, "")
    try:
        return float(raw) if raw else RETENTION_DAYS
    except ValueError:
        return RETENTION_DAYS


class ReceiptRun(NamedTuple):
    """The run launched for a receiver receipt, as its record tells it."""

    run_id: str
    outcome: str  # the vocabulary's word once the run reached one; "" otherwise
    finished: bool  # nothing more will happen: finished, refused or interrupted


def find_by_receipt(
    rid: str,
    runs_dir: Path | None = None,
    *,
    limit: int = RECEIPT_SCAN_LIMIT,
    max_age_s: float = RECEIPT_MAX_AGE_S,
    now: float | None = None,
) -> ReceiptRun | None:
    """The newest run recorded with ``--receipt rid``, or None.

    Bounded so a restart never reads months of runs: the newest ``limit`` records, and none
    started more than ``max_age_s`` ago (run ids sort by start time).
    """
    directory = paths.runs_dir() if runs_dir is None else runs_dir
    cutoff = (time.time() if now is None else now) - max_age_s
    for seen, (run_dir, record) in enumerate(records(directory)):
        started = record.get("started")
        if seen >= limit or (isinstance(started, int | float) and started < cutoff):
            return None
        if record.get("receipt") == rid:
            return ReceiptRun(str(record.get("run_id") or run_dir.name), *_settled(record))
    return None


def _settled(record: dict[str, Any]) -> tuple[str, bool]:
    """(outcome, finished) of a run record. The report's outcome is written before the CLI
    releases its lock and marks the record finished: once it is there, the work is done."""
    word = record.get("outcome")
    if isinstance(word, str) and word in outcome.ORDER:
        return word, True
    current = state(record)
    code = record.get("exit_code")
    if current == FINISHED and isinstance(code, int) and not isinstance(code, bool):
        return outcome.from_exit_code(code), True
    return "", current != RUNNING
