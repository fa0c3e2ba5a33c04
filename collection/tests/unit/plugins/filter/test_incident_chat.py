"""The chat and Jira/ticket filters: what the incident role's sink files call, including a
request the decisions refuse failing the task with one line (the sink's rescue records it)."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.pivotal.flow_ops.plugins.filter import incident_chat, incident_saas

CHAT = incident_chat.FilterModule().filters()
SAAS = incident_saas.FilterModule().filters()


def test_the_role_finds_every_chat_filter() -> None:
    assert set(CHAT) == {
        "incident_chat_calls",
        "incident_mattermost_request",
        "incident_mattermost_handle",
        "incident_matrix_request",
        "incident_matrix_handle",
        "incident_teams_body",
        "incident_teams_handle",
        "incident_email_subject",
        "incident_email_handle",
    }
    assert {
        "incident_jira_text",
        "incident_jira_handle",
        "incident_ticket_answer",
        "incident_ticket_handle",
    } <= set(SAAS)


def test_a_refused_request_is_a_filter_error_of_one_line() -> None:
    with pytest.raises(AnsibleFilterError, match="room id"):
        CHAT["incident_matrix_request"]("post", "#alias:x.org", "t", "k", "r")
    with pytest.raises(AnsibleFilterError, match="post id"):
        CHAT["incident_mattermost_request"]("update", "c", "t", {"post_id": "../x"})


def test_the_filters_pass_values_through() -> None:
    req = CHAT["incident_mattermost_request"]("post", "chan1", "text")
    assert req["path"] == "/api/v4/posts"
    assert CHAT["incident_chat_calls"]("matrix", "create", {}) == ["post"]
    assert SAAS["incident_jira_text"]("{code}") == r"\{code\}"
