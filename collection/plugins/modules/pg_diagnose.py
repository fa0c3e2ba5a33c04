#!/usr/bin/python
# Copyright: (c) 2026, pflow-ops team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# ruff: noqa: E402  (ansible-test requires DOCUMENTATION/EXAMPLES/RETURN before any import)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: pg_diagnose
short_description: Diagnose a PostgreSQL server the way PgHero, check_postgres and a DBA would, in one read-only session
version_added: 0.2.0
description:
  - Connects once (failures classified as C(refused), C(timeout), C(auth_failed), C(too_many_clients),
    C(starting_up), ...), then runs every check as one SQL statement over that session. Each
    statement aggregates, sorts and limits in SQL, so the run does not slow down noticeably with
    thousands of tables or statements.
  - The session is read-only (C(default_transaction_read_only)) with a C(statement_timeout), and
    the module never changes anything, so it runs for real in check mode.
  - Returns findings C({check, status, value, threshold, detail}), the exact remediation
    candidates (sessions with their C(backend_start), tables, indexes, settings) for
    M(pivotal.flow_ops.pg_remediate), and the problems a human must handle (C(escalations)).
  - Works as a least-privilege monitoring role (C(pg_monitor) and C(pg_signal_backend)). A missing
    pg_stat_statements is a finding with the fix, not a failure.
seealso:
  - module: pivotal.flow_ops.pg_remediate
    description: Acts on the candidates this module returns, re-checking each one.
  - module: community.postgresql.postgresql_info
    description: The server's configuration and objects, without a diagnosis.
  - module: community.postgresql.postgresql_ping
    description: Whether the server answers, from the community collection.
author:
  - pflow-ops team (@pivotal-flow)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - pivotal.flow_ops.action_groups.postgresql_group
  - pivotal.flow_ops.postgres
attributes:
  check_mode:
    support: full
    details: Read-only, so it checks for real in check mode.
  diff_mode:
    support: none
  platform:
    platforms: posix
requirements:
  - psycopg2 on the target
options:
  login_user:
    aliases: [user]
    description: Login role; a C(pg_monitor) member sees every session and statement.
    type: str
    required: true
  connect_timeout:
    description: Hard limit in seconds on connecting and C(SELECT 1).
    type: float
    default: 5
  statement_timeout:
    description: Server-side C(statement_timeout) in seconds for each check.
    type: float
    default: 10
  wait_seconds:
    description: Keep retrying the connection for this long before giving up (0 tries once). Used after a restart.
    type: float
    default: 0
  checks:
    description: Check groups to run; C(connectivity) always runs.
    type: list
    elements: str
    default: [server, connections, activity, statements, cache, indexes, tables, wraparound, sequences, settings]
    choices: [server, connections, activity, statements, cache, indexes, tables, wraparound, sequences, settings]
  protected_applications:
    description: C(application_name) values whose sessions are never candidates. The tool's own sessions never are.
    type: list
    elements: str
    default: []
  desired_settings:
    description:
      - Settings the server should have (as C(SHOW) prints them).
      - Differences become candidates or recommendations.
    type: dict
    default: {}
  allowed_settings:
    description: Reloadable settings the runbook may change with C(ALTER SYSTEM); all others are recommendations.
    type: list
    elements: str
    default: []
  thresholds:
    description:
      - Limits of the checks. Every key is optional; defaults follow the diagnostics reference
        (PgHero, check_postgres).
      - C(top) rows kept per list; C(long_query_s) 60 and C(runaway_query_s) 300 (cancel);
        C(idle_in_transaction_max_s) 300 and C(idle_in_transaction_count_max) 100;
        C(connections_warning_pct) 90, C(connections_critical_pct) 95,
        C(idle_sessions_max_pct) 50 (idle sessions beyond this share of usable slots are ended
        when connections are short), C(idle_session_min_age_s) 60; C(lock_wait_warning_s) 60,
        C(lock_wait_critical_s) 120; C(slow_query_ms) 20, C(slow_query_calls) 100;
        C(cache_hit_min) 0.99; C(unused_index_min_bytes) 10485760; C(missing_index_min_rows)
        10000, C(missing_index_scan_pct) 95; C(stale_min_modified_rows) 1000,
        C(stale_modified_ratio) 0.1, C(stale_analyze_warning_s) 86400,
        C(stale_analyze_critical_s) 172800; C(bloat_min_dead_rows) 10000, C(bloat_dead_ratio)
        0.2; C(wraparound_left_min) 1500000000, C(wraparound_age_critical) 1400000000;
        C(sequence_used_max) 0.9.
    type: dict
    default: {}
"""

EXAMPLES = r"""
- name: Diagnose the database as the monitoring role
  pivotal.flow_ops.pg_diagnose:
    host: db-01.prod.internal
    database: pivotal_flow
    user: pflow_monitor
    password: "{{ vault_pflow_monitor_password }}"
    protected_applications: [pg_dump, pivotal-flow-migrations]
    thresholds:
      long_query_s: 60
      runaway_query_s: 300
  register: database_diagnosis
  check_mode: false

- name: Wait for a restarted database to answer SELECT 1
  pivotal.flow_ops.pg_diagnose:
    database: pivotal_flow
    user: pflow_monitor
    checks: []
    wait_seconds: 30
  register: database_ready
"""

RETURN = r"""
available:
  description: The database answered C(SELECT 1).
  returned: always
  type: bool
  sample: true
connectivity:
  description: C({available, state, msg, latency_ms, attempts}); state as in M(pivotal.flow_ops.dependency_check).
  returned: always
  type: dict
  sample: {available: true, state: ok, msg: "PostgreSQL at 127.0.0.1:5432/pivotal answered in 1.2 ms", latency_ms: 1.2, attempts: 1}
findings:
  description: One C({check, status, value, threshold, detail}) per check; status ok, warning, critical or skipped.
  returned: always
  type: list
  elements: dict
  sample:
      - {check: long_running_queries, status: critical, value: "1 (longest 6.2 min)",
     threshold: "warning 60 s, runaway 300 s", detail: "pid 4242 (report-worker): SELECT pg_sleep(3600)"}
candidates:
  description:
    - What M(pivotal.flow_ops.pg_remediate) may act on, already filtered (no superuser, system,
      protected or tool session). Sessions carry C(pid) and C(backend_start).
    - Keys C(runaway_queries), C(idle_in_transaction), C(idle_sessions), C(stale_tables),
      C(invalid_indexes), C(settings), C(blockers) (root blockers only; a session that itself
      waits is never one).
    - C(lock_roots) (each root blocker with C(fix) cancel, terminate, pending or human and why) and
      C(untouchable_runaway) (runaway queries of superuser, protected or system sessions) are
      for the verdict, never for M(pivotal.flow_ops.pg_remediate).
    - Idle sessions for pool exhaustion come from the application holding the most idle sessions.
  returned: always
  type: dict
pending:
  description:
    - Unambiguous signals the runbook sees now but may not act on yet, each with the limit it
      waits for, e.g. a query that blocks others before C(database_runaway_query_s).
  returned: always
  type: list
  elements: str
  sample: ["pid 4242 blocks 3 sessions; cancelled once it runs 300 s (database_runaway_query_s)"]
escalations:
  description:
    - C({check, reason, advisory}) for problems a human must handle.
    - Advisory ones (index review, bloat, cache) are for the maintenance report.
  returned: always
  type: list
  elements: dict
  sample: [{check: wraparound, reason: "pivotal at 62% of autovacuum_freeze_max_age", advisory: false}]
data:
  description:
    - Details for the report, such as sessions by state, application, user and client, lock chains and top statements.
    - Also the unused and duplicate indexes.
  returned: always
  type: dict
msg:
  description: One line summing up the diagnosis.
  returned: always
  type: str
  sample: "problems: long_running_queries critical"
elapsed_s:
  description: Wall time of the module.
  returned: always
  type: float
  sample: 0.84
"""

import time

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.pivotal.flow_ops.plugins.module_utils import pg_connection
from ansible_collections.pivotal.flow_ops.plugins.module_utils import pg_diagnostics as dx
from ansible_collections.pivotal.flow_ops.plugins.module_utils import pg_objects as ox
from ansible_collections.pivotal.flow_ops.plugins.module_utils import pg_session
from ansible_collections.pivotal.flow_ops.plugins.module_utils.pg_connection import required_connection_spec as connection_spec

DEFAULT_THRESHOLDS = {
    "top": 10,
    "long_query_s": 60.0,
    "runaway_query_s": 300.0,
    "idle_in_transaction_max_s": 300.0,
    "idle_in_transaction_count_max": 100,
    "connections_warning_pct": 90.0,
    "connections_critical_pct": 95.0,
    "idle_sessions_max_pct": 50.0,
    "idle_session_min_age_s": 60.0,
    "lock_wait_warning_s": 60.0,
    "lock_wait_critical_s": 120.0,
    "slow_query_ms": 20.0,
    "slow_query_calls": 100,
    "cache_hit_min": 0.99,
    "unused_index_min_bytes": 10485760,
    "missing_index_min_rows": 10000,
    "missing_index_scan_pct": 95.0,
    "stale_min_modified_rows": 1000,
    "stale_modified_ratio": 0.1,
    "stale_analyze_warning_s": 86400.0,
    "stale_analyze_critical_s": 172800.0,
    "bloat_min_dead_rows": 10000,
    "bloat_dead_ratio": 0.2,
    "wraparound_left_min": 1500000000,
    "wraparound_age_critical": 1400000000,
    "sequence_used_max": 0.9,
}


class ModuleFailure(Exception):
    pass


def thresholds(given: dict) -> dict:
    unknown = set(given) - set(DEFAULT_THRESHOLDS)
    if unknown:
        raise ModuleFailure(f"unknown thresholds: {', '.join(sorted(unknown))}")
    out = dict(DEFAULT_THRESHOLDS)
    for key, value in given.items():
        try:
            out[key] = type(DEFAULT_THRESHOLDS[key])(float(value))
        except (TypeError, ValueError):
            raise ModuleFailure(f"threshold {key} must be a number, got {value!r}") from None
    return out


def query_params(cfg: dict, protected: list[str]) -> dict:
    return {
        "top": cfg["top"],
        "own": dx.OWN_APPLICATION_PREFIX + "%",
        "protected": protected,
        "long_s": cfg["long_query_s"],
        "idle_tx_s": cfg["idle_in_transaction_max_s"],
        "slow_ms": cfg["slow_query_ms"],
        "slow_calls": cfg["slow_query_calls"],
        "unused_bytes": cfg["unused_index_min_bytes"],
        "stale_rows": cfg["stale_min_modified_rows"],
        "stale_ratio": cfg["stale_modified_ratio"],
        "bloat_rows": cfg["bloat_min_dead_rows"],
        "bloat_ratio": cfg["bloat_dead_ratio"],
        "missing_rows": cfg["missing_index_min_rows"],
        "missing_pct": cfg["missing_index_scan_pct"],
        "seq_ratio": cfg["sequence_used_max"],
    }


class Diagnosis:
    """Runs the check groups over one session and gathers findings, candidates and data."""

    def __init__(self, session: pg_session.Session, params: dict, cfg: dict) -> None:
        self.s = session
        self.params = params
        self.cfg = cfg
        self.q = query_params(cfg, params["protected_applications"])
        self.findings: list[dict] = []
        self.candidates: dict = {
            key: []
            for key in (
                "runaway_queries",
                "idle_in_transaction",
                "idle_sessions",
                "stale_tables",
                "invalid_indexes",
                "settings",
                "blockers",
                "lock_roots",
                "untouchable_runaway",
            )
        }
        self.data: dict = {}
        self.server: dict = {}
        self.pending: list[str] = []

    def run(self, group: str) -> None:
        try:
            getattr(self, f"check_{group}")()
        except pg_session.QueryFailed as exc:
            self.findings.append(dx.finding(group, "skipped", None, None, f"check failed: {exc}"))

    def check_server(self) -> None:
        self.server = self.s.one(dx.SQL["server"])
        self.findings.extend(dx.evaluate_server(self.server))

    def check_connections(self) -> None:
        if not self.server:
            self.server = self.s.one(dx.SQL["server"])
        usable = dx.usable_connections(self.server)
        result = dx.evaluate_connections(self.s.one(dx.SQL["connections"], self.q), usable, self.cfg)
        self.findings.extend(result["findings"])
        self.data["sessions"] = result["sessions"]
        self.data["connections_usable"] = usable
        if result["status"] == "ok":
            return
        idle = int((result["sessions"].get("by_state") or {}).get("idle", 0))
        allowed = int(self.cfg["idle_sessions_max_pct"] / 100.0 * usable)
        excess = max(idle - allowed, 0)
        if excess:
            params = dict(self.q, idle_min_s=self.cfg["idle_session_min_age_s"], limit=excess)
            rows = self.s.rows(dx.SQL["idle_sessions"], params)
            self.candidates["idle_sessions"] = [dx._candidate(r, "idle_s") for r in rows]
        warn_at = int(self.cfg["connections_warning_pct"] / 100.0 * usable)
        after = result["total"] - len(self.candidates["idle_sessions"])
        self.candidates["connections_after"] = max(after - warn_at + 1, 0) if after >= warn_at else 0
        self.candidates["connections_detail"] = (
            f"{result['total']} of {usable} slots used and only {len(self.candidates['idle_sessions'])} idle sessions "
            f"(older than {self.cfg['idle_session_min_age_s']:g} s, unprotected) may be ended: "
            "raise capacity or find the leak"
        )

    def check_activity(self) -> None:
        long = dx.evaluate_long_queries(self.s.rows(dx.SQL["long_queries"], self.q), self.cfg)
        idle_rows = self.s.rows(dx.SQL["idle_in_tx"], self.q)
        blocking = dx.evaluate_blocking(self.s.rows(dx.SQL["blocking"], self.q), idle_rows, self.cfg)
        self.findings.extend(long["findings"] + blocking["findings"])
        self.candidates["runaway_queries"] = long["runaway"]
        self.candidates["untouchable_runaway"] = long["untouchable"]
        self.candidates["idle_in_transaction"] = blocking["idle_in_transaction"]
        self.candidates["blockers"] = blocking["blockers"]
        self.candidates["lock_roots"] = blocking["roots"]
        self.pending.extend(blocking["pending"])
        self.data["lock_chains"] = blocking["chains"]
        self.data["idle_in_transaction"] = blocking["idle_detail"]

    def check_statements(self) -> None:
        present = self.s.one(dx.SQL["statements_present"])
        if not self.server:
            self.server = self.s.one(dx.SQL["server"])
        if not present:
            result = dx.statements_missing("the extension is not installed in this database", dx.preloaded(self.server))
        else:
            schema = '"' + present["schema"].replace('"', '""') + '"'
            try:
                summary = self.s.one(dx.SQL["statements_summary"].format(schema=schema), self.q)
                top = self.s.rows(dx.SQL["statements_top"].format(schema=schema), self.q)
                result = dx.evaluate_statements(summary, top, self.cfg)
            except pg_session.QueryFailed as exc:
                result = dx.statements_missing(str(exc))
        self.findings.extend(result["findings"])
        self.data["statements"] = result["statements"]

    def check_cache(self) -> None:
        self.findings.extend(ox.evaluate_cache(self.s.one(dx.SQL["cache"]), self.cfg))

    def check_indexes(self) -> None:
        result = ox.evaluate_indexes(
            self.s.rows(dx.SQL["invalid_indexes"], self.q),
            self.s.rows(dx.SQL["unused_indexes"], self.q),
            self.s.rows(dx.SQL["duplicate_indexes"], self.q),
            self.cfg,
        )
        self.findings.extend(result["findings"])
        self.candidates["invalid_indexes"] = result["invalid_indexes"]
        self.data["unused_indexes"] = result["unused_indexes"]
        self.data["duplicate_indexes"] = result["duplicate_indexes"]

    def check_tables(self) -> None:
        result = ox.evaluate_tables(self.s.rows(dx.SQL["tables"], self.q), self.cfg)
        self.findings.extend(result["findings"])
        self.candidates["stale_tables"] = result["stale_tables"]

    def check_wraparound(self) -> None:
        self.findings.extend(ox.evaluate_wraparound(self.s.one(dx.SQL["wraparound"]), self.cfg))

    def check_sequences(self) -> None:
        self.findings.extend(ox.evaluate_sequences(self.s.one(dx.SQL["sequences"], self.q), self.cfg))

    def check_settings(self) -> None:
        desired = self.params["desired_settings"]
        if not desired:
            return
        rows = self.s.rows(dx.SQL["settings"], {"names": list(desired)})
        result = ox.evaluate_settings(rows, desired, self.params["allowed_settings"])
        self.findings.extend(result["findings"])
        self.candidates["settings"] = result["settings"]


def connectivity_finding(conn: dict) -> dict:
    return dx.finding("connectivity", "ok" if conn["available"] else "critical", conn["state"], "SELECT 1", conn["msg"])


def run_module(params: dict) -> dict:
    started = time.monotonic()
    cfg = thresholds(params["thresholds"] or {})
    session, conn = pg_session.open_with_wait(
        params["wait_seconds"],
        0.5,
        params,
        connect_timeout=params["connect_timeout"],
        statement_timeout_s=params["statement_timeout"],
        read_only=True,
    )
    result: dict = {
        "changed": False,
        "available": conn["available"],
        "connectivity": conn,
        "escalations": [],
        "pending": [],
        "data": {},
    }
    findings = [connectivity_finding(conn)]
    candidates: dict = {}
    if session is not None:
        try:
            diagnosis = Diagnosis(session, params, cfg)
            for group in params["checks"]:
                diagnosis.run(group)
        finally:
            session.close()
        findings += diagnosis.findings
        candidates = diagnosis.candidates
        result["data"] = diagnosis.data
        result["pending"] = diagnosis.pending
        result["escalations"] = dx.escalations(findings, candidates, diagnosis.data.get("connections_usable", 0))
    bad = [f"{f['check']} {f['status']}" for f in findings if f["status"] in ("warning", "critical")]
    result.update(
        findings=findings,
        candidates=candidates,
        msg=("problems: " + ", ".join(bad)) if bad else "every check passed",
        elapsed_s=round(time.monotonic() - started, 3),
    )
    return result


CHECK_GROUPS = ("server", "connections", "activity", "statements", "cache", "indexes", "tables",
                "wraparound", "sequences", "settings")


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            connection_spec(),
            connect_timeout=dict(type="float", default=5.0),
            statement_timeout=dict(type="float", default=10.0),
            wait_seconds=dict(type="float", default=0.0),
            checks=dict(
                type="list",
                elements="str",
                default=list(CHECK_GROUPS),
                choices=list(CHECK_GROUPS),
            ),
            protected_applications=dict(type="list", elements="str", default=[]),
            desired_settings=dict(type="dict", default={}),
            allowed_settings=dict(type="list", elements="str", default=[]),
            thresholds=dict(type="dict", default={}),
        ),
        supports_check_mode=True,
    )
    if not pg_connection.HAS_PSYCOPG2:
        module.fail_json(msg=missing_required_lib("psycopg2"), exception=pg_connection.PSYCOPG2_IMPORT_ERROR)
    try:
        result = run_module(module.params)
    except ModuleFailure as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
