# Copyright: (c) 2026, pflow-ops team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""RB-02 checks on database objects (cache hit rate, indexes, tables, wraparound, sequences,
settings), evaluated by pure functions like the session checks in pg_diagnostics."""

from __future__ import annotations

from ansible_collections.pivotal.flow_ops.plugins.module_utils.pg_diagnostics import (
    finding,
    fmt_age,
    fmt_bytes,
)
from ansible_collections.pivotal.flow_ops.plugins.module_utils.pg_queries import (
    RELOADABLE_CONTEXTS,
    XID_MAX,
)


def evaluate_cache(row: dict, cfg: dict) -> list[dict]:
    out = []
    for kind in ("table", "index"):
        rate = row.get(f"{kind}_hit")
        if rate is None:
            out.append(
                finding(
                    f"cache_hit_{kind}",
                    "skipped",
                    None,
                    cfg["cache_hit_min"],
                    f"no {kind} block reads or hits recorded yet",
                )
            )
            continue
        rate = float(rate)
        status = "ok" if rate >= cfg["cache_hit_min"] else "warning"
        out.append(
            finding(
                f"cache_hit_{kind}",
                status,
                round(rate, 4),
                cfg["cache_hit_min"],
                f"{kind} cache hit rate {rate:.2%} (healthy >= {cfg['cache_hit_min']:.0%})",
            )
        )
    return out


def evaluate_indexes(invalid: list[dict], unused: list[dict], duplicate: list[dict], cfg: dict) -> dict:
    def total(rows: list[dict]) -> int:
        return int(rows[0]["total"]) if rows else 0

    inv = finding(
        "invalid_indexes",
        "critical" if invalid else "ok",
        total(invalid),
        0,
        "; ".join(
            f"{r['schema']}.{r['index']} on {r['table']}"
            + (f" (leftover {r['leftover']} of a failed REINDEX CONCURRENTLY)" if r["leftover"] else "")
            for r in invalid[:5]
        )
        or "every index is valid",
    )
    unu = finding(
        "unused_indexes",
        "warning" if unused else "ok",
        total(unused),
        f">= {fmt_bytes(cfg['unused_index_min_bytes'])}, 0 scans",
        "; ".join(f"{r['schema']}.{r['index']} on {r['table']} ({fmt_bytes(r['size_bytes'])})" for r in unused[:5])
        + ("; review, then DROP INDEX CONCURRENTLY" if unused else "")
        or "no large index without scans",
    )
    dup = finding(
        "duplicate_indexes",
        "warning" if duplicate else "ok",
        total(duplicate),
        0,
        "; ".join(f"{r['schema']}.{r['index']} is covered by {r['covered_by']} on {r['table']}" for r in duplicate[:5])
        or "no duplicate index",
    )
    return {
        "findings": [inv, unu, dup],
        "invalid_indexes": [
            {
                "schema": r["schema"],
                "index": r["index"],
                "table": r["table"],
                "size_bytes": r["size_bytes"],
                "leftover": r["leftover"] or "",
            }
            for r in invalid
        ],
        "unused_indexes": [{k: r[k] for k in ("schema", "index", "table", "size_bytes")} for r in unused],
        "duplicate_indexes": [
            {k: r[k] for k in ("schema", "index", "covered_by", "table", "size_bytes")} for r in duplicate
        ],
    }


def evaluate_tables(rows: list[dict], cfg: dict) -> dict:
    kinds: dict = {"stale": [], "bloat": [], "missing_index": []}
    for r in rows:
        kinds[r["kind"]].append(r)
    counts = {kind: int(found[0]["total"]) if found else 0 for kind, found in kinds.items()}
    stale = kinds["stale"]
    never_or_old = [
        r for r in stale if r["analyzed_s_ago"] is None or float(r["analyzed_s_ago"]) >= cfg["stale_analyze_critical_s"]
    ]
    old = [
        r for r in stale if r["analyzed_s_ago"] is None or float(r["analyzed_s_ago"]) >= cfg["stale_analyze_warning_s"]
    ]
    status = "critical" if never_or_old else "warning" if stale else "ok"
    findings = [
        finding(
            "stale_statistics",
            status,
            int(counts["stale"]),
            f"{cfg['stale_min_modified_rows']} rows or {cfg['stale_modified_ratio']:.0%} modified; "
            f"analyzed within {fmt_age(cfg['stale_analyze_warning_s'])}",
            "; ".join(
                f"{r['schema']}.{r['table']}: {r['n_mod_since_analyze']} rows modified since analyze "
                f"(last {fmt_age(r['analyzed_s_ago'])})"
                for r in stale[:5]
            )
            or "statistics are current",
        ),
        finding(
            "bloat",
            "warning" if kinds["bloat"] else "ok",
            int(counts["bloat"]),
            f"{cfg['bloat_min_dead_rows']} dead rows or {cfg['bloat_dead_ratio']:.0%} of live",
            "; ".join(
                f"{r['schema']}.{r['table']}: {r['n_dead_tup']} dead / {r['n_live_tup']} live rows"
                for r in kinds["bloat"][:5]
            )
            + (
                "; check autovacuum on them (plain VACUUM; never VACUUM FULL on a live system)"
                if kinds["bloat"]
                else ""
            )
            or "no bloat candidate",
        ),
        finding(
            "missing_indexes",
            "warning" if kinds["missing_index"] else "ok",
            int(counts["missing_index"]),
            f">= {cfg['missing_index_min_rows']} rows, index scans < {cfg['missing_index_scan_pct']:g}%",
            "; ".join(
                f"{r['schema']}.{r['table']}: {r['n_live_tup']} rows, {r['seq_scan']} seq / {r['idx_scan']} index scans"
                for r in kinds["missing_index"][:5]
            )
            or "no missing-index candidate",
        ),
    ]
    stale_tables = [
        {
            "schema": r["schema"],
            "table": r["table"],
            "modified_rows": r["n_mod_since_analyze"],
            "live_rows": r["n_live_tup"],
            "analyzed_s_ago": r["analyzed_s_ago"] and round(float(r["analyzed_s_ago"])),
        }
        for r in stale
    ]
    return {"findings": findings, "stale_tables": stale_tables, "old_stale": len(old)}


def evaluate_wraparound(row: dict, cfg: dict) -> list[dict]:
    age = int(row["xid_age"])
    left = XID_MAX - age
    status = "critical" if age >= cfg["wraparound_age_critical"] or left < cfg["wraparound_left_min"] else "ok"
    return [
        finding(
            "wraparound",
            status,
            left,
            cfg["wraparound_left_min"],
            f"database {row['database']}: {left:,} transaction ids left before wraparound (age {age:,})"
            + ("; a DBA must find what blocks autovacuum freezing and run VACUUM (FREEZE)" if status != "ok" else ""),
        )
    ]


def evaluate_sequences(row: dict, cfg: dict) -> list[dict]:
    over, unreadable = int(row["over"]), int(row["unreadable"])
    top = row.get("top") or []
    if over:
        status = "critical"
    elif unreadable and unreadable == int(row["total"]):
        status = "skipped"
    else:
        status = "ok"
    worst = top[0]["used"] if top else 0
    detail = "; ".join(
        f"{s['schema']}.{s['sequence']} {float(s['used']):.1%} used"
        for s in top[:3]
        if float(s["used"]) > cfg["sequence_used_max"]
    )
    if not detail:
        detail = (
            f"{row['total']} sequences, the fullest {float(worst):.1%} used" if top else f"{row['total']} sequences"
        )
    if unreadable:
        detail += f"; {unreadable} not readable by this role (grant SELECT on them, or pg_read_all_data)"
    return [finding("sequences", status, over, cfg["sequence_used_max"], detail)]


def evaluate_settings(rows: list[dict], desired: dict, allowed: list[str]) -> dict:
    by_name = {r["name"]: r for r in rows}
    out, pending, lines = [], [], []
    for name, want in sorted(desired.items()):
        row = by_name.get(name)
        if row is None:
            lines.append(f"{name}: unknown setting")
            continue
        want = str(want)
        have = str(row["current"])
        unit = row.get("unit") or ""
        if have.lower() == want.lower() or f"{row['setting']}{unit}".lower() == want.lower() or row["setting"] == want:
            continue
        reloadable = row["context"] in RELOADABLE_CONTEXTS
        if not reloadable:
            how = "restart"
        elif name not in allowed:
            how = "not_allowed"
        elif not row["can_alter"]:
            how = "no_privilege"
        else:
            how = "reload"
        pending.append({"name": name, "current": have, "desired": want, "context": row["context"], "apply": how})
        lines.append(f"{name} is {have}, wanted {want} ({how})")
    status = "ok" if not pending else "warning"
    out.append(
        finding(
            "settings", status, len(pending), "0 differences", "; ".join(lines) or f"{len(desired)} settings as wanted"
        )
    )
    return {"findings": out, "settings": pending}
