#!/usr/bin/env python3
"""The receiver under slow unauthenticated clients (issue #14): latency of the work that matters.

Starts the real receiver (`python -m pflow_ops.receiver`, runs replaced by a fake `pflow-ops
alert` through the hidden --launcher-cmd, as in tests/integration/test_receiver.py), opens
--slow connections without a token that send a partial request head and then trickle one
header byte every --trickle seconds (re-opening any the receiver closes, as a persistent
attacker would), and while they hold on measures:
  webhook   --requests authenticated firing notifications over 4 keep-alive connections
            (Alertmanager keeps its connection), p50/p99/max and the status counts
  fresh     the same over a new connection each (a client arriving during the attack)
  healthz   GET /healthz on a new connection each
With --old it does the same against the receiver of commit bf3e2a5 (the thread-per-connection
http.server with 64 slots), extracted with `git archive` into a temporary directory.
Usage: .venv/bin/python bench/receiver_slow_clients.py [--slow 500] [--requests 300] [--old]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

from loadtest import alert, notification

from pflow_ops.paths import PROJECT_ENV

ROOT = Path(__file__).resolve().parents[1]
OLD_COMMIT = "bf3e2a5"
TOKEN = "bench-token-0123456789abcdef"
FAKE_ALERT = "import json; print(json.dumps({'run_id': 'fake', 'outcome': 'recovered'}))\n"
BODY = json.dumps(notification(alert("BackendServiceDown", "0123456789abcdef"))).encode()
TIMEOUT = 5.0  # per request
BUDGET = 60.0  # per measure
HEADERS = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def receiver(tmp: Path, code: Path) -> Iterator[int]:
    """The receiver of ``code`` (a checkout or an extracted commit) with that code's own catalogue
    and inventories: a newer catalogue need not parse with an older receiver."""
    port = free_port()
    fake = tmp / "fake_alert.py"
    fake.write_text(FAKE_ALERT)
    env = {
        **os.environ,
        "PFLOW_OPS_HOME": str(tmp / "home"),
        "PFLOW_OPS_RECEIVER_TOKEN": TOKEN,
        "PYTHONPATH": str(code),
        PROJECT_ENV: str(code),
    }
    argv = [sys.executable, "-m", "pflow_ops.receiver", "--port", str(port)]
    argv += ["--launcher-cmd", f"{sys.executable} {fake}"]
    with (tmp / "receiver.log").open("ab") as log:
        proc = subprocess.Popen(argv, env=env, stderr=log, stdin=subprocess.DEVNULL, cwd=code)
    try:
        deadline = time.monotonic() + 20
        while get(port, "/healthz")[0] != 200:
            if proc.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"the receiver did not start: {(tmp / 'receiver.log').read_text()}")
            time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            say("  the receiver did not stop within 60 s of SIGTERM: killed")
            proc.kill()
            proc.wait()


def get(port: int, path: str) -> tuple[int, bytes]:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    except OSError:
        return 0, b""


class SlowClients:
    """``count`` connections that never finish their request head, held by a process of
    their own (in the measuring process their loop would compete for its GIL and inflate
    the client-side latencies)."""

    def __init__(self, port: int, count: int, trickle: float, rate: float) -> None:
        self.port, self.count, self.trickle = port, count, trickle
        self.pause = 1.0 / rate
        self.held = multiprocessing.Value("i", 0)
        self.reopened = multiprocessing.Value("i", 0)
        self.stop = multiprocessing.Event()
        self.process = multiprocessing.Process(target=self._run, daemon=True)

    def _open(self) -> socket.socket | None:
        # Paced: a burst would only overflow the listen backlog (a SYN flood, another attack),
        # while this one is about connections the server has accepted.
        time.sleep(self.pause)
        try:
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=2)
            sock.sendall(b"POST /webhook HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            sock.setblocking(False)
            return sock
        except OSError:
            return None

    def start(self) -> None:
        self.process.start()

    def _run(self) -> None:
        socks = [self._open() for _ in range(self.count)]
        while True:
            self.held.value = sum(s is not None for s in socks)
            if self.stop.wait(self.trickle):
                break
            for i, sock in enumerate(socks):
                try:
                    if sock is None:
                        raise OSError
                    sock.send(b"a")
                    with contextlib.suppress(BlockingIOError):
                        if sock.recv(4096) == b"":  # the receiver closed it
                            raise OSError
                except OSError:
                    if sock is not None:
                        sock.close()
                    socks[i] = self._open()
                    self.reopened.value += 1
        for sock in socks:
            if sock is not None:
                sock.close()

    def close(self) -> None:
        self.stop.set()
        self.process.join(30)


def timed(requests: int, call: Callable[[], int]) -> tuple[list[float], Counter[str]]:
    """``requests`` calls, or fewer if BUDGET seconds pass (a server under attack may answer
    every request only after the client's timeout)."""
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    stop = time.monotonic() + BUDGET
    for _ in range(requests):
        if time.monotonic() > stop:
            statuses["unsent(budget)"] += 1
            continue
        started = time.perf_counter()
        try:
            statuses[str(call())] += 1
        except OSError as exc:
            statuses[type(exc).__name__] += 1
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies, statuses


def keepalive_posts(
    port: int, requests: int, concurrency: int = 4
) -> tuple[list[float], Counter[str]]:
    results: list[tuple[list[float], Counter[str]]] = []

    def client(n: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)

        def post() -> int:
            try:
                conn.request("POST", "/webhook", body=BODY, headers=HEADERS)
                resp = conn.getresponse()
                resp.read()
            except OSError:
                conn.close()
                raise
            if resp.will_close:
                conn.close()
            return resp.status

        results.append(timed(n, post))
        conn.close()

    threads = [
        threading.Thread(target=client, args=(requests // concurrency,)) for _ in range(concurrency)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    latencies = [ms for lat, _ in results for ms in lat]
    return latencies, sum((st for _, st in results), Counter())


def fresh_post(port: int) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        conn.request("POST", "/webhook", body=BODY, headers=HEADERS)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def say(text: str) -> None:
    print(text, flush=True)


def line(name: str, latencies: list[float], statuses: Counter[str]) -> str:
    counts = " ".join(f"{k}:{v}" for k, v in sorted(statuses.items()))
    if len(latencies) < 2:
        return f"  {name:8} n={len(latencies):4}  statuses {counts}"
    qs = statistics.quantiles(latencies, n=100, method="inclusive")
    return (
        f"  {name:8} n={len(latencies):4}  p50={qs[49]:8.1f} ms  p99={qs[98]:8.1f} ms  "
        f"max={max(latencies):8.1f} ms  statuses {counts}"
    )


def run(label: str, code: Path, args: argparse.Namespace) -> None:
    slow, requests = args.slow, args.requests
    with (
        tempfile.TemporaryDirectory(prefix="pflow-bench-") as tmp,
        receiver(Path(tmp), code) as port,
    ):
        attack = SlowClients(port, slow, args.trickle, args.rate)
        attack.start()
        time.sleep(args.warmup)
        try:
            say(f"{label}: {attack.held.value}/{slow} slow unauthenticated connections open")
            say(line("webhook", *keepalive_posts(port, requests)))
            say(line("fresh", *timed(requests, lambda: fresh_post(port))))
            say(line("healthz", *timed(requests, lambda: get(port, "/healthz")[0])))
            gauge = [
                ln
                for ln in get(port, "/metrics")[1].decode().splitlines()
                if ln.startswith("pflow_receiver_connections ")
                or ln.startswith('pflow_receiver_requests_rejected_total{reason="header_timeout"')
                or ln.startswith('pflow_receiver_requests_rejected_total{reason="overloaded"')
            ]
            say(f"  attacker re-opened {attack.reopened.value} connections; " + "; ".join(gauge))
        finally:
            attack.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slow", type=int, default=500, help="slow connections (default 500)")
    parser.add_argument("--requests", type=int, default=300, help="requests per measure")
    parser.add_argument("--trickle", type=float, default=2.0, help="seconds between bytes")
    parser.add_argument(
        "--rate", type=float, default=200.0, help="new slow connections a second (default 200)"
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=15.0,
        help="seconds of attack before measuring (past the 10 s header deadline; default 15)",
    )
    parser.add_argument("--old", action="store_true", help=f"also measure {OLD_COMMIT}'s receiver")
    args = parser.parse_args()
    run("this receiver", ROOT, args)
    if args.old:
        with tempfile.TemporaryDirectory(prefix="pflow-old-") as old:
            # The whole tree: that receiver loads collection files and its own catalogue.
            archive = subprocess.run(
                ["git", "archive", OLD_COMMIT],
                cwd=ROOT,
                capture_output=True,
                check=True,
            ).stdout
            subprocess.run(["tar", "-x", "-C", old], input=archive, check=True)
            run(f"receiver of {OLD_COMMIT}", Path(old), args)


if __name__ == "__main__":
    main()
