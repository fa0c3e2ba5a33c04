"""The runbooks' decision tables (module_utils/decision_tables.py) match the decision functions:
each row's signal, fed to the classification, lands on the row's problem, and every problem the
decision module names has a row. A branch added to a decision module without a table row (or a
row whose action no longer matches the engine) fails here, not in the published runbook."""

from __future__ import annotations

from typing import Any

import pytest
from ansible_collections.pivotal.flow_ops.plugins.module_utils import backend_decisions as rb01
from ansible_collections.pivotal.flow_ops.plugins.module_utils import node_classify as nc
from ansible_collections.pivotal.flow_ops.plugins.module_utils import cache_decisions as rb03
from ansible_collections.pivotal.flow_ops.plugins.module_utils import database_decisions as rb02
from ansible_collections.pivotal.flow_ops.plugins.module_utils import decision_tables as tables

RUNNING = {"reachable": True, "running": True, "pid": 1, "detail": "running"}
STOPPED = {**RUNNING, "running": False, "pid": None}
UNREACHABLE = {"reachable": False, "running": False}
HEALTHY = {"healthy": True, "state": "healthy", "status": 200}
BACKEND_INPUTS: dict[str, dict[str, Any]] = {
    rb01.MANAGER_UNREACHABLE: {"status": UNREACHABLE, "health": {"state": "refused"}},
    rb01.PORT_SQUATTER: {"status": STOPPED, "health": HEALTHY},
    rb01.DOWN: {"status": STOPPED, "health": {"state": "refused"}},
    rb01.HUNG: {"status": RUNNING, "health": {"state": "hung"}},
    rb01.UNHEALTHY: {"status": RUNNING, "health": {"state": "unhealthy", "status": 503}},
    rb01.ERRORS: {
        "status": RUNNING,
        "health": HEALTHY,
        "probe": {"samples": {"count": 20, "error_rate": 0.5, "p95_ms": 10}},
    },
    rb01.SLOW: {
        "status": RUNNING,
        "health": HEALTHY,
        "probe": {"samples": {"count": 20, "error_rate": 0.0, "p95_ms": 5000}},
    },
    "": {"status": RUNNING, "health": HEALTHY},
}
SETTINGS = {"error_rate_max": 0.05, "latency_p95_max_ms": 1000}


def test_backend_rows_cover_every_problem_of_assess() -> None:
    problems = {r["problem"] for r in tables.backend_table()}
    named = {*rb01.RESTARTABLE, rb01.MANAGER_UNREACHABLE, rb01.PORT_SQUATTER, rb01.SLOW, ""}
    assert problems == set(BACKEND_INPUTS) == named


@pytest.mark.parametrize("problem", [row[0] for row in tables.BACKEND_SIGNALS])
def test_backend_row_signal_is_the_branch(problem: str) -> None:
    found = rb01.assess(settings=SETTINGS, **BACKEND_INPUTS[problem])
    assert found["problem"] == problem
    row = next(r for r in tables.backend_table() if r["problem"] == problem)
    assert (row["action"].startswith("restart")) == rb01.plan(found, "recover")["restart"]


def test_backend_dependency_rows_name_the_next_runbook() -> None:
    rows = [r for r in tables.backend_table() if "next runbook" in r["action"]]
    rows = [r for r in rows if not r["signal"].startswith("Node.js: ")]
    assert [r["action"].rsplit(" ", 1)[-1] for r in rows] == ["RB-02", "RB-03"]
    assert all(r["action"].startswith("no restart") for r in rows)


def test_backend_node_rows_one_per_class_restart_as_classified() -> None:
    rows = tables.node_rows()
    classes = [r["diagnosis"].split(": ", 1)[1] for r in rows]
    assert sorted(classes) == sorted(
        [
            nc.EVENTLOOP_BLOCKED,
            nc.HEAP_EXHAUSTION,
            nc.HEAP_LEAK,
            nc.UNHANDLED_REJECTION,
            nc.PORT_IN_USE,
            nc.DEPENDENCY_SLOW,
            nc.PROCESS_STOPPED,
            nc.HEAP_NEAR_LIMIT,
            nc.EVENTLOOP_LAG,
        ]
    )
    for row, node_class in zip(rows, classes):
        restart = node_class not in nc.NO_RESTART and row["problem"] in rb01.RESTARTABLE
        assert row["action"].startswith("restart") is restart, row
    serving = {r["diagnosis"]: r["action"] for r in rows if not r["problem"]}
    assert serving == {
        "node: heap_near_limit": "escalate, no restart and no budget spent",
        "node: eventloop_lag": "healthy, with the lag as a warning",
    }


DATABASE_STATUS = {
    rb02.MANAGER_UNREACHABLE: UNREACHABLE,
    rb02.DOWN: STOPPED,
    rb02.ACCESS: RUNNING,
    rb02.UNRESPONSIVE: RUNNING,
    rb02.TLS: UNREACHABLE,  # the server answered the handshake: the manager does not decide
}


@pytest.mark.parametrize(("problem", "state"), [row[:2] for row in tables.DATABASE_SIGNALS])
def test_database_row_signal_is_the_branch(problem: str, state: str) -> None:
    dx = {"available": False, "connectivity": {"state": state}}
    assert rb02.classify(dx, DATABASE_STATUS[problem])["problem"] == problem


def test_database_rows_cover_every_problem_and_fixable_check() -> None:
    rows = tables.database_table()
    assert {r["problem"] for r in rows} - {""} == set(DATABASE_STATUS)
    for check in rb02.FIXABLE_CHECKS:
        assert any(check in r["signal"] for r in rows)
    assert rb02.classify({"available": True})["problem"] == ""
    restart = [r for r in rows if r["action"].startswith("restart")]
    assert [r["problem"] for r in restart] == [rb02.DOWN]
    assert all(r["action"].startswith("escalate") for r in rows[: len(tables.DATABASE_SIGNALS)] if r["problem"] != rb02.DOWN)


CACHE_SERVICE = {"manager_unreachable": UNREACHABLE, "down": STOPPED}


@pytest.mark.parametrize(("problem", "state"), [row[:2] for row in tables.CACHE_UNAVAILABLE])
def test_cache_row_signal_is_the_branch(problem: str, state: str) -> None:
    assert rb03.classify_unavailable(state, CACHE_SERVICE.get(problem, RUNNING)) == problem
    row = next(r for r in tables.cache_table() if r["signal"] == "connection state %s" % state
               and r["problem"] == problem)
    assert row["action"].startswith("restart") == rb03.recovery("recover", problem, state)["restart"]


@pytest.mark.parametrize(("signal", "words"), tables.CACHE_SIGNALS)
def test_cache_tuning_rows_are_what_plan_does(signal: str, words: str) -> None:
    found = rb03.plan(dict(tables.EXAMPLE_DIAG, signals={signal: True}))
    row = next(r for r in tables.cache_table() if r["diagnosis"] == "signal %s" % signal)
    assert row["problem"] == ("tuning" if found["settings"] else "")
    for name in found["settings"]:
        assert "set %s " % name in row["action"]
    assert row["action"].count("for a human") == len(found["recommendations"])


def test_decision_table_by_runbook_id() -> None:
    assert tables.decision_table("rb-02") == tables.database_table()
    assert tables.decision_table("MAINT-CACHE") == []
