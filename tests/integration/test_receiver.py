"""``pflow-ops serve`` as a real process on a free loopback port, spoken to over real HTTP.

The runs are a small fake ``pflow-ops alert`` (hidden ``--launcher-cmd``) that records its argv
and pid, so the tests count launches and see the exact argv without Ansible; the runbooks
themselves, Prometheus and Alertmanager are covered by the end-to-end tests.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bench.loadtest import alert, measure, notification
from pflow_ops.lock import RunLock

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "it-token-0123456789abcdef"
FAKE_ALERT = """\
import json, os, sys, time
with open(os.environ["FAKE_LOG"], "a") as fh:
    fh.write(json.dumps({"argv": sys.argv[1:], "pid": os.getpid()}) + "\\n")
time.sleep(float(os.environ.get("FAKE_SLEEP", "0.2")))
print(json.dumps({"run_id": "fake", "runbook": "?", "outcome": "recovered", "changed": 1}))
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Receiver:
    tmp: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def home(self) -> Path:
        return self.tmp / "home"

    def start(self, *extra: str, sleep: float = 0.2) -> None:
        fake = self.tmp / "fake_alert.py"
        fake.write_text(FAKE_ALERT)
        env = {
            **os.environ,
            "PFLOW_OPS_HOME": str(self.home),
            "PFLOW_OPS_RECEIVER_TOKEN": TOKEN,
            "PYTHONPATH": str(ROOT),
            "FAKE_LOG": str(self.tmp / "launches.jsonl"),
            "FAKE_SLEEP": str(sleep),
        }
        argv = [sys.executable, "-m", "pflow_ops.receiver", "--port", str(self.port)]
        argv += ["--launcher-cmd", f"{sys.executable} {fake}", *extra]
        with (self.tmp / "receiver.log").open("ab") as log:
            self.proc = subprocess.Popen(
                argv, env=env, stderr=log, stdin=subprocess.DEVNULL, cwd=ROOT
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                if self.request("GET", "/healthz")[0] == 200:
                    return
            assert self.proc.poll() is None, self.log()
            time.sleep(0.1)
        raise AssertionError(f"receiver did not come up: {self.log()}")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=60)

    def log(self) -> str:
        path = self.tmp / "receiver.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, dict(resp.getheaders()), resp.read()
        finally:
            conn.close()

    def post(self, data: Any, token: str = TOKEN) -> tuple[int, dict[str, Any]]:
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
        status, _, body = self.request("POST", "/webhook", json.dumps(data).encode(), headers)
        return status, json.loads(body)

    def metrics(self) -> dict[str, float]:
        status, _, body = self.request("GET", "/metrics")
        assert status == 200
        out = {}
        for line in body.decode().splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                out[name] = float(value)
        return out

    def journal(self) -> list[dict[str, Any]]:
        path = self.home / "receiver" / "local" / "journal.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def launches(self) -> list[dict[str, Any]]:
        path = self.tmp / "launches.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def wait_for(self, what: str, predicate: Any, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}\n{self.log()}")

    def finished(self) -> list[dict[str, Any]]:
        return [e for e in self.journal() if e["event"] == "finished"]


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    rec = Receiver(tmp_path)
    try:
        yield rec
    finally:
        if rec.proc is not None and rec.proc.poll() is None:
            rec.proc.kill()
            rec.proc.wait()
        for launch in rec.launches():  # fake runs orphaned by a SIGKILL'd receiver
            with contextlib.suppress(ProcessLookupError):
                os.kill(launch["pid"], signal.SIGKILL)


def firing(name: str = "BackendServiceDown", fp: str = "0123456789abcdef", **labels: str) -> Any:
    return notification(alert(name, fp, labels=labels))


def test_missing_or_bad_token_gets_401_and_starts_nothing(receiver: Receiver) -> None:
    receiver.start()
    body = json.dumps(firing()).encode()
    attempts = [
        {},
        {"Authorization": "Bearer wrong-token-0123456789abc"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": f"Bearer {TOKEN[:-1]}"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": TOKEN},
    ]
    for headers in attempts:
        status, resp_headers, _ = receiver.request(
            "POST", "/webhook", body, {"Content-Type": "application/json", **headers}
        )
        assert status == 401
        assert resp_headers["WWW-Authenticate"].startswith("Bearer")
    assert not [e for e in receiver.journal() if e["event"] == "received"]
    # The right token then works, and its run is the only one there ever was.
    assert receiver.post(firing())[0] == 200
    receiver.wait_for("the run", lambda: len(receiver.finished()) == 1)
    assert len(receiver.launches()) == 1
    assert len([e for e in receiver.journal() if e["event"] == "received"]) == 1
    metrics = receiver.metrics()
    assert metrics['pflow_receiver_requests_rejected_total{reason="unauthorized"}'] == 6
    assert metrics['pflow_receiver_alerts_received_total{status="firing"}'] == 1


def _raw(port: int, data: bytes, hold: bool = False) -> tuple[bytes, socket.socket]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=15)
    sock.sendall(data)
    if hold:
        return b"", sock
    sock.shutdown(socket.SHUT_WR)
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    sock.close()
    return b"".join(chunks), sock


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def _head(path: str, length: int, extra: str = "") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {length}\r\n{extra}\r\n"
    ).encode()


def test_bad_requests_get_their_status_and_the_receiver_keeps_serving(receiver: Receiver) -> None:
    receiver.start("--max-body", "65536")
    auth = {"Authorization": f"Bearer {TOKEN}"}
    js = {**auth, "Content-Type": "application/json"}
    # A slow client holding a half-sent body must not stop anyone else.
    _, slow = _raw(receiver.port, _head("/webhook", 1000) + b'{"version": "4", ')
    cases: list[tuple[str, str, bytes | None, dict[str, str], int]] = [
        ("POST", "/webhook", b"x" * 70_000, js, 413),
        (
            "POST",
            "/webhook",
            json.dumps(firing()).encode(),
            {**auth, "Content-Type": "text/plain"},
            415,
        ),
        ("POST", "/webhook", json.dumps(firing()).encode(), auth, 415),
        ("POST", "/webhook", b"\x00\xff garbage \xfe", js, 400),
        ("POST", "/webhook", b'{"version": "4", "status": "firing", "alerts": [', js, 400),
        ("POST", "/webhook", b"[" * 60_000, js, 400),
        ("POST", "/webhook", json.dumps({**firing(), "version": "3"}).encode(), js, 422),
        ("POST", "/webhook", json.dumps({"version": "4", "alerts": "no"}).encode(), js, 400),
        ("GET", "/webhook", None, {}, 405),
        ("DELETE", "/metrics", None, {}, 405),
        ("GET", "/../../etc/passwd", None, {}, 404),
        ("POST", "/nowhere", b"{}", js, 404),
    ]
    for method, path, body, headers, expected in cases:
        status, _, _ = receiver.request(method, path, body, headers)
        assert status == expected, (method, path, headers, status)
        assert receiver.request("GET", "/healthz")[0] == 200
    # A body announced far larger than the limit is refused before it is read.
    answer, _ = _raw(receiver.port, _head("/webhook", 10**12) + b"{")
    assert answer.startswith(b"HTTP/1.1 413")
    # A body cut short by the client, and one without a length.
    answer, _ = _raw(receiver.port, _head("/webhook", 500) + b'{"version": "4"')
    assert answer.startswith(b"HTTP/1.1 400")
    chunked = _head("/webhook", 5, "Transfer-Encoding: chunked\r\n") + b"0\r\n\r\n"
    answer, _ = _raw(receiver.port, chunked.replace(b"Content-Length: 5\r\n", b""))
    assert answer.startswith(b"HTTP/1.1 411")
    # Both lengths at once is how requests are smuggled past a proxy: the parser refuses it.
    answer, _ = _raw(receiver.port, chunked)
    assert _status(answer) == 400
    answer, _ = _raw(receiver.port, b"\x16\x03\x01 not http at all\r\n\r\n")
    assert b"400" in answer  # a TLS hello or noise: answered, not crashed
    answer, _ = _raw(receiver.port, b"BREW /webhook HTTP/1.1\r\nHost: x\r\n\r\n")
    assert _status(answer) == 501  # the parser's refusals answer as HTTP/1.0
    slow.close()

    assert receiver.proc is not None and receiver.proc.poll() is None
    assert receiver.post(firing()) == (
        200, {"status": "ok", "alerts": [{"fingerprint": "0123456789abcdef", "decision": "queued"}]}
    )  # fmt: skip
    receiver.wait_for("the run", lambda: len(receiver.finished()) == 1)
    metrics = receiver.metrics()
    rejected = {
        k: v for k, v in metrics.items() if k.startswith("pflow_receiver_requests_rejected")
    }
    assert rejected['pflow_receiver_requests_rejected_total{reason="too_large"}'] == 2
    assert rejected['pflow_receiver_requests_rejected_total{reason="content_type"}'] == 2
    assert rejected['pflow_receiver_requests_rejected_total{reason="bad_json"}'] == 2
    assert rejected['pflow_receiver_requests_rejected_total{reason="bad_encoding"}'] == 1
    assert rejected['pflow_receiver_requests_rejected_total{reason="bad_version"}'] == 1
    # the body cut short, and the slow client's once it hung up
    assert rejected['pflow_receiver_requests_rejected_total{reason="truncated"}'] == 2
    assert rejected['pflow_receiver_requests_rejected_total{reason="bad_schema"}'] == 1
    assert rejected['pflow_receiver_requests_rejected_total{reason="method"}'] == 2
    assert rejected['pflow_receiver_requests_rejected_total{reason="not_found"}'] == 2
    assert rejected['pflow_receiver_requests_rejected_total{reason="length_required"}'] == 1
    # noise, both lengths, an unknown method
    assert rejected['pflow_receiver_requests_rejected_total{reason="bad_request"}'] == 3
    assert metrics['pflow_receiver_runs_total{outcome="recovered",runbook="RB-01"}'] == 1
    assert "Traceback" not in receiver.log()


def test_a_storm_of_300_notifications_launches_one_run(receiver: Receiver) -> None:
    receiver.start()
    result = measure(f"http://127.0.0.1:{receiver.port}/webhook", TOKEN, count=300, concurrency=6)
    assert result.statuses == {200: 300}
    receiver.wait_for("the run", lambda: len(receiver.finished()) == 1)
    assert len(receiver.launches()) == 1
    metrics = receiver.metrics()
    assert metrics['pflow_receiver_alerts_received_total{status="firing"}'] == 300
    assert metrics["pflow_receiver_alerts_deduplicated_total"] == 299
    assert len([e for e in receiver.journal() if e["event"] == "received"]) == 300


def test_dry_run_passes_check_and_labels_never_reach_argv(receiver: Receiver) -> None:
    receiver.start("--dry-run")
    nasty = {"job": "$(touch /tmp/pwned)", "env": "../../prod", "x": "{{ lookup('pipe','id') }}"}
    status, answer = receiver.post(
        notification(
            alert("RedisHighEvictions", "00aa00aa00aa00aa", labels=nasty),
            alert("RedisHighEvictions; id", "11"),
            alert("CacheLowHitRate", "`id`"),
        )
    )
    assert status == 200
    assert [a["decision"] for a in answer["alerts"]] == ["queued", "ignored", "ignored"]
    receiver.wait_for("the run", lambda: len(receiver.finished()) == 1)
    [launch] = receiver.launches()
    [rid] = [e["rid"] for e in receiver.journal() if e.get("action") == "queued"]
    assert launch["argv"] == [
        "RedisHighEvictions", "--env", "local", "--output", "json", "--yes",
        "--fingerprint", "00aa00aa00aa00aa", '--group-key={}:{alertname=""}', "--check",
        "--receipt", rid, "--runbook", "RB-03",
    ]  # fmt: skip
    assert not Path("/tmp/pwned").exists()


def test_resolved_cancels_queued_work(receiver: Receiver) -> None:
    lock = RunLock("local", "database", "a-human-run", directory=receiver.home / "locks")
    lock.acquire()  # a human's recovery holds the database: the alert waits in the queue
    try:
        receiver.start()
        assert receiver.post(firing("DatabaseSlowQueries", "dbdb"))[0] == 200
        status, answer = receiver.post(
            notification(alert("DatabaseSlowQueries", "dbdb", status="resolved"))
        )
        assert (status, answer["alerts"][0]["decision"]) == (200, "resolved")
    finally:
        lock.release()
    # The worker takes the oldest queued item first: had the cancelled one survived, it would
    # run before this one.
    assert receiver.post(firing("DatabaseHighConnections", "dbdc"))[0] == 200
    receiver.wait_for("the run", lambda: len(receiver.finished()) == 1)
    assert [launch["argv"][0] for launch in receiver.launches()] == ["DatabaseHighConnections"]
    assert receiver.metrics()["pflow_receiver_alerts_cancelled_total"] == 1


def _accounted_for(journal: list[dict[str, Any]]) -> None:
    """Every received alert has a decision; every queued one ran or was cancelled."""
    received = {e["rid"] for e in journal if e["event"] == "received"}
    decided = {e["rid"]: e for e in journal if e["event"] == "decision"}
    assert received == set(decided)
    queued = {rid for rid, d in decided.items() if d["action"] == "queued"}
    cancelled = {c for d in decided.values() for c in d.get("cancelled", [])}
    finished = {e["rid"] for e in journal if e["event"] == "finished"}
    assert queued == finished | cancelled


def test_sigkill_mid_run_then_restart_loses_no_alert(receiver: Receiver) -> None:
    lock = RunLock("local", "database", "a-human-run", directory=receiver.home / "locks")
    lock.acquire()
    receiver.start(sleep=30)
    assert receiver.post(firing("BackendServiceDown", "b0b0"))[0] == 200
    assert receiver.post(firing("DatabaseSlowQueries", "d0d0"))[0] == 200  # waits for the lock
    receiver.wait_for("the backend run", lambda: len(receiver.launches()) == 1)
    assert receiver.stop(signal.SIGKILL) == -signal.SIGKILL
    lock.release()

    receiver.start(sleep=0.2)
    receiver.wait_for("both runs", lambda: len(receiver.finished()) == 2)
    journal = receiver.journal()
    _accounted_for(journal)
    [requeued] = [e for e in journal if e["event"] == "requeued"]
    backend_rid = next(e["rid"] for e in journal if e.get("fingerprint") == "b0b0")
    assert requeued["rid"] == backend_rid
    launched = [launch["argv"][0] for launch in receiver.launches()]
    assert sorted(launched) == ["BackendServiceDown", "BackendServiceDown", "DatabaseSlowQueries"]
    assert receiver.stop() == 0


def test_sigterm_lets_the_running_run_finish_and_keeps_the_queue(receiver: Receiver) -> None:
    lock = RunLock("local", "database", "a-human-run", directory=receiver.home / "locks")
    lock.acquire()
    try:
        receiver.start(sleep=2)
        assert receiver.post(firing("BackendServiceDown", "b1b1"))[0] == 200
        assert receiver.post(firing("DatabaseSlowQueries", "d1d1"))[0] == 200
        receiver.wait_for("the backend run", lambda: len(receiver.launches()) == 1)
        assert receiver.stop(signal.SIGTERM) == 0
    finally:
        lock.release()
    journal = receiver.journal()
    [done] = [e for e in journal if e["event"] == "finished"]
    assert done["outcome"] == "recovered"
    assert [launch["argv"][0] for launch in receiver.launches()] == ["BackendServiceDown"]
    # The queued database alert is still in the journal, and runs at the next start.
    receiver.start()
    receiver.wait_for("the queued run", lambda: len(receiver.finished()) == 2)
    _accounted_for(receiver.journal())
    assert receiver.stop() == 0
