"""The HTTP side: ``POST /webhook`` (Alertmanager, bearer token), ``GET /metrics``, ``/healthz``.

Built on aiohttp's low-level server (one event loop, no thread per connection), because the
standard library's ``http.server`` took a thread slot per connection before authentication:
64 slow clients without a token took the receiver down. Here an idle or slow connection costs
a socket and a parser, nothing that authenticated requests or ``/healthz`` wait for:

- header deadline: a connection must deliver a complete request head within
  ``header_timeout`` of opening (for TLS, of its handshake) or of the first byte of its next
  request; else it is closed (``requests_rejected_total{reason="header_timeout"}``). aiohttp
  has no such timeout, hence ``connection.Connection`` (a ``RequestHandler`` with a timer);
- keep-alive idle timeout (aiohttp's own ``keepalive_timeout``);
- a connection cap: at ``max_connections`` open connections a NEW connection gets a 503 and is
  closed (``reason="overloaded"``, counted but not logged: a flood would write the log
  full); established ones, Alertmanager's keep-alive connection among them, are never dropped
  to make room. A TLS handshake in progress is not counted yet; it is bounded by the header
  deadline instead (``ssl_handshake_timeout``);
- no per-client limit: behind a proxy or NAT, and in the tests, every client has one address,
  and a per-address cap would let an attacker there lock out Alertmanager; the deadline, the
  token checked before any body is read and the cap bound what any client can hold;
- the journal write (fsync) and ``/metrics`` (which takes the queue lock) run in a small
  thread pool, never on the event loop.

Every refusal is answered with its status, counted and logged on one line: the body is read
only after the path, method, token, content type and length passed, never beyond
``max_body``, within a total deadline. ``/metrics`` and ``/healthz`` need no token: they carry
counters whose labels come from the catalogue and fixed reasons, never alert data, and a
Prometheus scrape config then needs no secret. The server binds loopback by default.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import socket
import ssl
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, cast

from aiohttp import web

from pflow_ops.receiver import payload
from pflow_ops.receiver.connection import Connection, Manager, client, error, response
from pflow_ops.receiver.core import Receiver
from pflow_ops.receiver.metrics import CONTENT_TYPE
from pflow_ops.receiver.tokens import TokenSource

WEBHOOK_PATH = "/webhook"
GET_PATHS = ("/metrics", "/healthz")
KNOWN_METHODS = frozenset({"GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"})
BODY_DEADLINE = 30.0  # a body must arrive within this, however slowly it trickles
KEEPALIVE_TIMEOUT = 75.0  # idle keep-alive connections (Go clients keep theirs 90 s)
RECEIVE_THREADS = 4  # journal writes are serialised by the receiver's lock anyway
BACKLOG = 512


@dataclass(frozen=True)
class Limits:
    max_body: int
    header_timeout: float = 10.0
    max_connections: int = 1024
    body_deadline: float = BODY_DEADLINE
    keepalive_timeout: float = KEEPALIVE_TIMEOUT


def listen(host: str, port: int) -> socket.socket:
    """The bound listening socket (OSError if the address is taken), made before the loop
    starts so that ``serve`` can fail with one line."""
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
    return socket.create_server((host, port), family=family, backlog=BACKLOG)


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    """A server context, TLS 1.2 at least (OSError or ssl.SSLError if the files are bad)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    return ctx


class ReceiverServer:
    def __init__(
        self,
        sock: socket.socket,
        app: Receiver,
        tokens: TokenSource,
        limits: Limits,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.sock = sock
        self.app = app
        self.tokens = tokens
        self.limits = limits
        self.ssl_context = ssl_context
        self.open_connections = 0
        self._executor = ThreadPoolExecutor(RECEIVE_THREADS, thread_name_prefix="receive")

    @property
    def url(self) -> str:
        host, port = self.sock.getsockname()[:2]
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://{host}:{port}{WEBHOOK_PATH}"

    async def serve(self, stop: asyncio.Event, grace: float = 10.0) -> None:
        """Serve until ``stop`` is set; then stop accepting, let requests in flight finish
        (up to ``grace`` seconds) and close every connection."""
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(self._loop_error)
        manager = Manager(
            self,
            self._dispatch,
            keepalive_timeout=self.limits.keepalive_timeout,
            lingering_time=0,  # an unread body closes the connection; no reading it for nothing
            auto_decompress=False,  # --max-body bounds the bytes on the wire, not a zip bomb's
            access_log=None,  # the receiver logs its own decisions and refusals
        )
        server = await loop.create_server(
            manager,
            sock=self.sock,
            ssl=self.ssl_context,
            ssl_handshake_timeout=self.limits.header_timeout if self.ssl_context else None,
            backlog=BACKLOG,
        )
        try:
            await stop.wait()
        finally:
            server.close()
            manager.pre_shutdown()  # idle connections close now, not after `grace`
            await manager.shutdown(grace)
            self._executor.shutdown(wait=True)

    def _loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        # asyncio's own reports (a TLS handshake cut short, a transport error): one line.
        exc = context.get("exception")
        detail = f"{type(exc).__name__}: {exc}" if exc else str(context.get("message", ""))
        self.app.log("loop_error", detail=detail[:200])

    # -- connections ---------------------------------------------------------------------------
    def admit(self) -> bool:
        if self.open_connections >= self.limits.max_connections:
            self.app.metrics.inc("requests_rejected_total", reason="overloaded")
            return False
        self.open_connections += 1
        return True

    def release(self) -> None:
        self.open_connections -= 1

    @property
    def header_timeout(self) -> float:
        return self.limits.header_timeout

    def refused(self, status: int, reason: str, client: str) -> None:
        self.app.metrics.inc("requests_rejected_total", reason=reason)
        self.app.log("rejected", status=status, reason=reason, client=client)

    def error(self, detail: str) -> None:
        self.app.log("request_error", detail=detail[:200])

    # -- routing -------------------------------------------------------------------------------
    async def _dispatch(self, request: web.BaseRequest) -> web.StreamResponse:
        conn = cast(Connection, request.protocol)
        conn.head_received(request)
        try:
            resp = await self._route(request)
        finally:
            conn.request_done()
        if conn.half_closed:
            resp.force_close()  # the client sent all it will: answer, then close
        return resp

    async def _route(self, request: web.BaseRequest) -> web.StreamResponse:
        path = request.raw_path.split("?", 1)[0]
        method = request.method
        if method not in KNOWN_METHODS:
            return self._reject(request, 501, "bad_request", "unsupported method")
        if path == WEBHOOK_PATH:
            if method == "POST":
                return await self._webhook(request)
            return self._reject(request, 405, "method", "use POST", allow="POST")
        if path in GET_PATHS:
            if method != "GET":
                return self._reject(request, 405, "method", "use GET", allow="GET")
            if path == "/healthz":
                return response(200, b"ok\n", "text/plain; charset=utf-8")
            text = await asyncio.get_running_loop().run_in_executor(self._executor, self._metrics)
            return response(200, text.encode(), CONTENT_TYPE)
        return self._reject(request, 404, "not_found", "no such path")

    def _metrics(self) -> str:
        queued, running = self.app.depth()
        return self.app.metrics.render(queued, running)

    # -- the webhook ---------------------------------------------------------------------------
    async def _webhook(self, request: web.BaseRequest) -> web.StreamResponse:
        if not self._authorised(request):
            return self._reject(
                request,
                401,
                "unauthorized",
                "missing or bad bearer token",
                www_authenticate='Bearer realm="pflow-ops"',
            )
        if request.content_type != "application/json":
            return self._reject(request, 415, "content_type", "expected application/json")
        length = self._length(request)
        if isinstance(length, web.StreamResponse):
            return length
        body = await self._read_body(request, length)
        if isinstance(body, web.StreamResponse):
            return body
        try:
            note = payload.parse(body)
        except payload.PayloadError as exc:
            return self._reject(request, exc.status, exc.reason, str(exc), body_read=True)
        loop = asyncio.get_running_loop()
        try:
            decisions = await loop.run_in_executor(self._executor, self.app.receive, note)
        except OSError as exc:
            # The journal could not be written: nothing is acted on, Alertmanager retries.
            self.app.log("journal_error", error=str(exc)[:200])
            return self._reject(
                request, 503, "journal_error", "cannot journal the alerts", body_read=True
            )
        answer = {"status": "ok", "alerts": decisions}
        return response(200, json.dumps(answer).encode(), "application/json")

    def _authorised(self, request: web.BaseRequest) -> bool:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return False
        # compare_digest takes the same time whatever the mismatch position.
        return hmac.compare_digest(given.strip().encode("utf-8", "replace"), self.tokens.current())

    def _length(self, request: web.BaseRequest) -> int | web.StreamResponse:
        if request.headers.get("Transfer-Encoding"):
            return self._reject(request, 411, "length_required", "chunked bodies are not accepted")
        raw = request.headers.get("Content-Length")
        if raw is None:
            return self._reject(request, 411, "length_required", "Content-Length is required")
        length = int(raw)  # digits only: the parser refused anything else (parse_refusal)
        if length > self.limits.max_body:
            return self._reject(
                request, 413, "too_large", f"body over {self.limits.max_body} bytes"
            )
        return length

    async def _read_body(self, request: web.BaseRequest, length: int) -> bytes | web.StreamResponse:
        if request.headers.get("Expect", "").lower() == "100-continue":
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        try:
            async with asyncio.timeout(self.limits.body_deadline):
                return await request.content.readexactly(length)
        except TimeoutError:
            return self._reject(request, 408, "timeout", "body not received in time")
        except (asyncio.IncompleteReadError, ConnectionError, web.RequestPayloadError):
            return self._reject(request, 400, "truncated", "body shorter than Content-Length")

    # -- answers -------------------------------------------------------------------------------
    def _reject(
        self,
        request: web.BaseRequest,
        status: int,
        reason: str,
        message: str,
        body_read: bool = False,
        *,
        allow: str = "",
        www_authenticate: str = "",
    ) -> web.StreamResponse:
        self.refused(status, reason, client(request))
        resp = error(status, message)
        if allow:
            resp.headers["Allow"] = allow
        if www_authenticate:
            resp.headers["WWW-Authenticate"] = www_authenticate
        if not body_read:
            resp.force_close()  # an unread body would be taken for the next request
        return resp
