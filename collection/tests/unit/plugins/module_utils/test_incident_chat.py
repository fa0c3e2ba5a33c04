"""The chat sinks' decisions beyond Slack, a test per branch: Mattermost (post, patch in place,
reply by root_id), Matrix (send, m.replace edit, m.thread reply, idempotent txn ids, encoded
room id), Teams (one card per document), the text defusing, and the email subject and handle."""

from __future__ import annotations

import itertools

import pytest
from ansible_collections.pivotal.flow_ops.plugins.module_utils import incident
from ansible_collections.pivotal.flow_ops.plugins.module_utils import incident_chat as chat

POST_ID = "8xk3ms1q7ffbtmz5hpe4n9a0rw"
MM = {"post_id": POST_ID, "channel_id": "chan0000000000000000000000"}
ROOM = "!pflowops:matrix.example.org"
EVENT = "$Ab9_cD-eF0gH1iJ2kL3mN4oP5qR6sT7uV8wX9yZ0:matrix.example.org"
MX = {"event_id": EVENT, "room_id": ROOM}


# --- calls ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "action", "handle", "expected"),
    [
        ("mattermost", "create", {}, ["post"]),
        ("mattermost", "update", MM, ["update", "reply"]),
        ("mattermost", "resolve", MM, ["update", "reply"]),
        # The post failed last time (no handle, or half of one): post again, never edit.
        ("mattermost", "update", {}, ["post"]),
        ("mattermost", "update", {"post_id": POST_ID}, ["post"]),
        ("matrix", "create", {}, ["post"]),
        ("matrix", "update", MX, ["update", "reply"]),
        ("matrix", "resolve", MX, ["update", "reply"]),
        ("matrix", "update", {"event_id": EVENT}, ["post"]),
        ("matrix", "update", "not a dict", ["post"]),
        # Teams answers no message id: one message per document, whatever the handle.
        ("teams", "create", {}, ["post"]),
        ("teams", "update", {"posts": 2}, ["post"]),
        ("teams", "resolve", {"posts": 2}, ["post"]),
    ],
)
def test_chat_posts_once_then_edits_in_place_and_replies_in_thread(
    kind, action, handle, expected
) -> None:
    assert chat.calls(kind, action, handle) == expected


def test_skip_check_mode_unknown_actions_and_kinds_make_no_call() -> None:
    for kind, handle in itertools.product(chat.KINDS, ({}, MM, MX)):
        assert chat.calls(kind, "skip", handle) == []
        assert chat.calls(kind, "create", handle, check_mode=True) == []
        assert chat.calls(kind, "acknowledge", handle) == []
    assert chat.calls("slack", "create", {}) == []


# --- text ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain *bold* text", "plain *bold* text"),
        ("[click](https://evil.example)", "[click]\u200b(https://evil.example)"),
        ("![img](https://evil.example/x.png)", "![img]\u200b(https://evil.example/x.png)"),
        ("@channel @all @here @alice", "@\u200bchannel @\u200ball @\u200bhere @\u200balice"),
        ("mail me at ops@example.org", "mail me at ops@\u200bexample.org"),
        ("a lone @ stays", "a lone @ stays"),
        (None, ""),
    ],
)
def test_chat_text_cannot_hide_links_nor_mention(text, expected) -> None:
    assert chat.chat_text(text) == expected


def test_chat_text_is_bounded() -> None:
    out = chat.chat_text("x" * 50000)
    assert len(out) == chat.TEXT_MAX and out.endswith("...(truncated)")


# --- Mattermost ----------------------------------------------------------------------------


def test_mattermost_posts_patches_in_place_and_replies_by_root_id() -> None:
    assert chat.mattermost_request("post", "chan1", "@all down") == {
        "method": "POST",
        "path": "/api/v4/posts",
        "body": {"channel_id": "chan1", "message": "@\u200ball down"},
    }
    assert chat.mattermost_request("update", "ignored", "again", MM) == {
        "method": "PUT",
        "path": f"/api/v4/posts/{POST_ID}/patch",
        "body": {"message": "again"},
    }
    # The reply goes to the channel the post is in (the record's), under the post.
    assert chat.mattermost_request("reply", "ignored", "run 2", MM) == {
        "method": "POST",
        "path": "/api/v4/posts",
        "body": {"channel_id": MM["channel_id"], "root_id": POST_ID, "message": "run 2"},
    }


@pytest.mark.parametrize("post_id", ["../users/me", "", None, 42, True, "a" * 65, "x?y=1"])
def test_a_post_id_that_would_steer_the_url_is_refused(post_id) -> None:
    with pytest.raises(chat.ChatError, match="post id"):
        chat.mattermost_request("update", "c", "t", {"post_id": post_id, "channel_id": "c"})
    with pytest.raises(chat.ChatError, match="post id"):
        chat.mattermost_post_id(post_id)


def test_an_unknown_mattermost_call_is_refused() -> None:
    with pytest.raises(chat.ChatError, match="not a Mattermost call"):
        chat.mattermost_request("delete", "c", "t", MM)


def test_the_mattermost_handle_is_the_post_id_and_channel_answered() -> None:
    posted = {"status": 201, "json": {"id": POST_ID, "channel_id": "chan1", "message": "x"}}
    assert chat.mattermost_handle({}, posted) == {"post_id": POST_ID, "channel_id": "chan1"}
    # A skipped or failed post, or an answer without a usable id, leaves the handle as it is.
    assert chat.mattermost_handle(MM, {"skipped": True}) == MM
    assert chat.mattermost_handle({}, {"status": 500, "json": {"id": "../x"}}) == {}
    assert chat.mattermost_handle(None, None) == {}


# --- Matrix --------------------------------------------------------------------------------


def test_matrix_sends_a_plain_message_with_no_mentions_to_the_encoded_room() -> None:
    req = chat.matrix_request("post", ROOM, "@room <b>down</b>", "INC-1", "run-1")
    txn = chat.matrix_txn_id("INC-1", "run-1", "post")
    assert req["method"] == "PUT"
    assert req["path"] == (
        f"/_matrix/client/v3/rooms/%21pflowops%3Amatrix.example.org/send/m.room.message/{txn}"
    )
    # No formatted_body: alert text is never HTML; empty m.mentions pings nobody (@room neither).
    assert req["body"] == {"msgtype": "m.text", "body": "@\u200broom <b>down</b>", "m.mentions": {}}


def test_matrix_edits_by_m_replace_and_replies_in_the_thread() -> None:
    edit = chat.matrix_request("update", "!other:x.org", "new text", "INC-1", "run-2", MX)
    assert "%21pflowops%3Amatrix.example.org" in edit["path"]  # the record's room, not config
    assert edit["body"] == {
        "msgtype": "m.text",
        "body": "* new text",
        "m.mentions": {},
        "m.new_content": {"msgtype": "m.text", "body": "new text", "m.mentions": {}},
        "m.relates_to": {"rel_type": "m.replace", "event_id": EVENT},
    }
    reply = chat.matrix_request("reply", ROOM, "run 2", "INC-1", "run-2", MX)
    assert reply["body"]["m.relates_to"] == {
        "rel_type": "m.thread",
        "event_id": EVENT,
        "is_falling_back": True,
        "m.in_reply_to": {"event_id": EVENT},
    }
    assert reply["body"]["body"] == "run 2" and "m.new_content" not in reply["body"]


def test_matrix_txn_ids_repeat_for_a_retry_and_differ_per_call_run_and_incident() -> None:
    one = chat.matrix_txn_id("INC-1", "run-1", "post")
    assert one == chat.matrix_txn_id("INC-1", "run-1", "post")
    others = {
        chat.matrix_txn_id("INC-1", "run-1", "update"),
        chat.matrix_txn_id("INC-1", "run-2", "post"),
        chat.matrix_txn_id("INC-2", "run-1", "post"),
        chat.matrix_txn_id("INC-1run-1", "", "post"),  # no ambiguity from concatenation
    }
    assert one not in others and len(others) == 4
    assert one.startswith("pflow-") and len(one) == 38


@pytest.mark.parametrize(
    "room", ["#alias:example.org", "!no-server", "", None, "!a/b:example.org", "!a:ex ample.org"]
)
def test_a_room_that_is_not_a_room_id_is_refused(room) -> None:
    with pytest.raises(chat.ChatError, match="room id"):
        chat.matrix_request("post", room, "t", "k", "r")


@pytest.mark.parametrize("event_id", ["", None, "no-dollar", "$has space", "$" + "a" * 256])
def test_an_edit_without_a_usable_event_id_is_refused(event_id) -> None:
    with pytest.raises(chat.ChatError, match="event id"):
        chat.matrix_request("update", ROOM, "t", "k", "r", {"event_id": event_id, "room_id": ROOM})


def test_an_unknown_matrix_call_is_refused() -> None:
    with pytest.raises(chat.ChatError, match="not a Matrix call"):
        chat.matrix_request("redact", ROOM, "t", "k", "r", MX)


def test_the_matrix_handle_is_the_room_and_the_first_event() -> None:
    assert chat.matrix_handle({}, {"status": 200, "json": {"event_id": EVENT}}, ROOM) == MX
    assert chat.matrix_handle(MX, {"skipped": True}, "!x:y.org") == MX
    assert chat.matrix_handle({}, {"json": {"event_id": "not-an-event"}}, ROOM) == {}
    assert chat.matrix_handle(None, "junk", ROOM) == {}


# --- Teams ---------------------------------------------------------------------------------


def test_teams_posts_one_adaptive_card_with_title_and_defused_text() -> None:
    body = chat.teams_body("[pflow-ops] rb-01 escalate", "see [here](https://evil.example)")
    assert body["type"] == "message"
    (attachment,) = body["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert (card["type"], card["version"]) == ("AdaptiveCard", "1.4")
    title, text = card["body"]
    assert title["text"] == "[pflow-ops] rb-01 escalate" and title["weight"] == "Bolder"
    assert text["text"] == "see [here]\u200b(https://evil.example)" and text["wrap"] is True


def test_the_teams_handle_counts_the_messages_posted() -> None:
    assert chat.teams_handle({}, ["post"]) == {"posts": 1}
    assert chat.teams_handle({"posts": 2}, ["post"]) == {"posts": 3}
    assert chat.teams_handle({"posts": 2}, []) == {"posts": 2}
    assert chat.teams_handle(None, None) == {}


# --- Email ---------------------------------------------------------------------------------


def test_the_first_email_has_the_runs_subject_and_every_later_one_answers_it() -> None:
    assert chat.email_subject({}, "[pflow-ops] first") == "[pflow-ops] first"
    assert chat.email_subject(None, None) == ""
    assert chat.email_subject({"subject": "[pflow-ops] first"}, "[pflow-ops] second") == (
        "Re: [pflow-ops] first"
    )


def test_the_email_handle_keeps_the_root_and_first_subject_and_counts() -> None:
    first = chat.email_handle({}, "<root@x>", "S1")
    assert first == {"root": "<root@x>", "subject": "S1", "messages": 1}
    assert chat.email_handle(first, "<root@x>", "S2") == {
        "root": "<root@x>",
        "subject": "S1",
        "messages": 2,
    }


# --- registration in the incident core -----------------------------------------------------


@pytest.mark.parametrize("kind", chat.KINDS)
def test_the_new_kinds_are_chat_sinks_of_the_incident_core(kind) -> None:
    assert incident.FAMILY[kind] == "chat" and kind in incident.SINK_KINDS
    assert incident.check_sinks([{"kind": kind}]) == [{"kind": kind}]
    assert incident.sink_action(kind, {}, "documented", "escalate") == "create"
    assert incident.sink_action(kind, {"x": 1}, "documented", "recovered") == "update"
    assert incident.sink_action(kind, {"x": 1}, "resolved", "recovered") == "resolve"
    assert incident.sink_action(kind, {"x": 1}, "still_firing", "escalate", acked=True) == "skip"
