"""The review (:mod:`pflow_ops.review`) as Markdown, for the monthly meeting's notes."""

from __future__ import annotations

import re
from typing import Any


def code(text: str) -> str:
    """``text`` as an inline code span: an alert name from the journal (any text a sender chose)
    reads literally in every Markdown renderer, never as HTML or markup. Whitespace runs become
    one space (a newline would end the list item)."""
    flat = " ".join(text.split()) or "(no name)"
    fence = "`" * (max((len(m) for m in re.findall(r"`+", flat)), default=0) + 1)
    return (
        f"{fence} {flat} {fence}"
        if flat.startswith("`") or flat.endswith("`")
        else fence + flat + fence
    )


def _seconds(value: Any) -> str:
    return "-" if value is None else f"{value} s"


def _counted(items: list[dict[str, Any]]) -> list[str]:
    return [f"- {i['count']} x {i['name']}" for i in items] or ["- none"]


def runbook_md(s: dict[str, Any]) -> list[str]:
    ttr = s["time_to_recover_s"]
    outcomes = ", ".join(f"{k} {v}" for k, v in s["outcomes"].items()) or "none"
    out = [
        "",
        f"## [{s['runbook']} {s['title']}]({s['runbook_url']})",
        "",
        f"- Runs: {s['runs']} ({s['check_runs']} check mode), incidents handled: {s['incidents']}",
        f"- Outcomes: {outcomes}",
        f"- Time to recover: median {_seconds(ttr['median'])}, p90 {_seconds(ttr['p90'])} "
        f"({ttr['count']} recovered runs)",
        f"- Restart budget: {s['budget_refusals']} refusal(s), {s['budget_overrides']} override(s)",
        "",
        "Escalations and their reasons:",
        *_counted(s["escalations"]),
        "",
        "Most frequent findings (warning or critical):",
        *_counted(s["findings"]),
        "",
        "Alerts that started runs:",
        *_counted(s["alerts"]),
    ]
    if s["alerts_without_runs"]:
        out += ["", "Alerts that started no run: " + ", ".join(s["alerts_without_runs"])]
    if s["checks_never_crossed"]:
        out += [
            "",
            "Checks that never crossed their threshold: " + ", ".join(s["checks_never_crossed"]),
        ]
    if s["steps_never_ran"]:
        out += ["", "Runbook steps that never ran in the period:"]
        out += [f"- {name}" for name in s["steps_never_ran"]]
    return out


def receiver_md(r: dict[str, Any]) -> list[str]:
    """The receiver journal's section: the alerts received, by fate, and why some ran nothing."""
    fates = ", ".join(f"{k} {v}" for k, v in r["fates"].items()) or "none"
    out = [
        "",
        "## Alerts received (the receiver journal)",
        "",
        f"- {r['alerts']} alert(s): {r['firing']} firing, {r['resolved_notices']} resolution "
        f"notice(s); fates: {fates}",
        f"- Alerts Alertmanager truncated: {r['truncated_alerts']}",
    ]
    out += [
        f"- Journal {j['env']}: `{j['path']}`, {j['records']} record(s), "
        f"{j['corrupt_lines']} corrupt line(s) skipped"
        for j in r["journals"]
    ] or ["- No receiver journal found"]
    out += ["", "Runs the receiver started:"]
    out += [
        f"- {i['count']} x {i['runbook']} for {code(i['alertname'])}: {i['outcome']}"
        for i in r["runs"]
    ] or ["- none"]
    out += ["", "Alerts that started no run, and why:"]
    out += [
        f"- {i['count']} x {code(i['alertname'])}: {i['fate']}"
        + (f" ({' '.join(i['reason'].split())})" if i["reason"] else "")
        for i in r["not_started"]
    ] or ["- none"]
    return out


def to_markdown(data: dict[str, Any], plot: str = "") -> str:
    """The review; ``plot``: the PNG's path relative to the Markdown file, embedded when given."""
    p = data["period"]
    out = [
        f"# Runbook review {p['from'][:10]} to {p['to'][:10]}",
        "",
        f"{p['runs']} run(s) in the period ({p['days']:g} days), from the run reports (`runs/`)"
        + (" and the receiver journal." if "receiver" in data else "."),
    ]
    if plot:
        out += ["", f"![Run duration and outcome over the period]({plot})"]
    for s in data["runbooks"]:
        out += runbook_md(s)
    if "receiver" in data:
        out += receiver_md(data["receiver"])
    return "\n".join(out) + "\n"
