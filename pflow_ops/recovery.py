"""``recover`` and ``diagnose``: guards, the ansible-runner launch, the report.

The guards run before anything touches a service: a protected environment needs confirmation,
and a second concurrent recovery of the same env and service is refused by a lock.
"""

from __future__ import annotations

import argparse
import re
import secrets
import sys
import time
from datetime import UTC, datetime
from typing import Any

import yaml

from pflow_ops import catalogue, environments, exitcodes, report
from pflow_ops.cli import UsageError, emit_json
from pflow_ops.lock import LockHeld, RunLock
from pflow_ops.paths import project_root, runs_dir
from pflow_ops.progress import Progress
from pflow_ops.runner import PlaybookRun, execute

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Alertmanager fingerprints are 16 hex digits; anything else in --fingerprint is refused, so an
# alert's data never reaches a playbook unchecked.
_FINGERPRINT = re.compile(r"^[0-9a-f]{1,32}$")
# Commands that change the service: one at a time per env and service (the lock).
_CHANGING = ("recover", "maintain", "alert")


def parse_extra_vars(pairs: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs; values are YAML scalars (``0``, ``true``, ``1.5``).

    Values are data, never templates: Jinja markers are refused so nothing a user (or, later,
    an alert label) passes can be evaluated by Ansible.
    """
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not _KEY.match(key):
            raise UsageError(f"bad -e '{pair}': expected KEY=VALUE with KEY a variable name")
        if any(marker in raw for marker in ("{{", "{%", "{#")):
            raise UsageError(f"bad -e {key}: template markers are not allowed in values")
        try:
            value = yaml.safe_load(raw) if raw else ""
        except yaml.YAMLError:
            value = raw
        out[key] = value if isinstance(value, str | int | float | bool) else raw
    return out


def new_run_id(runbook_id: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{runbook_id.lower()}-{secrets.token_hex(2)}"


def confirm(env: environments.Environment, args: argparse.Namespace) -> str | None:
    """None when the run may go ahead, else why it is refused."""
    dry_run = args.command == "diagnose" or getattr(args, "check", False)
    if not env.protected or dry_run or getattr(args, "yes", False):
        return None
    if not sys.stdin.isatty():
        return (
            f"environment '{env.name}' is protected: pass --yes to confirm (no terminal to ask on)"
        )
    # The question goes to stderr: stdout may be a pipe waiting for the JSON object.
    print(
        f"Environment '{env.name}' is protected. Type its name to go ahead: ",
        end="",
        file=sys.stderr,
        flush=True,
    )
    answer = sys.stdin.readline()
    return None if answer.strip() == env.name else "not confirmed"


def _refusal(args: argparse.Namespace, rb: catalogue.Runbook, run_id: str, why: str) -> int:
    print(f"pflow-ops: refused: {why}", file=sys.stderr)
    if args.output == "json":
        emit_json(
            {
                "run_id": run_id,
                "runbook": rb.id,
                "env": args.env,
                "check": bool(getattr(args, "check", False)),
                "outcome": "refused",
                "reason": why,
                "changed": 0,
                "findings": [],
                "actions": [],
                "report": None,
            }
        )
    return exitcodes.REFUSED


def _target(args: argparse.Namespace) -> catalogue.Runbook:
    """The runbook (recover, diagnose) or maintenance job (maintain) the command names."""
    cat = catalogue.load()
    if args.command == "maintain":
        job = cat.maintenance_for(args.service)
        if not (project_root() / job.playbook).is_file():
            raise UsageError(f"{job.id} {job.title} is catalogued but not automated yet")
        return job
    rb = cat.for_alert(args.alertname) if args.command == "alert" else cat.get(args.runbook)
    if not rb.implemented:
        raise UsageError(
            f"{rb.id} {rb.title} is catalogued but not automated yet: follow the written runbook"
        )
    return rb


def cmd_run(args: argparse.Namespace) -> int:
    rb = _target(args)
    env = environments.get(args.env)
    fingerprint = getattr(args, "fingerprint", None)
    if fingerprint is not None and not _FINGERPRINT.match(fingerprint):
        raise UsageError(f"bad --fingerprint '{fingerprint}': expected up to 32 hex digits")
    extravars = parse_extra_vars(args.extra_vars)
    check = args.command == "diagnose" or bool(args.check)
    run_id = new_run_id(rb.id)
    refusal = confirm(env, args)
    if refusal:
        return _refusal(args, rb, run_id, refusal)
    # Recovery and maintenance both change the service: one at a time per env and service.
    lock = RunLock(env.name, rb.service, run_id)
    if args.command in _CHANGING:
        try:
            lock.acquire()
        except LockHeld as exc:
            return _refusal(args, rb, run_id, str(exc))
    try:
        return _launch(args, rb, env, run_id, check, extravars)
    finally:
        lock.release()


def _run_vars(
    args: argparse.Namespace, run_id: str, mode: str, extravars: dict[str, Any]
) -> dict[str, Any]:
    """The user's -e values plus what the roles need to know about this run."""
    out = {**extravars, "pflow_run_id": run_id, "pflow_mode": mode}
    if args.command == "alert":
        # Only the alert's name (checked against the catalogue) and its fingerprint (checked
        # hex) reach the playbook: labels stay data on the receiver's side.
        out["pflow_alert_name"] = args.alertname
        if args.fingerprint:
            out["pflow_alert_fingerprint"] = args.fingerprint
    override = getattr(args, "override_budget", None)
    if override:
        out["pflow_restart_budget_override"] = True
        out["pflow_restart_budget_override_reason"] = override
    return out


def _launch(
    args: argparse.Namespace,
    rb: catalogue.Runbook,
    env: environments.Environment,
    run_id: str,
    check: bool,
    extravars: dict[str, Any],
) -> int:
    mode = {"diagnose": "diagnose", "maintain": "maintain"}.get(args.command, "recover")
    run_dir = runs_dir() / run_id
    progress = Progress(rb, env.name, mode, check, quiet=args.output == "json")
    progress.start(run_id)
    started = time.time()
    playbook_run = PlaybookRun(
        run_id=run_id,
        run_dir=run_dir,
        playbook=project_root() / rb.playbook,
        inventory=env.inventory,
        extravars=_run_vars(args, run_id, mode, extravars),
        check=check,
        limit=args.limit,
    )
    result = execute(playbook_run, on_step=progress.step)
    finished = time.time()
    ctx = report.RunContext(
        run_id=run_id,
        runbook=rb,
        env=env.name,
        check=check,
        mode=mode,
        started_at=_iso(started),
        finished_at=_iso(finished),
        duration_s=finished - started,
        run_dir=run_dir,
        budget_override=bool(getattr(args, "override_budget", None)),
        alert=_trigger(args),
    )
    data = report.build(ctx, result)
    report.write(data, run_dir)
    if args.output == "json":
        emit_json(data)
    else:
        progress.summary(data)
    return exitcodes.BY_OUTCOME.get(data["outcome"], exitcodes.ERROR)


def _trigger(args: argparse.Namespace) -> dict[str, str] | None:
    if args.command != "alert":
        return None
    return {"alertname": args.alertname, "fingerprint": args.fingerprint or ""}


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")
