"""Real servers for the incident sinks (issue 16): an SMTP server (aiosmtpd) that keeps every
delivered message, and a ticket tracker speaking the generic ticket webhook (the incident role's
README) that records every request and hands out ticket ids. Both on free loopback ports."""

from __future__ import annotations

import email
import email.policy
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from pflow_ops.sandbox.net import free_ports


@dataclass
class Mailbox:
    messages: list[EmailMessage] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        self.messages.append(msg)
        return "250 Message accepted for delivery"


@contextmanager
def smtp_server(user: str, password: str) -> Iterator[tuple[int, Mailbox]]:
    """An SMTP server that takes mail only after AUTH with ``user``/``password`` (plain text on
    loopback: aiosmtpd's auth_require_tls off), so a delivered message proves the sink logged in."""
    (port,) = free_ports(1)
    box = Mailbox()

    def authenticator(
        server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            user.encode(),
            password.encode(),
        )
        return AuthResult(success=ok)

    controller = Controller(
        box,
        hostname="127.0.0.1",
        port=port,
        authenticator=authenticator,
        auth_required=True,
        auth_require_tls=False,
    )
    controller.start()
    try:
        yield port, box
    finally:
        controller.stop()


@dataclass
class Tracker:
    """What the tracker saw: (method, path, authorization, json body), and its tickets."""

    token: str
    requests: list[tuple[str, str, str, dict[str, Any]]] = field(default_factory=list)
    tickets: dict[str, dict[str, Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, method: str, path: str, auth: str, body: dict[str, Any]) -> tuple[int, Any]:
        with self.lock:
            self.requests.append((method, path, auth, body))
            if auth != f"Bearer {self.token}":
                return 401, {"error": "unauthorized"}
            parts = [p for p in path.split("/") if p]
            if method == "POST" and parts == ["tickets"]:
                tid = f"T-{len(self.tickets) + 1}"
                self.tickets[tid] = {**body, "comments": [], "status": "open"}
                return 201, {"id": tid}
            if method == "POST" and len(parts) == 3 and parts[0] == "tickets":
                ticket = self.tickets.get(parts[1])
                if ticket is None:
                    return 404, {"error": "no such ticket"}
                ticket["comments"].append(body)
                if parts[2] == "resolve":
                    ticket["status"] = "resolved"
                return 201, {"ok": True}
            return 404, {"error": "no such endpoint"}


@contextmanager
def ticket_tracker(token: str) -> Iterator[tuple[str, Tracker]]:
    tracker = Tracker(token)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                body = {"unparsed": True}
            status, answer = tracker.handle(
                "POST", self.path, self.headers.get("Authorization", ""), body
            )
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", tracker
    finally:
        server.shutdown()
        server.server_close()
