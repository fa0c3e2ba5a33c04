# Copyright: (c) 2026, pflow-ops team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""RB-02 checks: one SQL statement each, evaluated by pure functions (unit-tested without a server).

Every statement aggregates or sorts and limits in SQL, so its cost does not grow noticeably with
the number of tables, indexes or statements; nothing fetches a whole catalogue into Python.
Thresholds come from the caller (role variables); defaults cite docs/diagnostics.md anchors.
A finding is {check, status, value, threshold, detail}, status ok | warning | critical | skipped.
"""

from __future__ import annotations

# Re-exported: pg_diagnose and pg_remediation read dx.SQL, dx.OWN_APPLICATION_PREFIX and friends.
from ansible_collections.pivotal.flow_ops.plugins.module_utils.pg_queries import (  # noqa: F401  # pylint: disable=unused-import
    OWN_APPLICATION_PREFIX,
    RELOADABLE_CONTEXTS,
    SESSION_SKIP_SQL,
    SQL,
    XID_MAX,
)


def finding(check: str, status: str, value, threshold, detail: str) -> dict:  # type: ignore[no-untyped-def]
    return {"check": check, "status": status, "value": value, "threshold": threshold, "detail": detail}


def fmt_age(seconds) -> str:  # type: ignore[no-untyped-def]
    if seconds is None:
        return "never"
    seconds = float(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.1f} s"


def fmt_bytes(size) -> str:  # type: ignore[no-untyped-def]
    size = float(size or 0)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"


def usable_connections(server: dict) -> int:
    """Slots a non-superuser can take: max_connections minus the reserved ones (PG 16+ adds reserved_connections)."""
    reserved = int(server.get("superuser_reserved") or 0) + int(server.get("reserved") or 0)
    return max(int(server["max_connections"]) - reserved, 1)


def evaluate_server(row: dict) -> list[dict]:
    pending = list(row.get("pending_restart") or [])
    reserved = f"{row['superuser_reserved']} superuser-reserved" + (
        f", {row['reserved']} reserved" if row.get("reserved") not in (None, "", "0") else ""
    )
    return [
        finding(
            "server",
            "ok",
            row["version"].split()[0],
            "",
            f"PostgreSQL {row['version'].split()[0]}, up {fmt_age(row['uptime_s'])}, "
            f"max_connections {row['max_connections']} ({reserved})" + (", standby" if row["in_recovery"] else ""),
        ),
        finding(
            "pending_restart",
            "warning" if pending else "ok",
            len(pending),
            0,
            f"settings changed but waiting for a restart: {', '.join(pending)}"
            if pending
            else "no setting waits for a restart",
        ),
    ]


def evaluate_connections(row: dict, usable: int, cfg: dict) -> dict:
    total = int(row["total"])
    pct = round(100.0 * total / usable, 1)
    status = (
        "critical"
        if pct >= cfg["connections_critical_pct"]
        else "warning"
        if pct >= cfg["connections_warning_pct"]
        else "ok"
    )
    apps = row.get("by_application") or {}
    top = ", ".join(f"{app} {n}" for app, n in sorted(apps.items(), key=lambda kv: -kv[1])[:3])
    conn = finding(
        "connections",
        status,
        f"{total}/{usable} ({pct}%)",
        f"warning {cfg['connections_warning_pct']}%, critical {cfg['connections_critical_pct']}%",
        f"{total} client sessions of {usable} usable slots; by state {dict(row.get('by_state') or {})}; "
        f"top applications: {top or 'none'}",
    )
    count, oldest = int(row["idle_in_tx"]), row.get("idle_in_tx_oldest_s")
    over_age = oldest is not None and float(oldest) >= cfg["idle_in_transaction_max_s"]
    idle_status = "critical" if count >= cfg["idle_in_transaction_count_max"] or over_age else "ok"
    idle = finding(
        "idle_in_transaction",
        idle_status,
        f"{count} (oldest {fmt_age(oldest) if count else '-'})",
        f"count {cfg['idle_in_transaction_count_max']}, age {cfg['idle_in_transaction_max_s']:g} s",
        f"{count} sessions idle in transaction"
        + (f", the oldest for {fmt_age(oldest)}; they hold locks and snapshots" if count else ""),
    )
    return {"findings": [conn, idle], "usage_pct": pct, "total": total, "status": status, "sessions": row}


def _session_line(s: dict, age_key: str) -> str:
    return f"pid {s['pid']} ({s['application']}, {s['user']}, {fmt_age(s.get(age_key))})"


def evaluate_long_queries(rows: list[dict], cfg: dict) -> dict:
    total = int(rows[0]["total"]) if rows else 0
    client = [r for r in rows if r["skip"] != "autovacuum worker"]
    # A query waiting on a lock is a victim: the blocking check deals with whoever holds the lock.
    runaway = [r for r in client if float(r["running_s"]) >= cfg["runaway_query_s"] and not r.get("waiting")]
    status = "critical" if runaway else "warning" if client else "ok"
    autovac = len(rows) - len(client)
    detail = (
        "; ".join(
            _session_line(r, "running_s") + (" waiting on a lock" if r.get("waiting") else "") + f": {r['query'][:80]}"
            for r in client[:5]
        )
        if client
        else "no query runs longer than the limit"
    )
    if autovac:
        detail += f"; {autovac} autovacuum workers running long (reported apart, never cancelled)"
    untouchable = [r for r in runaway if r["skip"]]
    if untouchable:
        detail += "; not to be touched: " + ", ".join(f"pid {r['pid']} ({r['skip']})" for r in untouchable)
    return {
        "findings": [
            finding(
                "long_running_queries",
                status,
                f"{total - autovac} (longest {fmt_age(client[0]['running_s']) if client else '-'})",
                f"warning {cfg['long_query_s']:g} s, runaway {cfg['runaway_query_s']:g} s",
                detail,
            )
        ],
        "runaway": [_candidate(r, "running_s") for r in runaway if not r["skip"]],
    }


def _candidate(row: dict, age_key: str) -> dict:
    return {
        "pid": row["pid"],
        "backend_start": row["backend_start"],
        "user": row["user"],
        "application": row["application"],
        "client": row["client"],
        "age_s": round(float(row[age_key]), 1),
        "query": row["query"],
    }


def evaluate_blocking(rows: list[dict], idle_rows: list[dict], cfg: dict) -> dict:
    total = int(rows[0]["total"]) if rows else 0
    longest = max((float(r["waiting_s"]) for r in rows), default=0.0)
    status = (
        "critical"
        if longest >= cfg["lock_wait_critical_s"]
        else "warning"
        if longest >= cfg["lock_wait_warning_s"]
        else "ok"
    )
    chains = [
        {
            "pid": r["pid"],
            "application": r["application"],
            "waiting_s": round(float(r["waiting_s"]), 1),
            "blocked_by": list(r["blocked_by"] or []),
        }
        for r in rows
    ]
    blockers = {pid for c in chains for pid in c["blocked_by"]}
    detail = "; ".join(
        f"pid {c['pid']} ({c['application']}) waits {fmt_age(c['waiting_s'])} "
        f"on pid(s) {', '.join(map(str, c['blocked_by']))}"
        for c in chains[:5]
    )
    idle_findings = []
    candidates = []
    for r in idle_rows:
        blocking = sorted(c["pid"] for c in chains if r["pid"] in c["blocked_by"])
        if not r["skip"]:
            candidates.append(dict(_candidate(r, "idle_s"), blocking=blocking))
        idle_findings.append(
            _session_line(r, "idle_s")
            + (f" blocks {blocking}" if blocking else "")
            + (f" [{r['skip']}: not touched]" if r["skip"] else "")
        )
    result = finding(
        "blocking_locks",
        status,
        f"{total} waiting (longest {fmt_age(longest) if total else '-'})",
        f"warning {cfg['lock_wait_warning_s']:g} s, critical {cfg['lock_wait_critical_s']:g} s",
        detail or "no session waits on a lock",
    )
    return {
        "findings": [result],
        "chains": chains,
        "blockers": sorted(blockers),
        "idle_in_transaction": candidates,
        "idle_detail": idle_findings,
    }


def evaluate_statements(summary: dict, top: list[dict], cfg: dict) -> dict:
    slow = int(summary["slow"])
    worst = [s for s in top if s["slow"]][:3]
    detail = (
        f"{slow} of {summary['total']} statements have mean >= {cfg['slow_query_ms']:g} ms "
        f"over >= {cfg['slow_query_calls']} calls"
        + (
            "; worst by total time: " + "; ".join(f"{s['mean_ms']} ms x {s['calls']}: {s['query'][:80]}" for s in worst)
            if worst
            else ""
        )
        + ("; they need an index or a query change, not a restart" if slow else "")
    )
    return {
        "findings": [
            finding(
                "slow_queries",
                "warning" if slow else "ok",
                slow,
                f"mean {cfg['slow_query_ms']:g} ms, calls {cfg['slow_query_calls']}",
                detail,
            )
        ],
        "statements": [{k: (float(v) if k in ("total_ms", "mean_ms") else v) for k, v in s.items()} for s in top],
    }


def statements_missing(reason: str) -> dict:
    return {
        "findings": [
            finding(
                "slow_queries",
                "warning",
                "unavailable",
                "pg_stat_statements",
                f"pg_stat_statements is not available ({reason}); fix: shared_preload_libraries = 'pg_stat_statements' "
                "(restart), then CREATE EXTENSION pg_stat_statements in this database",
            )
        ],
        "statements": [],
    }


def escalation(check: str, reason: str, advisory: bool = False) -> dict:
    return {"check": check, "reason": reason, "advisory": advisory}


def escalations(findings: list[dict], candidates: dict, usable: int) -> list[dict]:
    """What the runbook must not fix by itself: a human decides. Advisory items (index review,
    bloat, cache) are for the weekly maintenance report; the incident runbook only lists them."""
    by = {f["check"]: f for f in findings}
    out = []

    def bad(check: str, *statuses: str) -> bool:
        return by.get(check, {}).get("status") in (statuses or ("warning", "critical"))

    if bad("slow_queries") and by["slow_queries"]["value"] != "unavailable":
        out.append(
            escalation("slow_queries", "slow statements need an index or a query change (see the slow_queries finding)")
        )
    if bad("wraparound", "critical"):
        out.append(escalation("wraparound", "transaction-id wraparound is approaching: VACUUM (FREEZE) by a DBA"))
    if bad("sequences", "critical"):
        out.append(escalation("sequences", "a sequence is near its maximum: widen it (bigint) before it runs out"))
    if bad("pending_restart"):
        out.append(
            escalation(
                "pending_restart",
                "settings wait for a restart: schedule one (the runbook never restarts a healthy database)",
            )
        )
    if bad("long_running_queries", "critical") and not candidates.get("runaway_queries"):
        out.append(
            escalation("long_running_queries", "runaway queries belong to protected, superuser or system sessions")
        )
    if bad("idle_in_transaction", "critical") and not candidates.get("idle_in_transaction"):
        out.append(
            escalation(
                "idle_in_transaction",
                "idle-in-transaction sessions exist but none may be ended (protected, superuser or too young)",
            )
        )
    fixable_pids = {c["pid"] for key in ("runaway_queries", "idle_in_transaction") for c in candidates.get(key, [])}
    blockers = set(candidates.get("blockers", []))
    if bad("blocking_locks") and not blockers <= fixable_pids:
        stuck = sorted(blockers - fixable_pids)
        out.append(
            escalation(
                "blocking_locks", f"sessions wait on locks held by pid(s) {stuck}, which the runbook may not end"
            )
        )
    conn = by.get("connections", {})
    if conn.get("status") in ("warning", "critical") and (candidates.get("connections_after") or 0) > 0:
        out.append(escalation("connections", candidates["connections_detail"]))
    for s in candidates.get("settings", []):
        if s["apply"] != "reload":
            why = {
                "restart": "needs a restart",
                "not_allowed": "is not in the allow-list",
                "no_privilege": "needs GRANT ALTER SYSTEM ON PARAMETER",
            }[s["apply"]]
            out.append(
                escalation(
                    "settings", f"recommendation: set {s['name']} = {s['desired']} (now {s['current']}); it {why}"
                )
            )
    for check, reason in (
        ("unused_indexes", "review the unused indexes, then DROP INDEX CONCURRENTLY"),
        ("duplicate_indexes", "drop the duplicate indexes after review"),
        ("missing_indexes", "tables scanned sequentially need an index"),
        ("bloat", "bloated tables: check why autovacuum does not keep up"),
        ("cache_hit_table", "table cache hit rate below target: more memory or fewer full scans"),
        ("cache_hit_index", "index cache hit rate below target"),
    ):
        if bad(check, "warning", "critical"):
            out.append(escalation(check, reason, advisory=True))
    return out
