"""http_health against a real stdlib HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.plugins import load_plugin

ROOT = Path(__file__).resolve().parents[2]


hh = load_plugin("http_health")


class Handler(BaseHTTPRequestHandler):
    server: Server

    def do_GET(self) -> None:
        srv = self.server
        srv.hits += 1
        if self.path == "/ok":
            self.reply(200, json.dumps({"status": "ok"}).encode(), "application/json")
        elif self.path == "/fail":
            self.reply(503, b"x" * 5000, "text/plain")
        elif self.path == "/slow":
            time.sleep(1.0)
            self.reply(200, b"late", "text/plain")
        elif self.path == "/gate":
            self.reply(
                200 if time.monotonic() >= srv.healthy_after else 503, b"{}", "application/json"
            )
        elif self.path == "/flaky":
            self.reply(500 if srv.hits == 3 else 200, b"", "text/plain")
        else:
            self.reply(404, b"not found", "text/plain")

    def reply(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class Server(ThreadingHTTPServer):
    hits = 0
    healthy_after = 0.0

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # the /slow handler writes to a socket the prober already closed


@pytest.fixture
def server() -> Iterator[Server]:
    srv = Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def url(srv: Server, path: str) -> str:
    return f"http://127.0.0.1:{srv.server_address[1]}{path}"


def run(target: str, **kw: object) -> dict:
    params = {
        "url": target,
        "timeout": 2.0,
        "expect_status": [200],
        "samples": 1,
        "wait_timeout": 0.0,
        "interval": 0.5,
        "soak_seconds": 0.0,
        "validate_certs": True,
    }
    params.update(kw)
    return hh.run_module(params)


def test_healthy_json_body_and_samples(server: Server) -> None:
    res = run(url(server, "/ok"), samples=5)
    assert res["healthy"] is True and res["state"] == "healthy" and res["status"] == 200
    assert res["body"] == {"status": "ok"} and res["reason"] is None and res["changed"] is False
    s = res["samples"]
    assert s["count"] == 5 and s["failures"] == 0 and s["error_rate"] == 0
    assert s["statuses"] == {"200": 5} and s["states"] == {"healthy": 5}
    assert 0 < s["p50_ms"] <= s["p95_ms"] <= s["max_ms"]
    assert "gate" not in res and "soak" not in res and server.hits == 5


def test_unexpected_status_is_unhealthy_with_truncated_text_body(server: Server) -> None:
    res = run(url(server, "/fail"))
    assert res["healthy"] is False and res["state"] == "unhealthy" and res["status"] == 503
    assert res["body"] == "x" * 2048 and "503" in res["reason"]
    assert run(url(server, "/fail"), expect_status=[200, 503])["healthy"] is True


def test_connected_but_silent_is_hung(server: Server) -> None:
    started = time.monotonic()
    res = run(url(server, "/slow"), timeout=0.3)
    assert res["state"] == "hung" and res["status"] is None and res["healthy"] is False
    assert time.monotonic() - started < 0.9
    assert res["samples"]["p50_ms"] is None and res["samples"]["states"] == {"hung": 1}


def test_closed_port_is_refused() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    res = run(f"http://127.0.0.1:{port}/health", samples=3)
    assert (
        res["state"] == "refused"
        and res["samples"]["failures"] == 3
        and res["samples"]["error_rate"] == 1
    )


def test_connect_timeout_and_dns_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def timeout(*_a: object, **_k: object) -> None:
        raise TimeoutError("timed out")

    monkeypatch.setattr(socket, "create_connection", timeout)
    assert run("http://192.0.2.1/health")["state"] == "timeout"

    def nxdomain(*_a: object, **_k: object) -> None:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "create_connection", nxdomain)
    res = run("http://no-such-host.invalid/health")
    assert res["state"] == "error" and "DNS" in res["reason"]


def test_gate_waits_until_healthy(server: Server) -> None:
    server.healthy_after = time.monotonic() + 0.5
    res = run(url(server, "/gate"), wait_timeout=5.0, interval=0.1)
    gate = res["gate"]
    assert res["healthy"] is True and gate["passed"] is True
    assert 0.4 <= gate["waited_s"] < 1.5 and gate["attempts"] >= 4
    assert res["samples"]["count"] == 1  # gate probes are not samples


def test_gate_that_never_passes_skips_samples_and_soak(server: Server) -> None:
    server.healthy_after = time.monotonic() + 60
    res = run(url(server, "/gate"), wait_timeout=0.5, interval=0.1, soak_seconds=5.0)
    assert (
        res["healthy"] is False and res["gate"]["passed"] is False and res["state"] == "unhealthy"
    )
    assert 0.4 <= res["gate"]["waited_s"] < 1.0 and res["samples"]["count"] == 0
    assert res["soak"]["probes"] == 0 and res["elapsed_s"] < 1.5


def test_soak_counts_a_failure(server: Server) -> None:
    res = run(url(server, "/flaky"), soak_seconds=0.6, interval=0.1)
    soak = res["soak"]
    assert res["healthy"] is False and res["state"] == "unhealthy" and res["status"] == 500
    assert soak["failures"] == 1 and 4 <= soak["probes"] <= 7
    assert soak["first_failure"]["status"] == 500 and soak["first_failure"]["state"] == "unhealthy"
    assert res["samples"]["count"] == 1 + soak["probes"] and res["samples"]["statuses"]["500"] == 1


def test_bad_parameters() -> None:
    for kw in (
        {"url": "ftp://x/"},
        {"url": "http://:80/"},
        {"timeout": 0.0},
        {"samples": 0},
        {"expect_status": []},
        {"soak_seconds": 1.0, "interval": 0.0},
    ):
        target = str(kw.pop("url", "http://127.0.0.1:1/"))
        with pytest.raises(hh.ModuleFailure):
            run(target, **kw)


def test_listening_socket_that_never_accepts_is_hung() -> None:
    # A wedged process: the kernel completes the TCP handshake from the backlog, nobody answers.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        assert run(f"http://127.0.0.1:{port}/health", timeout=0.3)["state"] == "hung"
        assert run(f"https://127.0.0.1:{port}/health", timeout=0.3)["state"] == "hung"


@pytest.fixture
def tls_server(server: Server, tmp_path: Path) -> Server:
    # A self-signed certificate from `cryptography` (an ansible-core dependency), so the
    # test needs no openssl binary.
    import datetime
    import ipaddress

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
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(
        key_obj.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    return server


def test_https_with_and_without_certificate_validation(tls_server: Server) -> None:
    target = f"https://127.0.0.1:{tls_server.server_address[1]}/ok"
    res = run(target, validate_certs=False)
    assert res["healthy"] is True and res["body"] == {"status": "ok"}
    res = run(target)
    assert (
        res["state"] == "error"
        and "TLS" in res["reason"]
        and "CERTIFICATE_VERIFY_FAILED" in res["reason"]
    )


def test_port_owner_names_the_listening_process(server: Server) -> None:
    import os

    res = run(url(server, "/ok"), port_owner=True)
    listener = res["listener"]
    assert listener["port"] == server.server_address[1]
    assert listener["pid"] == os.getpid() and "python" in listener["cmdline"]
    assert f"held by pid {os.getpid()}" in listener["detail"]
    assert run(url(server, "/ok"))["listener"] is None  # only when asked


def test_port_owner_is_null_when_nothing_listens() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert run(f"http://127.0.0.1:{port}/health", port_owner=True)["listener"] is None


def test_gate_stops_as_soon_as_the_watched_process_is_gone(server: Server) -> None:
    probe = load_plugin("http_probe", "module_utils")
    server.healthy_after = time.monotonic() + 60
    prober = probe.Prober(probe.Target(url(server, "/gate"), True), 1.0, [200])
    calls: list[int] = []

    def watch() -> str | None:
        calls.append(1)
        return "process 42 exited" if len(calls) >= 2 else None

    gate = probe.run_gate(prober, 30.0, 0.05, watch)
    assert gate["passed"] is False and gate["gone"] == "process 42 exited"
    assert gate["attempts"] == 2 and gate["waited_s"] < 5
