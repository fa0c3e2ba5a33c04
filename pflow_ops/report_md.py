"""``report.md``: the run report for humans, rendered from the typed report."""

from __future__ import annotations

from collections.abc import Sequence

from pflow_ops.report_model import Action, Escalation, Finding, Report, Rollout


def _table(headers: list[str], rows: Sequence[Sequence[object]]) -> list[str]:
    def cell(value: object) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return lines


def _summary(report: Report) -> list[str]:
    mode = "check mode (nothing changed)" if report.check else report.mode
    out = [
        f"# {report.runbook} {report.title}: {report.outcome.upper()}",
        "",
        f"- Run: `{report.run_id}` ({mode}), env `{report.env}`, severity {report.severity}",
        f"- Started {report.started_at}, finished {report.finished_at} "
        f"({round(report.duration_s, 2)} s); {report.changed} changed task(s)",
        f"- Outcome: **{report.outcome}**: {report.reason}",
    ]
    if report.runbook_url:
        out.append(f"- Runbook: [{report.runbook} {report.title}]({report.runbook_url})")
    if report.alert:
        out.append(f"- Started by alert `{report.alert.alertname}`: {report.alert.detail}")
    if report.budget_override:
        out.append("- The restart budget was **overridden** by the operator (--override-budget)")
    return out


def _escalation(report: Report, esc: Escalation | None) -> list[str]:
    if not esc:
        return []
    out = ["", "## Escalation", "", f"Why: {esc.reason}", "", "What was tried:"]
    out += [f"- {a.action} {a.target}: {a.result}" for a in esc.tried]
    out += ["", "Next steps for the on-call engineer:"]
    out += [f"{i}. {s}" for i, s in enumerate(esc.next_steps, 1)]
    path = f"[{report.runbook}]({report.runbook_url}#escalation)" if report.runbook_url else ""
    out += ["", f"Escalation path ({path or report.runbook}):"]
    out += [f"- {p.level}: {p.who} ({p.when})" for p in esc.path]
    return out


def _rollout(plan: Rollout | None) -> list[str]:
    if not plan or not plan.rolling:
        return []
    out = [
        "",
        "## Rollout",
        "",
        f"Batches (serial {plan.serial}, max {plan.max_fail_percentage}% failed per batch):",
    ]
    out += [f"{i}. {', '.join(batch)}" for i, batch in enumerate(plan.batches, 1)]
    if plan.not_attempted:
        out += ["", f"Not attempted (the rollout stopped): {', '.join(plan.not_attempted)}"]
    return out


def _timeline(report: Report) -> list[str]:
    rows = [
        [s.start, s.phase, s.name, s.host, s.status, s.changed, f"{round(s.duration_s, 3):.2f} s"]
        for s in report.timeline
    ]
    headers = ["start", "phase", "step", "host", "status", "changed", "duration"]
    return ["", "## Timeline", "", *_table(headers, rows)]


def _checks(title: str, items: Sequence[Finding], empty: str) -> list[str]:
    # Measured value and threshold columns only when some check carries them.
    if any(i.measured for i in items):
        headers = ["check", "status", "value", "threshold", "detail"]
        rows = [[i.check, i.status, i.value, i.threshold, i.detail] for i in items]
    else:
        headers = ["check", "status", "detail"]
        rows = [[i.check, i.status, i.detail] for i in items] or [["-", "-", empty]]
    return ["", f"## {title}", "", *_table(headers, rows)]


def _actions(actions: Sequence[Action]) -> list[str]:
    if not actions:
        return _table(["action", "target", "result"], [["none", "-", "nothing needed or allowed"]])
    if any(a.has_values for a in actions):
        rows = [[a.action, a.target, a.before, a.after, a.result] for a in actions]
        return _table(["action", "target", "before", "after", "result"], rows)
    return _table(["action", "target", "result"], [[a.action, a.target, a.result] for a in actions])


def _incident(report: Report) -> list[str]:
    """Where the run was documented: the incident key, each sink's status per event."""
    inc = report.incident
    if inc is None:
        return []
    rows = [[s["event"], s["sink"], s["kind"], s["status"], s["detail"]] for s in inc.sinks]
    out = ["", "## Incident", "", f"Incident key: `{inc.key}`", ""]
    return out + _table(["event", "sink", "kind", "status", "detail"], rows or [["-"] * 5])


def to_markdown(report: Report) -> str:
    out = _summary(report)
    for title, lines in (("Warnings", report.warnings), ("Notes", report.notes)):
        if lines:
            out += ["", f"## {title}", "", *[f"- {line}" for line in lines]]
    out += _incident(report)
    out += _checks("Findings", report.findings, "no findings")
    out += ["", "## Actions", "", *_actions(report.actions)]
    out += _checks("Verification", report.verification, "no recovery to verify")
    out += _escalation(report, report.escalation)
    out += _rollout(report.rollout)
    out += _timeline(report)
    for host, lines in report.logs.items():
        if lines:
            out += ["", f"## Recent logs ({host})", "", "```", *lines, "```"]
    out += ["", f"Runner artifacts: `{report.runner.artifacts}`", ""]
    return "\n".join(out)
