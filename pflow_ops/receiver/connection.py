"""aiohttp's HTTP/1.1 protocol, with what the receiver needs at the connection level: the
connection cap, the header deadline, answers to a half-closed client, and aiohttp's own
refusals counted and logged on one line like the receiver's (never a traceback).

aiohttp has no header timeout: a connection that trickles a request head byte by byte would
hold its socket until the keep-alive timeout. ``Connection`` adds one timer per connection,
through the public ``web.Server``/``web.RequestHandler`` classes (the protocol factory).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Protocol, cast

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMethod

SERVER_NAME = "pflow-ops-receiver"  # no Python or aiohttp version in the Server header

_OVERLOADED = (
    b"HTTP/1.1 503 Service Unavailable\r\nServer: " + SERVER_NAME.encode() + b"\r\n"
    b"Content-Length: 0\r\nConnection: close\r\nRetry-After: 1\r\n\r\n"
)
_HEADER_TIMEOUT = (
    b"HTTP/1.1 408 Request Timeout\r\nServer: " + SERVER_NAME.encode() + b"\r\n"
    b"Content-Length: 0\r\nConnection: close\r\n\r\n"
)


class Owner(Protocol):
    """What a connection asks of the server (``ReceiverServer``)."""

    @property
    def header_timeout(self) -> float: ...

    def admit(self) -> bool: ...

    def release(self) -> None: ...

    def refused(self, status: int, reason: str, client: str) -> None: ...

    def error(self, detail: str) -> None: ...


def response(status: int, body: bytes, content_type: str) -> web.Response:
    resp = web.Response(status=status, body=body, headers={"Server": SERVER_NAME})
    resp.content_type, _, charset = content_type.partition("; charset=")
    if charset:
        resp.charset = charset
    return resp


def error(status: int, message: str) -> web.Response:
    return response(
        status, json.dumps({"status": "error", "error": message}).encode(), "application/json"
    )


def client(request: web.BaseRequest) -> str:
    return request.remote or "?"


def parse_refusal(exc: BaseException | None) -> tuple[int, str, str]:
    """Status, reason and message for a request the parser refused: 501 for a method it does
    not know (the C parser knows a fixed list: BREW never reaches our handler); 400
    ``bad_length`` for a Content-Length that is not one number (the parser checks it before
    we could); 400 ``bad_request`` for the rest: noise, TLS on the plain port, both
    Content-Length and Transfer-Encoding (request smuggling)."""
    text = str(exc or "")
    if isinstance(exc, BadHttpMethod) and "HTTPS" not in text:
        return 501, "bad_request", "unsupported method"
    if "Content-Length" in text and "Transfer-Encoding" not in text:
        return 400, "bad_length", "bad Content-Length"
    return 400, "bad_request", "bad request"


class Manager(web.Server):
    """aiohttp's connection manager, making our ``Connection`` for each accepted socket."""

    def __init__(self, owner: Owner, handler: Any, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._owner = owner
        self._kw = kwargs
        self._event_loop = asyncio.get_running_loop()

    def __call__(self) -> web.RequestHandler:
        return Connection(self, self._owner, loop=self._event_loop, **self._kw)


class Connection(web.RequestHandler):
    """aiohttp's HTTP/1.1 protocol plus the connection cap and the header deadline.

    The deadline timer is armed when the connection opens and when the first byte of a next
    request arrives, and cancelled when a complete head has been parsed (the request handler
    starts): a client trickling a header byte by byte is closed however often it sends.
    """

    def __init__(self, manager: Manager, owner: Owner, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._owner = owner
        self._admitted = False
        self._busy = False
        self._partial = False
        self._deadline: asyncio.TimerHandle | None = None
        self.half_closed = False
        self._request: web.BaseRequest | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if not self._owner.admit():
            cast(asyncio.Transport, transport).write(_OVERLOADED)
            self.force_close()  # flushes the 503, then closes
            return
        self._admitted = True
        self._arm()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm()
        if self._admitted:
            self._admitted = False
            self._owner.release()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if data and not self._busy:
            self._partial = True
            if self._deadline is None:
                self._arm()
        super().data_received(data)

    def eof_received(self) -> bool:  # type: ignore[override]  # asyncio allows bool
        """The client shut its sending side (``shutdown(SHUT_WR)``): a request whose head is
        in still gets its answer (a body cut short is ``truncated``); an idle connection
        closes now. aiohttp's default closes at once, answering nobody."""
        self.half_closed = True
        if self._request is not None:
            self._request.content.feed_eof()
        return self._busy or self._partial

    def head_received(self, request: web.BaseRequest) -> None:
        self._disarm()
        self._busy = True
        self._request = request
        if self.half_closed:
            request.content.feed_eof()

    def request_done(self) -> None:
        self._busy = False
        self._partial = False
        self._request = None

    def _arm(self) -> None:
        loop = asyncio.get_running_loop()
        self._deadline = loop.call_later(self._owner.header_timeout, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if self._busy or self.transport is None:
            return
        peer = self.transport.get_extra_info("peername")
        self._owner.refused(408, "header_timeout", str(peer[0]) if peer else "?")
        if self._partial:
            self.transport.write(_HEADER_TIMEOUT)
        self.force_close()

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """aiohttp's own refusals (a request line that is not HTTP, a bad header, both
        Content-Length and Transfer-Encoding) and our bugs: one line, never a traceback."""
        if status == 400:
            status, reason, text = parse_refusal(exc)
            self._owner.refused(status, reason, client(request))
        else:
            text = "internal error"
            detail = f"{type(exc).__name__}: {exc}" if exc else str(message)
            self._owner.error(f"status={status} {detail}")
        if request.writer.output_size > 0:
            raise ConnectionError("response already started")
        resp = error(status, text)
        resp.force_close()
        return resp

    def log_exception(self, *args: Any, **kw: Any) -> None:
        exc = kw.get("exc_info")
        detail = f"{type(exc).__name__}: {exc}" if isinstance(exc, BaseException) else str(args)
        self._owner.error(detail)
