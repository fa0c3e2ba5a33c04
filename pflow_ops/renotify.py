"""``pflow-ops incident renotify --env ENV [--check] [--now TIME]``: the scheduled
re-notification of unacknowledged escalations (issue 16), for cron.

With no pager configured, each open incident of the environment is notified again at each level
of its runbook's escalation path (catalogue.yml ``after_minutes``) until someone runs
``pflow-ops incident ack KEY``. The playbook (playbooks/incident-renotify.yml) decides under the
run lock with the collection's pure function (module_utils/incident_renotify.py), sends through
the chat and ticket sinks and journals. This command asks the same function first, with the
catalogue's paths and the records on disk, and starts the playbook only when a level may be due:
a cron line every few minutes costs no Ansible run while nothing is due. ``--check`` prints what
is due (the playbook in check mode: it sends and journals nothing).

The quick check uses catalogue.yml's timings (the role's ``incident_escalation`` default, kept
equal by a unit test); an environment that overrides ``incident_escalation`` with earlier times
is notified when the catalogue's time comes, never before it.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import shutil
from pathlib import Path
from typing import Any

from pflow_ops import catalogue, console, environments, inventory
from pflow_ops.errors import INTERNAL, OK, RefusedError, UsageError
from pflow_ops.lock import RunLock
from pflow_ops.paths import playbook, state_home

log = logging.getLogger(__name__)

PLAYBOOK = "playbooks/incident-renotify.yml"
SERVICE = "incident-renotify"  # the run lock's service: one re-notification run per env
KEEP_RUNS = 20


def escalation_paths(cat: catalogue.Catalogue) -> dict[str, list[dict[str, Any]]]:
    """The catalogue's paths as the collection takes them ({RB-xx: [{level, who, when,
    after_minutes}]}): the incident role's ``incident_escalation`` default is the same."""
    return {rb.id: [dataclasses.asdict(e) for e in rb.escalation] for rb in cat.runbooks}


def parse_now(text: str | None, renotify: Any) -> datetime.datetime:
    if not text:
        return datetime.datetime.now(datetime.UTC)
    try:
        value: datetime.datetime = renotify.parse_time(text)
    except ValueError as exc:
        raise UsageError(f"bad --now: {exc} (e.g. 2026-12-05T10:30:00Z)") from None
    return value


def env_names(env: environments.Environment) -> set[str]:
    """The ``pflow_env`` values the environment's hosts carry (what the records name), else
    the environment's own name."""
    return set(inventory.read(env.inventory).env_names) or {env.name}


def pre_decide(
    env: environments.Environment, now: datetime.datetime, modules: tuple[Any, Any, Any]
) -> dict[str, Any]:
    """{incidents, unplaced}: the pure decision for each open record of the environment, with
    the catalogue's paths and the sinks the inventory names (the playbook reads them itself and
    decides again), and the open records that name no environment at all. ``modules``: the
    incident model, the environment's records (incident_store.open_records: file or etcd) and
    the renotify decision module."""
    _incident, store, renotify = modules
    paths = escalation_paths(catalogue.load())
    try:
        sinks = list(inventory.incident_sink_kinds(env.inventory))
    except Exception as exc:  # an inventory that cannot be read: the playbook will say why
        log.info("incident sinks of %s not read (%s): no pager assumed", env.name, exc)
        sinks = []
    records = store.list()
    out = []
    for name in sorted(env_names(env)):
        for record in renotify.open_records(records, name):
            decision = renotify.decide(record, paths, sinks, now)
            out.append({**decision, "key": record.get("key"), "runbook": record.get("runbook")})
    return {"incidents": out, "unplaced": renotify.unplaced(records)}


def _line(item: dict[str, Any]) -> str:
    return f"{item.get('key')} ({item.get('runbook') or '-'}): {item['status']}: {item['reason']}"


def _launch(env: environments.Environment, check: bool, now: str | None) -> dict[str, Any]:
    """The playbook under the run lock; its published plan (set_stats) or an error."""
    from pflow_ops.run import new_run_id  # imports ansible-runner's launcher: not for --help
    from pflow_ops.runner import PlaybookRun, execute

    run_id = new_run_id("renotify")
    _prune(state_home() / "renotify")
    lock = RunLock(env.name, SERVICE, run_id)
    lock.acquire()
    try:
        extravars: dict[str, Any] = {"pflow_run_id": run_id}
        if now:
            extravars["pflow_renotify_now"] = now
        run = PlaybookRun(
            run_id=run_id,
            run_dir=state_home() / "renotify" / run_id,
            playbook=playbook(PLAYBOOK),
            inventory=env.inventory,
            extravars=extravars,
            check=check,
            hold_lock=lock.hold_path,
            timeout=900,
        )
        result = execute(run)
    finally:
        lock.release()
    plan = result.artifact_data.get("pflow_incident_renotify")
    if result.status != "successful" or not isinstance(plan, dict):
        tail = " / ".join(line.strip() for line in result.stdout_tail[-3:] if line.strip())
        return {"error": f"the re-notification playbook ended {result.status}: {tail[:300]}"}
    return {**plan, "run_id": run_id}


def _prune(folder: Path, keep: int = KEEP_RUNS) -> None:
    """Keep the runner directories of the last ``keep`` re-notification runs (the journal in
    each incident record is the lasting trace); run ids sort by their start time."""
    runs = sorted(p for p in folder.glob("*-renotify-*") if p.is_dir()) if folder.is_dir() else []
    for old in runs[: max(len(runs) - keep, 0)]:
        shutil.rmtree(old, ignore_errors=True)


def cmd_renotify(
    env_name: str, check: bool, now_text: str | None, as_json: bool, modules: tuple[Any, Any, Any]
) -> int:
    env = environments.get(env_name)
    if now_text and env.protected and not check:
        # A clock moved forward would notify before its time: rehearse on a test environment.
        raise RefusedError(
            f"--now on protected environment '{env.name}' needs --check: a moved clock would "
            "notify levels before their time"
        )
    now = parse_now(now_text, modules[2])
    planned = pre_decide(env, now, modules)
    out: dict[str, Any] = {
        "env": env.name,
        "check": check,
        "now": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if any(p["status"] == "due" for p in planned["incidents"]):
        out.update(_launch(env, check, now_text), playbook=True)
    else:
        out.update(planned, sent=[], playbook=False)
    code = OK
    if "error" in out:
        console.error("error", out["error"])
        code = INTERNAL
    for key in out.get("unplaced") or []:
        console.error("warning", f"incident {key} names no environment: it is not re-notified")
    for item in out.get("incidents") or []:
        if item.get("status") == "invalid":
            console.error("warning", _line(item))
    if as_json:
        console.emit_json(out)
    else:
        _print_text(out)
    return code


def _print_text(out: dict[str, Any]) -> None:
    for item in out.get("incidents") or []:
        console.out(_line(item))
    for sent in out.get("sent") or []:
        sinks = ", ".join(f"{s.get('sink')} {s.get('status')}" for s in sent.get("sinks") or [])
        console.out(
            f"sent {sent.get('level')} to {sent.get('who')} for {sent.get('key')}: "
            f"{sinks or 'no sink'}"
        )
    if not out.get("incidents") and "error" not in out:
        console.out(f"no open incident of env {out['env']}")
