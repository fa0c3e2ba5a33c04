"""The run report: a typed :class:`~pflow_ops.report_model.Report` built from the roles'
``set_stats`` and the runner's events, written as ``report.json`` (the whole record) and
``report.md`` (for humans) into the run's directory, plus the run history read back from them.

The run's outcome is the hosts' outcomes combined by the collection's ``outcome.combine``, the
same function the roles and the AWX gate use; the launcher adds only what it alone can see (a
rollout cut short, an alert that kept firing, hosts that were never reached).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from pflow_ops import catalogue, outcome, runrecord
from pflow_ops.catalogue import Runbook
from pflow_ops.report_md import to_markdown
from pflow_ops.report_model import (
    NOTHING_TRIED,
    Action,
    AlertStatus,
    Escalation,
    EscalationLevel,
    Finding,
    HistoryRow,
    HostResult,
    IncidentStatus,
    Report,
    Rollout,
    RunnerInfo,
    Verification,
)
from pflow_ops.report_steps import with_substeps
from pflow_ops.request import AlertTrigger
from pflow_ops.runner import RunResult

__all__ = ["RunContext", "build", "history", "settle", "to_markdown", "write"]


@dataclass(frozen=True)
class RunContext:
    run_id: str
    runbook: Runbook
    env: str
    check: bool
    mode: str
    started_at: str
    finished_at: str
    duration_s: float
    run_dir: Path
    budget_override: bool = False
    alert: AlertTrigger | None = None  # the alert that started the run (`pflow-ops alert`)
    notes: tuple[str, ...] = ()  # what the launcher saw before the run (an interrupted run)


_UNREACHABLE = Finding("reachability", "critical", "Ansible could not connect to the host")


def _host_results(result: RunResult) -> dict[str, HostResult]:
    published = result.artifact_data.get("pflow_results")
    raw: Mapping[str, Any] = published if isinstance(published, Mapping) else {}
    hosts = {str(h): HostResult.from_published(str(h), data) for h, data in raw.items()}
    for host in result.unreachable_hosts:
        hosts.setdefault(
            host,
            HostResult(
                host=host,
                outcome=outcome.ESCALATE,
                reason="host unreachable: nothing could be checked or changed there",
                findings=(_UNREACHABLE,),
            ),
        )
    return dict(sorted(hosts.items()))


def _no_result_reason(result: RunResult) -> str:
    failed = [s for s in result.steps if s.status == "failed"]
    if failed:
        return f"step '{failed[-1].name}' failed: {failed[-1].message}"
    if result.status == "interrupted":
        last = result.steps[-1].name if result.steps else "before its first step"
        return f"the run was interrupted (its launcher died) at step '{last}'"
    if result.status in ("timeout", "canceled"):
        return f"the run was {result.status}"
    tail = " ".join(line.strip() for line in result.stdout_tail[-3:] if line.strip())
    return f"the playbook ended ({result.status}, rc={result.rc}) without a result: {tail}"


def _verdict(hosts: Mapping[str, HostResult]) -> tuple[str, str]:
    """The worst host outcome, and the reasons of the hosts that have it."""
    words = {host: outcome.normalize(h.outcome) for host, h in hosts.items()}
    worst = outcome.combine(words.values())
    many = len(hosts) > 1
    reasons = [
        f"{host}: {h.reason}" if many else h.reason
        for host, h in hosts.items()
        if words[host] == worst
    ]
    return worst, "; ".join(reasons)


def _escalation(
    ctx: RunContext,
    verdict: str,
    reason: str,
    hosts: Mapping[str, HostResult],
    actions: tuple[Action, ...],
    plan: Rollout | None = None,
) -> Escalation | None:
    if outcome.is_ok(verdict):
        return None
    next_runbooks = sorted({h.next_runbook for h in hosts.values() if h.next_runbook})
    steps = [
        f"Run `pflow-ops diagnose {rb.lower()} --env {ctx.env}` then "
        f"`pflow-ops recover {rb.lower()} --env {ctx.env}`"
        for rb in next_runbooks
    ]
    if verdict == outcome.REFUSED:
        steps.append(
            "Find out why the service keeps failing before restarting it again; "
            "if a restart is still right, re-run with --override-budget"
        )
    if plan and plan.not_attempted:
        steps.append(
            f"Fix the host(s) that stopped the rollout, then re-run `pflow-ops recover "
            f"{ctx.runbook.id.lower()} --env {ctx.env}`: healthy hosts are left alone, and "
            f"{len(plan.not_attempted)} host(s) were not attempted"
        )
    steps.append(f"Follow the written runbook {ctx.runbook.id} and escalate along its path")
    return Escalation(
        reason=reason,
        next_runbooks=tuple(next_runbooks),
        tried=actions or (NOTHING_TRIED,),
        next_steps=tuple(steps),
        path=tuple(EscalationLevel(e.level, e.who, e.when) for e in ctx.runbook.escalation),
    )


def _alert(ctx: RunContext, loop: object) -> AlertStatus | None:
    """What started the run and, when the closed loop ran, whether the alert resolved."""
    if ctx.alert is None and not isinstance(loop, Mapping):
        return None
    fields: dict[str, Any] = dict(ctx.alert.to_dict()) if ctx.alert else {}
    if isinstance(loop, Mapping):
        fields.update(loop)
    else:
        fields["detail"] = "not checked: the runbook did not restore service"
    state = str(fields.pop("state", "not_checked"))
    return AlertStatus(state=state, fields=fields)


def rollout(result: RunResult) -> Rollout | None:
    """The rolling-restart plan a runbook published (RB-01's pflow_rollout), the batches that ran
    and the hosts a stopped rollout never reached; None for runs without a plan."""
    plan = result.artifact_data.get("pflow_rollout")
    if not isinstance(plan, Mapping):
        return None
    batches = tuple(
        tuple(str(h) for h in batch)
        for batch in result.artifact_data.get("pflow_rollout_batches") or []
    )
    reached = {host for batch in batches for host in batch}
    return Rollout(
        rolling=bool(plan.get("rolling")),
        serial=plan.get("serial"),
        max_fail_percentage=plan.get("max_fail_percentage"),
        batches=batches,
        not_attempted=tuple(str(h) for h in plan.get("hosts") or [] if str(h) not in reached),
    )


def stopped_rollout(verdict: str, reason: str, plan: Rollout | None) -> tuple[str, str]:
    """Hosts the rollout never reached were neither checked nor fixed: the run cannot be
    healthy or recovered, and the reason names them."""
    if not plan or not plan.not_attempted:
        return verdict, reason
    skipped = plan.not_attempted
    stop = (
        f"the rollout stopped after batch {len(plan.batches)}: {len(skipped)} host(s) "
        f"not attempted: {', '.join(skipped)}"
    )
    return outcome.combine([verdict, outcome.ESCALATE]), f"{reason}; {stop}"


def close_loop(verdict: str, reason: str, loop: Mapping[str, Any], check: bool) -> tuple[str, str]:
    """A recovery whose alert keeps firing (or cannot be seen to stop) is not a recovery."""
    state = str(loop.get("state", ""))
    if check or not outcome.is_ok(verdict) or state not in ("firing", "unknown"):
        return verdict, reason
    why = (
        f"the alert did not resolve within {loop.get('timeout_s')} s"
        if state == "firing"
        else "could not confirm that the alert resolved"
    )
    return outcome.ESCALATE, f"{reason}; but {loop.get('detail', '')}: {why}"


def _loop_check(loop: Mapping[str, Any]) -> Verification:
    status = {"resolved": "ok", "firing": "critical", "not_checked": "info"}
    return Verification(
        check="alert_resolved",
        status=status.get(str(loop.get("state")), "warning"),
        detail=str(loop.get("detail", "")),
    )


_Item = TypeVar("_Item", Finding, Action, Verification)


def _gather(
    hosts: Mapping[str, HostResult], items: Mapping[str, tuple[_Item, ...]]
) -> tuple[_Item, ...]:
    """Every host's items in host order, each naming its host when the run covered several."""
    many = len(hosts) > 1
    return tuple(replace(i, host=host) if many else i for host in hosts for i in items[host])


def timeline_actions(result: RunResult) -> tuple[Action, ...]:
    """A run that never published its result (canceled, interrupted) still did what its
    timeline shows: each changed step is an action."""
    return tuple(
        Action(
            action=s.name,
            target=s.host,
            result=f"changed ({s.phase}); the run ended before its report",
        )
        for s in result.steps
        if s.changed
    )


def build(ctx: RunContext, result: RunResult) -> Report:
    hosts = _host_results(result)
    if hosts:
        verdict, reason = _verdict(hosts)
    else:
        verdict, reason = outcome.ERROR, _no_result_reason(result)
    plan = rollout(result)
    if hosts:
        verdict, reason = stopped_rollout(verdict, reason, plan)
    loop = result.artifact_data.get("pflow_alert_loop")
    verification = _gather(hosts, {h: r.verification for h, r in hosts.items()})
    if isinstance(loop, Mapping) and hosts:
        verdict, reason = close_loop(verdict, reason, loop, ctx.check)
        verification += (_loop_check(loop),)
    actions = _gather(hosts, {h: r.actions for h, r in hosts.items()})
    if not hosts:
        actions = timeline_actions(result)
    incident = IncidentStatus.from_published(result.artifact_data.get("pflow_incident"))
    return Report(
        run_id=ctx.run_id,
        runbook=ctx.runbook.id,
        title=ctx.runbook.title,
        severity=ctx.runbook.severity,
        env=ctx.env,
        check=ctx.check,
        mode=ctx.mode,
        outcome=verdict,
        reason=reason,
        changed=result.changed,
        started_at=ctx.started_at,
        finished_at=ctx.finished_at,
        duration_s=ctx.duration_s,
        budget_override=ctx.budget_override,
        findings=_gather(hosts, {h: r.findings for h, r in hosts.items()}),
        actions=actions,
        verification=verification,
        alert=_alert(ctx, loop),
        rollout=plan,
        escalation=_escalation(ctx, verdict, reason, hosts, actions, plan),
        timeline=with_substeps(result.steps, result.artifact_data.get("pflow_results")),
        logs={host: h.logs for host, h in hosts.items()},
        runner=RunnerInfo(result.status, result.rc, result.artifacts_dir),
        json_path=str(ctx.run_dir / "report.json"),
        md_path=str(ctx.run_dir / "report.md"),
        warnings=tuple(result.warnings) + (incident.warnings if incident else ()),
        notes=ctx.notes,
        incident=incident,
        runbook_url=published_url(ctx.runbook),
    )


def published_url(rb: Runbook) -> str:
    """The runbook's page on the runbook site: runbooks have one (``pflow-ops docs build``),
    maintenance jobs do not."""
    return rb.runbook_url if any(r.id == rb.id for r in catalogue.load().runbooks) else ""


def write(report: Report, run_dir: Path) -> None:
    """report.json and report.md, readable by their owner only (0600)."""
    runrecord.private_dir(run_dir)
    data = report.to_dict()
    runrecord.write_private(run_dir / "report.json", json.dumps(data, indent=2) + "\n")
    runrecord.write_private(run_dir / "report.md", to_markdown(report))


def _runbook(name: str) -> Runbook:
    cat = catalogue.load()
    for job in cat.maintenance:
        if job.id == name:
            return job
    return cat.get(name)


def settle(run_dir: Path, record: Mapping[str, Any]) -> Report:
    """Write the report of an interrupted run from the events it left, and mark it."""
    result = runrecord.replay(run_dir)
    started = float(record.get("started") or 0)
    ctx = RunContext(
        run_id=run_dir.name,
        runbook=_runbook(str(record.get("runbook"))),
        env=str(record.get("env")),
        check=bool(record.get("check")),
        mode=str(record.get("mode")),
        started_at=_iso(started),
        finished_at="(interrupted)",
        duration_s=0.0,
        run_dir=run_dir,
    )
    data = build(ctx, result)
    write(data, run_dir)
    runrecord.update(run_dir, state=runrecord.INTERRUPTED, last_step=runrecord.last_step(result))
    return data


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def history(runs_dir: Path) -> list[HistoryRow]:
    """Every run, newest first: finished ones from report.json, running, interrupted and
    refused ones from their run record (an interrupted run is settled on the way)."""
    rows = []
    for run_dir in sorted(runs_dir.glob("*/"), reverse=True):
        record = runrecord.load(run_dir) or {}
        now = runrecord.state(record) if record else runrecord.FINISHED
        if now == runrecord.INTERRUPTED and not (run_dir / "report.json").is_file():
            settle(run_dir, record)
        data = _read_json(run_dir / "report.json")
        if data is not None:
            rows.append(HistoryRow.from_report(data, now))
        elif record:
            rows.append(HistoryRow.from_record(run_dir.name, record, now))
    return rows


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
