"""``pflow-ops receiver pause|resume|status --env ENV``: the maintenance switch of the receiver.

The switch is a small file, ``<state home>/receiver/<env>/pause.json`` (0600, written to a
temporary file and renamed, so a reader never sees half of it), so it works whether or not the
receiver is running: a running receiver notices it within a second and before every run start,
and journals the change (who, why, when); a receiver started later begins paused. While paused
the receiver keeps receiving and deciding alerts (they wait; resolutions still cancel) and
starts nothing. A pause file that cannot be read or parsed counts as paused: the switch fails
closed, with one clear line.

Argparse only at import time: ``pflow-ops --help`` imports this module.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import getpass
import json
import os
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PAUSE_FILE = "pause.json"
MAX_REASON = 500


@dataclass(frozen=True)
class PauseState:
    paused: bool
    by: str = ""
    reason: str = ""
    since: float = 0.0
    error: str = ""  # why the file could not be read (paused then: fail closed)

    def record(self) -> dict[str, Any]:
        return {"paused": self.paused, "by": self.by, "reason": self.reason, "since": self.since}


def receiver_dir(env: str) -> Path:
    from pflow_ops.paths import state_home

    return state_home() / "receiver" / env


def read_pause(directory: Path) -> PauseState:
    """The switch's position; a file that is there but unreadable or malformed is paused."""
    path = directory / PAUSE_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return PauseState(False)
    except OSError as exc:
        return PauseState(True, error=f"cannot read {path}: {exc.strerror}")
    return parse_pause(raw, path)


def parse_pause(raw: bytes, path: Path) -> PauseState:
    """The pause file's content (pure): anything but a well-formed object is paused."""
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        return PauseState(True, error=f"{path} is not JSON: treated as paused")
    if not isinstance(data, dict) or data.get("paused") is not True:
        return PauseState(True, error=f"{path} is not a pause record: treated as paused")
    since = data.get("since")
    return PauseState(
        True,
        by=str(data.get("by") or "?")[:120],
        reason=str(data.get("reason") or "")[:MAX_REASON],
        since=float(since) if isinstance(since, int | float) else 0.0,
    )


def who() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def write_pause(directory: Path, reason: str, by: str | None = None) -> PauseState:
    """Pause: write the file atomically (temporary file, fsync, rename, fsync the directory)."""
    state = PauseState(True, by or who(), reason[:MAX_REASON], round(time.time(), 3))
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=".pause-", dir=directory)  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(state.record(), fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, directory / PAUSE_FILE)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(directory)
    return state


def clear_pause(directory: Path) -> bool:
    """Resume: remove the file. False when it was not paused."""
    try:
        os.unlink(directory / PAUSE_FILE)
    except FileNotFoundError:
        return False
    _fsync_dir(directory)
    return True


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def receiver_running(directory: Path) -> bool:
    """Whether a receiver holds this directory's journal lock (probed, never taken)."""
    path = directory / "receiver.lock"
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops the probe's shared lock
    return False


# -- the command ---------------------------------------------------------------------------
def add_receiver_parser(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    pause = sub.add_parser("pause", help="start no run until resume (alerts still queue)")
    pause.add_argument("--reason", default="", help="why (journaled, shown by status)")
    sub.add_parser("resume", help="let queued runs start again")
    status = sub.add_parser("status", help="paused or not, and whether a receiver runs")
    status.add_argument("--output", choices=["text", "json"], default="text")
    for action in (pause, sub.choices["resume"], status):
        action.add_argument("--env", default="local", help="environment; default: local")


def cmd_receiver(args: argparse.Namespace) -> int:
    from pflow_ops import console, environments
    from pflow_ops.errors import OK

    env = environments.get(args.env).name  # an unknown environment: exit 2
    directory = receiver_dir(env)
    if args.action == "pause":
        state = write_pause(directory, args.reason)
        print(f"receiver for {env}: paused by {state.by}; runs start again after `resume`")
    elif args.action == "resume":
        was = clear_pause(directory)
        print(f"receiver for {env}: {'resumed' if was else 'was not paused'}")
    else:
        state = read_pause(directory)
        running = receiver_running(directory)
        if args.output == "json":
            console.emit_json(
                {"env": env, "receiver_running": running, **state.record(), "error": state.error}
            )
        else:
            print(_status_line(env, state, running))
    return OK


def _status_line(env: str, state: PauseState, running: bool) -> str:
    where = "a receiver is running" if running else "no receiver is running"
    if not state.paused:
        return f"receiver for {env}: not paused ({where})"
    if state.error:
        return f"receiver for {env}: PAUSED ({state.error}) ({where})"
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(state.since))
    why = f": {state.reason}" if state.reason else ""
    return f"receiver for {env}: PAUSED by {state.by} since {when}{why} ({where})"
