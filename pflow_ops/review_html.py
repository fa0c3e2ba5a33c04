"""The review (:mod:`pflow_ops.review`) as one self-contained HTML page: tables, and the plot
embedded as a ``data:`` URI, so the file can be mailed or attached as it is.

Every value from the runs and the receiver journal (alert names, reasons, findings: text an
alert's sender or a run chose) goes through :func:`html.escape`; nothing is a template, so a
``<script>`` or ``{{ }}`` in an alert name reads as those characters and runs nothing.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from typing import Any

STYLE = (
    "body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em;color:#212121}"
    "table{border-collapse:collapse;margin:.5em 0 1em}"
    "th,td{border:1px solid #bdbdbd;padding:.25em .6em;text-align:left;vertical-align:top}"
    "th{background:#eeeeee}img{max-width:100%}"
)


def esc(value: Any) -> str:
    return html.escape("-" if value is None else str(value), quote=True)


def table(head: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """A table of escaped cells; "none" for no rows."""
    if not rows:
        return ["<p>none</p>"]
    out = ["<table>", "<tr>" + "".join(f"<th>{esc(h)}</th>" for h in head) + "</tr>"]
    out += ["<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows]
    return [*out, "</table>"]


def _counted(title: str, items: list[dict[str, Any]]) -> list[str]:
    return [
        f"<h3>{esc(title)}</h3>",
        *table(("count", "name"), [(i["count"], i["name"]) for i in items]),
    ]


def _names(title: str, names: list[str]) -> list[str]:
    if not names:
        return []
    return [f"<h3>{esc(title)}</h3>", "<ul>", *(f"<li>{esc(n)}</li>" for n in names), "</ul>"]


def runbook_html(s: dict[str, Any]) -> list[str]:
    ttr = s["time_to_recover_s"]
    outcomes = ", ".join(f"{k} {v}" for k, v in s["outcomes"].items()) or "none"
    figures = [
        ("runs", f"{s['runs']} ({s['check_runs']} check mode)"),
        ("incidents handled", s["incidents"]),
        ("outcomes", outcomes),
        ("time to recover, median (s)", ttr["median"]),
        ("time to recover, p90 (s)", ttr["p90"]),
        ("recovered runs", ttr["count"]),
        ("restart budget refusals", s["budget_refusals"]),
        ("restart budget overrides", s["budget_overrides"]),
    ]
    title = f"{s['runbook']} {s['title']}"
    return [
        f'<h2><a href="{esc(s["runbook_url"])}">{esc(title)}</a></h2>',
        *table(("figure", "value"), figures),
        *_counted("Escalations and their reasons", s["escalations"]),
        *_counted("Most frequent findings (warning or critical)", s["findings"]),
        *_counted("Alerts that started runs", s["alerts"]),
        *_names("Alerts that started no run", s["alerts_without_runs"]),
        *_names("Checks that never crossed their threshold", s["checks_never_crossed"]),
        *_names("Runbook steps that never ran in the period", s["steps_never_ran"]),
    ]


def receiver_html(r: dict[str, Any]) -> list[str]:
    journals = [(j["env"], j["path"], j["records"], j["corrupt_lines"]) for j in r["journals"]]
    fates = ", ".join(f"{k} {v}" for k, v in r["fates"].items()) or "none"
    return [
        "<h2>Alerts received (the receiver journal)</h2>",
        f"<p>{esc(r['alerts'])} alert(s): {esc(r['firing'])} firing, "
        f"{esc(r['resolved_notices'])} resolution notice(s); fates: {esc(fates)}; "
        f"{esc(r['truncated_alerts'])} alert(s) Alertmanager truncated.</p>",
        *table(("environment", "journal", "records", "corrupt lines"), journals),
        "<h3>Runs the receiver started</h3>",
        *table(
            ("runbook", "alert", "outcome", "count"),
            [(i["runbook"], i["alertname"], i["outcome"], i["count"]) for i in r["runs"]],
        ),
        "<h3>Alerts that started no run, and why</h3>",
        *table(
            ("fate", "reason", "alert", "count"),
            [(i["fate"], i["reason"], i["alertname"], i["count"]) for i in r["not_started"]],
        ),
    ]


def to_html(data: dict[str, Any], png: bytes | None = None) -> str:
    """The page; ``png``: the plot, embedded as a data: URI when given."""
    p = data["period"]
    title = f"Runbook review {p['from'][:10]} to {p['to'][:10]}"
    days = f"{p['days']:g}"
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{esc(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
        f"<p>{esc(p['runs'])} run(s) in the period ({esc(days)} days), "
        "from the run reports (<code>runs/</code>)"
        + (" and the receiver journal.</p>" if "receiver" in data else ".</p>"),
    ]
    if png:
        uri = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
        out.append(f'<p><img alt="Run duration and outcome over the period" src="{uri}"></p>')
    for s in data["runbooks"]:
        out += runbook_html(s)
    if "receiver" in data:
        out += receiver_html(data["receiver"])
    return "\n".join([*out, "</body></html>"]) + "\n"
