"""The chat APIs of the recording endpoint (recording_endpoint.py) beyond Slack: Mattermost REST
API v4, the Matrix client-server API v3 and a Microsoft Teams Workflows webhook.

They answer as the real servers do for the calls the sinks make and check what those check: a
bearer token on every request; Mattermost's 201 post ``{id, channel_id, root_id, message}``, a
patch of a known post only, a reply (``root_id``) to a known post only; Matrix's
``{event_id}`` for a send, the same event again for a transaction id it has seen (the spec's
idempotency), an edit (``m.replace``) or thread reply (``m.thread``) of a known event of the same
room only, and the room id percent-encoded in the path; Teams' 202 for an Adaptive Card message.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from aiohttp import web

PREFIXES = ("/mattermost/", "/matrix/", "/teams/")
MATTERMOST_CHANNEL_ID = "pflowopschannel00000000000"
_MATRIX_SEND = re.compile(
    r"^/matrix/_matrix/client/v3/rooms/(?P<room>[^/]+)/send/m\.room\.message/(?P<txn>[^/]+)$"
)


def _mm_error(status: int, message: str) -> web.Response:
    return web.json_response(
        {"id": "api.error", "message": message, "status_code": status}, status=status
    )


def _mx_error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"errcode": code, "error": message}, status=status)


@dataclass
class ChatApis:
    posts: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    txns: dict[tuple[str, str], str] = field(default_factory=dict)
    raw_paths: list[str] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def reset(self) -> None:
        self.posts.clear()
        self.events.clear()
        self.txns.clear()
        self.raw_paths.clear()

    def handle(
        self, method: str, raw_path: str, headers: dict[str, str], body: Any
    ) -> web.Response:
        self.raw_paths.append(raw_path)
        token = headers.get("Authorization", "").removeprefix("Bearer ").strip()
        body = body if isinstance(body, dict) else {}
        path = unquote(raw_path.split("?", 1)[0])
        if path.startswith("/mattermost/"):
            if not token:
                return _mm_error(401, "Invalid or expired session, please login again.")
            return self._mattermost(method, path.removeprefix("/mattermost"), body)
        if path.startswith("/matrix/"):
            if not token:
                return _mx_error(401, "M_MISSING_TOKEN", "Missing access token")
            return self._matrix(method, raw_path, token, body)
        return self._teams(method, body)

    def _mattermost(self, method: str, path: str, body: dict[str, Any]) -> web.Response:
        if method == "POST" and path == "/api/v4/posts":
            if not body.get("channel_id") or not isinstance(body.get("message"), str):
                return _mm_error(400, "Invalid channel_id or message parameter")
            root = body.get("root_id") or ""
            if root and root not in self.posts:
                return _mm_error(400, "Invalid RootId parameter")
            post_id = f"pflowpost{next(self._ids):017d}"
            self.posts[post_id] = {
                "id": post_id,
                "channel_id": body["channel_id"],
                "root_id": root,
                "message": body["message"],
            }
            return web.json_response(self.posts[post_id], status=201)
        parts = path.strip("/").split("/")
        if method == "PUT" and len(parts) == 5 and parts[:3] == ["api", "v4", "posts"]:
            if parts[4] != "patch" or parts[3] not in self.posts:
                return _mm_error(404, "Unable to find the existing post to patch.")
            self.posts[parts[3]]["message"] = body.get("message", "")
            return web.json_response(self.posts[parts[3]])
        return _mm_error(404, "Sorry, we could not find the page.")

    def _matrix(self, method: str, raw_path: str, token: str, body: dict[str, Any]) -> web.Response:
        match = _MATRIX_SEND.match(raw_path.split("?", 1)[0])
        if method != "PUT" or not match:
            return _mx_error(404, "M_UNRECOGNIZED", "Unrecognized request")
        encoded, txn = match.group("room"), match.group("txn")
        room = unquote(encoded)
        if "!" in encoded or ":" in encoded:  # a client that does not encode the room id
            return _mx_error(400, "M_INVALID_PARAM", "room id not percent-encoded")
        if (token, txn) in self.txns:  # the spec: the same transaction is the same event
            return web.json_response({"event_id": self.txns[(token, txn)]})
        if body.get("msgtype") != "m.text" or not isinstance(body.get("body"), str):
            return _mx_error(400, "M_BAD_JSON", "msgtype and body are required")
        relates = body.get("m.relates_to") or {}
        if relates:
            target = self.events.get(relates.get("event_id", ""))
            if relates.get("rel_type") not in ("m.replace", "m.thread"):
                return _mx_error(400, "M_BAD_JSON", "unknown relation")
            if target is None or target["room"] != room:
                return _mx_error(400, "M_BAD_JSON", "the related event is not in this room")
            if relates["rel_type"] == "m.replace" and "m.new_content" not in body:
                return _mx_error(400, "M_BAD_JSON", "an edit needs m.new_content")
        event_id = f"$pflowevent{next(self._ids)}:matrix.test"
        self.events[event_id] = {"room": room, "content": body}
        self.txns[(token, txn)] = event_id
        return web.json_response({"event_id": event_id})

    def _teams(self, method: str, body: dict[str, Any]) -> web.Response:
        attachments = body.get("attachments") or [{}]
        if (
            method != "POST"
            or body.get("type") != "message"
            or attachments[0].get("contentType") != "application/vnd.microsoft.card.adaptive"
        ):
            return web.json_response({"error": "bad request"}, status=400)
        return web.Response(status=202)
