"""redis_ping against a real redis-server: each reason for "no PONG" is told apart."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pflow_ops.sandbox.net import free_ports
from tests.plugins import load_plugin

pytestmark = pytest.mark.integration

# The module imports its module_utils as Ansible ships them, from ansible_collections.pivotal.
# flow_ops; <repo>/collections links that name to the checkout. ansible_collections is a
# namespace package (the ansible bundle has one in site-packages), so a sys.path entry extends it.
COLLECTIONS = str(Path(__file__).resolve().parents[2] / "collections")
if COLLECTIONS not in sys.path:
    sys.path.insert(0, COLLECTIONS)

from ansible_collections.pivotal.flow_ops.plugins.module_utils import redis_resp  # noqa: E402

rp: Any = load_plugin("redis_ping")


def _params(port: int, **kw: Any) -> dict[str, Any]:
    base = {
        "host": "127.0.0.1",
        "port": port,
        "user": None,
        "password": None,
        "timeout": 1.0,
        "tls": False,
        "validate_certs": True,
    }
    return {**base, **kw}


@pytest.fixture(scope="module")
def redis_port() -> Iterator[int]:
    (port,) = free_ports(1)
    workdir = tempfile.mkdtemp(prefix="pfo-redis-")
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--dir",
            workdir,
            "--requirepass",
            "s3cret",
            "--maxclients",
            "100",
        ],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.05)
    # An ACL user that may PING but not run INFO, as a least-privilege monitor would be.
    subprocess.run(
        [
            "redis-cli",
            "-p",
            str(port),
            "-a",
            "s3cret",
            "--no-auth-warning",
            "ACL",
            "SETUSER",
            "monitor",
            "on",
            ">m0n",
            "+ping",
        ],
        check=True,
        capture_output=True,
    )
    yield port
    proc.terminate()
    proc.wait(timeout=10)
    shutil.rmtree(workdir, ignore_errors=True)


def test_pong_with_password(redis_port: int) -> None:
    res = rp.run_module(_params(redis_port, password="s3cret"))
    assert res["available"] is True and res["state"] == "ok"
    assert res["server"]["redis_version"].startswith("7.")


def test_restricted_acl_user_still_counts_as_available(redis_port: int) -> None:
    res = rp.run_module(_params(redis_port, user="monitor", password="m0n"))
    assert res["available"] is True and res["server"] == {}


@pytest.mark.parametrize(
    ("kw", "state"),
    [
        ({}, "noauth"),
        ({"password": "wrong"}, "auth_failed"),
        ({"user": "monitor", "password": "x"}, "auth_failed"),
    ],
)
def test_auth_problems_are_told_apart(redis_port: int, kw: dict[str, Any], state: str) -> None:
    res = rp.run_module(_params(redis_port, **kw))
    assert res["available"] is False and res["state"] == state


def test_refused_and_timeout() -> None:
    (closed,) = free_ports(1)
    assert rp.run_module(_params(closed))["state"] == "refused"
    with socket.socket() as silent:  # accepts connections (backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        started = time.monotonic()
        res = rp.run_module(_params(silent.getsockname()[1], timeout=0.5))
        assert res["state"] == "timeout" and time.monotonic() - started < 2


def test_reply_errors_are_classified() -> None:
    for text, state in [
        ("LOADING Redis is loading the dataset in memory", "loading"),
        ("ERR max number of clients reached", "max_clients"),
        ("WRONGPASS invalid username-password pair", "auth_failed"),
        ("ERR unknown command", "error"),
    ]:
        assert redis_resp.classify(redis_resp.RedisReplyError(text)) == state
