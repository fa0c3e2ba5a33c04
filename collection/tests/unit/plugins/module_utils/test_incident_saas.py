"""The SaaS incident sinks' decisions, a test per branch: which API calls a document makes, the
PagerDuty dedup_key and severity, the request bodies, success / retry, and the failure line."""

from __future__ import annotations

import hashlib
import itertools

import pytest
from ansible_collections.pivotal.flow_ops.plugins.module_utils import incident_saas as saas

SLACK = {"channel": "C0PFLOWOPS", "ts": "1764900000.000001"}
GROUP_KEY = '{}/{severity="critical"}:{alertname="BackendServiceDown"}'


# --- calls ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "handle", "expected"),
    [
        ("create", {}, ["post"]),
        ("update", SLACK, ["update", "reply"]),
        ("resolve", SLACK, ["update", "reply"]),
        # A handle the action needs is missing (the create failed last time): post, never edit.
        ("update", {}, ["post"]),
        ("update", {"ts": "1.1"}, ["post"]),
        ("resolve", {}, ["post"]),
        ("skip", SLACK, []),
    ],
)
def test_slack_posts_once_then_edits_in_place_and_replies_in_thread(
    action, handle, expected
) -> None:
    assert saas.calls("slack", action, handle) == expected


@pytest.mark.parametrize(
    ("action", "handle", "changes", "expected"),
    [
        ("trigger", {}, ["a"], ["trigger", "change"]),
        ("trigger", {}, [], ["trigger"]),
        ("change", {}, ["a"], ["change"]),
        ("change", {}, [], []),
        ("update", {}, ["a"], ["change"]),
        ("create", {}, ["a"], ["change"]),
        ("resolve", {"dedup_key": "k", "triggered": True}, ["a"], ["resolve"]),
        # Never paged by this sink, or already resolved: nothing of ours to resolve.
        ("resolve", {}, [], []),
        ("resolve", {"dedup_key": "k", "triggered": False}, [], []),
        ("skip", {"dedup_key": "k", "triggered": True}, ["a"], []),
    ],
)
def test_pagerduty_triggers_records_changes_and_resolves_only_its_own_page(
    action, handle, changes, expected
) -> None:
    assert saas.calls("pagerduty", action, handle, changes) == expected


@pytest.mark.parametrize(
    ("action", "handle", "expected"),
    [
        ("create", {}, ["create"]),
        ("update", {"issue": "OPS-1"}, ["comment"]),
        ("update", {}, ["create"]),
        ("resolve", {"issue": "OPS-1"}, ["comment", "transition"]),
        ("resolve", {}, ["create", "transition"]),
        ("skip", {"issue": "OPS-1"}, []),
        # An escalation comments; it never transitions.
        ("trigger", {"issue": "OPS-1"}, ["comment"]),
    ],
)
def test_jira_creates_once_comments_per_run_and_transitions_only_on_resolve(
    action, handle, expected
) -> None:
    assert saas.calls("jira", action, handle) == expected


@pytest.mark.parametrize(
    ("event", "expected"), [("documented", ["trigger", "change"]), ("still_firing", ["trigger"])]
)
def test_change_events_come_from_the_runbooks_own_document_only(event, expected) -> None:
    """The closed loop's still_firing document re-pages; it does not resend the run's actions."""
    assert saas.calls("pagerduty", "trigger", {}, ["a"], event=event) == expected
    assert saas.calls("pagerduty", "change", {}, ["a"], event=event) == expected[1:]


def test_no_action_ever_acknowledges_a_page() -> None:
    handles = [
        {},
        {"dedup_key": "k", "triggered": True},
        {"dedup_key": "k", "triggered": False},
        SLACK,
        {"issue": "X-1"},
    ]
    for kind, action, handle in itertools.product(
        ("slack", "pagerduty", "jira"), saas.ACTIONS, handles
    ):
        assert "acknowledge" not in saas.calls(kind, action, handle, ["a"])


@pytest.mark.parametrize(
    ("kind", "action"), [("slack", "create"), ("pagerduty", "trigger"), ("jira", "resolve")]
)
def test_check_mode_and_unknown_actions_or_kinds_make_no_call(kind, action) -> None:
    assert saas.calls(kind, action, {}, ["a"], check_mode=True) == []
    assert saas.calls(kind, "acknowledge", {}, ["a"]) == []
    assert saas.calls("teams", action, {}, ["a"]) == []
    assert saas.calls(kind, action, "not a dict", ["a"]) == saas.calls(kind, action, {}, ["a"])


# --- PagerDuty -----------------------------------------------------------------------------


def test_the_dedup_key_is_alertmanagers_for_the_group() -> None:
    # notify.Key.Hash: the hex sha256 of the group key string (Alertmanager 0.25 notify/util.go).
    expected = hashlib.sha256(GROUP_KEY.encode()).hexdigest()
    assert saas.alertmanager_dedup_key(GROUP_KEY) == expected
    assert saas.dedup_key({}, GROUP_KEY, "3f2a9c0d") == expected


def test_the_dedup_key_falls_back_to_the_incident_key_and_then_never_changes() -> None:
    assert saas.dedup_key({}, "", "3f2a9c0d") == "3f2a9c0d"
    assert saas.dedup_key(None, None, "local/rb-01/run-1") == "local/rb-01/run-1"
    # Once used, the key stays: a later group key (a second alert) joins the same incident.
    assert saas.dedup_key({"dedup_key": "K"}, GROUP_KEY, "3f2a9c0d") == "K"


@pytest.mark.parametrize(
    ("severity", "expected"),
    [
        ("critical", "critical"),
        ("high", "error"),
        ("medium-high", "warning"),
        ("medium", "warning"),
        ("low", "info"),
        ("maintenance", "info"),
        (" Critical ", "critical"),
        ("warning", "warning"),
        ("info", "info"),
        ("error", "error"),
        # Unknown or missing: Alertmanager's own default, still a high-urgency page.
        ("sev0", "error"),
        ("", "error"),
        (None, "error"),
    ],
)
def test_catalogue_severities_map_to_pagerdutys_four(severity, expected) -> None:
    assert saas.pagerduty_severity(severity) == expected


def test_catalogue_severities_are_all_mapped() -> None:
    import pathlib

    import yaml

    catalogue = yaml.safe_load(
        (pathlib.Path(__file__).resolve().parents[5] / "catalogue.yml").read_text()
    )
    found = set()

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("severity"), str):
                found.add(node["severity"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(catalogue)
    assert found and found <= set(saas.SEVERITY_MAP)


def test_a_trigger_carries_key_severity_and_a_one_line_bounded_summary() -> None:
    event = saas.pagerduty_event(
        "trigger", "K", "line one\nline two " + "x" * 2000, "high", "", {"run_id": "r1"}
    )
    assert event["event_action"] == "trigger" and event["dedup_key"] == "K"
    assert "routing_key" not in event  # the task adds the secret
    payload = event["payload"]
    assert payload["severity"] == "error" and payload["source"] == "pflow-ops"
    assert "\n" not in payload["summary"] and len(payload["summary"]) == saas.PD_SUMMARY_MAX
    assert payload["summary"].startswith("line one line two") and payload["summary"].endswith("...")
    assert payload["custom_details"] == {"run_id": "r1"}
    assert saas.pagerduty_event("trigger", "K")["payload"]["summary"] == "pflow-ops incident"


def test_a_resolve_carries_only_the_key_and_acknowledge_is_refused() -> None:
    assert saas.pagerduty_event("resolve", "K") == {"event_action": "resolve", "dedup_key": "K"}
    with pytest.raises(ValueError, match="acknowledge"):
        saas.pagerduty_event("acknowledge", "K")


def test_change_summaries_are_one_line_each_and_blank_ones_dropped() -> None:
    assert saas.change_summaries(["restart\nbackend", "", None, "  "]) == ["restart backend"]
    assert saas.change_summaries(None) == []


def test_the_pager_handle_is_open_after_a_trigger_and_closed_after_a_resolve() -> None:
    assert saas.pagerduty_handle({}, "K", ["trigger", "change"]) == {
        "dedup_key": "K",
        "triggered": True,
    }
    assert saas.pagerduty_handle({"dedup_key": "K", "triggered": True}, "K", ["resolve"]) == {
        "dedup_key": "K",
        "triggered": False,
    }
    assert saas.pagerduty_handle({}, "K", ["change"]) == {}
    assert saas.pagerduty_handle(None, "K", []) == {}


# --- Slack ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<!channel> wake up", "&lt;!channel&gt; wake up"),
        ("<!here>", "&lt;!here&gt;"),
        ("<https://evil.example|docs>", "&lt;https://evil.example|docs&gt;"),
        ("a & b", "a &amp; b"),
        ("&lt;", "&amp;lt;"),  # escaped once: the text shows what the alert said
        ("*bold* `code`", "*bold* `code`"),
        (None, ""),
    ],
)
def test_slack_text_cannot_mention_or_hide_links(text, expected) -> None:
    assert saas.slack_text(text) == expected


def test_slack_text_is_bounded() -> None:
    text = saas.slack_text("x" * 10000)
    assert len(text) == saas.SLACK_TEXT_MAX and text.endswith("...(truncated)")


def test_slack_bodies_post_edit_by_ts_and_reply_in_the_thread() -> None:
    post = saas.slack_body("post", "#incidents", "<!channel>")
    assert post["channel"] == "#incidents" and "ts" not in post and "thread_ts" not in post
    assert (post["text"], post["parse"], post["link_names"]) == ("&lt;!channel&gt;", "none", False)
    update = saas.slack_body("update", "#incidents", "t", SLACK)
    assert (update["channel"], update["ts"]) == (
        SLACK["channel"],
        SLACK["ts"],
    ) and "thread_ts" not in update
    assert "unfurl_links" not in update
    reply = saas.slack_body("reply", "#incidents", "t", SLACK)
    assert (reply["channel"], reply["thread_ts"]) == (
        SLACK["channel"],
        SLACK["ts"],
    ) and "ts" not in reply
    with pytest.raises(ValueError):
        saas.slack_body("delete", "#incidents", "t", SLACK)


def test_the_slack_handle_is_the_channel_id_and_ts_slack_answered() -> None:
    posted = {"json": {"ok": True, "channel": "C0PFLOWOPS", "ts": "1.2"}}
    assert saas.slack_handle({}, posted) == {"channel": "C0PFLOWOPS", "ts": "1.2"}
    assert saas.slack_handle(SLACK, {}) == SLACK  # updates and replies keep it
    assert saas.slack_handle({}, {"json": {"ok": False, "error": "channel_not_found"}}) == {}
    assert saas.slack_handle(None, None) == {}


# --- responses -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "result", "ok", "done"),
    [
        ("slack", {"status": 200, "json": {"ok": True}}, True, True),
        (
            "slack",
            {"status": 200, "json": {"ok": False, "error": "channel_not_found"}},
            False,
            True,
        ),
        ("slack", {"status": 200, "json": {"ok": False, "error": "ratelimited"}}, False, False),
        ("slack", {"status": 200}, False, True),
        ("slack", {"status": 429}, False, False),
        ("slack", {"status": 503}, False, False),
        ("slack", {"status": -1, "msg": "Connection refused"}, False, False),
        ("pagerduty", {"status": 202, "json": {"status": "success"}}, True, True),
        ("pagerduty", {"status": 200}, False, True),
        ("pagerduty", {"status": 400}, False, True),
        ("pagerduty", {"status": 429}, False, False),
        ("pagerduty", {"status": 500}, False, False),
        ("pagerduty", {}, False, False),
        ("jira", {"status": 201}, True, True),
        ("jira", {"status": 404}, False, True),
        ("jira", None, False, False),
    ],
)
def test_success_and_retry_per_api(kind, result, ok, done) -> None:
    assert saas.response_ok(result, kind) is ok
    assert saas.response_done(result, kind) is done


def test_the_failure_line_is_one_bounded_line_with_status_and_reason() -> None:
    line = saas.failure_line(
        "slack", "post", {"status": 503, "attempts": 4, "msg": "Service\nUnavailable"}
    )
    assert line == "slack: post failed (HTTP 503): Service Unavailable"
    assert (
        saas.failure_line("pd", "trigger", {"status": -1, "msg": "timed out"})
        == "pd: trigger failed: timed out"
    )
    assert saas.failure_line(
        "s", "c", {"status": 200, "json": {"ok": False, "error": "invalid_auth"}}
    ) == ("s: c failed (HTTP 200): invalid_auth")
    assert saas.failure_line("s", "c", None) == "s: c failed"
    long = saas.failure_line("s", "c", {"msg": "x" * 5000})
    assert len(long) == saas.FAILURE_MAX and "\n" not in long


def test_the_failure_line_masks_a_secret_echoed_back_even_where_it_is_cut() -> None:
    secret = "xoxb-SECRET-TOKEN-0123456789"
    echoed = {"status": 401, "json": {"ok": False, "error": "bad token " + secret}}
    assert secret not in saas.failure_line("slack", "post", echoed, [secret])
    assert "***" in saas.failure_line("slack", "post", echoed, [secret, "", None])
    # The secret straddles the length limit: masked before the cut, no prefix of it is left.
    at_edge = {"msg": "x" * (saas.FAILURE_MAX - 30) + secret}
    assert "xoxb-SEC" not in saas.failure_line("s", "c", at_edge, [secret])


@pytest.mark.parametrize(
    ("calls", "expected"),
    [
        (["post", "reply"], {"status": "ok", "detail": "post, reply"}),
        ([], {"status": "skipped", "detail": "nothing to send"}),
        (None, {"status": "skipped", "detail": "nothing to send"}),
    ],
)
def test_a_sink_that_did_not_fail_says_what_it_sent(calls: object, expected: dict) -> None:
    assert saas.sent_summary(calls) == expected


PFLOW_KEY = '{}/{alertname=~"RedisDown|BackendServiceDown"}:{alertname="RedisDown", env="prod"}'
PAGER_ROUTE = '{}/{severity=~"critical|high"}'


@pytest.mark.parametrize(
    ("group_key", "route_key", "expected"),
    [
        # No route key: the PagerDuty config is in the pflow-ops receiver, the key as received.
        (PFLOW_KEY, "", PFLOW_KEY),
        # Another route: its key, the group labels kept.
        (PFLOW_KEY, PAGER_ROUTE, PAGER_ROUTE + ':{alertname="RedisDown", env="prod"}'),
        (PFLOW_KEY, "  " + PAGER_ROUTE + " ", PAGER_ROUTE + ':{alertname="RedisDown", env="prod"}'),
        ("", PAGER_ROUTE, ""),  # no group key: nothing to rewrite
        # Ambiguous or malformed: not rewritten (None), the caller keeps the received key.
        ('{}/{a="}:{"}:{alertname="X"}', PAGER_ROUTE, None),
        ('{}:{}:{}', PAGER_ROUTE, None),
        ("no-route-separator", PAGER_ROUTE, None),
        (PFLOW_KEY, "severity=critical", None),
    ],
)
def test_pager_group_key(group_key: str, route_key: str, expected: str | None) -> None:
    assert saas.pager_group_key(group_key, route_key) == expected


def test_dedup_key_follows_the_pager_route() -> None:
    pager_key = PAGER_ROUTE + ':{alertname="RedisDown", env="prod"}'
    assert saas.dedup_key({}, PFLOW_KEY, "INC-1", PAGER_ROUTE) == hashlib.sha256(
        pager_key.encode()
    ).hexdigest()
    # The received key when the rewrite is refused; the stored key always wins.
    assert saas.dedup_key({}, "odd", "INC-1", PAGER_ROUTE) == hashlib.sha256(b"odd").hexdigest()
    assert saas.dedup_key({"dedup_key": "kept"}, PFLOW_KEY, "INC-1", PAGER_ROUTE) == "kept"
    assert saas.dedup_key({}, "", "INC-1", PAGER_ROUTE) == saas.dedup_key({}, "", "INC-1")
