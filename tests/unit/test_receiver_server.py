"""The HTTP server's start-up guards and pure pieces: TLS options both-or-neither, the open-files
reserve for --max-connections, the parser's refusals, the connections gauge. The server itself
runs as a real process in tests/integration/test_receiver*.py."""

from __future__ import annotations

import datetime
import resource
import ssl
from pathlib import Path

import pytest
from aiohttp.http_exceptions import BadHttpMessage, BadHttpMethod, InvalidHeader

from pflow_ops.receiver import connection, options, server, service
from pflow_ops.receiver.metrics import Metrics

TOKEN = "s3cret-token-0123456789"


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PFLOW_OPS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PFLOW_OPS_RECEIVER_TOKEN", TOKEN)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--tls-cert", "cert.pem"], "--tls-cert and --tls-key go together"),
        (["--tls-key", "key.pem"], "--tls-cert and --tls-key go together"),
        (["--tls-cert", "/nonexistent/c", "--tls-key", "/nonexistent/k"], "cannot load"),
        (["--header-timeout", "0"], "--header-timeout must be positive"),
        (["--max-connections", "0"], "--max-connections must be positive"),
    ],
)
def test_bad_serve_options_exit_2_with_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert service.main(["--port", "0", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_a_key_that_does_not_match_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cert, _ = self_signed(tmp_path, "a")
    _, other_key = self_signed(tmp_path, "b")
    assert service.main(["--port", "0", "--tls-cert", str(cert), "--tls-key", str(other_key)]) == 2
    assert "cannot load --tls-cert/--tls-key" in capsys.readouterr().err


def test_the_tls_context_refuses_anything_older_than_tls_1_2(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path, "a")
    ctx = server.tls_context(str(cert), str(key))
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2


def test_defaults_are_the_documented_ones() -> None:
    limits = server.Limits(max_body=1)
    assert limits.header_timeout == options.DEFAULT_HEADER_TIMEOUT == 10.0
    assert limits.max_connections == options.DEFAULT_MAX_CONNECTIONS == 1024
    text = service.build_parser().format_help()
    for flag in ("--tls-cert", "--tls-key", "--header-timeout", "--max-connections"):
        assert flag in text


class Limits:
    def __init__(self, soft: int, hard: int) -> None:
        self.value = (soft, hard)
        self.set_to: tuple[int, int] | None = None

    def get(self, which: int) -> tuple[int, int]:
        return self.value

    def set(self, which: int, value: tuple[int, int]) -> None:
        self.set_to = value


@pytest.mark.parametrize(
    ("soft", "hard", "expected"),
    [
        (4096, 4096, None),  # enough already: untouched
        (1024, 4096, (1024 + service.FD_RESERVE, 4096)),  # raised to what is needed, no more
        (resource.RLIM_INFINITY, resource.RLIM_INFINITY, None),
        (1024, resource.RLIM_INFINITY, (1024 + service.FD_RESERVE, resource.RLIM_INFINITY)),
    ],
)
def test_the_open_files_limit_is_raised_to_fit_the_cap(
    monkeypatch: pytest.MonkeyPatch, soft: int, hard: int, expected: tuple[int, int] | None
) -> None:
    limits = Limits(soft, hard)
    monkeypatch.setattr(resource, "getrlimit", limits.get)
    monkeypatch.setattr(resource, "setrlimit", limits.set)
    service._reserve_fds(1024)
    assert limits.set_to == expected


def test_a_cap_above_the_hard_limit_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    limits = Limits(1024, 1024)
    monkeypatch.setattr(resource, "getrlimit", limits.get)
    monkeypatch.setattr(resource, "setrlimit", limits.set)
    with pytest.raises(service.ServeError, match="lower --max-connections") as info:
        service._reserve_fds(1024)
    assert info.value.code == 2 and limits.set_to is None


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (BadHttpMethod("BREW"), (501, "bad_request")),  # a method the parser does not know
        (BadHttpMethod("\x16\x03\x01 noise"), (400, "bad_request")),  # TLS on the plain port
        (
            BadHttpMessage("Transfer-Encoding can't be present with Content-Length"),
            (400, "bad_request"),
        ),
        (BadHttpMessage("Invalid character in Content-Length"), (400, "bad_length")),
        (InvalidHeader("Content-Length"), (400, "bad_length")),
        (BadHttpMessage("Duplicate Content-Length"), (400, "bad_length")),
        (None, (400, "bad_request")),
    ],
)
def test_parser_refusals(exc: BaseException | None, expected: tuple[int, str]) -> None:
    assert connection.parse_refusal(exc)[:2] == expected


def test_the_connections_gauge_is_read_at_each_scrape() -> None:
    metrics = Metrics()
    open_now = [3]
    metrics.gauge("connections", "Open client connections", lambda: open_now[0])
    # prometheus_client writes every value as a Go float: 3.0, not 3.
    assert "pflow_receiver_connections 3.0\n" in metrics.render(0, 0)
    open_now[0] = 0
    text = metrics.render(0, 0)
    assert "# TYPE pflow_receiver_connections gauge\npflow_receiver_connections 0.0\n" in text
    metrics.inc("token_reloads_total", result="error")
    assert 'pflow_receiver_token_reloads_total{result="error"} 1.0' in metrics.render(0, 0)


def self_signed(tmp: Path, name: str) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key_obj = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key_obj.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key_obj, hashes.SHA256())
    )
    cert, key = tmp / f"{name}.crt", tmp / f"{name}.key"
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(
        key_obj.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert, key
