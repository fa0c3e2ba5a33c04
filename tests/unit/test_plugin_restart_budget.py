"""restart_budget's core logic (the functions behind the action plugin)."""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path
from typing import Any

import pytest

from tests.plugins import load_plugin

ROOT = Path(__file__).resolve().parents[2]
KEY = "local/localhost/backend"


rb = load_plugin("restart_budget", kind="action")


@pytest.fixture
def path(tmp_path: Path) -> str:
    return rb.budget_path(str(tmp_path))


def consume(path: str, now: float, **kw: Any) -> dict[str, Any]:
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


def test_window_expiry_frees_slots_but_the_file_keeps_the_retention(path: str) -> None:
    consume(path, 1000.0)
    consume(path, 1050.0)
    assert consume(path, 1099.0)["allowed"] is False
    res = consume(path, 1100.0)  # the entry at 1000 is exactly one window old: out of the window
    assert res["allowed"] is True and [e["ts"] for e in res["entries"]] == [1050.0, 1100.0]
    stored = [e["ts"] for e in json.loads(Path(path).read_text())["keys"][KEY]]
    assert stored == [1000.0, 1050.0, 1100.0], "kept for the retention, whatever the window"
    assert rb.evaluate(path, KEY, max_restarts=2, window_seconds=100, now=1300.0)["used"] == 0
    consume(path, 1000.0 + 86400)  # a day later the write prunes what left the retention
    stored = [e["ts"] for e in json.loads(Path(path).read_text())["keys"][KEY]]
    assert stored == [1050.0, 1100.0, 87400.0]


def test_a_short_window_never_erases_history(path: str) -> None:
    """The 0.3.0 bug: -e backend_restart_budget_window=1 wrote back only the last second."""
    for ts in (1000.0, 1010.0, 1020.0):
        rb.evaluate(path, KEY, consume=True, now=ts)
    rb.evaluate(path, "local/localhost/redis", consume=True, now=1020.0)
    short = rb.evaluate(path, KEY, window_seconds=1, consume=True, now=1030.0)
    assert short["allowed"] is True and short["used"] == 1
    stored = json.loads(Path(path).read_text())["keys"]
    assert [e["ts"] for e in stored[KEY]] == [1000.0, 1010.0, 1020.0, 1030.0]
    assert len(stored["local/localhost/redis"]) == 1
    assert rb.evaluate(path, KEY, consume=True, now=1040.0)["allowed"] is False


def test_a_per_run_policy_is_refused_before_the_file_is_read(path: str) -> None:
    consume(path, 1000.0)
    before = Path(path).read_text()
    res = rb.evaluate(
        path, KEY, consume=True, now=1001.0, per_run_vars=["backend_restart_budget_window"]
    )
    assert res["allowed"] is False and res["changed"] is False and res["entries"] == []
    assert "-e backend_restart_budget_window" in res["refusal"]
    assert "comes from the inventory" in res["refusal"]
    assert res["summary"].startswith("refused: restart budget policy cannot be set per run")
    with_override = rb.evaluate(
        path,
        KEY,
        consume=True,
        now=1001.0,
        override=True,
        override_reason="INC-1",
        per_run_vars=["backend_restart_budget_max"],
    )
    assert with_override["allowed"] is False
    assert Path(path).read_text() == before


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
    res = consume(path, 1002.0, override=True, reason="RB-01 down", override_reason=" INC-42 ")
    assert res["allowed"] is True and res["overridden"] is True and res["changed"] is True
    assert res["used"] == 3 and res["remaining"] == 0 and res["override_reason"] == "INC-42"
    stored = json.loads(Path(path).read_text())["keys"][KEY][-1]
    assert stored["override"] is True and stored["override_reason"] == "INC-42"
    assert stored["reason"] == "RB-01 down"
    within = rb.evaluate(
        path, "k2", consume=True, override=True, override_reason="INC-42", now=1000.0
    )
    assert within["overridden"] is False  # budget not spent: the override was not needed
    assert within["entries"][0]["override_reason"] == "INC-42"


@pytest.mark.parametrize("blank", [None, "", "   "])
def test_an_override_without_a_reason_is_refused_and_records_nothing(
    path: str, blank: str | None
) -> None:
    consume(path, 1000.0)
    consume(path, 1001.0)
    before = Path(path).read_text()
    res = consume(
        path, 1002.0, override=True, reason="RB-01 down, override: ", override_reason=blank
    )
    assert res["allowed"] is False and res["changed"] is False
    assert res["refusal"].startswith("--override-budget needs a reason")
    fresh = rb.evaluate(path, "k2", consume=True, override=True, override_reason=blank, now=1.0)
    assert fresh["allowed"] is False, "even a budget with room refuses a blank override"
    assert Path(path).read_text() == before


def test_check_mode_predicts_and_writes_nothing(path: str) -> None:
    consume(path, 1000.0)
    before = Path(path).read_text()
    dry = consume(path, 1001.0, dry_run=True)
    assert dry["changed"] is True and dry["used"] == 2 and dry["remaining"] == 0
    assert Path(path).read_text() == before


def _corrupt(path: str, text: str = '{"keys": {"x": [{"ts": "yesterday"}]}}') -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Path(path).write_text(text)


def _siblings(path: str) -> list[str]:
    return sorted(n for n in os.listdir(os.path.dirname(path)) if ".corrupt-" in n)


def test_a_corrupt_file_refuses_is_kept_aside_and_is_never_read_as_empty(path: str) -> None:
    _corrupt(path)
    res = consume(path, 5000.0)
    kept = f"{path}.corrupt-5000"
    assert res["allowed"] is False and res["changed"] is False and res["used"] == 0
    assert res["refusal"] == (
        f"restart budget state unreadable at {path} (kept as {kept}); a human may --override-budget"
    )
    assert res["budget_warnings"] and "no numeric 'ts'" in res["budget_warnings"][0]
    assert (
        Path(kept).read_text() == Path(path).read_text() == '{"keys": {"x": [{"ts": "yesterday"}]}}'
    )
    again = consume(path, 5010.0)  # the state stays unreadable: a second run refuses too
    assert again["allowed"] is False and again["refusal"] == res["refusal"]
    assert _siblings(path) == ["restarts.json.corrupt-5000"], "one copy per content"
    assert rb.evaluate(path, KEY, now=5020.0)["allowed"] is False  # state=check too
    Path(path).write_text("not json{")
    assert f"{path}.corrupt-6000" in consume(path, 6000.0)["refusal"]
    assert _siblings(path) == ["restarts.json.corrupt-5000", "restarts.json.corrupt-6000"]


def test_an_override_with_a_reason_starts_a_fresh_file(path: str) -> None:
    _corrupt(path, "garbage")
    blank = consume(path, 5000.0, override=True, override_reason="")
    assert blank["allowed"] is False and Path(path).read_text() == "garbage"
    res = consume(path, 5001.0, override=True, override_reason="INC-7", reason="RB-01 down")
    assert res["allowed"] is True and res["overridden"] is True and res["changed"] is True
    assert "a fresh file was started" in res["budget_warnings"][0]
    stored = json.loads(Path(path).read_text())
    assert stored["keys"] == {
        KEY: [{"ts": 5001.0, "reason": "RB-01 down", "override": True, "override_reason": "INC-7"}]
    }
    assert Path(f"{path}.corrupt-5000").read_text() == "garbage"


def test_check_mode_on_a_corrupt_file_refuses_and_touches_nothing(path: str) -> None:
    _corrupt(path)
    dry = consume(path, 5000.0, dry_run=True)
    assert dry["allowed"] is False and "check mode" in dry["refusal"]
    assert _siblings(path) == []
    over = consume(path, 5000.0, dry_run=True, override=True, override_reason="INC-7")
    assert (
        over["allowed"] is True and "a real run starts a fresh file" in over["budget_warnings"][0]
    )
    assert Path(path).read_text().startswith('{"keys": {"x"') and _siblings(path) == []


def test_an_unreadable_file_refuses(path: str) -> None:
    os.makedirs(path)  # a directory where the file should be: EISDIR on open
    res = consume(path, 5000.0)
    assert res["allowed"] is False and res["refusal"].startswith(
        f"restart budget state unreadable at {path} ("
    )


def test_a_clock_jump_backwards_warns_and_still_counts(path: str) -> None:
    consume(path, 5000.0)
    consume(path, 5001.0)
    res = consume(path, 4000.0)
    assert res["allowed"] is False and res["used"] == 2
    assert res["budget_warnings"][0].startswith("clock jumped backwards: 2 restart(s)")


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
