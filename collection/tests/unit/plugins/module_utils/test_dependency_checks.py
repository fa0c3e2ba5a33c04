"""The concurrent run of checks and the dependency summary, branch by branch."""

from __future__ import annotations

import threading

import pytest
from ansible_collections.pivotal.flow_ops.plugins.module_utils import dependency_checks as dc


def test_results_come_back_with_their_start() -> None:
    out = dc.run_concurrently({"a": (lambda p: {"v": p}, 1, 1.0), "b": (lambda p: {"v": p}, 2, 1.0)})
    assert out["a"][0]["v"] == 1 and out["b"][0]["v"] == 2
    assert out["a"][1] >= 0 and "elapsed_s" in out["a"][0]


def test_a_hung_check_gets_its_stand_in(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dc, "GRACE_S", 0.05)
    gate = threading.Event()
    out = dc.run_concurrently({"redis": (lambda p: (gate.wait(5), {})[1], None, 0.05)})
    gate.set()
    assert out["redis"][0]["state"] == "timeout" and out["redis"][0]["available"] is False


def test_a_check_that_raises_is_an_error_by_default() -> None:
    def boom(params: object) -> dict:
        raise RuntimeError("bug")

    out = dc.run_checks({"postgresql": (boom, None, 1.0)})
    assert out["postgresql"]["state"] == "error" and "unexpected RuntimeError: bug" in out["postgresql"]["msg"]


@pytest.mark.parametrize(
    ("deps", "available", "msg"),
    [
        ({}, True, "available: "),
        ({"postgresql": {"available": True}}, True, "available: postgresql"),
        ({"redis": {"available": False, "state": "refused"}}, False, "down: redis (refused)"),
    ],
)
def test_summarize(deps: dict, available: bool, msg: str) -> None:
    out = dc.summarize(deps, 0.1)
    assert out["available"] is available and out["msg"] == msg


def test_plan_for_names_each_dependency_asked_for() -> None:
    pg = {"connect_timeout": 2.0}
    redis = {"timeout": 1.0}
    assert list(dc.plan_for({"postgres": pg, "redis": redis})) == ["postgresql", "redis"]
    assert dc.plan_for({"postgres": None}) == {}
