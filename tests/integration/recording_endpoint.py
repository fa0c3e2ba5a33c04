"""A local stand-in for the SaaS APIs the incident sinks call (Slack Web API, PagerDuty Events
API v2, Jira REST API 2; Mattermost, Matrix and Teams in recording_chat.py), recording every
request: method, path, headers and JSON body.

Slack, PagerDuty and Jira cannot run locally, so the tests point the sinks' configurable base URLs
here (``/slack/api``, ``/pagerduty``, ``/jira``) and assert the exact request sequence. It
answers as the real APIs do for the calls the sinks make (documented shapes: chat.postMessage
returns ``{ok, channel, ts}``, Events API v2 answers 202 ``{status, message, dedup_key}``, Jira
create returns ``{id, key, self}``) and checks what the real APIs check (a known ts for
chat.update, an event_action PagerDuty knows, a transition id the issue offers), so a wrong
request fails here as it would there. ``fail`` and ``hang`` inject the faults a sink must survive.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from pflow_ops.sandbox.net import free_ports
from tests.integration.recording_chat import PREFIXES as CHAT_PREFIXES
from tests.integration.recording_chat import ChatApis

SLACK_CHANNEL_ID = "C0PFLOWOPS"
JIRA_TRANSITIONS = [
    {"id": "11", "name": "To Do"},
    {"id": "21", "name": "In Progress"},
    {"id": "31", "name": "Done"},
]


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any

    @property
    def call(self) -> str:
        """A short name for the sequence asserts: ``METHOD path``."""
        return f"{self.method} {self.path}"


@dataclass
class _Fault:
    prefix: str
    status: int
    hang_s: float
    count: int


@dataclass
class RecordingEndpoint:
    port: int = 0
    requests: list[Recorded] = field(default_factory=list)
    _faults: list[_Fault] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _ts: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _issues: dict[str, str] = field(default_factory=dict)
    _messages: set[str] = field(default_factory=set)
    chat: ChatApis = field(default_factory=ChatApis)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def fail(self, prefix: str, status: int, count: int = 1000) -> None:
        """Answer the next ``count`` requests under ``prefix`` with ``status``."""
        with self._lock:
            self._faults.append(_Fault(prefix, status, 0.0, count))

    def hang(self, prefix: str, seconds: float, count: int = 1000) -> None:
        """Hold the next ``count`` requests under ``prefix`` for ``seconds`` (client timeouts)."""
        with self._lock:
            self._faults.append(_Fault(prefix, 0, seconds, count))

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self._faults.clear()
            self._issues.clear()
            self._messages.clear()
            self.chat.reset()

    def calls(self, prefix: str = "/") -> list[str]:
        return [r.call for r in self.requests if r.path.startswith(prefix)]

    def under(self, prefix: str) -> list[Recorded]:
        return [r for r in self.requests if r.path.startswith(prefix)]

    # --- server ----------------------------------------------------------------------------

    def _fault(self, path: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if path.startswith(fault.prefix) and fault.count > 0:
                    fault.count -= 1
                    return fault
        return None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body: Any = await request.json() if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        with self._lock:
            self.requests.append(
                Recorded(request.method, request.path, dict(request.headers), body)
            )
        fault = self._fault(request.path)
        if fault and fault.hang_s:
            await asyncio.sleep(fault.hang_s)
        if fault and fault.status:
            return web.json_response({"error": "injected fault"}, status=fault.status)
        path = request.path
        if path.startswith("/slack/api/"):
            return self._slack(
                path.removeprefix("/slack/api/"), body if isinstance(body, dict) else {}
            )
        if path.startswith("/pagerduty/"):
            return self._pagerduty(path, body)
        if path.startswith("/jira/rest/api/2/"):
            return self._jira(request.method, path.removeprefix("/jira/rest/api/2/"), body)
        if path.startswith(CHAT_PREFIXES):
            with self._lock:
                return self.chat.handle(
                    request.method, request.raw_path, dict(request.headers), body
                )
        return web.json_response({"error": "not found"}, status=404)

    def _slack(self, method: str, body: dict[str, Any]) -> web.Response:
        if method == "chat.postMessage":
            if body.get("thread_ts") and body["thread_ts"] not in self._messages:
                return web.json_response({"ok": False, "error": "thread_not_found"})
            ts = f"1764900000.{next(self._ts):06d}"
            self._messages.add(ts)
            return web.json_response({"ok": True, "channel": SLACK_CHANNEL_ID, "ts": ts})
        if method == "chat.update":
            if body.get("ts") not in self._messages or body.get("channel") != SLACK_CHANNEL_ID:
                return web.json_response({"ok": False, "error": "message_not_found"})
            return web.json_response(
                {
                    "ok": True,
                    "channel": SLACK_CHANNEL_ID,
                    "ts": body["ts"],
                    "text": body.get("text"),
                }
            )
        return web.json_response({"ok": False, "error": "unknown_method"})

    def _pagerduty(self, path: str, body: Any) -> web.Response:
        if not isinstance(body, dict) or not body.get("routing_key"):
            return web.json_response(
                {"status": "invalid event", "message": "Event object is invalid"}, status=400
            )
        if path == "/pagerduty/v2/change/enqueue":
            return web.json_response(
                {"status": "success", "message": "Change event processed"}, status=202
            )
        if path == "/pagerduty/v2/enqueue":
            if body.get("event_action") not in ("trigger", "acknowledge", "resolve"):
                return web.json_response(
                    {"status": "invalid event", "message": "bad event_action"}, status=400
                )
            key = body.get("dedup_key") or f"generated-{next(self._ts)}"
            return web.json_response(
                {"status": "success", "message": "Event processed", "dedup_key": key}, status=202
            )
        return web.json_response({"status": "not found"}, status=404)

    def _jira(self, method: str, path: str, body: Any) -> web.Response:
        parts = [p for p in path.split("/") if p]
        if method == "POST" and parts == ["issue"]:
            key = f"OPS-{len(self._issues) + 1}"
            self._issues[key] = "To Do"
            return web.json_response(
                {
                    "id": str(10000 + len(self._issues)),
                    "key": key,
                    "self": f"{self.url}/jira/rest/api/2/issue/{key}",
                },
                status=201,
            )
        if len(parts) == 3 and parts[0] == "issue" and parts[1] in self._issues:
            key, what = parts[1], parts[2]
            if what == "comment" and method == "POST":
                return web.json_response(
                    {"id": str(next(self._ts)), "body": (body or {}).get("body")}, status=201
                )
            if what == "transitions" and method == "GET":
                return web.json_response({"transitions": JIRA_TRANSITIONS})
            if what == "transitions" and method == "POST":
                wanted = ((body or {}).get("transition") or {}).get("id")
                names = {t["id"]: t["name"] for t in JIRA_TRANSITIONS}
                if wanted not in names:
                    return web.json_response({"errorMessages": ["no such transition"]}, status=400)
                self._issues[key] = names[wanted]
                return web.Response(status=204)
        return web.json_response({"errorMessages": ["Issue does not exist"]}, status=404)

    def issue_status(self, key: str) -> str | None:
        return self._issues.get(key)

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        (self.port,) = free_ports(1)
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        async def serve() -> None:
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", self._handle)
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
            ready.set()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(serve())
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="recording-endpoint", daemon=True)
        self._thread.start()
        if not ready.wait(30):
            raise RuntimeError("recording endpoint did not start")

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)
