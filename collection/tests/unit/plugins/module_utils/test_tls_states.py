"""A TLS failure is its own connectivity state (tls_failed) for both services, told apart from
"nothing answers" and "refused the role": the server answered, so no restart can help, and the
runbooks say which of their TLS variables to check. The messages are libpq's and ssl's own."""

from __future__ import annotations

import socket
import ssl
from typing import Any

import pytest
from ansible_collections.pivotal.flow_ops.plugins.module_utils import (
    cache_decisions,
    cache_verdict,
    database_decisions,
    pg_check,
    redis_resp,
)

PREFIX = 'connection to server at "127.0.0.1", port 5432 failed: '


@pytest.mark.parametrize(
    "message",
    [
        "SSL error: certificate verify failed",
        'server certificate for "db.example" does not match host name "127.0.0.1"',
        'root certificate file "/root/.postgresql/root.crt" does not exist\nEither provide the file',
        'could not read root certificate file "/etc/ca.pem": No such file or directory',
        'could not open certificate file "/etc/client.pem": Permission denied',
        'could not load private key file "/etc/client.key": unsupported',
        'certificate present, but not private key file "/root/.postgresql/postgresql.key"',
        "server does not support SSL, but SSL was required",
    ],
)
def test_libpq_tls_failures_are_tls_failed(message: str) -> None:
    assert pg_check.classify(PREFIX + message) == "tls_failed"


@pytest.mark.parametrize(
    ("message", "state"),
    [
        # pg_hba turns a plaintext connection away: the role is refused, TLS did not fail.
        ('no pg_hba.conf entry for host "127.0.0.1", user "app", no encryption', "not_allowed"),
        ("Connection refused\n\tIs the server running on that host?", "refused"),
        ("timeout expired", "timeout"),
    ],
)
def test_other_failures_keep_their_state(message: str, state: str) -> None:
    assert pg_check.classify(PREFIX + message) == state


@pytest.mark.parametrize(
    ("exc", "state"),
    [
        (ssl.SSLCertVerificationError(1, "certificate verify failed: unable to get local issuer"), "tls_failed"),
        (ssl.SSLError(1, "tlsv13 alert certificate required"), "tls_failed"),
        (ssl.SSLEOFError(8, "EOF occurred in violation of protocol"), "tls_failed"),
        (ConnectionRefusedError(111, "Connection refused"), "refused"),
        (socket.timeout("timed out"), "timeout"),
        (ValueError("ca_certs given without tls=true"), "error"),
    ],
)
def test_redis_tls_failures_are_tls_failed(exc: BaseException, state: str) -> None:
    assert redis_resp.classify(exc) == state


GONE = {"reachable": False, "msg": "socket refused"}
RUNNING = {"reachable": True, "running": True, "state": "RUNNING"}


@pytest.mark.parametrize("status", [None, GONE, RUNNING])
def test_postgres_tls_failure_is_the_problem_whatever_the_manager_says(status: Any) -> None:
    diag = {"available": False, "connectivity": {"state": "tls_failed", "msg": "x"}}
    assert database_decisions.classify(diag, status)["problem"] == "tls"


def test_postgres_tls_verdict_names_the_variables_and_never_restarts() -> None:
    msg = "PostgreSQL at 127.0.0.1:5432/appdb: tls_failed (SSL error: certificate verify failed)"
    facts = {"problem": "tls", "state": "tls_failed", "mode": "recover", "connectivity_msg": msg}
    found = database_decisions.verdict(facts)
    assert found["outcome"] == "escalate" and found["next_runbook"] == ""
    assert found["reason"].startswith("PostgreSQL answered but TLS failed (" + msg + "): check database_ssl_mode")
    assert "\n" not in found["reason"]
    assert database_decisions.plan("recover", "tls", {"available": False})["restart_wanted"] is False


@pytest.mark.parametrize("service", [{}, {"reachable": False}, {"reachable": True, "running": False}])
def test_redis_tls_failure_is_the_problem_whatever_the_manager_says(service: dict[str, Any]) -> None:
    result = cache_decisions.assess({"available": False, "state": "tls_failed"}, service)
    assert result["problem"] == "tls" and result["plan"] == []


def test_redis_tls_verdict_names_the_variables() -> None:
    msg = "Redis at 127.0.0.1:6380: tls_failed ([SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed)"
    found = cache_verdict.verdict({"problem": "tls", "state": "tls_failed", "diag_msg": msg})
    assert found["outcome"] == "escalate"
    assert found["reason"].startswith("Redis answered but TLS failed (" + msg + "): check cache_redis_ca_certs")
