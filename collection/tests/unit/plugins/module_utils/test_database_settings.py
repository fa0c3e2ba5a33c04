"""RB-02's settings step (module_utils/database_settings.py), branch by branch: the connection
options postgresql_alter_system gets, the role it logs in as, and its loop results as actions the
verdict reads next to pg_remediate's."""

from __future__ import annotations

from typing import Any

import pytest
from ansible_collections.pivotal.flow_ops.plugins.filter import database as filters
from ansible_collections.pivotal.flow_ops.plugins.module_utils import database_decisions as db
from ansible_collections.pivotal.flow_ops.plugins.module_utils import database_settings as st

ITEM = {"name": "work_mem", "current": "4MB", "desired": "8MB", "context": "user", "apply": "reload"}


def run(**result: Any) -> dict[str, Any]:
    return {"item": ITEM, "changed": False, **result}


def loop(*runs: dict[str, Any]) -> dict[str, Any]:
    return {"changed": any(r.get("changed") for r in runs), "results": list(runs)}


@pytest.mark.parametrize(
    ("timeouts", "connect_timeout", "options"),
    [
        ((5.0, 10.0, 5), "5", "-c statement_timeout=10000 -c lock_timeout=5000"),
        # libpq takes whole seconds, at least 1: never 0, which would mean "wait forever".
        ((0.4, 0.25, 0.001), "1", "-c statement_timeout=250 -c lock_timeout=1"),
        ((2.1, 1, 1), "3", "-c statement_timeout=1000 -c lock_timeout=1000"),
    ],
)
def test_connect_params_name_and_bound_the_session(timeouts: tuple, connect_timeout: str, options: str) -> None:
    params = filters.database_alter_system_params(*timeouts)
    assert params == {"application_name": "pflow-ops", "connect_timeout": connect_timeout, "options": options}


@pytest.mark.parametrize(
    ("args", "login"),
    [
        (("owner", "s3cret", "monitor", "m0n"), {"user": "owner", "password": "s3cret"}),
        # A maintenance role without a password keeps none: the monitor's is never sent for it.
        (("owner", "", "monitor", "m0n"), {"user": "owner", "password": ""}),
        (("", "", "monitor", "m0n"), {"user": "monitor", "password": "m0n"}),
        (("", None, "monitor", None), {"user": "monitor", "password": ""}),
    ],
)
def test_login_is_the_maintenance_role_when_there_is_one(args: tuple, login: dict[str, str]) -> None:
    assert filters.database_alter_system_login(*args) == login


@pytest.mark.parametrize(
    ("result", "dry", "words", "after", "failed", "changed"),
    [
        (run(changed=True, restart_required=False), False, "applied (ALTER SYSTEM + pg_reload_conf", "8MB", 0, True),
        (run(changed=True, restart_required=False), True, "would ALTER SYSTEM SET work_mem = 8MB and reload (check mode)", "8MB", 0, True),
        (run(changed=False, restart_required=False), False, "skipped: already 8MB", "4MB", 0, False),
        (run(changed=True, restart_required=True), False, "still pending: the server needs a restart", "8MB", 1, False),
        (run(failed=False, msg="Cannot set work_mem: permission denied"), False, "failed: Cannot set work_mem: permission denied", "", 1, False),
        (run(), False, "failed: postgresql_alter_system did not finish", "", 1, False),
    ],
)
def test_each_result_becomes_one_action(result: dict, dry: bool, words: str, after: str, failed: int, changed: bool) -> None:
    found = st.setting_actions(loop(result), dry)
    (action,) = found["actions"]
    assert action["action"] == "set" and action["target"] == "work_mem" and action["before"] == "4MB"
    assert action["result"].startswith(words) and action["after"] == after
    assert (found["failed"], found["changed"]) == (failed, changed)


def test_skipped_items_and_a_skipped_loop_add_nothing() -> None:
    assert st.setting_actions(loop({"item": ITEM, "skipped": True, "changed": False}), False)["actions"] == []
    skipped_loop = {"skipped": True, "changed": False, "results": [], "msg": "No items in the list"}
    assert st.setting_actions(skipped_loop, False) == {"actions": [], "failed": 0, "changed": False}
    assert st.setting_actions(None, False)["actions"] == []


def test_with_settings_adds_to_pg_remediate_and_feeds_the_verdict() -> None:
    cancel = {"action": "cancel_query", "target": "pid 1", "result": "cancelled", "before": "", "after": ""}
    fix = {"changed": True, "actions": [cancel], "failed_actions": 0, "sessions_by_application": {"w": 1}}
    both = filters.database_with_settings(fix, loop(run(changed=True, restart_required=False)), False)
    assert [a["action"] for a in both["actions"]] == ["cancel_query", "set"]
    assert both["changed"] is True and both["failed_actions"] == 0 and both["sessions_by_application"] == {"w": 1}
    assert both["msg"] == "2 actions, 0 failed, 0 skipped"
    assert db.fixes_made(both, False) is True


def test_with_settings_when_pg_remediate_was_skipped() -> None:
    skipped = {"changed": False, "skipped": True, "skip_reason": "Conditional result was False"}
    only = st.with_settings(skipped, loop(run(changed=True, restart_required=False)), False)
    assert only["changed"] is True and len(only["actions"]) == 1 and db.fixes_made(only, False)
    dry = st.with_settings(skipped, loop(run(changed=True, restart_required=False)), True)
    assert dry["msg"] == "1 actions (check mode), 0 failed, 0 skipped" and not db.fixes_made(dry, True)
    nothing = st.with_settings(skipped, {"skipped": True, "results": []}, False)
    assert nothing["changed"] is False and nothing["actions"] == [] and not db.fixes_made(nothing, False)


def test_a_failed_setting_escalates_with_its_reason() -> None:
    failed = st.with_settings({}, loop(run(msg="Cannot set work_mem: permission denied")), False)
    assert failed["failed_actions"] == 1 and failed["changed"] is False
    found = db.verdict({"problem": "", "mode": "recover", "fix": failed, "fixed": False})
    assert found["outcome"] == "escalate"
    assert "failed: Cannot set work_mem: permission denied" in found["reason"]
