"""Port checks, the non-raising HTTP GET and bounded waits, on loopback only."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from pflow_ops.sandbox import SandboxError, SandboxPorts, net


@pytest.fixture
def listener() -> Iterator[int]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    try:
        yield int(sock.getsockname()[1])
    finally:
        sock.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_port_in_use(listener: int) -> None:
    assert net.port_in_use(listener)
    assert not net.port_in_use(_free_port())


def test_taken_port_names_the_port_and_the_service(listener: int) -> None:
    ports = SandboxPorts(backend=_free_port(), postgres=_free_port(), redis=listener)
    with pytest.raises(SandboxError) as exc:
        net.check_ports_free(ports)
    message = str(exc.value)
    assert (
        f"port {listener} on 127.0.0.1 (wanted by the sandbox redis) is already in use" in message
    )
    assert "PFLOW_SANDBOX_REDIS_PORT" in message
    assert "\n" not in message


def test_http_get_reports_refusal_and_silence(listener: int) -> None:
    refused = net.http_get(_free_port(), "/health", timeout=1)
    assert refused.status is None and refused.error == "connection refused"
    # The listener accepts (kernel backlog) but never answers: the shape of a hung backend.
    start = time.monotonic()
    silent = net.http_get(listener, "/health", timeout=0.3)
    assert silent.status is None and silent.error == "no answer within 0.3s"
    assert time.monotonic() - start < 2


def test_wait_for_returns_the_first_value_or_times_out() -> None:
    values = iter([None, None, 7])
    assert net.wait_for(lambda: next(values), timeout=5, what="x", interval=0.01) == 7
    with pytest.raises(SandboxError, match=r"timed out after 0\.1s waiting for redis"):
        net.wait_for(lambda: None, timeout=0.1, what="redis", interval=0.01)
