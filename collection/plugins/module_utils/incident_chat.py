# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Pivotal Flow SRE <sre@pivotal-flow.example>
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Decisions of the chat incident sinks beyond Slack: Mattermost, Matrix, Microsoft Teams.

The role's ``sink_mattermost.yml``, ``sink_matrix.yml`` and ``sink_teams.yml`` only send what
these pure functions decide: which API calls a document makes (``calls``), the request paths and
bodies, and the handle kept in the incident record. Success, retry and the failure line are
``module_utils/incident_saas.py``'s (``response_ok``/``response_done``/``failure_line``: any 2xx
is a success there, 408/425/429/5xx and no answer are retried). No Ansible import.

Why the APIs directly (ansible.builtin.uri) and not a module:
- Mattermost: ``community.general.mattermost`` posts through an incoming webhook, which answers
  no post id, so the message can never be edited nor replied to in a thread. The REST API v4
  with a bot token does both (``POST /api/v4/posts``, ``PUT /api/v4/posts/{id}/patch``).
- Matrix: no module in community.general; the client-server API v3 is plain JSON over HTTPS.
- Teams: incoming webhooks and Workflows webhooks accept a message and answer no id: a message
  cannot be edited in place nor threaded. The sink posts one message per document, the most
  this channel allows.

Alert data in a message is data: link syntax is broken (``](`` gets a zero-width space) and
``@`` mentions are neutralised, so an alert cannot hide a link or page a whole channel.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import hashlib
import re

from urllib.parse import quote

POST = "post"  # the incident's message (Mattermost post, Matrix event, Teams message)
UPDATE = "update"  # the same message edited in place (Mattermost patch, Matrix m.replace)
REPLY = "reply"  # this run, in the message's thread (Mattermost root_id, Matrix m.thread)

ACTIONS = frozenset(("create", "update", "resolve", "trigger", "change", "skip"))
KINDS = ("mattermost", "matrix", "teams")

ZWSP = u"\u200b"
TEXT_MAX = 16000  # Mattermost's default MaxPostSize is 16383; Matrix events stay far below 64 KiB
_TRUNCATED = "\n...(truncated)"

MATTERMOST_POST_ID = re.compile(r"^[A-Za-z0-9]{1,64}$")
MATRIX_ROOM_ID = re.compile(r"^![^\s/]{1,200}:[A-Za-z0-9.:\[\]-]{1,255}$")
MATRIX_EVENT_ID = re.compile(r"^\$[A-Za-z0-9._~+/=:-]{1,255}$")


class ChatError(ValueError):
    pass


def _handle_id(kind, handle):
    handle = handle if isinstance(handle, dict) else {}
    if kind == "mattermost":
        return handle.get("post_id") and handle.get("channel_id")
    if kind == "matrix":
        return handle.get("event_id") and handle.get("room_id")
    return None


def calls(kind, action, handle=None, check_mode=False):
    """The API calls one document makes, in order: a post first, then an edit in place and a
    thread reply per later document. A handle the edit needs is missing (the post failed last
    time): post, never edit. Teams answers no id: one post per document. Check mode, an
    unknown action or kind: none."""
    if check_mode or action not in ACTIONS or action == "skip" or kind not in KINDS:
        return []
    if kind == "teams" or not _handle_id(kind, handle):
        return [POST]
    return [UPDATE, REPLY]


def chat_text(text):
    """Markdown-ish text with alert data defused: ``[x](url)`` cannot hide a link (``](`` is
    broken by a zero-width space) and ``@channel``/``@all``/``@here``/``@user`` do not mention
    (``@`` is followed by one). Cut before defusing, so the cut never splits a replacement."""
    text = str(text or "")
    if len(text) > TEXT_MAX:
        text = text[: TEXT_MAX - len(_TRUNCATED)] + _TRUNCATED
    return re.sub(r"@(?=\w)", "@" + ZWSP, text.replace("](", "]" + ZWSP + "("))


# --- Mattermost ------------------------------------------------------------------------------


def mattermost_post_id(value):
    """A post id from the server's answer, checked: it becomes part of the patch URL."""
    if isinstance(value, bool) or not isinstance(value, str) or not MATTERMOST_POST_ID.match(value):
        raise ChatError("Mattermost answered without a usable post id")
    return value


def mattermost_request(call, channel_id, text, handle=None):
    """{method, path, body} of a Mattermost REST API v4 call (the task adds the base URL and
    the bot token)."""
    handle = handle if isinstance(handle, dict) else {}
    if call == POST:
        return {"method": "POST", "path": "/api/v4/posts",
                "body": {"channel_id": channel_id, "message": chat_text(text)}}
    if call == UPDATE:
        post_id = mattermost_post_id(handle.get("post_id"))
        return {"method": "PUT", "path": "/api/v4/posts/%s/patch" % post_id,
                "body": {"message": chat_text(text)}}
    if call == REPLY:
        return {"method": "POST", "path": "/api/v4/posts",
                "body": {"channel_id": str(handle.get("channel_id") or ""), "root_id": mattermost_post_id(handle.get("post_id")),
                         "message": chat_text(text)}}
    raise ChatError("not a Mattermost call of this sink: %r" % (call,))


def mattermost_handle(handle, posted):
    """The handle after this document: the post id and channel id Mattermost answered to the
    first post (edits and replies keep it)."""
    handle = dict(handle) if isinstance(handle, dict) else {}
    data = (posted or {}).get("json") if isinstance(posted, dict) else None
    if isinstance(data, dict) and MATTERMOST_POST_ID.match(str(data.get("id") or "")):
        handle.update(post_id=str(data["id"]), channel_id=str(data.get("channel_id") or ""))
    return handle


# --- Matrix ----------------------------------------------------------------------------------


def matrix_room(room_id):
    """The room id, checked and URL-encoded for the path (``!abc:example.org`` ->
    ``%21abc%3Aexample.org``). An alias (``#room:server``) cannot be sent to: refused."""
    room_id = str(room_id or "")
    if not MATRIX_ROOM_ID.match(room_id):
        raise ChatError("the Matrix sink needs a room id like !abc:example.org")
    return quote(room_id, safe="")


def matrix_txn_id(incident_key, run_id, call):
    """A transaction id that is the same for a retried request (the homeserver then answers the
    first event instead of sending a second) and different for every call of every run."""
    seed = "\0".join((str(incident_key), str(run_id), str(call)))
    return "pflow-" + hashlib.sha256(seed.encode("utf-8")).hexdigest()[:32]


def _matrix_content(text):
    # Plain body only (no formatted_body: no HTML from alert data) and empty intentional
    # mentions, which also switch off the legacy body-keyword rules (@room, display names).
    return {"msgtype": "m.text", "body": chat_text(text), "m.mentions": {}}


def matrix_request(call, room_id, text, incident_key, run_id, handle=None):
    """{method, path, body} of a client-server API v3 m.room.message send (the task adds the
    homeserver URL and the access token)."""
    handle = handle if isinstance(handle, dict) else {}
    content = _matrix_content(text)
    if call == POST:
        body = content
    elif call == UPDATE:
        event_id = _matrix_event(handle)
        room_id = handle.get("room_id")
        body = dict(content, body="* " + content["body"])
        body["m.new_content"] = _matrix_content(text)
        body["m.relates_to"] = {"rel_type": "m.replace", "event_id": event_id}
    elif call == REPLY:
        event_id = _matrix_event(handle)
        room_id = handle.get("room_id")
        body = dict(content)
        body["m.relates_to"] = {"rel_type": "m.thread", "event_id": event_id, "is_falling_back": True,
                                "m.in_reply_to": {"event_id": event_id}}
    else:
        raise ChatError("not a Matrix call of this sink: %r" % (call,))
    path = "/_matrix/client/v3/rooms/%s/send/m.room.message/%s" % (
        matrix_room(room_id), matrix_txn_id(incident_key, run_id, call))
    return {"method": "PUT", "path": path, "body": body}


def _matrix_event(handle):
    event_id = str(handle.get("event_id") or "")
    if not MATRIX_EVENT_ID.match(event_id):
        raise ChatError("the incident record holds no usable Matrix event id")
    return event_id


def matrix_handle(handle, posted, room_id):
    """The handle after this document: the room id and the event id of the first message."""
    handle = dict(handle) if isinstance(handle, dict) else {}
    data = (posted or {}).get("json") if isinstance(posted, dict) else None
    if isinstance(data, dict) and MATRIX_EVENT_ID.match(str(data.get("event_id") or "")):
        handle.update(event_id=str(data["event_id"]), room_id=str(room_id))
    return handle


# --- Microsoft Teams -------------------------------------------------------------------------


def teams_body(title, text):
    """A Workflows webhook message: one Adaptive Card (1.4), the title in bold, the text
    wrapped. TextBlock renders a subset of Markdown: links are defused as in chat_text."""
    card = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": [
            {"type": "TextBlock", "text": chat_text(title), "weight": "Bolder", "size": "Medium", "wrap": True},
            {"type": "TextBlock", "text": chat_text(text), "wrap": True},
        ],
    }
    return {"type": "message", "attachments": [
        {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card}]}


def teams_handle(handle, done):
    """Teams answers no message id: the handle only counts the messages posted."""
    handle = dict(handle) if isinstance(handle, dict) else {}
    if POST in (done or ()):
        handle["posts"] = int(handle.get("posts") or 0) + 1
    return handle


# --- Email -----------------------------------------------------------------------------------


def email_subject(handle, subject):
    """The first email of an incident carries this run's subject; every later one answers the
    first (``Re: <first subject>``), so mail clients that thread by subject agree with the
    In-Reply-To/References thread."""
    handle = handle if isinstance(handle, dict) else {}
    first = handle.get("subject")
    return "Re: %s" % first if first else str(subject or "")


def email_handle(handle, root, subject):
    """The email handle: the thread's root id, the first subject, the number of emails sent."""
    handle = handle if isinstance(handle, dict) else {}
    return {"root": str(root), "subject": str(handle.get("subject") or subject or ""),
            "messages": int(handle.get("messages") or 0) + 1}
