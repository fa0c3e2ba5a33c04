"""`pflow-ops incident renotify` (issue 16): the records carry their environment and runbook, the
command asks the pure decision first and starts the playbook only when a level may be due, and a
moved clock is refused where it could notify a protected environment before its time."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import pytest

from pflow_ops import renotify
from pflow_ops.cli import main
from tests.plugins import load_plugin

record_action = load_plugin("incident_record", kind="action")
renotify_action = load_plugin("incident_renotify", kind="action")


def _escalate(home: Path, key: str, env: str = "local") -> dict[str, Any]:
    args = {
        "state": "update",
        "key": key,
        "runbook": "RB-03",
        "run_id": "r1",
        "event": "documented",
        "outcome": "escalate",
        "sinks": [],
        "by": "",
        "env": env,
    }
    got: dict[str, Any] = record_action.get_or_update(str(home), args)
    return got["record"]


def _after(record: dict[str, Any], minutes: int) -> str:
    start = datetime.datetime.fromisoformat(record["events"][0]["at"].replace("Z", "+00:00"))
    return (start + datetime.timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PFLOW_OPS_HOME", str(tmp_path))
    return tmp_path.resolve()


def test_an_update_records_the_environment_and_the_runbook(home: Path) -> None:
    record = _escalate(home, "INC-1", env="staging")
    assert (record["env"], record["runbook"]) == ("staging", "RB-03")


def test_nothing_due_starts_no_playbook(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    record = _escalate(home, "INC-1")
    _escalate(home, "INC-OTHER", env="staging")  # another environment's incident: not listed

    def no_launch(*_a: Any) -> dict[str, Any]:
        raise AssertionError("no playbook while nothing is due")

    monkeypatch.setattr(renotify, "_launch", no_launch)
    assert main(["incident", "renotify", "--env", "local", "--now", _after(record, 14)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("INC-1 (RB-03): wait: L2 Backend team lead is due at ")
    assert "INC-OTHER" not in out


def test_a_due_level_starts_the_playbook_and_prints_what_it_sent(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    record = _escalate(home, "INC-1")
    launched: list[tuple[Any, ...]] = []

    def fake_launch(env: Any, check: bool, now: str | None) -> dict[str, Any]:
        launched.append((env.name, check, now))
        return {
            "incidents": [{"key": "INC-1", "runbook": "RB-03", "status": "due", "reason": "r"}],
            "sent": [
                {
                    "key": "INC-1",
                    "level": "L2",
                    "who": "Lead",
                    "sinks": [{"sink": "email", "status": "ok"}],
                }
            ],
        }

    monkeypatch.setattr(renotify, "_launch", fake_launch)
    now = _after(record, 15)
    assert main(["incident", "renotify", "--env", "local", "--now", now]) == 0
    assert launched == [("local", False, now)]
    assert "sent L2 to Lead for INC-1: email ok" in capsys.readouterr().out
    assert (
        main(
            ["incident", "renotify", "--env", "local", "--now", now, "--check", "--output", "json"]
        )
        == 0
    )
    assert launched[-1] == ("local", True, now)
    assert json.loads(capsys.readouterr().out)["playbook"] is True


def test_an_acknowledged_incident_starts_nothing(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _escalate(home, "INC-1")
    assert main(["incident", "ack", "INC-1", "--by", "ana"]) == 0
    capsys.readouterr()
    monkeypatch.setattr(renotify, "_launch", lambda *_a: pytest.fail("acked"))
    assert main(["incident", "renotify", "--env", "local", "--now", "2099-01-01T00:00:00Z"]) == 0
    assert capsys.readouterr().out == "no open incident of env local\n"


def test_a_record_it_cannot_trust_is_a_warning_and_starts_nothing(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    record = _escalate(home, "INC-1")
    path = home / "incidents" / f"{record['key_sha']}.json"
    path.write_text(json.dumps({**record, "runbook": "RB-99"}))
    monkeypatch.setattr(renotify, "_launch", lambda *_a: pytest.fail("invalid"))
    assert main(["incident", "renotify", "--env", "local", "--now", _after(record, 60)]) == 0
    err = capsys.readouterr().err
    assert (
        "warning: INC-1 (RB-99): invalid: not re-notified: no escalation path for runbook RB-99"
        in err
    )


def test_a_moved_clock_on_a_protected_environment_needs_check(home: Path) -> None:
    assert main(["incident", "renotify", "--env", "prod", "--now", "2099-01-01T00:00:00Z"]) == 3


@pytest.mark.parametrize("now", ["tomorrow", "2026-12-05T10:30:00", "2026-12-05 10:30Z"])
def test_a_bad_now_is_a_usage_error(home: Path, now: str) -> None:
    assert main(["incident", "renotify", "--env", "local", "--now", now]) == 2


def test_the_plugin_clock_takes_an_aware_timestamp_and_refuses_a_bad_one() -> None:
    aware = datetime.datetime(2026, 12, 5, 10, 30, tzinfo=datetime.UTC)
    assert renotify_action.clock({"pflow_renotify_now": aware}) == aware
    assert renotify_action.clock({"pflow_renotify_now": "2026-12-05T10:30:00Z"}) == aware
    for bad in (datetime.datetime(2026, 12, 5, 10, 30), "{{ now() }}", 5):
        with pytest.raises(ValueError, match="ISO 8601"):
            renotify_action.clock({"pflow_renotify_now": bad})
    assert renotify_action.clock({}).tzinfo is not None


def test_the_plugin_plans_and_journals_under_the_records_lock(home: Path) -> None:
    record = _escalate(home, "INC-1")
    store = renotify_action.records_for(str(home), {"pflow_env": "local"})  # the file store
    paths = renotify.escalation_paths(renotify.catalogue.load())
    now = renotify_action.renotify.parse_time(_after(record, 16))
    planned = renotify_action.plan(store, "local", paths, [{"kind": "email"}], now)
    (due,) = planned["due"]
    assert (
        due["level"]["level"] == "L2" and "pflow-ops incident ack INC-1" in due["messages"]["chat"]
    )
    sinks = [
        {
            "sink": "email",
            "kind": "email",
            "status": "ok",
            "handle": {"messages": 2},
            "detail": "sent",
        }
    ]
    journaled = renotify_action.journal(
        store, "INC-1", due["level"], sinks, "rn-1", _after(record, 16)
    )
    assert journaled["events"][-1]["level"] == "L2"
    assert renotify_action.plan(store, "local", paths, [], now)["due"] == []
    with pytest.raises(ValueError, match="no incident record"):
        renotify_action.journal(store, "INC-2", due["level"], [], "", _after(record, 16))
    with pytest.raises(ValueError, match="valid key and level"):
        renotify_action.journal(store, "INC-1", {"level": "{{ x }}"}, [], "", _after(record, 16))


def test_only_the_last_runner_directories_are_kept(tmp_path: Path) -> None:
    for i in range(25):
        (tmp_path / f"20261205T1200{i:02d}Z-renotify-abcd").mkdir()
    (tmp_path / "other").mkdir()
    renotify._prune(tmp_path)
    kept = sorted(p.name for p in tmp_path.iterdir())
    assert len(kept) == 21 and kept[0] == "20261205T120005Z-renotify-abcd" and "other" in kept


def test_an_environment_with_a_pager_starts_no_playbook(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The pager escalates by itself: the sinks' kinds come from the inventory, raw."""
    inv = tmp_path / "inv"
    (inv / "group_vars").mkdir(parents=True)
    (inv / "hosts.yml").write_text("all:\n  hosts:\n    h1:\n")
    (inv / "group_vars" / "all.yml").write_text(
        "pflow_env: local\npflow_incident_sinks:\n"
        "  - {kind: email, to: [a@example.test], password: '{{ vault_smtp }}'}\n"
        "  - {kind: pagerduty, name: oncall-pd, routing_key: '{{ vault_pd }}'}\n"
    )
    kinds = renotify.inventory.incident_sink_kinds(inv / "hosts.yml")
    assert kinds == ({"kind": "email", "name": "email"}, {"kind": "pagerduty", "name": "oncall-pd"})
    record = _escalate(home, "INC-1")
    env = renotify.environments.Environment("local", inv / "hosts.yml", protected=False)
    monkeypatch.setattr(renotify.environments, "get", lambda _name: env)
    monkeypatch.setattr(renotify, "_launch", lambda *_a: pytest.fail("the pager pages"))
    assert main(["incident", "renotify", "--env", "local", "--now", _after(record, 60)]) == 0
    assert "none: a pager is configured (oncall-pd)" in capsys.readouterr().out


def test_an_open_record_with_no_environment_is_a_warning(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record = _escalate(home, "INC-OLD")
    path = home / "incidents" / f"{record['key_sha']}.json"
    path.write_text(json.dumps({k: v for k, v in record.items() if k != "env"}))
    assert main(["incident", "renotify", "--env", "local"]) == 0
    out = capsys.readouterr()
    assert "warning: incident INC-OLD names no environment: it is not re-notified" in out.err
    assert out.out == "no open incident of env local\n"
