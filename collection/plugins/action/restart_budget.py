# Copyright: (c) 2026, pflow-ops team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Restart budget: at most N restarts per key per sliding window, persisted on the controller.

The budget is bookkeeping about the controller's own decisions, so it runs here (no module is sent
to the target and no connection is opened). Every entry point (CLI, ansible-playbook, AWX) shares
one file, $PFLOW_OPS_HOME/budget/restarts.json; a flock on a sibling lock file serialises the
read-decide-write so that two concurrent runs cannot both take the last slot.

The decisions are module_utils/budget_policy.py (pure, unit-tested); this file does the I/O and
fails closed: an unreadable file is kept aside and refuses (never read as empty), entries are
kept for a fixed retention (no caller's window prunes another's history), a policy (max, window)
given as an extra var is refused (the play's extra vars are visible here, on the controller), and
an override needs a reason, recorded in the entry.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import json
import os
import tempfile
import time
from collections.abc import Iterator

from ansible.plugins.action import ActionBase
from ansible.utils.vars import load_extra_vars
from ansible_collections.pivotal.flow_ops.plugins.module_utils import budget_policy as policy

ENV_HOME = "PFLOW_OPS_HOME"
DEFAULT_HOME = "~/.pflow-ops"
FORMAT_VERSION = policy.FORMAT_VERSION
# Until every caller passes override_reason, the variable the CLI's --override-budget sets.
OVERRIDE_REASON_VAR = "pflow_restart_budget_override_reason"

ARGUMENT_SPEC = {
    "key": {"type": "str", "required": True},
    "max_restarts": {"type": "int", "default": 3},
    "window_seconds": {"type": "int", "default": 1800},
    "state": {"type": "str", "default": "check", "choices": ["check", "consume"]},
    "override": {"type": "bool", "default": False},
    "override_reason": {"type": "str"},
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


def keep_aside(path: str, raw: bytes, now: float) -> str:
    """Copy an unreadable budget file to PATH.corrupt-<epoch> (once per content) and return the
    copy's name. The original stays in place, so every later run refuses too until a human
    overrides (which starts a fresh file)."""
    for existing in sorted(glob.glob(glob.escape(path) + ".corrupt-*")):
        with contextlib.suppress(OSError), open(existing, "rb") as fh:
            if fh.read() == raw:
                return existing
    backup, n = f"{path}.corrupt-{int(now)}", 1
    while os.path.exists(backup):
        backup, n = f"{path}.corrupt-{int(now)}-{n}", n + 1
    _write_atomic(backup, raw)
    return backup


def load(path: str, now: float, dry_run: bool) -> tuple[dict | None, str, str]:
    """(data, "", "") for a readable budget file (a missing one is empty); (None, refusal, why)
    when it cannot be read: a corrupt one is kept aside first (not in dry_run)."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        return {"version": FORMAT_VERSION, "keys": {}}, "", ""
    except OSError as exc:
        why = exc.strerror or str(exc)
        return None, policy.unreadable_refusal(path, "", why), why
    data, why = policy.parse_state(raw.decode("utf-8", errors="replace"))
    if data is not None:
        return data, "", ""
    if dry_run:
        kept = f"left in place in check mode; a real run keeps a copy as {path}.corrupt-{int(now)}"
        return None, policy.unreadable_refusal(path, "", kept), why
    return None, policy.unreadable_refusal(path, keep_aside(path, raw, now)), why


def _write_atomic(path: str, content: bytes) -> None:
    """A reader sees the old file or the new one, never half of one."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".restarts.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def save(path: str, data: dict) -> None:
    _write_atomic(path, (json.dumps(data, indent=1, sort_keys=True) + "\n").encode("utf-8"))


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


def _check_params(key: str, max_restarts: int, window_seconds: int) -> None:
    if not key:
        raise BudgetError("key must not be empty")
    if max_restarts < 0:
        raise BudgetError("max_restarts must be >= 0")
    if window_seconds <= 0:
        raise BudgetError("window_seconds must be > 0")


def _unreadable_warning(refusal: str, why: str, fresh: bool, dry_run: bool) -> str:
    line = f"{refusal.split('; a human may')[0]}: {why}"
    if fresh:
        line += "; overridden with a reason: " + ("a real run starts a fresh file" if dry_run else "a fresh file was started")
    return line


def evaluate(path: str, key: str, max_restarts: int = 3, window_seconds: int = 1800, consume: bool = False,
             override: bool = False, reason: str | None = None, run_id: str | None = None,
             dry_run: bool = False, now: float | None = None, override_reason: str | None = None,
             per_run_vars: tuple[str, ...] | list[str] = ()) -> dict:
    """Decide (and with consume, record) one restart against the budget of `key`.

    The numbers returned describe the window after this call: with consume and allowed they
    include the new entry (in dry_run, the entry that would be written). per_run_vars: this
    run's extra vars that would set the policy; any of them refuses before the file is read.
    """
    _check_params(key, max_restarts, window_seconds)
    warnings: list[str] = []
    refused_per_run = policy.per_run_refusal(list(per_run_vars))
    if refused_per_run:  # before the file is read: nothing of it is shown or changed
        assessed = {"allowed": False, "overridden": False, "refusal": refused_per_run, "entries": []}
        return _result(path, key, max_restarts, window_seconds, time.time() if now is None else now,
                       assessed, False, override, override_reason, warnings)
    lock = contextlib.nullcontext() if dry_run else locked(path, create=consume)
    try:
        with lock:
            now = time.time() if now is None else now
            data, unreadable, why = load(path, now, dry_run)
            entries = data["keys"].get(key, []) if data else []
            clock = policy.clock_warning(entries, now, path)
            if clock:
                warnings.append(clock)
            assessed = policy.assess(entries, now, max_restarts, window_seconds, override, override_reason,
                                     unreadable)
            changed = consume and assessed["allowed"]
            if changed:
                entry = policy.new_entry(now, reason, override, policy.override_reason_of(override, override_reason),
                                         run_id)
                assessed["entries"].append(entry)
                if unreadable:
                    data = {"keys": {}}  # the override starts a fresh file; the old one was kept aside
                if not dry_run:
                    keys = {**data["keys"], key: entries + [entry]}
                    save(path, {"version": FORMAT_VERSION,
                                "keys": policy.pruned(keys, now, policy.retention(window_seconds))})
    except OSError as exc:
        raise BudgetError(f"restart budget {path}: {exc.strerror or exc}") from exc
    if unreadable:
        warnings.insert(0, _unreadable_warning(unreadable, why, changed, dry_run))
    return _result(path, key, max_restarts, window_seconds, now, assessed, changed, override,
                   override_reason, warnings)


def _result(path: str, key: str, max_restarts: int, window_seconds: int, now: float, assessed: dict,
            changed: bool, override: bool, override_reason: str | None, warnings: list[str]) -> dict:
    window = assessed["entries"]
    tally = policy.counts(window, now, window_seconds, max_restarts)
    return {
        "changed": changed,
        "allowed": assessed["allowed"],
        "overridden": assessed["overridden"],
        "override_reason": policy.override_reason_of(override, override_reason),
        "refusal": assessed["refusal"],
        "summary": policy.summary(assessed["allowed"], tally["used"], max_restarts, assessed["refusal"]),
        **tally,
        "max_restarts": max_restarts,
        "window_seconds": window_seconds,
        "retention_seconds": policy.retention(window_seconds),
        "entries": window,
        "key": key,
        "path": path,
        "budget_warnings": warnings,
    }


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False  # bookkeeping on the controller; the target is never contacted
    _supports_check_mode = True

    def _per_run_policy_vars(self) -> list[str]:
        """This play's extra vars (-e, -e @file, AWX survey answers) that would set the policy.

        load_extra_vars is what the VariableManager itself reads them with; it parsed them
        once in the controller process and this worker, forked from it, reads the same dict."""
        try:
            extra_vars = load_extra_vars(self._loader)
        except Exception as exc:  # pylint: disable=broad-exception-caught
            # Fail closed: a policy that cannot be checked is not taken on trust.
            raise BudgetError(f"cannot read this run's extra vars to check the restart budget policy: {exc}") from exc
        return policy.per_run_policy_vars(extra_vars)

    def _override_reason(self, args: dict, task_vars: dict) -> str | None:
        """override_reason when given; else the CLI's variable, taken as plain text (never templated)."""
        if args["override_reason"] is not None or not args["override"]:
            return args["override_reason"]
        value = (task_vars or {}).get(OVERRIDE_REASON_VAR)
        return value if isinstance(value, str) else None

    def run(self, tmp=None, task_vars=None):  # type: ignore[no-untyped-def]
        result = super().run(tmp, task_vars)
        del tmp
        _validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        try:
            per_run_vars = self._per_run_policy_vars()
            outcome = evaluate(
                budget_path(args["state_dir"]),
                args["key"],
                max_restarts=args["max_restarts"],
                window_seconds=args["window_seconds"],
                consume=args["state"] == "consume",
                override=args["override"],
                override_reason=self._override_reason(args, task_vars),
                reason=args["reason"],
                run_id=args["run_id"],
                dry_run=bool(self._task.check_mode),
                per_run_vars=per_run_vars,
            )
        except BudgetError as exc:
            result.update(failed=True, changed=False, msg=str(exc))
            return result
        result.update(outcome, msg=outcome["refusal"] or outcome["summary"])
        # Shown in any ansible-playbook or AWX output: the warnings, and a guard's refusal (a
        # spent budget is the role's to report).
        shown = list(outcome["budget_warnings"])
        if policy.is_guard_refusal(outcome["refusal"]) and not outcome["refusal"].startswith("restart budget state"):
            shown.append(outcome["refusal"])
        if shown:
            result["warnings"] = shown
        return result
