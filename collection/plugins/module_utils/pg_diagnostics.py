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
        f"{total} client sessions of {usable} usable slots; by state {counts_text(row.get('by_state'))}; "
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
        + (f", the oldest for {fmt_age(oldest)}; they hold locks and snapshots" if count else "")
        + (
            f"; ended after database_idle_in_transaction_max_s={cfg['idle_in_transaction_max_s']:g} s"
            if count and not over_age
            else ""
        ),
    )
    return {"findings": [conn, idle], "usage_pct": pct, "total": total, "status": status, "sessions": row}


def counts_text(counts) -> str:  # type: ignore[no-untyped-def]
    """{'idle': 30, 'active': 2} as "idle 30, active 2" (largest first): never a dict repr in a finding."""
    items = sorted((counts or {}).items(), key=lambda kv: (-int(kv[1]), str(kv[0])))
    return ", ".join(f"{key} {value}" for key, value in items) or "none"


def pids_text(pids) -> str:  # type: ignore[no-untyped-def]
    return ", ".join(str(p) for p in pids)


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
    if any(not r.get("waiting") and not r["skip"] and float(r["running_s"]) < cfg["runaway_query_s"] for r in client):
        detail += f"; cancelled after database_runaway_query_s={cfg['runaway_query_s']:g} s"
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
        "untouchable": [dict(_candidate(r, "running_s"), skip=r["skip"]) for r in untouchable],
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


def _lock_wanted(row: dict) -> str:
    what = " ".join(x for x in (row.get("mode"), row.get("locktype")) if x) or "a lock"
    return what + (f" on {row['relation']}" if row.get("relation") else "")


def _node_line(row: dict) -> str:
    if row["waiting"]:
        return f"pid {row['pid']} ({row['application']}) waits {fmt_age(row['waiting_s'])} for {_lock_wanted(row)}"
    state = row.get("state") or "unknown"
    age = row.get("state_s") if state.startswith("idle") else row.get("query_s")
    return f"pid {row['pid']} ({row['application']}, {row['user']}, {state} {fmt_age(age)})"


def _root_fix(root: dict, cfg: dict) -> tuple[str, str]:
    """What the runbook does about a root blocker: (cancel | terminate | pending | human, why)."""
    state = root.get("state") or ""
    if root.get("skip"):
        return "human", f"the runbook may not end it ({root['skip']})"
    if state.startswith("idle in transaction"):
        limit = cfg["idle_in_transaction_max_s"]
        if float(root.get("state_s") or 0) >= limit:
            return "terminate", f"terminated: idle in transaction over {limit:g} s"
        return "pending", f"terminated after database_idle_in_transaction_max_s={limit:g} s"
    if state in ("active", "fastpath function call"):
        limit = cfg["runaway_query_s"]
        if float(root.get("query_s") or 0) >= limit:
            return "cancel", f"cancelled: running over {limit:g} s"
        return "pending", f"cancelled after database_runaway_query_s={limit:g} s"
    return "human", f"it holds a lock while {state or 'in an unknown state'} (a session-level or advisory lock)"


def lock_tree(rows: list[dict]) -> list[dict]:
    """Root blockers (sessions that hold what others wait for and wait on nobody) with their
    waiters as a tree, PgHero style. A session that is itself waiting is never a root."""
    by_pid = {r["pid"]: r for r in rows}
    children: dict = {}
    for r in rows:
        for blocker in r.get("blocked_by") or []:
            children.setdefault(blocker, []).append(r["pid"])

    def node(pid: int, seen: frozenset) -> dict:
        r = by_pid[pid]
        kids = [node(k, seen | {k}) for k in sorted(children.get(pid, [])) if k in by_pid and k not in seen]
        out = {
            "pid": pid,
            "application": r["application"],
            "user": r["user"],
            "state": r.get("state"),
            "waiting": bool(r["waiting"]),
            "waiting_s": round(float(r.get("waiting_s") or 0), 1),
            "lock": _lock_wanted(r) if r["waiting"] else "",
            "query": (r.get("query") or "")[:120],
            "line": _node_line(r),
            "waiters": kids,
        }
        out["blocks"] = sum(1 + k["blocks"] for k in kids)
        return out

    roots = [r["pid"] for r in rows if not r["waiting"] and children.get(r["pid"])]
    if not roots:  # a cycle (PostgreSQL breaks deadlocks) or the limit cut the roots off: list the waiters
        roots = [r["pid"] for r in rows if r["waiting"]]
    return [node(pid, frozenset([pid])) for pid in roots]


def tree_text(tree: dict) -> str:
    """root -> [waiter -> [its waiter], other waiter]: one line per root blocker."""
    if not tree["waiters"]:
        return tree["line"]
    inner = ", ".join(tree_text(k) for k in tree["waiters"])
    return f"{tree['line']} -> [{inner}]" if len(tree["waiters"]) > 1 or tree["waiters"][0]["waiters"] else (
        f"{tree['line']} -> {inner}"
    )


def evaluate_blocking(rows: list[dict], idle_rows: list[dict], cfg: dict) -> dict:
    """Lock waits. Any session blocked by another is a warning from the first second (the signal
    is unambiguous: someone waits now); critical from lock_wait_critical_s. Only root blockers
    count: each is a target (when over its own limit), pending (with the limit it waits for) or
    for a human (a session the runbook may never end)."""
    waiters = [r for r in rows if r["waiting"]]
    total = int(rows[0]["total"]) if rows else 0
    longest = max((float(r["waiting_s"]) for r in waiters), default=0.0)
    status = "critical" if longest >= cfg["lock_wait_critical_s"] else "warning" if waiters else "ok"
    trees = lock_tree(rows)
    by_pid = {r["pid"]: r for r in rows}
    roots = []
    for tree in trees:
        root = by_pid[tree["pid"]]
        if root["waiting"]:
            continue
        fix, why = _root_fix(root, cfg)
        tree.update(fix=fix, why=why)
        roots.append(
            {
                "pid": root["pid"],
                "application": root["application"],
                "user": root["user"],
                "blocks": tree["blocks"],
                "longest_wait_s": round(max(_waits(tree), default=0.0), 1),
                "fix": fix,
                "why": why,
                "line": tree["line"],
            }
        )
    detail = "; ".join(
        tree_text(t) + (f" ({t['why']})" if t.get("why") else "") for t in trees[:5]
    ) or "no session waits on a lock"
    idle_findings = []
    candidates = []
    for r in idle_rows:
        blocking = sorted(
            {w for t in trees if t["pid"] == r["pid"] for w in _pids(t)} - {r["pid"]}
        )
        if not r["skip"]:
            candidates.append(dict(_candidate(r, "idle_s"), blocking=blocking))
        idle_findings.append(
            _session_line(r, "idle_s")
            + (f" blocks pid(s) {pids_text(blocking)}" if blocking else "")
            + (f" [{r['skip']}: not touched]" if r["skip"] else "")
        )
    result = finding(
        "blocking_locks",
        status,
        f"{total} waiting (longest {fmt_age(longest) if total else '-'})",
        f"any wait is reported; warning {cfg['lock_wait_warning_s']:g} s, critical {cfg['lock_wait_critical_s']:g} s",
        detail,
    )
    pending = [
        f"pid {r['pid']} ({r['application']}) blocks {r['blocks']} session{'s' if r['blocks'] != 1 else ''} "
        f"for {fmt_age(r['longest_wait_s'])}; {r['why']}"
        for r in roots
        if r["fix"] == "pending"
    ]
    return {
        "findings": [result],
        "chains": trees,
        "roots": roots,
        "blockers": sorted(r["pid"] for r in roots),
        "pending": pending,
        "idle_in_transaction": candidates,
        "idle_detail": idle_findings,
    }


def _pids(tree: dict) -> list[int]:
    return [tree["pid"]] + [p for k in tree["waiters"] for p in _pids(k)]


def _waits(tree: dict) -> list[float]:
    return [k["waiting_s"] for k in tree["waiters"]] + [w for k in tree["waiters"] for w in _waits(k)]


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


def preloaded(server: dict, library: str = "pg_stat_statements") -> bool:
    return library in [x.strip().strip('"') for x in str(server.get("preload") or "").split(",")]


def statements_missing(reason: str, preloaded_already: bool = False) -> dict:
    fix = (
        "fix: CREATE EXTENSION pg_stat_statements in this database (the library is already in "
        "shared_preload_libraries: no restart needed)"
        if preloaded_already
        else "fix: shared_preload_libraries = 'pg_stat_statements' (restart), then CREATE EXTENSION "
        "pg_stat_statements in this database"
    )
    return {
        "findings": [
            finding(
                "slow_queries",
                "warning",
                "unavailable",
                "pg_stat_statements",
                f"pg_stat_statements is not available ({reason}); {fix}",
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
    for r in candidates.get("untouchable_runaway", []):
        out.append(
            escalation(
                "long_running_queries",
                f"runaway query pid {r['pid']} ({r['application']}, {r['user']}, running {fmt_age(r['age_s'])}) "
                f"may not be cancelled by the runbook ({r['skip']}): a human decides",
            )
        )
    if bad("idle_in_transaction", "critical") and not candidates.get("idle_in_transaction"):
        out.append(
            escalation(
                "idle_in_transaction",
                "idle-in-transaction sessions exist but none may be ended (protected, superuser or too young)",
            )
        )
    for root in candidates.get("lock_roots", []):
        if root["fix"] == "human":
            out.append(
                escalation(
                    "blocking_locks",
                    f"pid {root['pid']} ({root['application']}, {root['user']}) blocks {root['blocks']} "
                    f"session(s): {root['why']}",
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
                "no_privilege": "needs GRANT ALTER SYSTEM ON PARAMETER and EXECUTE on pg_reload_conf()",
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
