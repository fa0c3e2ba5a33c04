# Copyright: (c) 2026, pflow-ops team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""RB-02 SQL: one statement per check, each aggregating, sorting and limiting in SQL so its cost
does not grow noticeably with the number of tables, indexes or statements. Parameters are
passed by the driver, never formatted in (the pg_stat_statements schema name is quoted)."""

from __future__ import annotations

# The tool's own sessions: never signalled, never counted as the problem.
OWN_APPLICATION_PREFIX = "pflow-ops"
# Settings PostgreSQL applies on reload (context sighup, superuser, user): the only ones the
# runbook may ever change, and only when the caller also lists them in its allow-list.
RELOADABLE_CONTEXTS = ("sighup", "superuser", "user")
XID_MAX = 2146483648

# Why a session may not be touched; NULL means eligible. Shared by every session query.
SESSION_SKIP_SQL = """
  CASE WHEN a.pid = pg_backend_pid() OR a.application_name LIKE %(own)s THEN 'tool session'
       WHEN r.rolsuper THEN 'superuser'
       WHEN a.backend_type <> 'client backend' THEN a.backend_type
       WHEN a.application_name = ANY(%(protected)s) THEN 'protected application'
  END"""

SESSION_COLUMNS = """
  a.pid, extract(epoch FROM a.backend_start)::text AS backend_start, a.usename AS user,
  coalesce(nullif(a.application_name, ''), '(none)') AS application,
  coalesce(host(a.client_addr), 'local') AS client, a.state, left(a.query, 200) AS query"""

SQL = {
    "server": """
SELECT current_setting('server_version') AS version,
       current_setting('server_version_num')::int AS version_num,
       extract(epoch FROM now() - pg_postmaster_start_time())::bigint AS uptime_s,
       current_setting('max_connections')::int AS max_connections,
       current_setting('superuser_reserved_connections')::int AS superuser_reserved,
       current_setting('reserved_connections', true) AS reserved,
       pg_is_in_recovery() AS in_recovery,
       current_setting('shared_preload_libraries') AS preload,
       (SELECT coalesce(array_agg(name ORDER BY name), '{}') FROM pg_settings WHERE pending_restart) AS pending_restart
""",
    "connections": """
WITH s AS (SELECT coalesce(state, 'unknown') AS state, coalesce(nullif(application_name, ''), '(none)') AS app,
                  usename AS usr, coalesce(host(client_addr), 'local') AS addr, state_change
           FROM pg_stat_activity WHERE backend_type = 'client backend')
SELECT (SELECT count(*) FROM s) AS total,
       (SELECT coalesce(json_object_agg(state, n), '{}')
          FROM (SELECT state, count(*) n FROM s GROUP BY 1) x) AS by_state,
       (SELECT coalesce(json_object_agg(app, n), '{}')
          FROM (SELECT app, count(*) n FROM s GROUP BY 1 ORDER BY 2 DESC LIMIT %(top)s) x) AS by_application,
       (SELECT coalesce(json_object_agg(usr, n), '{}')
          FROM (SELECT usr, count(*) n FROM s GROUP BY 1 ORDER BY 2 DESC LIMIT %(top)s) x) AS by_user,
       (SELECT coalesce(json_object_agg(addr, n), '{}')
          FROM (SELECT addr, count(*) n FROM s GROUP BY 1 ORDER BY 2 DESC LIMIT %(top)s) x) AS by_client,
       (SELECT count(*) FROM s WHERE state LIKE 'idle in transaction%%') AS idle_in_tx,
       (SELECT extract(epoch FROM now() - min(state_change))
          FROM s WHERE state LIKE 'idle in transaction%%') AS idle_in_tx_oldest_s
""",
    "long_queries": f"""
SELECT {SESSION_COLUMNS}, extract(epoch FROM now() - a.query_start) AS running_s, {SESSION_SKIP_SQL} AS skip,
       a.wait_event_type IS NOT DISTINCT FROM 'Lock' AS waiting,
       count(*) OVER () AS total
FROM pg_stat_activity a LEFT JOIN pg_roles r ON r.oid = a.usesysid
WHERE a.state IN ('active', 'fastpath function call') AND a.pid <> pg_backend_pid()
  AND a.backend_type IN ('client backend', 'autovacuum worker')
  AND a.query_start < now() - make_interval(secs => %(long_s)s)
ORDER BY a.query_start LIMIT %(top)s
""",
    "idle_in_tx": f"""
SELECT {SESSION_COLUMNS}, extract(epoch FROM now() - a.state_change) AS idle_s, {SESSION_SKIP_SQL} AS skip,
       count(*) OVER () AS total
FROM pg_stat_activity a LEFT JOIN pg_roles r ON r.oid = a.usesysid
WHERE a.state LIKE 'idle in transaction%%' AND a.state_change < now() - make_interval(secs => %(idle_tx_s)s)
ORDER BY a.state_change LIMIT %(top)s
""",
    # The lock graph, PgHero style: every waiting session with the lock it waits for (type, mode,
    # relation; a row-lock waiter holds the tuple lock of its relation), and every session in a
    # blocked_by list, waiting or not, so the roots (blockers that wait on nobody) are known.
    "blocking": f"""
WITH w AS (
  SELECT a.pid, pg_blocking_pids(a.pid) AS blocked_by,
         extract(epoch FROM now() - coalesce(l.waitstart, a.state_change)) AS waiting_s,
         coalesce(l.locktype, '') AS locktype, coalesce(l.mode, '') AS mode,
         coalesce((SELECT string_agg(DISTINCT x.relation::regclass::text, ', ') FROM pg_locks x
                   WHERE x.pid = a.pid AND x.relation IS NOT NULL AND (NOT x.granted OR x.locktype = 'tuple')), '')
           AS relation
  FROM pg_stat_activity a
  LEFT JOIN LATERAL (SELECT locktype, mode, waitstart FROM pg_locks
                     WHERE pid = a.pid AND NOT granted LIMIT 1) l ON true
  WHERE a.wait_event_type = 'Lock'),
n AS (SELECT pid FROM w UNION SELECT unnest(blocked_by) FROM w)
SELECT {SESSION_COLUMNS}, {SESSION_SKIP_SQL} AS skip,
       w.pid IS NOT NULL AS waiting, coalesce(w.blocked_by, '{{}}') AS blocked_by,
       coalesce(w.waiting_s, 0) AS waiting_s, coalesce(w.locktype, '') AS locktype,
       coalesce(w.mode, '') AS mode, coalesce(w.relation, '') AS relation,
       extract(epoch FROM now() - a.state_change) AS state_s,
       extract(epoch FROM now() - a.query_start) AS query_s,
       count(w.pid) OVER () AS total
FROM n JOIN pg_stat_activity a ON a.pid = n.pid LEFT JOIN pg_roles r ON r.oid = a.usesysid
LEFT JOIN w ON w.pid = a.pid
ORDER BY w.waiting_s DESC NULLS FIRST, a.pid LIMIT %(top)s * 5
""",
    # Pool exhaustion: the surplus comes from the application holding the most idle sessions
    # (the leak), oldest first within it; never oldest-first across applications, which picks
    # the long-lived pool connections of well-behaved services.
    "idle_sessions": f"""
SELECT * FROM (
  SELECT {SESSION_COLUMNS}, extract(epoch FROM now() - a.state_change) AS idle_s,
         count(*) OVER (PARTITION BY coalesce(nullif(a.application_name, ''), '(none)'), a.usename) AS app_idle,
         a.state_change
  FROM pg_stat_activity a JOIN pg_roles r ON r.oid = a.usesysid
  WHERE a.state = 'idle' AND a.state_change < now() - make_interval(secs => %(idle_min_s)s)
    AND ({SESSION_SKIP_SQL}) IS NULL) s
ORDER BY app_idle DESC, application, state_change LIMIT %(limit)s
""",
    "statements_present": """
SELECT n.nspname AS schema FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
WHERE e.extname = 'pg_stat_statements'
""",
    # Time columns are the PG 13+ names; showtext => false skips the query texts entirely.
    "statements_summary": """
SELECT count(*) AS total,
       count(*) FILTER (WHERE mean_exec_time >= %(slow_ms)s AND calls >= %(slow_calls)s) AS slow,
       coalesce(sum(total_exec_time), 0) AS total_ms
FROM {schema}.pg_stat_statements(false) WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
""",
    "statements_top": """
SELECT s.queryid::text AS queryid, r.rolname AS user, s.calls, round(s.total_exec_time::numeric, 1) AS total_ms,
       round(s.mean_exec_time::numeric, 2) AS mean_ms, s.rows,
       (s.mean_exec_time >= %(slow_ms)s AND s.calls >= %(slow_calls)s) AS slow, left(s.query, 300) AS query
FROM {schema}.pg_stat_statements(true) s LEFT JOIN pg_roles r ON r.oid = s.userid
WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
ORDER BY s.total_exec_time DESC LIMIT %(top)s
""",
    # Straight from pg_class with only the two counters needed: the pg_statio_* views compute
    # every counter of every table, which is what made this check grow with the table count.
    "cache": """
SELECT sum(h) FILTER (WHERE k <> 'i') / nullif(sum(f) FILTER (WHERE k <> 'i'), 0) AS table_hit,
       sum(h) FILTER (WHERE k = 'i') / nullif(sum(f) FILTER (WHERE k = 'i'), 0) AS index_hit
FROM (SELECT c.relkind AS k, pg_stat_get_blocks_hit(c.oid)::numeric AS h,
             pg_stat_get_blocks_fetched(c.oid)::numeric AS f
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('r', 'm', 'i') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
        AND n.nspname !~ '^pg_toast') s
""",
    # Invalid and not being built right now (a running CREATE INDEX CONCURRENTLY is invalid too).
    "invalid_indexes": """
SELECT n.nspname AS schema, c.relname AS index, t.relname AS table, pg_relation_size(c.oid) AS size_bytes,
       substring(c.relname FROM '_(ccnew|ccold)[0-9]*$') AS leftover, count(*) OVER () AS total
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE NOT i.indisvalid AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND NOT EXISTS (SELECT 1 FROM pg_stat_progress_create_index p WHERE p.index_relid = i.indexrelid)
ORDER BY leftover NULLS LAST, c.relname LIMIT %(top)s
""",
    "unused_indexes": """
SELECT s.schemaname AS schema, s.indexrelname AS index, s.relname AS table,
       pg_relation_size(s.indexrelid) AS size_bytes, count(*) OVER () AS total
FROM pg_stat_user_indexes s JOIN pg_index i ON i.indexrelid = s.indexrelid
WHERE NOT i.indisunique AND i.indisvalid AND s.idx_scan = 0 AND pg_relation_size(s.indexrelid) >= %(unused_bytes)s
ORDER BY 4 DESC LIMIT %(top)s
""",
    # a's key columns (and operator classes) are a leading prefix of valid index b on the same
    # table, same access method, expressions and predicate: a is redundant (PgHero's rule).
    "duplicate_indexes": """
SELECT n.nspname AS schema, ca.relname AS index, cb.relname AS covered_by, t.relname AS table,
       pg_relation_size(a.indexrelid) AS size_bytes, count(*) OVER () AS total
FROM pg_index a JOIN pg_index b ON b.indrelid = a.indrelid AND b.indexrelid <> a.indexrelid
JOIN pg_class ca ON ca.oid = a.indexrelid JOIN pg_class cb ON cb.oid = b.indexrelid
JOIN pg_class t ON t.oid = a.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace
WHERE a.indisvalid AND b.indisvalid AND NOT a.indisunique AND ca.relam = cb.relam
  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
  AND (b.indkey::text = a.indkey::text OR b.indkey::text LIKE a.indkey::text || ' %%')
  AND (b.indclass::text = a.indclass::text OR b.indclass::text LIKE a.indclass::text || ' %%')
  AND (b.indkey::text <> a.indkey::text OR b.indisunique OR a.indexrelid > b.indexrelid)
  AND pg_get_expr(a.indexprs, a.indrelid) IS NOT DISTINCT FROM pg_get_expr(b.indexprs, b.indrelid)
  AND pg_get_expr(a.indpred, a.indrelid) IS NOT DISTINCT FROM pg_get_expr(b.indpred, b.indrelid)
ORDER BY 5 DESC LIMIT %(top)s
""",
    # One pass over pg_class with the stat functions each check needs; index scans are summed only
    # for tables big enough to be missing-index candidates. count(*) OVER () runs before LIMIT, so
    # "total" is the full count of each kind.
    "tables": """
WITH t AS MATERIALIZED (
  SELECT c.oid, pg_stat_get_live_tuples(c.oid) AS n_live_tup, pg_stat_get_dead_tuples(c.oid) AS n_dead_tup,
         pg_stat_get_mod_since_analyze(c.oid) AS n_mod_since_analyze
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind IN ('r', 'm', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
    AND n.nspname !~ '^pg_toast'),
big AS (
  SELECT t.*, pg_stat_get_numscans(t.oid) AS seq_scan,
         coalesce((SELECT sum(pg_stat_get_numscans(i.indexrelid)) FROM pg_index i WHERE i.indrelid = t.oid), 0)
           AS idx_scan
  FROM t WHERE n_live_tup >= %(missing_rows)s),
picked AS (
  SELECT 'stale' AS kind, * FROM (
    SELECT oid, n_live_tup, n_dead_tup, n_mod_since_analyze, NULL::bigint AS seq_scan, NULL::numeric AS idx_scan,
           count(*) OVER () AS total
    FROM t WHERE n_mod_since_analyze >= greatest(%(stale_rows)s, %(stale_ratio)s * n_live_tup)
    ORDER BY n_mod_since_analyze DESC LIMIT %(top)s) x
  UNION ALL
  SELECT 'bloat', * FROM (
    SELECT oid, n_live_tup, n_dead_tup, n_mod_since_analyze, NULL::bigint, NULL::numeric, count(*) OVER ()
    FROM t WHERE n_dead_tup >= greatest(%(bloat_rows)s, %(bloat_ratio)s * n_live_tup)
    ORDER BY n_dead_tup DESC LIMIT %(top)s) y
  UNION ALL
  SELECT 'missing_index', * FROM (
    SELECT oid, n_live_tup, n_dead_tup, n_mod_since_analyze, seq_scan, idx_scan, count(*) OVER ()
    FROM big WHERE seq_scan + idx_scan > 0 AND idx_scan * 100 < %(missing_pct)s * (seq_scan + idx_scan)
    ORDER BY seq_scan DESC LIMIT %(top)s) z)
SELECT p.kind, p.total, n.nspname AS schema, c.relname AS table, p.n_live_tup, p.n_dead_tup, p.n_mod_since_analyze,
       coalesce(p.seq_scan, pg_stat_get_numscans(p.oid)) AS seq_scan, p.idx_scan,
       extract(epoch FROM now() - greatest(pg_stat_get_last_analyze_time(p.oid),
                                           pg_stat_get_last_autoanalyze_time(p.oid))) AS analyzed_s_ago
FROM picked p JOIN pg_class c ON c.oid = p.oid JOIN pg_namespace n ON n.oid = c.relnamespace
""",
    "wraparound": """
SELECT datname AS database, age(datfrozenxid) AS xid_age FROM pg_database ORDER BY 2 DESC LIMIT 1
""",
    "sequences": """
WITH s AS (
  SELECT schemaname, sequencename, last_value, max_value,
         has_sequence_privilege(format('%%I.%%I', schemaname, sequencename), 'SELECT,USAGE') AS readable,
         CASE WHEN increment_by > 0 THEN (last_value - min_value)::numeric / nullif(max_value - min_value, 0)
              ELSE (max_value - last_value)::numeric / nullif(max_value - min_value, 0) END AS used
  FROM pg_sequences)
SELECT (SELECT count(*) FROM s) AS total, (SELECT count(*) FROM s WHERE NOT readable) AS unreadable,
       (SELECT count(*) FROM s WHERE used > %(seq_ratio)s) AS over,
       (SELECT coalesce(json_agg(x), '[]')
          FROM (SELECT schemaname AS schema, sequencename AS sequence, last_value, max_value, round(used, 4) AS used
                FROM s WHERE used IS NOT NULL ORDER BY used DESC LIMIT %(top)s) x) AS top
""",
    "settings": """
SELECT name, current_setting(name) AS current, setting, unit, context, pending_restart,
       -- ALTER SYSTEM writes the setting; pg_reload_conf() (EXECUTE, granted per database) applies it.
       has_parameter_privilege(name, 'ALTER SYSTEM')
         AND has_function_privilege('pg_catalog.pg_reload_conf()', 'EXECUTE') AS can_alter
FROM pg_settings WHERE name = ANY(%(names)s)
""",
}
