"""The receiver's decisions: routing, dedupe, attach to the queued run, one follow-up per runbook,
cancel on resolved, skip, pause, labels as data, and the replay (and snapshot) that rebuilds the
exact live state from the journal."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from pflow_ops import routing
from pflow_ops.receiver import service
from pflow_ops.receiver.policy import QUEUED, RUNNING, Policy, replay

T = routing.Target
TABLE = routing.Table(
    targets={
        "RB-01": T("RB-01", "backend"),
        "RB-02": T("RB-02", "database"),
        "RB-09": T("RB-09", "elsewhere", implemented=False),
    },
    by_alert={
        "BackendServiceDown": "RB-01",
        "HighErrorRate": "RB-01",
        "DatabaseSlowQueries": "RB-02",
        "Dormant": "RB-09",
    },
    aliases={"HostBackendDown": "RB-01"},
    alias_of={"HostBackendDown": "BackendServiceDown"},
)
FP = "0123456789abcdef"


def alert(
    name: str = "BackendServiceDown", fp: str = FP, status: str = "firing", **labels: str
) -> dict[str, Any]:
    return {
        "status": status,
        "alertname": name,
        "fingerprint": fp,
        "labels": {"alertname": name, **labels},
    }


def policy(throttle: float = 600, dedupe: float = 300) -> Policy:
    return Policy(TABLE, throttle_window=throttle, dedupe_window=dedupe)


def test_first_firing_alert_is_queued_for_its_runbook_and_service() -> None:
    p = policy()
    d = p.decide("r1", alert(), now=1000)
    assert d.action == QUEUED
    assert d.item is not None
    assert (d.item.runbook, d.item.service, d.item.first) == (
        "RB-01",
        "backend",
        p.items["r1"].alerts[0],
    )
    assert d.record() == {
        "event": "decision",
        "rid": "r1",
        "action": "queued",
        "alertname": "BackendServiceDown",
        "fingerprint": FP,
        "via": "catalogue",
        "item": "r1",
        "runbook": "RB-01",
        "service": "backend",
    }
    assert p.queue_depth() == 1


@pytest.mark.parametrize(
    ("record", "runbook", "via"),
    [
        (alert("HostBackendDown"), "RB-01", "alias"),
        (alert("SomeTeamsOwnAlert", runbook="rb-02"), "RB-02", "label"),
        (alert("BackendServiceDown", runbook="RB-02"), "RB-02", "label"),
    ],
)
def test_aliases_and_the_runbook_label_route(
    record: dict[str, Any], runbook: str, via: str
) -> None:
    d = policy().decide("r1", record, now=1000)
    assert (d.action, d.item and d.item.runbook, d.via) == (QUEUED, runbook, via)


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


def test_a_storm_of_500_distinct_fingerprints_is_one_run_with_500_alerts_attached() -> None:
    p = policy()
    decisions = [p.decide(f"r{i}", alert(fp=f"{i:016x}"), now=1000) for i in range(500)]
    assert [d.action for d in decisions].count(QUEUED) == 1
    assert [d.action for d in decisions].count("attached") == 499
    assert {d.item.rid for d in decisions if d.item} == {"r0"}
    assert decisions[1].record()["item"] == "r0"
    assert p.queue_depth() == 1
    assert len(p.items["r0"].alerts) == 500
    assert all(it.not_before == 0 for it in p.items.values())


def test_while_running_one_follow_up_waits_one_window_after_the_start_and_takes_the_rest() -> None:
    p = policy(throttle=600, dedupe=0)
    p.decide("r1", alert(fp="aa"), now=1000)
    p.start("r1", now=1002)
    follow = p.decide("r2", alert("HighErrorRate", fp="bb"), now=1010)
    assert follow.action == "throttled" and follow.item is not None
    assert follow.item.not_before == 1602  # the running run's start + one window
    assert "follow-up in 592 s" in follow.reason
    # Everything else of RB-01 joins that one follow-up: never a second one.
    more = [p.decide(f"x{i}", alert(fp=f"c{i}"), now=1020).action for i in range(50)]
    assert set(more) == {"attached"}
    assert [it.rid for it in p.items.values()] == ["r1", "r2"]
    assert p.next_for("backend", now=1700) is None  # r1 still runs
    p.finish("r1", now=1100)
    assert p.next_for("backend", now=1500) is None  # not yet due
    due = p.next_for("backend", now=1602)
    assert due is not None and due.rid == "r2" and len(due.alerts) == 51


def test_a_symptom_right_after_a_recovery_is_deferred_to_one_window_after_its_start() -> None:
    p = policy(throttle=600, dedupe=0)
    p.decide("r1", alert(fp="aa"), now=1000)
    p.start("r1", now=1000)
    p.finish("r1", now=1030)
    symptom = p.decide("r2", alert("HighErrorRate", fp="bb"), now=1040)
    assert symptom.action == "throttled" and symptom.item is not None
    assert symptom.item.not_before == 1600


def test_a_run_after_the_window_is_not_deferred() -> None:
    p = policy(throttle=600, dedupe=0)
    p.decide("r1", alert(fp="aa"), now=1000)
    p.start("r1", now=1000)
    p.finish("r1", now=1010)
    late = p.decide("r2", alert("HighErrorRate", fp="bb"), now=1700)
    assert late.action == QUEUED and late.item is not None and late.item.not_before == 0.0


def test_a_run_longer_than_the_window_gets_a_follow_up_due_now_that_waits_for_it() -> None:
    p = policy(throttle=60, dedupe=0)
    p.decide("r1", alert(fp="aa"), now=1000)
    p.start("r1", now=1000)
    follow = p.decide("r2", alert(fp="bb"), now=1100)
    assert follow.action == QUEUED and follow.item is not None and follow.item.not_before == 0
    assert p.next_for("backend", now=1100) is None  # one run per service at a time
    p.finish("r1", now=1101)
    assert p.next_for("backend", now=1101) is follow.item


def test_resolved_detaches_and_cancels_an_item_left_without_alerts_never_a_running_one() -> None:
    p = policy()
    p.decide("r1", alert(fp="aa"), now=1000)
    p.decide("r2", alert(fp="bb"), now=1000)  # attached to r1
    p.decide("r3", alert("DatabaseSlowQueries", fp="cc"), now=1000)
    p.start("r3", now=1001)
    first = p.decide("r4", alert(fp="aa", status="resolved"), now=1002)
    assert (first.action, first.cancelled) == ("resolved", ())
    assert [a.fingerprint for a in p.items["r1"].alerts] == ["bb"]
    assert p.items["r1"].first is not None and p.items["r1"].first.fingerprint == "bb"
    second = p.decide("r5", alert(fp="bb", status="resolved"), now=1003)
    assert second.cancelled == ("r1",) and second.record()["cancelled"] == ["r1"]
    running = p.decide("r6", alert("DatabaseSlowQueries", fp="cc", status="resolved"), now=1004)
    assert running.cancelled == ()
    assert list(p.items) == ["r3"] and p.items["r3"].state == RUNNING
    assert [a.fingerprint for a in p.items["r3"].alerts] == ["cc"]  # what the run covers


def test_a_resolved_alert_with_a_bad_fingerprint_touches_nothing() -> None:
    p = policy()
    p.decide("r1", alert(fp="aa"), now=1000)
    d = p.decide("r2", alert(fp="$(id)", status="resolved"), now=1001)
    assert (d.action, d.cancelled) == ("resolved", ())
    assert list(p.items) == ["r1"]


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (alert("NoSuchAlert"), "unknown_alert"),
        (alert("BackendServiceDown; rm -rf /"), "bad_alertname"),
        (alert("../../etc/passwd"), "bad_alertname"),
        (alert("{{ lookup('pipe', 'id') }}"), "bad_alertname"),
        (alert("A" * 200), "bad_alertname"),
        (alert("backendservicedown"), "unknown_alert"),
        ({"status": "firing", "fingerprint": FP}, "bad_alertname"),
        (alert(runbook="RB-99"), "unknown_runbook"),
        (alert(runbook="{{ 7*7 }}"), "unknown_runbook"),
        (alert(fp="0123$(id)"), "bad_fingerprint"),
        (alert(fp="--check"), "bad_fingerprint"),
        (alert(fp="ABCDEF"), "bad_fingerprint"),
        (alert(fp=""), "bad_fingerprint"),
        (alert(fp="0" * 33), "bad_fingerprint"),
        (alert("Dormant"), "not_automated"),
    ],
)
def test_labels_are_data_only_routed_names_and_hex_fingerprints_queue(
    record: dict[str, Any], reason: str
) -> None:
    p = policy()
    d = p.decide("r1", record, now=1000)
    assert (d.action, d.reason, d.item) == ("ignored", reason, None)
    assert reason in (*routing.REASONS, "bad_fingerprint")
    assert "fingerprint" not in d.record()
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


def test_a_finished_run_marks_every_alert_it_covered_as_handled() -> None:
    p = policy(dedupe=300)
    p.decide("r1", alert(fp="aa"), now=1000)
    p.decide("r2", alert(fp="bb"), now=1000)
    rec = p.start("r1", now=1001)
    assert rec["fingerprint"] == "aa" and [a["fingerprint"] for a in rec["alerts"]] == ["aa", "bb"]
    p.finish("r1", now=1002)
    assert p.handled == {"aa": 1002, "bb": 1002}
    assert p.decide("r3", alert(fp="bb"), now=1010).reason == "handled recently"


def test_skipped_alerts_detach_and_the_next_one_launches() -> None:
    p = policy()
    p.decide("r1", alert(fp="aa"), now=1000)
    p.decide("r2", alert("HighErrorRate", fp="bb"), now=1000)
    p.skip("r1", "aa", "silenced", now=1001)
    item = p.items["r1"]
    assert item.first is not None and (item.first.alertname, item.first.fingerprint) == (
        "HighErrorRate",
        "bb",
    )
    p.skip("r1", "bb", "not_active", now=1001)
    assert item.first is None
    p.cancel("r1", "every attached alert was skipped", now=1001)
    assert p.items == {}
    # Not active in Alertmanager: a repeat of the stale notification is deduplicated; a
    # silenced alert is not remembered (its next notification, once the silence ends, runs).
    assert p.handled == {"bb": 1001}
    assert p.decide("r3", alert("HighErrorRate", fp="bb"), now=1002).reason == "handled recently"
    assert p.decide("r4", alert(fp="aa"), now=1002).action == QUEUED


def test_paused_decides_and_cancels_but_hands_nothing_out_until_resumed() -> None:
    p = policy()
    p.pause("ops@host", "db maintenance", since=999.5, now=1000)
    assert p.paused == {"by": "ops@host", "reason": "db maintenance", "since": 999.5}
    assert p.decide("r1", alert(fp="aa"), now=1001).action == QUEUED
    assert p.decide("r2", alert("DatabaseSlowQueries", fp="bb"), now=1001).action == QUEUED
    assert p.next_for("backend", now=1002) is None
    assert p.decide("r3", alert(fp="aa", status="resolved"), now=1003).cancelled == ("r1",)
    p.resume(now=1004)
    due = p.next_for("database", now=1004)
    assert p.paused is None and due is not None and due.rid == "r2"


def _journal_of_a_crash() -> list[dict[str, Any]]:
    """A journal as the receiver before this policy wrote it (decisions without the alert)."""
    rec = {"alertname": "BackendServiceDown", "status": "firing"}
    queued = {"event": "decision", "action": "queued"}
    return [
        {"event": "received", "rid": "a", "ts": 1000, **rec, "fingerprint": "aa"},
        {**queued, "rid": "a", "ts": 1000, "runbook": "RB-01", "service": "backend"},
        {"event": "started", "rid": "a", "ts": 1001},
        {
            "event": "received",
            "rid": "b",
            "ts": 1002,
            **rec,
            "alertname": "DatabaseSlowQueries",
            "fingerprint": "bb",
        },
        {**queued, "rid": "b", "ts": 1002, "runbook": "RB-02", "service": "database"},
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


def test_replay_of_an_older_journal_restores_queue_running_item_and_undecided_receipts() -> None:
    p = policy()
    state = replay(p, _journal_of_a_crash())
    assert state.records == 8
    assert state.interrupted == ["a"]
    assert [rid for rid, _ in state.undecided] == ["d"]
    assert p.items["a"].state == RUNNING and p.items["a"].attempts == 1
    assert p.items["b"].state == QUEUED and p.items["b"].alerts[0].fingerprint == "bb"
    assert p.last_start == {"RB-01": 1001}
    # Re-deciding "d" after the replay joins RB-02's queued item.
    assert p.decide("d", state.undecided[0][1], now=1100).action == "attached"
    p.requeue("a", now=1100)
    p.start("a", now=1101)
    p.finish("a", now=1105)
    assert p.handled == {"aa": 1105} and "a" not in p.items


class Recorder:
    """Drives a live policy and keeps the records it would journal."""

    def __init__(self, p: Policy) -> None:
        self.p = p
        self.records: list[dict[str, Any]] = []

    def decide(self, rid: str, rec: dict[str, Any], now: float) -> None:
        self.records.append({"event": "received", "rid": rid, "ts": now, **rec})
        self.records.append({**self.p.decide(rid, rec, now).record(), "ts": now})


def _random_day(rng: random.Random, rec: Recorder, steps: int) -> int:
    """Random alerts, resolutions, starts, skips, finishes and pauses; returns a step at which
    to take a snapshot. Also checks, at every decision, that nothing is deferred beyond one
    window."""
    p, now = rec.p, 1000.0
    names = ["BackendServiceDown", "HighErrorRate", "DatabaseSlowQueries", "HostBackendDown"]
    cut = rng.randrange(steps)
    for step in range(steps):
        now += rng.choice([0.0, 0.5, 7.25, 120.0])
        roll = rng.random()
        fp = f"{rng.randrange(12):x}"
        if step == cut:
            rec.records.append({"mark": len(rec.records)})
        if roll < 0.45:
            rec.decide(f"r{step}", alert(rng.choice(names), fp), now)
        elif roll < 0.55:
            rec.decide(f"r{step}", alert(rng.choice(names), fp, status="resolved"), now)
        elif roll < 0.75:
            service = rng.choice(["backend", "database"])
            item = p.next_for(service, now)
            if item is not None and item.first is not None:
                if rng.random() < 0.2:
                    why = rng.choice(["silenced", "not_active"])
                    rec.records.append(p.skip(item.rid, item.first.fingerprint, why, now))
                    if item.first is None:
                        rec.records.append(p.cancel(item.rid, "all skipped", now))
                else:
                    rec.records.append(p.start(item.rid, now))
        elif roll < 0.9:
            if p.running():
                rec.records.append(p.finish(rng.choice(p.running()).rid, now))
        elif roll < 0.92:
            rec.records.append(p.pause("ops@h", f"w{step}", now, now))
        elif roll < 0.97:
            rec.records.append(p.resume(now))
        assert all(it.not_before <= now + p.throttle_window for it in p.items.values())
        for runbook in ("RB-01", "RB-02"):
            mine = [it for it in p.items.values() if it.runbook == runbook]
            assert sum(it.state == QUEUED for it in mine) <= 1
            assert sum(it.state == RUNNING for it in mine) <= 1
    return cut


@pytest.mark.parametrize("seed", range(40))
def test_replay_and_snapshot_plus_later_records_rebuild_the_live_state(seed: int) -> None:
    rng = random.Random(seed)
    live = Recorder(policy(throttle=rng.choice([0, 60, 600]), dedupe=rng.choice([0, 300])))
    _random_day(rng, live, steps=120)
    records = [r for r in live.records if "mark" not in r]
    replayed = policy(live.p.throttle_window, live.p.dedupe_window)
    replay(replayed, records)
    assert replayed.state() == live.p.state()

    # A compacted journal: the snapshot at the mark, then the records after it.
    mark = next(i for i, r in enumerate(live.records) if "mark" in r)
    before = policy(live.p.throttle_window, live.p.dedupe_window)
    replay(before, live.records[:mark])
    # (through JSON, as the journal stores it)
    snapshot = json.loads(json.dumps(before.snapshot_records()))
    compacted = [*snapshot, *live.records[mark + 1 :]]
    restored = policy(live.p.throttle_window, live.p.dedupe_window)
    replay(restored, compacted)
    assert restored.state() == live.p.state()
    # and the snapshot of the live state alone rebuilds it
    alone = policy(live.p.throttle_window, live.p.dedupe_window)
    replay(alone, live.p.snapshot_records())
    assert alone.state() == live.p.state()


# -- the receiver's routing table (service) ----------------------------------------------------
@pytest.mark.parametrize(
    "aliases",
    [
        {"NodeDown": "Nowhere"},  # points to neither an alert nor a runbook
        {"Bad Name": "RB-01"},  # not an alert name
        {"BackendServiceDown": "RB-02"},  # a catalogue alert cannot be re-aliased
    ],
)
def test_a_bad_environment_alias_refuses_the_start_with_exit_2(
    monkeypatch: pytest.MonkeyPatch, aliases: dict[str, str]
) -> None:
    monkeypatch.setattr(service.inventory, "alert_aliases", lambda source: aliases)
    with pytest.raises(service.ServeError) as caught:
        service._routing("local")
    assert caught.value.code == 2 and "alias" in str(caught.value)


def test_an_unreadable_alias_setting_refuses_the_start(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(source: object) -> dict[str, str]:
        raise ValueError("pflow_alert_aliases: hosts disagree on NodeDown")

    monkeypatch.setattr(service.inventory, "alert_aliases", broken)
    with pytest.raises(service.ServeError, match="hosts disagree") as caught:
        service._routing("local")
    assert caught.value.code == 2


def test_environment_aliases_route_in_the_receiver(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        service.inventory, "alert_aliases", lambda source: {"NodeHttpDown": "BackendServiceDown"}
    )
    table = service._routing("local")
    routed = routing.route(table, "NodeHttpDown", {})
    assert (routed.runbook, routed.via) == ("RB-01", "alias")
    assert routing.route(table, "PostgresqlDown", {}).runbook == "RB-02"  # the catalogue's
