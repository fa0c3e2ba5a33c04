# Copyright: (c) 2026, pflow-ops team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Restart budget: at most N restarts per key per sliding window, persisted on the controller.

The budget is bookkeeping about the controller's own decisions, so it runs here (no module is sent
to the target and no connection is opened). Every entry point (CLI, ansible-playbook, AWX) shares
one file, $PFLOW_OPS_HOME/budget/restarts.json; a flock on a sibling lock file serialises the
read-decide-write so that two concurrent runs cannot both take the last slot.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import time
from collections.abc import Iterator

from ansible.plugins.action import ActionBase

ENV_HOME = "PFLOW_OPS_HOME"
DEFAULT_HOME = "~/.pflow-ops"
FORMAT_VERSION = 1

ARGUMENT_SPEC = {
    "key": {"type": "str", "required": True},
    "max_restarts": {"type": "int", "default": 3},
    "window_seconds": {"type": "int", "default": 1800},
    "state": {"type": "str", "default": "check", "choices": ["check", "consume"]},
    "override": {"type": "bool", "default": False},
    "reason": {"type": "str"},
    "run_id": {"type": "str"},
    "state_dir": {"type": "path"},
}


class BudgetError(Exception):
    """A problem the user can fix (parameters, permissions); becomes the task's msg."""


def budget_path(state_dir: str | None, environ: dict[str, str] | None = None) -> str:
    environ = os.environ if environ is None else environ
    home = state_dir or environ.get(ENV_HOME) or DEFAULT_HOME
    # realpath, as pflow_ops.paths.state_home() resolves it, so both name the same file
    return os.path.join(os.path.realpath(os.path.expanduser(home)), "budget", "restarts.json")


def _valid(data: object) -> bool:
    if not isinstance(data, dict) or not isinstance(data.get("keys"), dict):
        return False
    for entries in data["keys"].values():
        if not isinstance(entries, list):
            return False
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("ts"), (int, float)):
                return False
    return True


def load(path: str, now: float, dry_run: bool, warnings: list[str]) -> dict:
    """Read the budget file. A corrupt one counts as empty and is moved aside (unless dry_run)."""
    empty: dict = {"version": FORMAT_VERSION, "keys": {}}
    try:
        with open(path, encoding="utf-8") as fh:
            raw = fh.read()
    except FileNotFoundError:
        return empty
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    if _valid(data):
        return data  # type: ignore[return-value]
    if dry_run:
        warnings.append(f"restart budget file {path} is corrupt and was treated as empty; "
                        "a real run will move it aside")
        return empty
    backup = f"{path}.corrupt-{int(now)}"
    os.replace(path, backup)
    warnings.append(f"restart budget file {path} was corrupt and has been treated as empty; "
                    f"the original is kept as {backup}")
    return empty


def save(path: str, data: dict) -> None:
    """Atomic: a reader sees the old file or the new one, never half of one."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".restarts.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1, sort_keys=True)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def locked(path: str, create: bool) -> Iterator[None]:
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        if not create:
            yield  # nothing to read and nothing will be written
            return
        os.makedirs(directory, mode=0o700, exist_ok=True)
    fd = os.open(path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the flock


def evaluate(path: str, key: str, max_restarts: int = 3, window_seconds: int = 1800, consume: bool = False,
             override: bool = False, reason: str | None = None, run_id: str | None = None,
             dry_run: bool = False, now: float | None = None) -> dict:
    """Decide (and with consume, record) one restart against the budget of `key`.

    The numbers returned describe the window after this call: with consume and allowed they
    include the new entry (in dry_run, the entry that would be written).
    """
    if not key:
        raise BudgetError("key must not be empty")
    if max_restarts < 0:
        raise BudgetError("max_restarts must be >= 0")
    if window_seconds <= 0:
        raise BudgetError("window_seconds must be > 0")
    warnings: list[str] = []
    lock = contextlib.nullcontext() if dry_run else locked(path, create=consume)
    try:
        with lock:
            now = time.time() if now is None else now
            data = load(path, now, dry_run, warnings)
            entries = sorted((e for e in data["keys"].get(key, []) if now - e["ts"] < window_seconds),
                             key=lambda e: e["ts"])
            within = len(entries) < max_restarts
            allowed = override or within
            changed = consume and allowed
            if changed:
                entry = {"ts": round(now, 3), "reason": reason, "override": override}
                if run_id:
                    entry["run_id"] = run_id
                entries.append(entry)
                if not dry_run:
                    data["version"] = FORMAT_VERSION
                    data["keys"][key] = entries  # this key's expired entries go with the write
                    save(path, data)
    except OSError as exc:
        raise BudgetError(f"restart budget {path}: {exc.strerror or exc}") from exc
    oldest = entries[0]["ts"] if entries else None
    verdict = "allowed" if allowed else "refused"
    return {
        "changed": changed,
        "allowed": allowed,
        "overridden": override and not within,
        "used": len(entries),
        "summary": f"{verdict}: {len(entries)} of {max_restarts} restarts used in the window",
        "remaining": max(max_restarts - len(entries), 0),
        "max_restarts": max_restarts,
        "window_seconds": window_seconds,
        "oldest_ts": oldest,
        "resets_in_s": round(max(oldest + window_seconds - now, 0.0), 1) if oldest is not None else None,
        "entries": entries,
        "key": key,
        "path": path,
        "warnings": warnings,
    }


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False  # bookkeeping on the controller; the target is never contacted
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):  # type: ignore[no-untyped-def]
        result = super().run(tmp, task_vars)
        del tmp
        _validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        try:
            outcome = evaluate(
                budget_path(args["state_dir"]),
                args["key"],
                max_restarts=args["max_restarts"],
                window_seconds=args["window_seconds"],
                consume=args["state"] == "consume",
                override=args["override"],
                reason=args["reason"],
                run_id=args["run_id"],
                dry_run=bool(self._task.check_mode),
            )
        except BudgetError as exc:
            result.update(failed=True, changed=False, msg=str(exc))
            return result
        warnings = outcome.pop("warnings")
        result.update(outcome)
        if warnings:
            result["warnings"] = warnings
        return result
