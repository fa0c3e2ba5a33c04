"""Every run command (``recover``, ``diagnose``, ``alert``, ``maintain``): the guards, the
ansible-runner launch, the report, the exit code.

The guards run before anything touches a service: a protected environment needs confirmation,
and a second concurrent run that changes the same env and service is refused by a lock. The
command arrives as a checked :class:`~pflow_ops.request.RunRequest`; the exit code is the
outcome's, from the collection's vocabulary.
"""

from __future__ import annotations

import logging
import secrets
import sys
import time
from datetime import UTC, datetime
from typing import Any

from pflow_ops import (
    catalogue,
    console,
    environments,
    inventory,
    outcome,
    report,
    routing,
    runrecord,
    validate,
)
from pflow_ops.errors import RefusedError, UsageError
from pflow_ops.lock import RunLock
from pflow_ops.paths import playbook, playbook_file, runs_dir
from pflow_ops.progress import Progress
from pflow_ops.report_model import Refusal
from pflow_ops.request import RunRequest
from pflow_ops.runner import PlaybookRun, execute

log = logging.getLogger(__name__)


def new_run_id(runbook_id: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{runbook_id.lower()}-{secrets.token_hex(2)}"


def confirm(env: environments.Environment, request: RunRequest) -> str | None:
    """None when the run may go ahead, else why it is refused."""
    if not env.protected or request.check or request.yes:
        return None
    if not sys.stdin.isatty():
        return (
            f"environment '{env.name}' is protected ({env.why}): pass --yes to confirm "
            "(no terminal to ask on)"
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


def _refusal(request: RunRequest, rb: catalogue.Runbook, run_id: str, exc: RefusedError) -> int:
    console.error(exc.label, str(exc))
    runrecord.update(
        runs_dir() / run_id, state=runrecord.REFUSED, outcome=outcome.REFUSED, reason=str(exc)
    )
    if request.json_output:
        refusal = Refusal(run_id, rb.id, request.env, request.check, outcome.REFUSED, str(exc))
        console.emit_json(refusal.to_dict())
    return exc.exit_code


def _target(request: RunRequest, env: environments.Environment) -> catalogue.Runbook:
    """The runbook (recover, diagnose, alert) or maintenance job (maintain) the command names."""
    cat = catalogue.load()
    if request.command == "maintain":
        job = cat.maintenance_for(request.target)
        if not playbook_file(job.playbook).is_file():
            raise UsageError(f"{job.id} {job.title} is catalogued but not automated yet")
        return job
    rb = _alert_target(cat, request, env) if request.command == "alert" else cat.get(request.target)
    if not rb.implemented:
        raise UsageError(
            f"{rb.id} {rb.title} is catalogued but not automated yet: follow the written runbook"
        )
    return rb


def _alert_target(
    cat: catalogue.Catalogue, request: RunRequest, env: environments.Environment
) -> catalogue.Runbook:
    """The runbook an alert goes to, by the one routing function the receiver and the EDA
    rulebooks also use: ``--runbook`` (what a ``runbook`` label says), the catalogue's alerts
    and aliases, then the environment's ``pflow_alert_aliases``."""
    try:
        tbl = routing.table(cat, inventory.alert_aliases(env.inventory))
    except Exception as exc:  # an alias pointing nowhere, hosts that disagree, a broken inventory
        raise UsageError(f"alert routing for env '{env.name}': {exc}") from None
    labels = {routing.RUNBOOK_LABEL: request.runbook} if request.runbook else {}
    routed = routing.route(tbl, request.target, labels)
    if routed.target is None:
        known = ", ".join(sorted({*tbl.by_alert, *tbl.aliases}))
        hint = {
            routing.UNKNOWN_ALERT: f"known alerts are {known}; map another name with "
            f"catalogue.yml alert_aliases, the inventory's {inventory.ALIASES_VAR}, "
            "or --runbook ID",
            routing.UNKNOWN_RUNBOOK: "choose one of " + ", ".join(rb.slug for rb in cat.runbooks),
        }.get(routed.reason, "")
        raise UsageError(
            f"alert '{routed.alertname}' routes nowhere ({routed.reason}: {routed.detail})"
            + (f": {hint}" if hint else "")
        )
    if routed.via != routing.VIA_CATALOGUE:
        log.info("alert %s -> %s (%s)", routed.alertname, routed.runbook, routed.detail)
    return cat.get(routed.runbook)


def cmd_run(request: RunRequest) -> int:
    env = environments.get(request.env)
    rb = _target(request, env)
    request = validate.checked(request, rb, env)  # -e and --limit: exit 2 before anything runs
    log.info("%s %s on env %s (inventory %s)", request.command, rb.id, env.name, env.inventory)
    run_id = new_run_id(rb.id)
    _record_start(request, rb, env.name, run_id)
    lock = RunLock(env.name, rb.service, run_id)
    try:
        refusal = confirm(env, request)
        if refusal:
            raise RefusedError(refusal)
        # Recovery and maintenance both change the service: one at a time per env and service.
        if request.changes_service:
            lock.acquire()
    except RefusedError as exc:
        return _refusal(request, rb, run_id, exc)
    notes = _previous_interrupted(env.name, rb.service, run_id)
    code = outcome.exit_code(outcome.ERROR)
    try:
        code = _launch(request, rb, env, run_id, lock, notes)
    finally:
        lock.release()
        runrecord.update(runs_dir() / run_id, state=runrecord.FINISHED, exit_code=code)
    return code


def _record_start(request: RunRequest, rb: catalogue.Runbook, env: str, run_id: str) -> None:
    """The run is on disk before any guard runs; old runs go past the retention."""
    removed = runrecord.prune(runs_dir(), runrecord.retention_days())
    if removed:
        log.info("removed %d run(s) older than %s days", len(removed), runrecord.retention_days())
    fields = {
        "run_id": run_id,
        "runbook": rb.id,
        "service": rb.service,
        "env": env,
        "command": request.command,
        "check": request.check,
        "mode": request.mode,
        "started_at": _iso(time.time()),
    }
    if request.receipt:  # launched by the receiver: how it finds this run after a crash
        fields["receipt"] = request.receipt
    runrecord.start(runs_dir() / run_id, fields)


def _previous_interrupted(env: str, service: str, run_id: str) -> tuple[str, ...]:
    """Say so when the last run on this env and service was interrupted (its CLI killed)."""
    previous = runrecord.previous_interrupted(runs_dir(), env, service, run_id)
    if previous is None:
        return ()
    record = runrecord.load(previous) or {}
    settled = report.settle(previous, record)
    runrecord.update(previous, noticed_by=run_id)
    step = settled.timeline[-1].name if settled.timeline else "before its first step"
    note = f"the previous run {previous.name} was interrupted at step '{step}'"
    if settled.actions:
        note += f" after {len(settled.actions)} change(s): see `pflow-ops report {previous.name}`"
    console.error("warning", note)
    return (note,)


def _run_vars(request: RunRequest, run_id: str) -> dict[str, Any]:
    """The user's -e values plus what the roles need to know about this run."""
    out: dict[str, Any] = {**request.extra_vars, "pflow_run_id": run_id}
    out["pflow_mode"] = request.mode
    alert = request.alert
    if alert is not None:
        # Only the alert's name (checked against the catalogue), its fingerprint (checked hex),
        # Alertmanager's group key and its incident annotation (checked by event_input; the
        # incident role reads both raw and hashes the group key) reach the playbook: labels
        # stay data on the receiver's side.
        out["pflow_alert_name"] = alert.alertname
        if alert.fingerprint:
            out["pflow_alert_fingerprint"] = alert.fingerprint
        if alert.group_key:
            out["pflow_alert_group_key"] = alert.group_key
        if alert.incident:
            out["pflow_alert_incident"] = alert.incident
    if request.incident:
        out["pflow_incident_key"] = request.incident
    if request.override_reason:
        out["pflow_restart_budget_override"] = True
        out["pflow_restart_budget_override_reason"] = request.override_reason
    return out


def _launch(
    request: RunRequest,
    rb: catalogue.Runbook,
    env: environments.Environment,
    run_id: str,
    lock: RunLock,
    notes: tuple[str, ...] = (),
) -> int:
    run_dir = runs_dir() / run_id
    progress = Progress(rb, env.name, request.mode, request.check, quiet=request.json_output)
    progress.start(run_id)
    started = time.time()
    playbook_run = PlaybookRun(
        run_id=run_id,
        run_dir=run_dir,
        playbook=playbook(rb.playbook),
        inventory=env.inventory,
        extravars=_run_vars(request, run_id),
        check=request.check,
        limit=request.limit,
        hold_lock=lock.hold_path if request.changes_service else None,
    )
    result = execute(playbook_run, on_step=progress.step)
    finished = time.time()
    ctx = report.RunContext(
        run_id=run_id,
        runbook=rb,
        env=env.name,
        check=request.check,
        mode=request.mode,
        started_at=_iso(started),
        finished_at=_iso(finished),
        duration_s=finished - started,
        run_dir=run_dir,
        budget_override=bool(request.override_reason),
        alert=request.alert,
        notes=notes,
    )
    data = report.build(ctx, result)
    report.write(data, run_dir)
    log.info("report written: %s (outcome %s)", data.json_path, data.outcome)
    runrecord.update(run_dir, outcome=data.outcome)
    for warning in data.warnings:
        console.error("warning", warning)
    if request.json_output:
        console.emit_json(data.to_dict())
    else:
        progress.summary(data)
    return outcome.exit_code(data.outcome)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")
