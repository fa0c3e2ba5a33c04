"""The receiver process under hostile traffic: slow clients, too many connections, TLS, a token
rotated under it. Real process, real sockets on loopback (the fixture of test_receiver.py);
the assertions are about behaviour, never timings (the figures are bench/receiver_slow_clients.py).
"""

from __future__ import annotations

import contextlib
import datetime
import http.client
import ipaddress
import json
import signal
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_receiver import TOKEN, Receiver, firing

pytestmark = pytest.mark.integration

SLOW = 200  # above the old server's 64 slots, well under the default cap of 1024
PARTIAL_HEAD = b"POST /webhook HTTP/1.1\r\nHost: x\r\nX-Slow: "


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    rec = Receiver(tmp_path)
    try:
        yield rec
    finally:
        if rec.proc is not None and rec.proc.poll() is None:
            rec.proc.kill()
            rec.proc.wait()


@contextlib.contextmanager
def slow_clients(port: int, count: int) -> Iterator[list[socket.socket]]:
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", port), timeout=15)
            sock.sendall(PARTIAL_HEAD)
            socks.append(sock)
        yield socks
    finally:
        for sock in socks:
            sock.close()


def closed_by_peer(sock: socket.socket, trickle: bool, timeout: float = 60) -> bytes:
    """Everything the receiver sent before closing ``sock`` (trickling a header byte now and
    then if asked); AssertionError if it is still open after ``timeout``."""
    sock.settimeout(0.3)
    received = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if trickle:
                sock.sendall(b"a")
            chunk = sock.recv(4096)
        except TimeoutError:
            continue
        except OSError:
            return received  # reset: closed
        if not chunk:
            return received
        received += chunk
    raise AssertionError("the receiver kept the connection open")


def test_slow_unauthenticated_clients_do_not_starve_webhooks_or_healthz(
    receiver: Receiver,
) -> None:
    # A header deadline far beyond the test: every slow connection stays open throughout.
    receiver.start("--header-timeout", "600")
    with slow_clients(receiver.port, SLOW):
        receiver.wait_for(
            "the slow connections to be accepted",
            lambda: receiver.metrics()["pflow_receiver_connections"] >= SLOW,
        )
        for _ in range(20):  # new connections each, as a client arriving mid-attack
            status, headers, _ = receiver.request("GET", "/healthz")
            assert (status, headers["Server"]) == (200, "pflow-ops-receiver")  # no versions
            assert receiver.post(firing())[0] == 200
        # Alertmanager's way: one keep-alive connection.
        conn = http.client.HTTPConnection("127.0.0.1", receiver.port, timeout=15)
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        for _ in range(20):
            conn.request("POST", "/webhook", json.dumps(firing()).encode(), headers)
            resp = conn.getresponse()
            assert (resp.status, json.loads(resp.read())["status"]) == (200, "ok")
        conn.close()
        receiver.wait_for("the run", lambda: len(receiver.finished()) == 1)
        metrics = receiver.metrics()
        assert metrics["pflow_receiver_connections"] >= SLOW  # still held, never starving us
        assert metrics['pflow_receiver_alerts_received_total{status="firing"}'] == 40
        assert 'pflow_receiver_requests_rejected_total{reason="overloaded"}' not in metrics
        assert receiver.stop() == 0  # SIGTERM is not held up by the slow connections
    assert len(receiver.launches()) == 1


def test_a_slow_or_silent_header_is_cut_off_at_the_deadline(receiver: Receiver) -> None:
    receiver.start("--header-timeout", "1")
    with slow_clients(receiver.port, 1) as [trickling]:
        answer = closed_by_peer(trickling, trickle=True)
    assert answer.startswith(b"HTTP/1.1 408")
    with socket.create_connection(("127.0.0.1", receiver.port), timeout=15) as silent:
        assert closed_by_peer(silent, trickle=False) == b""  # never spoke: closed, no answer
    # A kept-alive connection that starts its next request and stalls is cut off too.
    with socket.create_connection(("127.0.0.1", receiver.port), timeout=15) as kept:
        kept.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert kept.recv(4096).startswith(b"HTTP/1.1 200")
        kept.sendall(b"GET /hea")
        assert closed_by_peer(kept, trickle=True).startswith(b"HTTP/1.1 408")
    # A head that did arrive but with a length that is not a number: refused by the parser.
    with socket.create_connection(("127.0.0.1", receiver.port), timeout=15) as bad:
        bad.sendall(b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n")
        assert b" 400 " in closed_by_peer(bad, trickle=False).split(b"\r\n", 1)[0]
    metrics = receiver.metrics()
    assert metrics['pflow_receiver_requests_rejected_total{reason="header_timeout"}'] == 3
    assert metrics['pflow_receiver_requests_rejected_total{reason="bad_length"}'] == 1
    assert receiver.post(firing())[0] == 200
    assert "Traceback" not in receiver.log()


def test_at_the_connection_cap_new_connections_are_refused_not_established_ones(
    receiver: Receiver,
) -> None:
    receiver.start("--max-connections", "8")
    conn = http.client.HTTPConnection("127.0.0.1", receiver.port, timeout=15)
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    body = json.dumps(firing()).encode()
    conn.request("POST", "/webhook", body, headers)
    resp = conn.getresponse()
    assert (resp.status, json.loads(resp.read())["status"]) == (200, "ok")
    with slow_clients(receiver.port, 7):  # 1 + 7 = the cap
        receiver.wait_for(
            "a new connection to be refused",
            lambda: _refused_with_503(receiver.port),
        )
        conn.request("POST", "/webhook", body, headers)  # the established one still works
        resp = conn.getresponse()
        assert (resp.status, json.loads(resp.read())["status"]) == (200, "ok")
    conn.close()
    # Once the slow ones are gone, new connections are served again.
    receiver.wait_for("a free slot", lambda: _healthz(receiver) == 200)
    assert receiver.metrics()['pflow_receiver_requests_rejected_total{reason="overloaded"}'] >= 1


def _refused_with_503(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        return closed_by_peer(sock, trickle=False).startswith(b"HTTP/1.1 503")


def _healthz(receiver: Receiver) -> int:
    with contextlib.suppress(OSError, http.client.HTTPException):
        return receiver.request("GET", "/healthz")[0]
    return 0


# -- TLS -------------------------------------------------------------------------------------
def self_signed(tmp: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key_obj = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key_obj.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key_obj, hashes.SHA256())
    )
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(
        key_obj.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key.chmod(0o600)
    return cert, key


class TLSReceiver(Receiver):
    cafile: Path

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        ctx = ssl.create_default_context(cafile=str(self.cafile))  # verifies cert and name
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=15, context=ctx)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, dict(resp.getheaders()), resp.read()
        finally:
            conn.close()


def test_tls_serves_https_and_plain_http_to_it_gets_nothing(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    rec = TLSReceiver(tmp_path)
    rec.cafile = cert
    try:
        rec.start("--tls-cert", str(cert), "--tls-key", str(key), "--header-timeout", "2")
        assert rec.post(firing())[0] == 200
        assert rec.request("GET", "/metrics")[0] == 200
        assert "url=https://127.0.0.1:" in rec.log()
        # The token must not cross in clear: plain HTTP to the TLS port gets no HTTP answer.
        plain = http.client.HTTPConnection("127.0.0.1", rec.port, timeout=15)
        with pytest.raises((OSError, http.client.HTTPException)):
            plain.request("POST", "/webhook", b"{}", {"Authorization": f"Bearer {TOKEN}"})
            plain.getresponse()
        plain.close()
        # A connection that never starts its handshake is closed at the header deadline.
        with socket.create_connection(("127.0.0.1", rec.port), timeout=15) as silent:
            assert closed_by_peer(silent, trickle=False) == b""
        assert rec.post(firing())[0] == 200
        assert "Traceback" not in rec.log()
    finally:
        if rec.proc is not None and rec.proc.poll() is None:
            rec.proc.kill()
            rec.proc.wait()


# -- token rotation ----------------------------------------------------------------------------
def write_token(path: Path, token: str) -> None:
    """Replace the file the way an operator or a secret agent does: write aside, rename."""
    aside = path.with_suffix(".new")
    aside.write_text(token + "\n")
    aside.chmod(0o600)
    aside.replace(path)


def accepted(receiver: Receiver, token: str) -> bool:
    return receiver.post(firing(), token=token)[0] == 200


def test_token_rotation_on_sighup_and_on_file_change(receiver: Receiver) -> None:
    path = receiver.tmp / "token"
    first, second, third = (
        "first-token-0123456789",
        "second-token-0123456789",
        "3rd-tok-0123456789ab",
    )
    write_token(path, first)
    receiver.start("--token-file", str(path))
    assert accepted(receiver, first)
    assert not accepted(receiver, TOKEN)  # the file wins over the environment

    write_token(path, second)
    assert receiver.proc is not None
    receiver.proc.send_signal(signal.SIGHUP)
    receiver.wait_for("the second token", lambda: accepted(receiver, second))
    assert not accepted(receiver, first)

    write_token(path, third)  # no signal: the change is noticed on a request
    receiver.wait_for("the third token", lambda: accepted(receiver, third))
    assert not accepted(receiver, second)

    metrics = receiver.metrics()
    assert metrics['pflow_receiver_token_reloads_total{result="ok"}'] >= 2
    log = receiver.log()
    assert "token_reloaded trigger=sighup" in log and "trigger=file_changed" in log
    assert not any(t in log for t in (first, second, third))


@pytest.mark.parametrize("bad", ["short", "", "with a space inside it, long enough"])
def test_a_bad_rotated_token_keeps_the_old_one(receiver: Receiver, bad: str) -> None:
    path = receiver.tmp / "token"
    good = "good-token-0123456789"
    write_token(path, good)
    receiver.start("--token-file", str(path))
    write_token(path, bad)
    assert receiver.proc is not None
    receiver.proc.send_signal(signal.SIGHUP)
    receiver.wait_for(
        "the failed reload",
        lambda: _metric(receiver, 'pflow_receiver_token_reloads_total{result="error"}') >= 1,
    )
    assert accepted(receiver, good)
    if bad:
        assert not accepted(receiver, bad)
    assert receiver.proc.poll() is None
    assert "token_reload_failed" in receiver.log() and good not in receiver.log()


def test_sighup_with_a_token_from_the_environment_keeps_serving(receiver: Receiver) -> None:
    receiver.start()
    assert receiver.proc is not None
    receiver.proc.send_signal(signal.SIGHUP)
    receiver.wait_for("the reload line", lambda: "token_reload_skipped" in receiver.log())
    assert receiver.proc.poll() is None
    assert accepted(receiver, TOKEN)


def _metric(receiver: Receiver, name: str) -> float:
    metrics: dict[str, Any] = receiver.metrics()
    return float(metrics.get(name, 0.0))
