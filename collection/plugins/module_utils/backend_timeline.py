# Copyright: (c) 2026, pflow-ops team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""backend_diagnose's timeline: one row per check, in the runbook's order, each with the step it
stands for, its start and duration, and what it saw in one word (ok, warning, critical, timeout,
skipped, unknown) and one line. The report shows the rows as the investigation's sub-steps."""

from __future__ import annotations

# Each check and the runbook step it stands for in the report's timeline.
STEPS = (
    ("service_status", "Verify the backend service status through its service manager"),
    ("host_resources", "Check infrastructure health (disk, memory, load)"),
    ("dependency_postgresql", "Check that PostgreSQL accepts a query"),
    ("dependency_redis", "Check that Redis answers PING"),
    ("health_endpoint", "Check the backend health endpoint"),
    ("api_sample", "Sample the backend API for error rate and latency"),
    ("node_signals", "Read the backend's Node.js signals (metrics, process, log tail)"),
)


def timeline(ran: dict) -> list:
    """One row per check, in the runbook's order: check, step, start_s, duration_s, status, detail."""
    rows = []
    for name, step in STEPS:
        if name == "api_sample" and "health_endpoint" in ran:
            chain, at = ran["health_endpoint"]
            probe = chain["probe"]
            start = at + chain.get("sample_at_s", 0.0)
            rows.append(row(name, step, start, probe.get("elapsed_s", 0.0), *sample_words(probe)))
            continue
        if name not in ran:
            continue
        result, at = ran[name]
        if name == "health_endpoint":
            health = result["health"]
            rows.append(row(name, step, at, result.get("sample_at_s", health.get("elapsed_s", 0.0)),
                            *health_words(health)))
        elif name == "service_status":
            rows.append(row(name, step, at, result.get("elapsed_s", 0.0), *status_words(result["status"])))
        elif name == "host_resources":
            rows.append(row(name, step, at, result.get("elapsed_s", 0.0), *resources_words(result)))
        elif name == "node_signals":
            rows.append(row(name, step, at, result.get("elapsed_s", 0.0), *node_words(result)))
        else:
            rows.append(row(name, step, at, result.get("elapsed_s", 0.0), *dependency_words(result)))
    return rows


def row(check: str, step: str, start: float, duration: float, status: str, detail: str) -> dict:
    return {"check": check, "step": step, "start_s": round(start, 3), "duration_s": round(duration or 0.0, 3),
            "status": status, "detail": detail}


# --- what each check saw, in one word and one line ----------------------------------------

def status_words(status: dict) -> tuple[str, str]:
    return ("ok" if status.get("running") else "critical"), status.get("detail") or status.get("msg") or ""


def resources_words(res: dict) -> tuple[str, str]:
    worst = str(res.get("status") or "unknown")
    details = [f.get("detail", "") for f in res.get("findings") or [] if f.get("status") == worst]
    return worst, "; ".join(d for d in details if d)


def dependency_words(dep: dict) -> tuple[str, str]:
    if dep.get("available"):
        return "ok", dep.get("msg", "")
    state = dep.get("state")
    word = "warning" if state == "driver_missing" else "timeout" if state == "timeout" else "critical"
    return word, dep.get("msg", "")


def health_words(health: dict) -> tuple[str, str]:
    text = "%s %s" % (health.get("url", ""), health.get("state", "not checked"))
    if health.get("status"):
        text += ", HTTP %s" % health["status"]
    if health.get("reason"):
        text += ": %s" % health["reason"]
    retried = health.get("retried")
    if retried:
        text += " (probed twice: the first probe %s: %s)" % (retried.get("state"), retried.get("reason"))
    return ("ok" if health.get("healthy") else "critical"), text


def sample_words(probe: dict) -> tuple[str, str]:
    if probe.get("skipped"):
        return "skipped", "not sampled (no probe URL, or /health is not healthy)"
    samples = probe.get("samples") or {}
    failures = int(samples.get("failures") or 0)
    return ("ok" if not failures else "warning"), "%s requests, %s failed, p95 %s ms" % (
        samples.get("count", 0), failures, samples.get("p95_ms"))


# node_signals' log fields that name a failure, and their words.
NODE_LOG_WORDS = (("heap_limit", "heap-limit abort"), ("unhandled_rejection", "unhandled rejection"),
                  ("addr_in_use", "EADDRINUSE"))


def node_words(signals: dict) -> tuple[str, str]:
    """warning when the log tail names a Node.js failure, ok when the metrics answered and it
    names none, unknown when the metrics could not be read (the classification says more)."""
    parts = []
    metrics = signals.get("metrics") or {}
    if signals.get("metrics_error"):
        parts.append("metrics: %s" % signals["metrics_error"])
    elif "eventloop_lag_s" in metrics:
        parts.append("event loop lag %g ms" % round(metrics["eventloop_lag_s"] * 1000, 1))
    process = signals.get("process") or {}
    if process.get("state"):
        share = process.get("cpu_share")
        parts.append("process %s%s" % (process["state"], "" if share is None else ", %g CPU" % share))
    elif process.get("error"):
        parts.append(process["error"])
    logs = signals.get("logs") or {}
    found = [words for key, words in NODE_LOG_WORDS if logs.get(key)]
    if found:
        parts.append("log: " + ", ".join(found))
    word = "warning" if found else "unknown" if signals.get("metrics_error") else "ok"
    return word, "; ".join(parts)
