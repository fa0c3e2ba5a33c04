"""The run report: ``report.json`` (the whole record) and ``report.md`` (for humans), written
into the run's directory, plus the run history read back from those files."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pflow_ops.catalogue import Runbook
from pflow_ops.runner import RunResult

# Worst first: the run's outcome is the worst of its hosts' outcomes.
OUTCOME_ORDER = ("error", "refused", "escalate", "recovered", "healthy")


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
    alert: dict[str, str] | None = None  # the alert that started the run (`pflow-ops alert`)


def worst(outcomes: list[str]) -> str:
    for outcome in OUTCOME_ORDER:
        if outcome in outcomes:
            return outcome
    return "error"


def _host_results(result: RunResult) -> dict[str, dict[str, Any]]:
    hosts = dict(result.artifact_data.get("pflow_results") or {})
    for host in result.unreachable_hosts:
        hosts.setdefault(
            host,
            {
                "outcome": "escalate",
                "reason": "host unreachable: nothing could be checked or changed there",
                "findings": [
                    {
                        "check": "reachability",
                        "status": "critical",
                        "detail": "Ansible could not connect to the host",
                    }
                ],
            },
        )
    return hosts


def _no_result_reason(result: RunResult) -> str:
    failed = [s for s in result.steps if s.status == "failed"]
    if failed:
        return f"step '{failed[-1].name}' failed: {failed[-1].message}"
    if result.status in ("timeout", "canceled"):
        return f"the run was {result.status}"
    tail = " ".join(line.strip() for line in result.stdout_tail[-3:] if line.strip())
    return f"the playbook ended ({result.status}, rc={result.rc}) without a result: {tail}"


def _collect(hosts: dict[str, dict[str, Any]], key: str) -> list[dict[str, Any]]:
    items = []
    for host, data in sorted(hosts.items()):
        for item in data.get(key) or []:
            items.append({**item, "host": host} if len(hosts) > 1 else dict(item))
    return items


def _escalation(
    ctx: RunContext,
    outcome: str,
    reason: str,
    hosts: dict[str, Any],
    actions: list[dict[str, Any]],
    plan: dict[str, Any] | None = None,
) -> dict[str, Any] | None:
    if outcome in ("healthy", "recovered"):
        return None
    next_runbooks = sorted({h.get("next_runbook") for h in hosts.values() if h.get("next_runbook")})
    steps = [
        f"Run `pflow-ops diagnose {rb.lower()} --env {ctx.env}` then "
        f"`pflow-ops recover {rb.lower()} --env {ctx.env}`"
        for rb in next_runbooks
    ]
    if outcome == "refused":
        steps.append(
            "Find out why the service keeps failing before restarting it again; "
            "if a restart is still right, re-run with --override-budget"
        )
    if plan and plan["not_attempted"]:
        steps.append(
            f"Fix the host(s) that stopped the rollout, then re-run `pflow-ops recover "
            f"{ctx.runbook.id.lower()} --env {ctx.env}`: healthy hosts are left alone, and "
            f"{len(plan['not_attempted'])} host(s) were not attempted"
        )
    steps.append(f"Follow the written runbook {ctx.runbook.id} and escalate along its path")
    return {
        "reason": reason,
        "next_runbooks": next_runbooks,
        "tried": actions or [{"action": "none", "target": "-", "result": "nothing was changed"}],
        "next_steps": steps,
        "path": [{"level": e.level, "who": e.who, "when": e.when} for e in ctx.runbook.escalation],
    }


def _alert(ctx: RunContext, loop: Any) -> dict[str, Any] | None:
    """What started the run and, when the closed loop ran, whether the alert resolved."""
    if ctx.alert is None and not isinstance(loop, dict):
        return None
    out: dict[str, Any] = {"state": "not_checked", **(ctx.alert or {})}
    if isinstance(loop, dict):
        out.update(loop)
    else:
        out["detail"] = "not checked: the runbook did not restore service"
    return out


def rollout(result: RunResult) -> dict[str, Any] | None:
    """The rolling-restart plan a runbook published (RB-01's pflow_rollout), the batches that ran
    and the hosts a stopped rollout never reached; None for runs without a plan."""
    plan = result.artifact_data.get("pflow_rollout")
    if not isinstance(plan, dict):
        return None
    batches = [
        [str(h) for h in batch] for batch in result.artifact_data.get("pflow_rollout_batches") or []
    ]
    reached = {host for batch in batches for host in batch}
    return {
        "rolling": bool(plan.get("rolling")),
        "serial": plan.get("serial"),
        "max_fail_percentage": plan.get("max_fail_percentage"),
        "batches": batches,
        "not_attempted": [str(h) for h in plan.get("hosts") or [] if str(h) not in reached],
    }


def stopped_rollout(outcome: str, reason: str, plan: dict[str, Any] | None) -> tuple[str, str]:
    """Hosts the rollout never reached were neither checked nor fixed: the run cannot be
    healthy or recovered, and the reason names them."""
    if not plan or not plan["not_attempted"]:
        return outcome, reason
    skipped = plan["not_attempted"]
    stop = (
        f"the rollout stopped after batch {len(plan['batches'])}: {len(skipped)} host(s) "
        f"not attempted: {', '.join(skipped)}"
    )
    return ("escalate" if outcome in ("healthy", "recovered") else outcome), f"{reason}; {stop}"


def close_loop(outcome: str, reason: str, loop: dict[str, Any], check: bool) -> tuple[str, str]:
    """A recovery whose alert keeps firing (or cannot be seen to stop) is not a recovery."""
    state = str(loop.get("state", ""))
    if check or outcome not in ("healthy", "recovered") or state not in ("firing", "unknown"):
        return outcome, reason
    why = (
        f"the alert did not resolve within {loop.get('timeout_s')} s"
        if state == "firing"
        else "could not confirm that the alert resolved"
    )
    return "escalate", f"{reason}; but {loop.get('detail', '')}: {why}"


def _loop_check(loop: dict[str, Any]) -> dict[str, Any]:
    status = {"resolved": "ok", "firing": "critical", "not_checked": "info"}
    return {
        "check": "alert_resolved",
        "status": status.get(str(loop.get("state")), "warning"),
        "detail": str(loop.get("detail", "")),
    }


def build(ctx: RunContext, result: RunResult) -> dict[str, Any]:
    hosts = _host_results(result)
    if hosts:
        outcome = worst([str(h.get("outcome", "error")) for h in hosts.values()])
        reasons = [
            f"{host}: {h.get('reason', '')}" if len(hosts) > 1 else str(h.get("reason", ""))
            for host, h in sorted(hosts.items())
            if h.get("outcome") == outcome
        ]
        reason = "; ".join(reasons)
    else:
        outcome, reason = "error", _no_result_reason(result)
    plan = rollout(result)
    if hosts:
        outcome, reason = stopped_rollout(outcome, reason, plan)
    loop = result.artifact_data.get("pflow_alert_loop")
    verification = _collect(hosts, "verification")
    if isinstance(loop, dict) and hosts:
        outcome, reason = close_loop(outcome, reason, loop, ctx.check)
        verification.append(_loop_check(loop))
    actions = _collect(hosts, "actions")
    return {
        "run_id": ctx.run_id,
        "runbook": ctx.runbook.id,
        "title": ctx.runbook.title,
        "severity": ctx.runbook.severity,
        "env": ctx.env,
        "check": ctx.check,
        "mode": ctx.mode,
        "outcome": outcome,
        "reason": reason,
        "changed": result.changed,
        "started_at": ctx.started_at,
        "finished_at": ctx.finished_at,
        "duration_s": round(ctx.duration_s, 2),
        "budget_override": ctx.budget_override,
        "findings": _collect(hosts, "findings"),
        "actions": actions,
        "verification": verification,
        "alert": _alert(ctx, loop),
        "rollout": plan,
        "escalation": _escalation(ctx, outcome, reason, hosts, actions, plan),
        "timeline": [s.to_dict() for s in result.steps],
        "logs": {host: h.get("logs") or [] for host, h in sorted(hosts.items())},
        "runner": {"status": result.status, "rc": result.rc, "artifacts": result.artifacts_dir},
        "report": {"json": str(ctx.run_dir / "report.json"), "md": str(ctx.run_dir / "report.md")},
    }


def _table(headers: list[str], rows: list[list[Any]]) -> list[str]:
    def cell(value: Any) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return lines


def _summary_md(report: dict[str, Any]) -> list[str]:
    mode = "check mode (nothing changed)" if report["check"] else report["mode"]
    out = [
        f"# {report['runbook']} {report['title']}: {report['outcome'].upper()}",
        "",
        f"- Run: `{report['run_id']}` ({mode}), env `{report['env']}`, "
        f"severity {report['severity']}",
        f"- Started {report['started_at']}, finished {report['finished_at']} "
        f"({report['duration_s']} s); {report['changed']} changed task(s)",
        f"- Outcome: **{report['outcome']}**: {report['reason']}",
    ]
    if report.get("alert"):
        alert = report["alert"]
        out.append(f"- Started by alert `{alert.get('alertname', '?')}`: {alert.get('detail', '')}")
    if report["budget_override"]:
        out.append("- The restart budget was **overridden** by the operator (--override-budget)")
    return out


def _escalation_md(report: dict[str, Any]) -> list[str]:
    esc = report.get("escalation")
    if not esc:
        return []
    out = ["", "## Escalation", "", f"Why: {esc['reason']}", "", "What was tried:"]
    out += [f"- {a['action']} {a['target']}: {a['result']}" for a in esc["tried"]]
    out += ["", "Next steps for the on-call engineer:"]
    out += [f"{i}. {s}" for i, s in enumerate(esc["next_steps"], 1)]
    out += ["", f"Escalation path ({report['runbook']}):"]
    out += [f"- {p['level']}: {p['who']} ({p['when']})" for p in esc["path"]]
    return out


def _rollout_md(plan: dict[str, Any] | None) -> list[str]:
    if not plan or not plan["rolling"]:
        return []
    out = [
        "",
        "## Rollout",
        "",
        f"Batches (serial {plan['serial']}, max {plan['max_fail_percentage']}% failed per batch):",
    ]
    out += [f"{i}. {', '.join(batch)}" for i, batch in enumerate(plan["batches"], 1)]
    if plan["not_attempted"]:
        out += ["", f"Not attempted (the rollout stopped): {', '.join(plan['not_attempted'])}"]
    return out


def _timeline_md(report: dict[str, Any]) -> list[str]:
    rows = [
        [
            s["start"],
            s["phase"],
            s["name"],
            s["host"],
            s["status"],
            s["changed"],
            f"{s['duration_s']:.2f} s",
        ]
        for s in report["timeline"]
    ]
    headers = ["start", "phase", "step", "host", "status", "changed", "duration"]
    return ["", "## Timeline", "", *_table(headers, rows)]


def _shown(value: Any) -> str:
    return "" if value is None else str(value)


def _measured_row(item: dict[str, Any]) -> list[str]:
    value, threshold = _shown(item.get("value")), _shown(item.get("threshold"))
    return [item["check"], item["status"], value, threshold, item["detail"]]


def _checks_md(title: str, items: list[dict[str, Any]], empty: str) -> list[str]:
    # Measured value and threshold columns only when some check carries them.
    if any("value" in i or "threshold" in i for i in items):
        headers = ["check", "status", "value", "threshold", "detail"]
        rows = [_measured_row(i) for i in items]
    else:
        headers = ["check", "status", "detail"]
        rows = [[i["check"], i["status"], i["detail"]] for i in items] or [["-", "-", empty]]
    return ["", f"## {title}", "", *_table(headers, rows)]


def change(action: dict[str, Any]) -> str:
    """`` (before -> after)`` for an action that changed a value, else empty."""
    before, after = _shown(action.get("before")), _shown(action.get("after"))
    if not before and not after:
        return ""
    return f" ({before} -> {after})" if after else f" (was {before})"


def _actions_md(actions: list[dict[str, Any]]) -> list[str]:
    if not actions:
        return _table(["action", "target", "result"], [["none", "-", "nothing needed or allowed"]])
    if any("before" in a or "after" in a for a in actions):
        rows = [
            [a["action"], a["target"], _shown(a.get("before")), _shown(a.get("after")), a["result"]]
            for a in actions
        ]
        return _table(["action", "target", "before", "after", "result"], rows)
    rows = [[a["action"], a["target"], a["result"]] for a in actions]
    return _table(["action", "target", "result"], rows)


def to_markdown(report: dict[str, Any]) -> str:
    out = _summary_md(report)
    out += _checks_md("Findings", report["findings"], "no findings")
    out += ["", "## Actions", "", *_actions_md(report["actions"])]
    out += _checks_md("Verification", report["verification"], "no recovery to verify")
    out += _escalation_md(report)
    out += _rollout_md(report.get("rollout"))
    out += _timeline_md(report)
    for host, lines in report["logs"].items():
        if lines:
            out += ["", f"## Recent logs ({host})", "", "```", *lines, "```"]
    out += ["", f"Runner artifacts: `{report['runner']['artifacts']}`", ""]
    return "\n".join(out)


def write(report: dict[str, Any], run_dir: Path) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (run_dir / "report.md").write_text(to_markdown(report), encoding="utf-8")


def history(runs_dir: Path) -> list[dict[str, Any]]:
    """Past runs, newest first, from their report.json files."""
    rows = []
    for path in sorted(runs_dir.glob("*/report.json"), reverse=True):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        rows.append(
            {
                k: data.get(k)
                for k in (
                    "run_id",
                    "runbook",
                    "env",
                    "check",
                    "outcome",
                    "changed",
                    "started_at",
                    "duration_s",
                    "reason",
                )
            }
        )
    return rows
