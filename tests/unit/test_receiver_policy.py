"""The receiver's decisions: dedupe, throttle, cancel on resolved, unknown alerts, labels as data,
and the replay that rebuilds the queue from the journal."""

from __future__ import annotations

from typing import Any

import pytest

from pflow_ops.receiver.policy import QUEUED, RUNNING, Policy, Route, replay

ROUTES = {
    "BackendServiceDown": Route("RB-01", "backend"),
    "HighErrorRate": Route("RB-01", "backend"),
    "DatabaseSlowQueries": Route("RB-02", "database"),
    "Dormant": Route("RB-09", "elsewhere", implemented=False),
}
FP = "0123456789abcdef"


def alert(name: str = "BackendServiceDown", fp: str = FP, status: str = "firing") -> dict[str, Any]:
    return {"status": status, "alertname": name, "fingerprint": fp}


def policy(throttle: float = 600, dedupe: float = 300) -> Policy:
    return Policy(ROUTES, throttle_window=throttle, dedupe_window=dedupe)


def test_first_firing_alert_is_queued_for_its_runbook_and_service() -> None:
    p = policy()
    d = p.decide("r1", alert(), now=1000)
    assert d.action == QUEUED
    assert d.item is not None
    assert (d.item.runbook, d.item.service, d.item.alertname) == (
        "RB-01",
        "backend",
        "BackendServiceDown",
    )
    assert d.record() == {
        "event": "decision",
        "rid": "r1",
        "action": "queued",
        "runbook": "RB-01",
        "service": "backend",
    }
    assert p.queue_depth() == 1


def test_same_fingerprint_is_deduplicated_while_queued_running_and_recently_handled() -> None:
    p = policy(throttle=0, dedupe=300)
    p.decide("r1", alert(), now=1000)
    assert p.decide("r2", alert(), now=1001).action == "deduplicated"
    p.start("r1", now=1002)
    assert p.decide("r3", alert(), now=1003).action == "deduplicated"
    p.finish("r1", now=1010)
    assert p.decide("r4", alert(), now=1200).reason == "handled recently"
    # Once the dedupe window is over, the same fingerprint may run again.
    assert p.decide("r5", alert(), now=1310).action == QUEUED


def test_storm_of_one_alert_queues_exactly_one_item() -> None:
    p = policy()
    actions = [p.decide(f"r{i}", alert(), now=1000 + i / 100).action for i in range(300)]
    assert actions.count(QUEUED) == 1
    assert actions.count("deduplicated") == 299


def test_throttle_allows_one_run_start_per_runbook_per_window_and_defers_the_rest() -> None:
    p = policy(throttle=600, dedupe=0)
    p.decide("r1", alert(fp="aa"), now=1000)
    # Another alert of the same runbook while the first is pending: throttled, not dropped.
    second = p.decide("r2", alert("HighErrorRate", fp="bb"), now=1001)
    assert second.action == "throttled" and second.item is not None
    assert second.item.not_before == 1601  # one window after r1 may start (now)
    assert second.record()["not_before"] == 1601
    p.start("r1", now=1002)
    p.finish("r1", now=1005)
    # Its time has not come: the worker does not get it yet.
    assert p.next_for("backend", now=1500) is None
    # A repeat of the deferred alert is deduplicated, not deferred twice.
    assert p.decide("r3", alert("HighErrorRate", fp="bb"), now=1500).action == "deduplicated"
    # Another runbook is not held back by RB-01's window.
    assert p.decide("r4", alert("DatabaseSlowQueries", fp="cc"), now=1500).action == QUEUED
    # When the window opens, the deferred run is handed out.
    due = p.next_for("backend", now=1601)
    assert due is not None and due.rid == "r2"


def test_a_deferred_alert_that_resolves_is_cancelled() -> None:
    p = policy(throttle=600, dedupe=0)
    p.decide("r1", alert(fp="aa"), now=1000)
    p.start("r1", now=1000)
    deferred = p.decide("r2", alert("HighErrorRate", fp="bb"), now=1010)
    assert deferred.action == "throttled" and "deferred 590 s" in deferred.reason
    resolved = p.decide("r3", alert("HighErrorRate", fp="bb", status="resolved"), now=1020)
    assert resolved.cancelled == ("r2",)
    assert p.next_for("backend", now=2000) is None


def test_a_run_after_the_window_is_not_deferred() -> None:
    p = policy(throttle=600, dedupe=0)
    p.decide("r1", alert(fp="aa"), now=1000)
    p.start("r1", now=1000)
    p.finish("r1", now=1010)
    late = p.decide("r2", alert("HighErrorRate", fp="bb"), now=1700)
    assert late.action == QUEUED and late.item is not None and late.item.not_before == 0.0


def test_resolved_cancels_queued_work_but_not_a_running_one() -> None:
    p = policy()
    p.decide("r1", alert(fp="aa"), now=1000)
    p.decide("r2", alert("DatabaseSlowQueries", fp="bb"), now=1000)
    p.start("r2", now=1001)
    d = p.decide("r3", alert(fp="aa", status="resolved"), now=1002)
    assert (d.action, d.cancelled) == ("resolved", ("r1",))
    assert d.record()["cancelled"] == ["r1"]
    assert (
        p.decide("r4", alert("DatabaseSlowQueries", fp="bb", status="resolved"), now=1003).cancelled
        == ()
    )
    assert [it.rid for it in p.items.values()] == ["r2"]
    assert p.items["r2"].state == RUNNING


@pytest.mark.parametrize(
    ("labels", "reason"),
    [
        (alert("NoSuchAlert"), "unknown_alert"),
        (alert("BackendServiceDown; rm -rf /"), "unknown_alert"),
        (alert("../../etc/passwd"), "unknown_alert"),
        (alert("{{ lookup('pipe', 'id') }}"), "unknown_alert"),
        (alert("backendservicedown"), "unknown_alert"),
        ({"status": "firing", "fingerprint": FP}, "unknown_alert"),
        (alert(fp="0123$(id)"), "bad_fingerprint"),
        (alert(fp="--check"), "bad_fingerprint"),
        (alert(fp="ABCDEF"), "bad_fingerprint"),
        (alert(fp=""), "bad_fingerprint"),
        (alert(fp="0" * 33), "bad_fingerprint"),
        (alert("Dormant"), "not_automated"),
    ],
)
def test_labels_are_data_only_catalogue_names_and_hex_fingerprints_queue(
    labels: dict[str, Any], reason: str
) -> None:
    p = policy()
    d = p.decide("r1", labels, now=1000)
    assert (d.action, d.reason, d.item) == ("ignored", reason, None)
    assert p.items == {}


def test_one_running_item_per_service_and_services_run_side_by_side() -> None:
    p = policy(throttle=0, dedupe=0)
    p.decide("r1", alert(fp="aa"), now=1000)
    p.decide("r2", alert("DatabaseSlowQueries", fp="bb"), now=1000)
    first = p.next_for("backend", now=1000)
    assert first is not None and first.rid == "r1"
    p.start("r1", now=1001)
    assert p.next_for("backend", now=1001) is None  # r1 is running
    db = p.next_for("database", now=1001)
    assert db is not None and db.rid == "r2"


def _journal_of_a_crash() -> list[dict[str, Any]]:
    rec = {"alertname": "BackendServiceDown", "status": "firing"}
    return [
        {"event": "received", "rid": "a", "ts": 1000, **rec, "fingerprint": "aa"},
        {
            "event": "decision",
            "rid": "a",
            "ts": 1000,
            "action": "queued",
            "runbook": "RB-01",
            "service": "backend",
        },
        {"event": "started", "rid": "a", "ts": 1001},
        {
            "event": "received",
            "rid": "b",
            "ts": 1002,
            **rec,
            "alertname": "DatabaseSlowQueries",
            "fingerprint": "bb",
        },
        {
            "event": "decision",
            "rid": "b",
            "ts": 1002,
            "action": "queued",
            "runbook": "RB-02",
            "service": "database",
        },
        {"event": "received", "rid": "c", "ts": 1003, **rec, "fingerprint": "aa"},
        {"event": "decision", "rid": "c", "ts": 1003, "action": "deduplicated"},
        {
            "event": "received",
            "rid": "d",
            "ts": 1004,
            **rec,
            "alertname": "DatabaseSlowQueries",
            "fingerprint": "dd",
        },
        # the receiver died here: "d" was journaled but never decided
    ]


def test_replay_restores_queue_running_item_and_undecided_receipts() -> None:
    p = policy()
    state = replay(p, _journal_of_a_crash())
    assert state.records == 8
    assert state.interrupted == ["a"]
    assert [rid for rid, _ in state.undecided] == ["d"]
    assert p.items["a"].state == RUNNING and p.items["a"].attempts == 1
    assert p.items["b"].state == QUEUED and p.items["b"].fingerprint == "bb"
    assert p.last_start == {"RB-01": 1001}
    # Re-deciding "d" after the replay sees RB-02 already pending.
    assert p.decide("d", state.undecided[0][1], now=1100).action == "throttled"


def test_replay_applies_finish_cancel_and_requeue() -> None:
    p = policy()
    events = [
        *_journal_of_a_crash(),
        {"event": "requeued", "rid": "a", "ts": 1100},
        {"event": "started", "rid": "a", "ts": 1101},
        {"event": "finished", "rid": "a", "ts": 1105, "outcome": "recovered"},
        {
            "event": "received",
            "rid": "e",
            "ts": 1106,
            "status": "resolved",
            "alertname": "DatabaseSlowQueries",
            "fingerprint": "bb",
        },
        {"event": "decision", "rid": "e", "ts": 1106, "action": "resolved", "cancelled": ["b"]},
    ]
    state = replay(p, events)
    assert state.interrupted == []
    assert p.items == {}
    assert p.handled == {"aa": 1105}
    assert p.items.get("a") is None and p.last_start["RB-01"] == 1101


def test_replay_keeps_a_deferred_item_deferred() -> None:
    live = policy(throttle=600, dedupe=0)
    first = live.decide("r1", alert(fp="aa"), now=1000)
    deferred = live.decide("r2", alert("HighErrorRate", fp="bb"), now=1001)
    journal = [
        {"event": "received", "rid": "r1", "ts": 1000, **alert(fp="aa")},
        {**first.record(), "ts": 1000},
        {"event": "received", "rid": "r2", "ts": 1001, **alert("HighErrorRate", fp="bb")},
        {**deferred.record(), "ts": 1001},
    ]
    restored = policy(throttle=600, dedupe=0)
    replay(restored, journal)
    assert restored.items["r2"].not_before == 1601
    assert restored.next_for("backend", now=1002) is not None  # r1, due at once
    restored.start("r1", now=1002)
    restored.finish("r1", now=1010)
    assert restored.next_for("backend", now=1100) is None
    due = restored.next_for("backend", now=1601)
    assert due is not None and due.rid == "r2"
