# Copyright: (c) 2026, pflow-ops team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Restart budget: at most N restarts per key per sliding window, in the coordination store.

The budget is bookkeeping about the controller's own decisions, so it runs here (no module is sent
to the target and no connection is opened). Where it lives is the environment's coordination
store (module_utils/coordination.py, chosen by pflow_coordination_url in the inventory): the
``file`` backend (the default) is $PFLOW_OPS_HOME/budget/restarts.json under a flock, shared by
every entry point of one machine; the ``etcd`` backend is shared by every controller and AWX job
that names it. Either way the read-decide-write is one transaction, so two concurrent runs cannot
both take the last slot, and a store that cannot be reached refuses (never a fallback).

The decisions are module_utils/budget_policy.py (pure, unit-tested); this file asks the store and
fails closed: unreadable state is kept aside and refuses (never read as empty), entries are kept
for a fixed retention (no caller's window prunes another's history), a policy (max, window) given
as an extra var is refused (the play's extra vars are visible here, on the controller), and an
override needs a reason, recorded in the entry.
"""

from __future__ import annotations

import os
import time

from ansible.plugins.action import ActionBase
from ansible.utils.vars import load_extra_vars
from ansible_collections.pivotal.flow_ops.plugins.module_utils import budget_policy as policy
from ansible_collections.pivotal.flow_ops.plugins.module_utils import coordination

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


def file_store(path: str):  # type: ignore[no-untyped-def]
    """The file backend with its budget at ``path`` (the locks beside it, as under a home)."""
    home = os.path.dirname(os.path.dirname(path))
    return coordination.sibling("coordination_file").FileStore(path, os.path.join(home, "locks"))


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


def evaluate(store, key: str, max_restarts: int = 3, window_seconds: int = 1800, consume: bool = False,
             override: bool = False, reason: str | None = None, run_id: str | None = None,
             dry_run: bool = False, now: float | None = None, override_reason: str | None = None,
             per_run_vars: tuple[str, ...] | list[str] = ()) -> dict:
    """Decide (and with consume, record) one restart against the budget of `key`.

    store: a coordination store, or the path of a budget file (the file backend). The numbers
    returned describe the window after this call: with consume and allowed they include the
    new entry (in dry_run, the entry that would be written). per_run_vars: this run's extra
    vars that would set the policy; any of them refuses before the store is read.
    """
    _check_params(key, max_restarts, window_seconds)
    store = file_store(store) if isinstance(store, str) else store
    warnings: list[str] = []
    refused_per_run = policy.per_run_refusal(list(per_run_vars))
    if refused_per_run:  # before the store is read: nothing of it is shown or changed
        assessed = {"allowed": False, "overridden": False, "refusal": refused_per_run, "entries": []}
        where = store.budget_path if hasattr(store, "budget_path") else store.name()
        return _result(where, key, max_restarts, window_seconds, time.time() if now is None else now,
                       assessed, False, override, override_reason, warnings)
    decided: dict = {}

    def decide(view):  # type: ignore[no-untyped-def]
        """The policy's verdict on the entries the store's transaction read; the entry to write."""
        clock = policy.clock_warning(view.entries, view.now, view.where)
        assessed = policy.assess(view.entries, view.now, max_restarts, window_seconds, override,
                                 override_reason, view.unreadable)
        decided.update(assessed=assessed, clock=clock, changed=consume and assessed["allowed"])
        if not decided["changed"]:
            return None
        entry = policy.new_entry(view.now, reason, override, policy.override_reason_of(override, override_reason),
                                 run_id)
        assessed["entries"].append(entry)
        return entry

    try:
        view = store.budget(key, decide, now=now, dry_run=dry_run, consume=consume,
                            keep_seconds=policy.retention(window_seconds))
    except coordination.Unavailable as exc:  # fail closed: refused, never allowed
        assessed = {"allowed": False, "overridden": False, "refusal": str(exc), "entries": []}
        return _result(store.name(), key, max_restarts, window_seconds, time.time() if now is None else now,
                       assessed, False, override, override_reason, [])
    except coordination.CoordinationError as exc:
        raise BudgetError(str(exc)) from exc
    if decided["clock"]:
        warnings.append(decided["clock"])
    if view.unreadable:
        warnings.insert(0, _unreadable_warning(view.unreadable, view.why, decided["changed"], dry_run))
    return _result(view.where, key, max_restarts, window_seconds, view.now, decided["assessed"],
                   decided["changed"], override, override_reason, warnings)


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


def _refused_unavailable(args: dict, line: str) -> dict:
    assessed = {"allowed": False, "overridden": False, "refusal": line, "entries": []}
    return _result("", args["key"], args["max_restarts"], args["window_seconds"], time.time(), assessed, False,
                   args["override"], args["override_reason"], [])


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

    def _store(self, args: dict, task_vars: dict):  # type: ignore[no-untyped-def]
        """The environment's coordination store, from its inventory variables read raw (config,
        never a template); state_dir (tests, one-off runs) names a budget file directly."""
        try:
            settings = coordination.parse(coordination.settings_values(task_vars))
            if args["state_dir"] is not None:
                if not settings.is_file:
                    raise BudgetError("state_dir applies to the file coordination backend only, not %s"
                                      % settings.name())
                return file_store(budget_path(args["state_dir"]))
            return coordination.open_store(settings, os.path.dirname(os.path.dirname(budget_path(None))))
        except coordination.Unavailable:
            raise
        except coordination.CoordinationError as exc:
            raise BudgetError(str(exc)) from exc

    def run(self, tmp=None, task_vars=None):  # type: ignore[no-untyped-def]
        result = super().run(tmp, task_vars)
        del tmp
        _validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        try:
            per_run_vars = self._per_run_policy_vars()
            outcome = evaluate(
                self._store(args, task_vars or {}),
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
        except coordination.Unavailable as exc:  # the store could not even be opened: refused
            outcome = _refused_unavailable(args, str(exc))
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
