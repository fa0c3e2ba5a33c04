"""The HTTP side: ``POST /webhook`` (Alertmanager, bearer token), ``GET /metrics``, ``/healthz``.

Every refusal is answered with its status and counted, and none of them can take the server
down: the body is read only after the path, method, token, content type and length passed, and
never beyond ``--max-body``; a slow client is cut off by a socket timeout and a total deadline;
connections beyond a fixed number get 503 instead of a thread each.

``/metrics`` and ``/healthz`` need no token: they carry counters whose labels come from the
catalogue and fixed reasons, never alert data, and a Prometheus scrape config then needs no
secret. The server binds loopback by default.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from pflow_ops.receiver import payload
from pflow_ops.receiver.core import Receiver
from pflow_ops.receiver.metrics import CONTENT_TYPE

WEBHOOK_PATH = "/webhook"
GET_PATHS = ("/metrics", "/healthz")
MAX_CONNECTIONS = 64
SOCKET_TIMEOUT = 10.0
BODY_DEADLINE = 30.0  # a body must arrive within this, however slowly it trickles


class ReceiverServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self, address: tuple[str, int], app: Receiver, token: bytes, max_body: int
    ) -> None:
        self.app = app
        self.token = token
        self.max_body = max_body
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__(address, Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):
            self.app.metrics.inc("requests_rejected_total", reason="overloaded")
            with contextlib.suppress(OSError):
                request.sendall(
                    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                    b"Connection: close\r\nRetry-After: 1\r\n\r\n"
                )
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-answer, or a bug: one line, never a traceback, keep serving.
        exc = sys.exc_info()[1]
        self.app.log("request_error", error=type(exc).__name__, detail=str(exc)[:200])


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "pflow-ops-receiver"
    timeout = SOCKET_TIMEOUT
    # Headers and body go out as two writes: with Nagle on, the body waits for the client's
    # delayed ACK (~40 ms a request on loopback).
    disable_nagle_algorithm = True
    server: ReceiverServer

    def version_string(self) -> str:
        return self.server_version  # no Python version in the Server header

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The base class's own refusals (a request line that is not HTTP, headers too long or
        too many, an unknown method): counted and logged like ours."""
        self.server.app.metrics.inc("requests_rejected_total", reason="bad_request")
        client = self.client_address[0] if self.client_address else "?"
        self.server.app.log("rejected", status=code, reason="bad_request", client=client)
        super().send_error(code, message, explain)

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: the receiver logs its own decisions and refusals."""

    # -- routing ---------------------------------------------------------------------------
    def _path(self) -> str:
        return self.path.split("?", 1)[0]

    def do_GET(self) -> None:
        path = self._path()
        if path == "/metrics":
            queued, running = self.server.app.depth()
            text = self.server.app.metrics.render(queued, running)
            self._send(200, text.encode(), CONTENT_TYPE)
        elif path == "/healthz":
            self._send(200, b"ok\n", "text/plain; charset=utf-8")
        elif path == WEBHOOK_PATH:
            self._reject(405, "method", "use POST", allow="POST")
        else:
            self._reject(404, "not_found", "no such path")

    def do_POST(self) -> None:
        path = self._path()
        if path == WEBHOOK_PATH:
            self._webhook()
        elif path in GET_PATHS:
            self._reject(405, "method", "use GET", allow="GET")
        else:
            self._reject(404, "not_found", "no such path")

    def _other_method(self) -> None:
        path = self._path()
        if path == WEBHOOK_PATH:
            self._reject(405, "method", "use POST", allow="POST")
        elif path in GET_PATHS:
            self._reject(405, "method", "use GET", allow="GET")
        else:
            self._reject(404, "not_found", "no such path")

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = _other_method

    # -- the webhook -----------------------------------------------------------------------
    def _webhook(self) -> None:
        if not self._authorised():
            self._reject(
                401,
                "unauthorized",
                "missing or bad bearer token",
                www_authenticate='Bearer realm="pflow-ops"',
            )
            return
        if self.headers.get_content_type() != "application/json":
            self._reject(415, "content_type", "expected Content-Type: application/json")
            return
        length = self._length()
        if length is None:
            return
        body = self._read_body(length)
        if body is None:
            return
        try:
            note = payload.parse(body)
        except payload.PayloadError as exc:
            self._reject(exc.status, exc.reason, str(exc), body_read=True)
            return
        try:
            decisions = self.server.app.receive(note)
        except OSError as exc:
            # The journal could not be written: nothing is acted on, Alertmanager retries.
            self.server.app.log("journal_error", error=str(exc)[:200])
            self._reject(503, "journal_error", "cannot journal the alerts", body_read=True)
            return
        answer = {"status": "ok", "alerts": decisions}
        self._send(200, json.dumps(answer).encode(), "application/json")

    def _authorised(self) -> bool:
        header = self.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer":
            return False
        # compare_digest takes the same time whatever the mismatch position.
        return hmac.compare_digest(given.strip().encode("utf-8", "replace"), self.server.token)

    def _length(self) -> int | None:
        if self.headers.get("Transfer-Encoding"):
            self._reject(411, "length_required", "chunked bodies are not accepted")
            return None
        raw = self.headers.get("Content-Length")
        if raw is None:
            self._reject(411, "length_required", "Content-Length is required")
            return None
        if not raw.strip().isdigit():
            self._reject(400, "bad_length", "bad Content-Length")
            return None
        length = int(raw)
        if length > self.server.max_body:
            self._reject(413, "too_large", f"body over {self.server.max_body} bytes")
            return None
        return length

    def _read_body(self, length: int) -> bytes | None:
        chunks: list[bytes] = []
        remaining = length
        deadline = time.monotonic() + BODY_DEADLINE
        try:
            while remaining > 0:
                if time.monotonic() > deadline:
                    raise TimeoutError
                chunk = self.rfile.read1(min(remaining, 65536))
                if not chunk:
                    self._reject(400, "truncated", "body shorter than Content-Length")
                    return None
                chunks.append(chunk)
                remaining -= len(chunk)
        except TimeoutError:
            self._reject(408, "timeout", "body not received in time")
            return None
        return b"".join(chunks)

    # -- answers ---------------------------------------------------------------------------
    def _reject(
        self,
        status: int,
        reason: str,
        message: str,
        body_read: bool = False,
        *,
        allow: str = "",
        www_authenticate: str = "",
    ) -> None:
        app = self.server.app
        app.metrics.inc("requests_rejected_total", reason=reason)
        app.log("rejected", status=status, reason=reason, client=self.client_address[0])
        headers = {}
        if allow:
            headers["Allow"] = allow
        if www_authenticate:
            headers["WWW-Authenticate"] = www_authenticate
        body = json.dumps({"status": "error", "error": message}).encode()
        # An unread body would be taken for the next request: close the connection instead.
        self._send(status, body, "application/json", close=not body_read, headers=headers)

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str,
        close: bool = False,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
