"""settings_diff: the --diff of a tuning module, one branch per test."""

from __future__ import annotations

from ansible_collections.pivotal.flow_ops.plugins.module_utils.change_diff import settings_diff

SET = ("set", "would set (check mode)")


def action(target: str, result: str, kind: str = "config_set") -> dict[str, str]:
    return {"action": kind, "target": target, "before": "old", "after": "new", "result": result}


def test_made_and_would_be_made_changes_are_the_diff() -> None:
    diff = settings_diff(
        [action("maxmemory", "set"), action("maxmemory-policy", "would set (check mode)")],
        "config_set",
        SET,
        "redis 127.0.0.1:6379",
    )
    assert diff == {
        "before_header": "redis 127.0.0.1:6379 (before)",
        "after_header": "redis 127.0.0.1:6379 (after)",
        "before": "maxmemory old\nmaxmemory-policy old\n",
        "after": "maxmemory new\nmaxmemory-policy new\n",
    }


def test_failed_changes_and_other_actions_are_not_in_it() -> None:
    actions = [
        action("maxmemory", "failed: ERR"),
        action("allocator", "purged", kind="memory_purge"),
        action("timeout", "set"),
    ]
    diff = settings_diff(actions, "config_set", SET, "redis")
    assert diff is not None
    assert diff["before"] == "timeout old\n" and diff["after"] == "timeout new\n"


def test_nothing_changed_is_no_diff() -> None:
    assert settings_diff([], "config_set", SET, "redis") is None
    assert settings_diff([action("x", "failed: ERR")], "config_set", SET, "redis") is None
