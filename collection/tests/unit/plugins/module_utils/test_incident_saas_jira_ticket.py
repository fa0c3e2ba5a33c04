"""Jira wiki-markup escaping and the Jira / ticket-webhook handles and calls, a test per branch:
alert text renders as text in Jira, never as markup, and the handles are decided in Python."""

from __future__ import annotations

import pytest
from ansible_collections.pivotal.flow_ops.plugins.module_utils import incident_saas as saas

# --- Jira markup -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{code}rm -rf /{code}", r"\{code\}rm \-rf /\{code\}"),
        ("{noformat}x{noformat}", r"\{noformat\}x\{noformat\}"),
        ("{color:red}alarm{color}", r"\{color:red\}alarm\{color\}"),
        ("{{monospace}}", r"\{\{monospace\}\}"),
        ("[click|https://evil.example]", r"\[click\|https://evil.example\]"),
        ("[~admin] please", r"\[\~admin\] please"),
        ("!https://evil.example/x.png!", r"\!https://evil.example/x.png\!"),
        ("||head||\n|cell|", "\\|\\|head\\|\\|\n\\|cell\\|"),
        ("*bold* _em_ +ins+ ^sup^ ~sub~ ??cite??", r"\*bold\* \_em\_ \+ins\+ \^sup\^ \~sub\~ \?\?cite\?\?"),
        ("-strike-", r"\-strike\-"),
        ("----", r"\-\-\-\-"),
        ("# one\n* two\n- three", "\\# one\n\\* two\n\\- three"),
        # The backslash: a Jira escape, and two of them a line break.
        ("a\\\\b \\*", "a&#92;&#92;b &#92;\\*"),
    ],
)
def test_jira_text_renders_markup_characters_as_text(text, expected) -> None:
    assert saas.jira_text(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("h1. Owned", "h1&#46; Owned"),
        ("ok\n  h3. sub", "ok\n  h3&#46; sub"),
        ("bq. quoted", "bq&#46; quoted"),
        # Mid-line they are not markup and stay as they are.
        ("see h1. here", "see h1. here"),
        ("h7. no such heading", "h7. no such heading"),
    ],
)
def test_jira_text_defuses_headings_and_quotes_at_a_line_start(text, expected) -> None:
    assert saas.jira_text(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "restart backend on web-1: before=stopped after=running",
        "max_connections 100 (value 97 > threshold 90)",
        "run-2 at 2026-12-05T12:00:00Z",
        "",
    ],
)
def test_jira_text_leaves_ordinary_findings_readable(text) -> None:
    assert saas.jira_text(text) == text


def test_jira_text_takes_none() -> None:
    assert saas.jira_text(None) == ""


def test_the_jira_handle_is_the_issue_opened_else_the_one_kept() -> None:
    assert saas.jira_handle({}, "OPS-1") == {"issue": "OPS-1"}
    assert saas.jira_handle({"issue": "OPS-1"}, "") == {"issue": "OPS-1"}
    assert saas.jira_handle(None, "") == {}


# --- ticket webhook --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "handle", "expected"),
    [
        ("create", {}, ["create", "comment"]),
        ("update", {"id": "T-1"}, ["comment"]),
        ("resolve", {"id": "T-1"}, ["resolve"]),
        # The create failed last time: open the ticket first.
        ("update", {}, ["create", "comment"]),
        ("resolve", {"comments": 1}, ["create", "resolve"]),
        ("skip", {"id": "T-1"}, []),
    ],
)
def test_the_ticket_is_opened_once_commented_per_run_and_resolved_on_resolve(
    action, handle, expected
) -> None:
    assert saas.calls("ticket", action, handle) == expected
    assert saas.calls("ticket", action, handle, check_mode=True) == []


def test_the_ticket_id_comes_from_the_create_answer_else_the_handle() -> None:
    created = {"status": 201, "json": {"id": "T-9"}}
    assert saas.ticket_answer({"id": "T-1"}, created) == {"id": "T-9"}
    assert saas.ticket_answer({"id": "T-1"}, {"skipped": True}) == {"id": "T-1"}
    assert saas.ticket_answer({"id": "T-1"}, None) == {"id": "T-1"}
    assert saas.ticket_answer(None, {"status": 201, "json": ["not", "a", "dict"]}) == {}


def test_the_ticket_handle_counts_comments_and_is_empty_without_an_id() -> None:
    assert saas.ticket_handle({}, "T-1", ["create", "comment"]) == {"id": "T-1", "comments": 1}
    assert saas.ticket_handle({"id": "T-1", "comments": "2"}, "T-1", ["resolve"]) == {
        "id": "T-1",
        "comments": 3,
    }
    # A failure after the ticket was opened keeps it (no comment counted); none without an id.
    assert saas.ticket_handle({"comments": 1}, "T-1") == {"id": "T-1", "comments": 1}
    assert saas.ticket_handle({"id": "T-1"}, "") == {}
    assert saas.ticket_handle(None, "T-2", ["comment"]) == {"id": "T-2", "comments": 1}
