"""Launching runs: the fixed argv of ``pflow-ops alert``, the child process, the run lock probe.

A run is always a child process with an argv list (never a shell). Only the validated alertname
(a catalogue name), fingerprint (hex), Alertmanager's group key (checked text, one argv item)
and the alert's ``incident`` annotation (an incident key) come from the alert; everything else
is the receiver's own configuration, and the receipt id the receiver made itself.

The child runs in its own session, so it outlives a receiver killed mid-run. Its run record
carries the receipt: the restarted receiver, about to launch the requeued item again, first
asks :func:`orphan_result` whether that child did the work.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Protocol

from pflow_ops import coordination, event_input, outcome, runrecord
from pflow_ops.lock import RunLock
from pflow_ops.paths import locks_dir
from pflow_ops.receiver.payload import FINGERPRINT
from pflow_ops.request import RECEIPT

ALERT_COMMAND = (sys.executable, "-m", "pflow_ops", "alert")
# Catalogue alert names are Prometheus-style identifiers; checked again here so nothing else
# (an option, a path, a template) can ever land in argv even if the catalogue were edited badly.
_ALERTNAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


ORPHAN_DETAIL = "run by the previous receiver process; not run again"


def build_argv(
    prefix: tuple[str, ...] | list[str],
    alertname: str,
    env: str,
    fingerprint: str,
    check: bool,
    receipt: str | None = None,
    *,
    group_key: str = "",
    incident: str = "",
) -> list[str]:
    if not _ALERTNAME.match(alertname):
        raise ValueError(f"alertname {alertname!r} is not an identifier")
    if not FINGERPRINT.match(fingerprint):
        raise ValueError(f"fingerprint {fingerprint!r} is not hex")
    if receipt is not None and not RECEIPT.match(receipt):
        raise ValueError(f"receipt {receipt!r} is not a receipt id")
    problem = event_input.group_key_problem(group_key) or event_input.incident_key_problem(incident)
    if problem:
        raise ValueError(problem)
    argv = [*prefix, alertname, "--env", env, "--output", "json", "--yes"]
    argv += ["--fingerprint", fingerprint]
    # `--opt=value`: a group key is one argv item even when it starts with a dash.
    if group_key:
        argv.append(f"--group-key={group_key}")
    if incident:
        argv.append(f"--alert-incident={incident}")
    if check:
        argv.append("--check")
    if receipt is not None:
        argv += ["--receipt", receipt]
    return argv


@dataclass(frozen=True)
class RunResult:
    rc: int
    outcome: str
    duration_s: float
    run_id: str = ""
    changed: int = 0
    detail: str = ""
    aborted: bool = False  # killed by the receiver's shutdown: to be run again after restart


class Launcher(Protocol):
    def run(self, argv: list[str], timeout: float) -> RunResult: ...

    def abort(self) -> None: ...


def parse_result(rc: int, stdout: str, stderr: str, duration: float) -> RunResult:
    """The outcome from the child's JSON report; from its exit code when there is none (or
    when the report's word is not one of the vocabulary's: the exit code is then the truth)."""
    report: object = None
    with contextlib.suppress(ValueError):
        report = json.loads(stdout) if stdout.strip() else None
    lines = [line for line in stderr.splitlines() if line.strip()]
    detail = lines[-1][:300] if lines else ""
    if isinstance(report, dict) and report.get("outcome") in outcome.ORDER:
        changed = report.get("changed")
        return RunResult(
            rc=rc,
            outcome=str(report["outcome"]),
            duration_s=duration,
            run_id=str(report.get("run_id") or ""),
            changed=changed if isinstance(changed, int) else 0,
            detail=str(report.get("reason") or detail)[:300],
        )
    return RunResult(rc=rc, outcome=outcome.from_exit_code(rc), duration_s=duration, detail=detail)


class SubprocessLauncher:
    """Runs each argv as a child in its own session, so it can be stopped as a group."""

    def __init__(self) -> None:
        self._procs: set[subprocess.Popen[str]] = set()
        self._lock = threading.Lock()
        self._aborting = False

    def run(self, argv: list[str], timeout: float) -> RunResult:
        started = time.monotonic()
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                errors="replace",
                start_new_session=True,
            )
        except OSError as exc:
            return RunResult(1, outcome.ERROR, 0.0, detail=f"cannot start the run: {exc.strerror}")
        with self._lock:
            self._procs.add(proc)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            out, err = proc.communicate()
            err += f"\nrun killed after {timeout:.0f} s (--run-timeout)"
        finally:
            with self._lock:
                self._procs.discard(proc)
        duration = time.monotonic() - started
        if self._aborting:
            return RunResult(proc.returncode, outcome.ERROR, duration, aborted=True)
        return parse_result(proc.returncode, out, err, duration)

    def abort(self) -> None:
        """Stop every running child (shutdown after the drain timeout)."""
        self._aborting = True
        with self._lock:
            procs = list(self._procs)
        for proc in procs:
            _kill_group(proc)


def _kill_group(proc: subprocess.Popen[str]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=5)
            return
        except subprocess.TimeoutExpired:
            continue


# (env, locks directory) -> the environment's store: read from the inventory once per process
# and state directory.
_STORES: dict[tuple[str, str], coordination.Store] = {}


def lock_is_free(env: str, service: str) -> bool:
    """Whether the per-(env, service) run lock is free right now, without taking it.

    The child takes the lock itself; probing first lets the worker wait for a run that is
    not its own (a human's CLI run, an AWX job, or a child left behind by a receiver that was
    killed) instead of launching into a certain refusal. The probe asks the environment's
    coordination store (the file store's flock, or etcd's lock key), read from the inventory
    once per process. A store that cannot be asked is not free: the worker waits, and a launch
    after the wait is refused by the child with the store's own reason.
    """
    try:
        key = (env, str(locks_dir()))
        if key not in _STORES:
            _STORES[key] = RunLock(env, service, "").store()
        return _STORES[key].holder(env, service) is None
    except coordination.CoordinationError:
        return False


def wait_for_lock(
    env: str, service: str, stop: threading.Event, timeout: float, poll: float = 1.0
) -> bool:
    """True once the lock is free; False when stopping or after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not lock_is_free(env, service):
        if time.monotonic() >= deadline or stop.wait(poll):
            return False
    return True


def orphan_result(
    rid: str, stop: threading.Event | None = None, timeout: float = 0.0, poll: float = 1.0
) -> RunResult | None:
    """What the run launched for receipt ``rid`` by a previous receiver process did, when it
    did the work; None when the item must be launched (again).

    None when no run carries the receipt (the receiver died before its child recorded
    itself), when that run was refused (it did nothing) or interrupted (runbooks are
    idempotent: run it again). A run still going is waited for, up to ``timeout`` seconds or
    until ``stop``: the run lock normally covers that wait, this covers the moment between the
    child's start and its taking the lock.
    """
    stop = stop or threading.Event()
    deadline = time.monotonic() + timeout
    found = runrecord.find_by_receipt(rid)
    while found is not None and not found.finished:
        if time.monotonic() >= deadline or stop.wait(poll):
            return None
        found = runrecord.find_by_receipt(rid)
    if found is None or found.outcome in ("", outcome.REFUSED):
        return None
    return RunResult(
        rc=outcome.exit_code(found.outcome),
        outcome=found.outcome,
        duration_s=0.0,  # measured by the process that was killed; not known here
        run_id=found.run_id,
        detail=ORPHAN_DETAIL,
    )
