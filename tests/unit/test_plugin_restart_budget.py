"""restart_budget's core logic (the functions behind the action plugin)."""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

import pytest

from tests.plugins import load_plugin

ROOT = Path(__file__).resolve().parents[2]
KEY = "local/localhost/backend"


rb = load_plugin("restart_budget", kind="action")


@pytest.fixture
def path(tmp_path: Path) -> str:
    return rb.budget_path(str(tmp_path))


def consume(path: str, now: float, **kw: object) -> dict:
    return rb.evaluate(path, KEY, max_restarts=2, window_seconds=100, consume=True, now=now, **kw)


def test_budget_path_precedence(tmp_path: Path) -> None:
    assert rb.budget_path(str(tmp_path), {}) == f"{tmp_path}/budget/restarts.json"
    assert rb.budget_path(None, {"PFLOW_OPS_HOME": "/srv/pf"}) == "/srv/pf/budget/restarts.json"
    assert rb.budget_path(None, {}) == os.path.expanduser("~/.pflow-ops/budget/restarts.json")


def test_check_on_empty_budget_writes_nothing(path: str) -> None:
    res = rb.evaluate(path, KEY, now=1000.0)
    assert (
        res["allowed"] is True
        and res["changed"] is False
        and res["used"] == 0
        and res["remaining"] == 3
    )
    assert res["oldest_ts"] is None and res["resets_in_s"] is None and res["entries"] == []
    assert not os.path.exists(os.path.dirname(path))


def test_consume_until_spent_then_refuse_without_failing(path: str) -> None:
    first = consume(path, 1000.0, reason="BackendDown", run_id="r1")
    assert (
        first["changed"] is True
        and first["allowed"] is True
        and first["used"] == 1
        and first["remaining"] == 1
    )
    assert first["entries"] == [
        {"ts": 1000.0, "reason": "BackendDown", "override": False, "run_id": "r1"}
    ]
    second = consume(path, 1010.0)
    assert second["used"] == 2 and second["remaining"] == 0 and "run_id" not in second["entries"][1]
    third = consume(path, 1020.0)
    assert third["allowed"] is False and third["changed"] is False and third["used"] == 2
    assert third["oldest_ts"] == 1000.0 and third["resets_in_s"] == 80.0
    check = rb.evaluate(path, KEY, max_restarts=2, window_seconds=100, now=1020.0)
    assert check["allowed"] is False and check["changed"] is False
    stored = json.loads(Path(path).read_text())
    assert [e["ts"] for e in stored["keys"][KEY]] == [1000.0, 1010.0]


def test_window_expiry_frees_slots_and_prunes(path: str) -> None:
    consume(path, 1000.0)
    consume(path, 1050.0)
    assert consume(path, 1099.0)["allowed"] is False
    res = consume(path, 1100.0)  # the entry at 1000 is exactly one window old: gone
    assert res["allowed"] is True and [e["ts"] for e in res["entries"]] == [1050.0, 1100.0]
    assert [e["ts"] for e in json.loads(Path(path).read_text())["keys"][KEY]] == [1050.0, 1100.0]
    assert rb.evaluate(path, KEY, max_restarts=2, window_seconds=100, now=1300.0)["used"] == 0


def test_keys_are_independent(path: str) -> None:
    consume(path, 1000.0)
    consume(path, 1000.0)
    other = rb.evaluate(
        path, "local/localhost/worker", max_restarts=2, window_seconds=100, consume=True, now=1000.0
    )
    assert other["allowed"] is True and other["used"] == 1


def test_override_takes_a_slot_beyond_the_budget(path: str) -> None:
    consume(path, 1000.0)
    consume(path, 1001.0)
    res = consume(path, 1002.0, override=True, reason="INC-42")
    assert res["allowed"] is True and res["overridden"] is True and res["changed"] is True
    assert res["used"] == 3 and res["remaining"] == 0 and res["entries"][-1]["override"] is True
    within = rb.evaluate(path, "k2", consume=True, override=True, now=1000.0)
    assert within["overridden"] is False  # budget not spent: the override was not needed


def test_check_mode_predicts_and_writes_nothing(path: str) -> None:
    consume(path, 1000.0)
    before = Path(path).read_text()
    dry = consume(path, 1001.0, dry_run=True)
    assert dry["changed"] is True and dry["used"] == 2 and dry["remaining"] == 0
    assert Path(path).read_text() == before


def test_corrupt_file_is_backed_up_and_treated_as_empty(path: str) -> None:
    os.makedirs(os.path.dirname(path))
    Path(path).write_text('{"keys": {"x": [{"ts": "yesterday"}]}}')
    dry = consume(path, 5000.0, dry_run=True)
    assert dry["allowed"] is True and "corrupt" in dry["warnings"][0]
    assert Path(path).exists() and not Path(f"{path}.corrupt-5000").exists()
    res = consume(path, 5000.0)
    assert res["used"] == 1 and f"{path}.corrupt-5000" in res["warnings"][0]
    assert Path(f"{path}.corrupt-5000").read_text().startswith('{"keys"')
    assert json.loads(Path(path).read_text())["keys"][KEY][0]["ts"] == 5000.0
    Path(path).write_text("not json{")
    assert rb.evaluate(path, KEY, now=6000.0)["warnings"] and Path(f"{path}.corrupt-6000").exists()


def test_bad_parameters(path: str) -> None:
    for kw in ({"max_restarts": -1}, {"window_seconds": 0}):
        with pytest.raises(rb.BudgetError):
            rb.evaluate(path, KEY, **kw)
    with pytest.raises(rb.BudgetError):
        rb.evaluate(path, "", consume=True)


def test_unwritable_state_dir_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(rb.BudgetError, match="restart budget"):
        rb.evaluate(rb.budget_path(str(blocker)), KEY, consume=True)


def _race(
    path: str, barrier: multiprocessing.synchronize.Barrier, queue: multiprocessing.Queue
) -> None:
    budget = load_plugin("restart_budget", kind="action")
    barrier.wait()
    queue.put(
        budget.evaluate(path, KEY, max_restarts=3, window_seconds=600, consume=True)["allowed"]
    )


def test_concurrent_consumers_never_exceed_the_budget(path: str) -> None:
    ctx = multiprocessing.get_context("fork")
    workers = 12
    barrier, queue = ctx.Barrier(workers), ctx.Queue()
    procs = [ctx.Process(target=_race, args=(path, barrier, queue)) for _ in range(workers)]
    for proc in procs:
        proc.start()
    outcomes = [queue.get(timeout=30) for _ in procs]
    for proc in procs:
        proc.join(timeout=30)
    assert outcomes.count(True) == 3 and outcomes.count(False) == workers - 3
    assert len(json.loads(Path(path).read_text())["keys"][KEY]) == 3
    leftovers = [n for n in os.listdir(os.path.dirname(path)) if n.endswith(".tmp")]
    assert leftovers == []
