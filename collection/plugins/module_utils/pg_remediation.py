# Copyright: (c) 2026, pflow-ops team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""RB-02 remediation steps. Each step re-checks its target just before acting, acts only when
not in check mode, and returns one action {action, target, result, before, after}."""

from __future__ import annotations

import re
import time

from ansible_collections.pivotal.flow_ops.plugins.module_utils import pg_diagnostics as dx
from ansible_collections.pivotal.flow_ops.plugins.module_utils.pg_session import QueryFailed, Session

# The same session, still in the same state, still not protected: a pid reused by a new session
# has another backend_start and is never hit.
SESSION_RECHECK = f"""
SELECT a.pid, a.state, coalesce(nullif(a.application_name, ''), '(none)') AS application, a.usename AS user,
       extract(epoch FROM now() - a.query_start) AS query_s, extract(epoch FROM now() - a.state_change) AS state_s,
       a.query_start::text AS query_start, left(a.query, 120) AS query, {dx.SESSION_SKIP_SQL} AS skip
FROM pg_stat_activity a LEFT JOIN pg_roles r ON r.oid = a.usesysid
WHERE a.pid = %(pid)s AND extract(epoch FROM a.backend_start)::text = %(backend_start)s
"""

RELATION = """
SELECT c.oid, c.relkind, i.indisvalid AS valid, t.relname AS table,
       pg_has_role(c.relowner, 'USAGE') AS owner,
       EXISTS (SELECT 1 FROM pg_stat_progress_create_index p WHERE p.index_relid = c.oid) AS building
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_index i ON i.indexrelid = c.oid LEFT JOIN pg_class t ON t.oid = i.indrelid
WHERE n.nspname = %(schema)s AND c.relname = %(name)s
"""

TABLE_STATS = """
SELECT n_mod_since_analyze, greatest(last_analyze, last_autoanalyze)::text AS last_analyze
FROM pg_stat_user_tables WHERE schemaname = %(schema)s AND relname = %(name)s
"""


def ident(*parts: str) -> str:
    return ".".join('"' + p.replace('"', '""') + '"' for p in parts)


def action(kind: str, target: str, result: str, before: str = "", after: str = "") -> dict:
    return {"action": kind, "target": target, "result": result, "before": before, "after": after}


def session_state(row: dict) -> str:
    return f"{row['state']} {dx.fmt_age(row['state_s'])}: {row['query'][:60]}"


class Remediator:
    def __init__(self, signals: Session, objects_factory, params: dict, check_mode: bool) -> None:  # type: ignore[no-untyped-def]
        self.s = signals
        self._objects_factory = objects_factory
        self._objects: Session | None = None
        self.p = params
        self.check = check_mode
        self.actions: list[dict] = []
        self.changed = False
        self.failed = False
        self.q = {"own": dx.OWN_APPLICATION_PREFIX + "%", "protected": params["protected_applications"]}

    def objects(self) -> Session:
        if self._objects is None:
            self._objects = self._objects_factory()
        return self._objects

    def close(self) -> None:
        if self._objects is not None and self._objects is not self.s:
            self._objects.close()

    def by_application(self) -> dict:
        """Sessions acted on per application: who held the connections, for the report."""
        counts: dict = {}
        for act in self.actions:
            if act.get("application") and not act["result"].startswith("skipped"):
                counts[act["application"]] = counts.get(act["application"], 0) + 1
        return counts

    def _record(self, act: dict, changed: bool = False, failed: bool = False) -> None:
        self.actions.append(act)
        self.changed = self.changed or changed
        self.failed = self.failed or failed

    def _session(self, target: dict) -> dict:
        return self.s.one(SESSION_RECHECK, dict(self.q, pid=target["pid"], backend_start=str(target["backend_start"])))

    def _eligible(self, kind: str, target: dict, states: tuple[str, ...], age_key: str, min_age: float) -> dict | None:
        """The session row when it still qualifies; otherwise record why it was left alone."""
        label = f"pid {target['pid']} ({target.get('application', '?')}, {target.get('user', '?')})"
        row = self._session(target)
        why = ""
        if not row:
            why = "session already gone"
        elif row["skip"]:
            why = f"not touched: {row['skip']}"
        elif not any(row["state"].startswith(s) for s in states):
            why = f"no longer {states[0]} (now {row['state']})"
        elif row[age_key] is None or float(row[age_key]) < min_age:
            why = f"now under the {min_age:g} s limit"
        if why:
            self._record(action(kind, label, f"skipped: {why}", session_state(row) if row else ""))
            return None
        return dict(row, label=label)

    def _session_action(self, kind: str, row: dict, result: str, before: str, after: str = "") -> dict:
        return dict(action(kind, row["label"], result, before, after), application=row["application"])

    def _terminate(self, pid: int) -> bool:
        timeout_ms = int(self.p["terminate_timeout_s"] * 1000)
        row = self.s.one(
            "SELECT pg_terminate_backend(%(pid)s, %(t)s) AS done",
            {"pid": pid, "t": timeout_ms},
            timeout_s=self.p["terminate_timeout_s"] + 5,
        )
        return bool(row.get("done"))

    def _gone(self, target: dict) -> str:
        row = self._session(target)
        return "session ended" if not row else session_state(row)

    def cancel_query(self, target: dict) -> None:
        row = self._eligible("cancel_query", target, ("active", "fastpath"), "query_s", self.p["query_min_age_s"])
        if row is None:
            return
        before = session_state(row)
        if self.check:
            self._record(
                self._session_action(
                    "cancel_query",
                    row,
                    f"would cancel, then terminate if still running after {self.p['cancel_grace_s']:g} s (check mode)",
                    before,
                    "query cancelled, the session stays (terminated if still running after the grace period)",
                ),
                True,
            )
            return
        self.s.one("SELECT pg_cancel_backend(%(pid)s)", {"pid": target["pid"]})
        deadline = time.monotonic() + self.p["cancel_grace_s"]
        while time.monotonic() < deadline:
            now = self._session(target)
            if not now or now["state"] != row["state"] or now["query_start"] != row["query_start"]:
                self._record(
                    self._session_action(
                        "cancel_query",
                        row,
                        "cancelled (pg_cancel_backend); the session stays",
                        before,
                        self._gone(target),
                    ),
                    True,
                )
                return
            time.sleep(0.1)
        done = self._terminate(target["pid"])
        result = "terminated after the cancel grace period" if done else "still running after cancel and terminate"
        self._record(
            self._session_action("cancel_query", row, result, before, self._gone(target)), True, failed=not done
        )

    def terminate_session(self, kind: str, target: dict, states: tuple[str, ...], min_age: float) -> None:
        row = self._eligible(kind, target, states, "state_s", min_age)
        if row is None:
            return
        before = session_state(row) + (f"; blocks pid(s) {dx.pids_text(target['blocking'])}" if target.get("blocking") else "")
        if self.check:
            self._record(self._session_action(kind, row, "would terminate (check mode)", before, "session ended"), True)
            return
        done = self._terminate(target["pid"])
        result = "terminated (pg_terminate_backend)" if done else f"not gone within {self.p['terminate_timeout_s']:g} s"
        self._record(self._session_action(kind, row, result, before, self._gone(target)), True, failed=not done)

    def _relation(self, session: Session, schema: str, name: str) -> dict:
        return session.one(RELATION, {"schema": schema, "name": name})

    def analyze(self, target: dict) -> None:
        s = self.objects()
        label = f"{target['schema']}.{target['table']}"
        rel = self._relation(s, target["schema"], target["table"])
        stats = s.one(TABLE_STATS, {"schema": target["schema"], "name": target["table"]})
        last = stats.get("last_analyze") or "never"
        before = f"{stats.get('n_mod_since_analyze', '?')} rows modified, last analyze {last}"
        if not rel:
            self._record(action("analyze", label, "skipped: table is gone"))
            return
        if not rel["owner"]:
            self._record(
                action(
                    "analyze",
                    label,
                    f"skipped: the maintenance role does not own {label} (PostgreSQL 15 lets only the owner ANALYZE)",
                    before,
                ),
                failed=True,
            )
            return
        if self.check:
            self._record(
                action("analyze", label, "would ANALYZE (check mode)", before, "0 rows modified, last analyze now"), True
            )
            return
        try:
            s.rows(f"ANALYZE {ident(target['schema'], target['table'])}", timeout_s=self.p["maintenance_timeout_s"])
        except QueryFailed as exc:
            self._record(action("analyze", label, f"failed: {exc}", before), failed=True)
            return
        after = s.one(TABLE_STATS, {"schema": target["schema"], "name": target["table"]})
        self._record(
            action(
                "analyze",
                label,
                "analyzed",
                before,
                f"{after.get('n_mod_since_analyze')} rows modified, last analyze {after.get('last_analyze')}",
            ),
            True,
        )

    def reindex(self, target: dict) -> None:
        s = self.objects()
        label = f"{target['schema']}.{target['index']}"
        rel = self._relation(s, target["schema"], target["index"])
        if not rel or rel["valid"] or rel["building"]:
            why = (
                "index is gone"
                if not rel
                else "index is valid now"
                if rel["valid"]
                else "an index build is running on it"
            )
            self._record(action("reindex", label, f"skipped: {why}"))
            return
        if not rel["owner"]:
            self._record(
                action("reindex", label, "skipped: the maintenance role does not own the index", "invalid"), failed=True
            )
            return
        verb = "DROP INDEX CONCURRENTLY IF EXISTS" if target.get("leftover") else "REINDEX INDEX CONCURRENTLY"
        kind = "drop_leftover_index" if target.get("leftover") else "reindex"
        if self.check:
            self._record(
                action(
                    kind,
                    label,
                    f"would run {verb} (check mode)",
                    f"invalid, on {rel['table']}",
                    "dropped" if target.get("leftover") else "valid",
                ),
                True,
            )
            return
        try:
            s.rows(f"{verb} {ident(target['schema'], target['index'])}", timeout_s=self.p["maintenance_timeout_s"])
        except QueryFailed as exc:
            cleaned = self._drop_new_leftovers(s, target) if not target.get("leftover") else ""
            self._record(action(kind, label, f"failed: {exc}{cleaned}", "invalid"), True, failed=True)
            return
        after = (
            "dropped"
            if target.get("leftover")
            else ("valid" if self._relation(s, target["schema"], target["index"]).get("valid") else "still invalid")
        )
        self._record(
            action(
                kind, label, "dropped" if target.get("leftover") else "rebuilt (REINDEX CONCURRENTLY)", "invalid", after
            ),
            True,
            failed=after == "still invalid",
        )

    def _drop_new_leftovers(self, s: Session, target: dict) -> str:
        """A failed REINDEX CONCURRENTLY leaves <index>_ccnew: drop it so the next try starts clean."""
        rows = s.rows(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "JOIN pg_index i ON i.indexrelid = c.oid "
            "WHERE n.nspname = %(schema)s AND c.relname ~ ('^' || %(name)s || '_ccnew[0-9]*$') AND NOT i.indisvalid",
            {"schema": target["schema"], "name": re.escape(target["index"])},
        )
        for r in rows:
            s.rows(
                f"DROP INDEX CONCURRENTLY IF EXISTS {ident(target['schema'], r['relname'])}",
                timeout_s=self.p["maintenance_timeout_s"],
            )
        return f"; dropped leftover {', '.join(r['relname'] for r in rows)}" if rows else ""
