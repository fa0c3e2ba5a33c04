"""The one outcome vocabulary: combine, exit codes, fail-closed normalisation."""

from __future__ import annotations

import pytest
from ansible_collections.pivotal.flow_ops.plugins.module_utils import outcome


@pytest.mark.parametrize(
    ("outcomes", "expected"),
    [
        ([], "error"),
        (["healthy"], "healthy"),
        (["healthy", "recovered"], "recovered"),
        (["recovered", "escalate"], "escalate"),
        (["escalate", "refused"], "refused"),
        (["refused", "error", "healthy"], "error"),
        (["healthy", "bogus"], "error"),
        (["HEALTHY", " recovered "], "recovered"),
        ([None], "error"),
    ],
)
def test_combine_is_the_worst(outcomes: list[object], expected: str) -> None:
    assert outcome.combine(outcomes) == expected


@pytest.mark.parametrize(
    ("word", "code"),
    [("healthy", 0), ("recovered", 0), ("error", 1), ("refused", 3), ("escalate", 4), ("?", 1)],
)
def test_exit_codes(word: str, code: int) -> None:
    assert outcome.exit_code(word) == code


@pytest.mark.parametrize(
    ("rc", "word"),
    [(0, "healthy"), (3, "refused"), (4, "escalate"), (1, "error"), (2, "error"), (-9, "error")],
)
def test_from_exit_code(rc: int, word: str) -> None:
    assert outcome.from_exit_code(rc) == word


def test_verdict_refuses_a_word_outside_the_vocabulary() -> None:
    assert outcome.verdict("recovered", "ok") == {
        "outcome": "recovered",
        "reason": "ok",
        "next_runbook": "",
    }
    with pytest.raises(ValueError, match="unknown outcome"):
        outcome.verdict("fixed", "no such word")


def test_needs_human_and_is_ok() -> None:
    assert [o for o in outcome.ORDER if outcome.needs_human(o)] == ["error", "refused", "escalate"]
    assert [o for o in outcome.ORDER if outcome.is_ok(o)] == ["recovered", "healthy"]


def test_combine_results_lists_hosts_not_ok_worst_first() -> None:
    got = outcome.combine_results(
        {
            "web2": {"outcome": "escalate", "reason": "still down"},
            "web1": {"outcome": "healthy", "reason": "fine"},
            "web3": {"outcome": "refused"},
            "web4": "garbage",
        }
    )
    assert got["outcome"] == "error"
    assert got["hosts"] == 4
    assert [(r["host"], r["outcome"]) for r in got["not_ok"]] == [
        ("web4", "error"),
        ("web3", "refused"),
        ("web2", "escalate"),
    ]
    assert got["not_ok"][1]["reason"] == "no reason given"
    assert got["not_ok"][2]["line"] == "web2: escalate (still down)"
    assert outcome.combine_results({})["outcome"] == "error"
