"""Measure the receiver's response times over loopback, and build payloads (bench/ and the tests).

    from bench.loadtest import measure, notification  # from the checkout (bench/: `from loadtest`)
    result = measure("http://127.0.0.1:9095/webhook", token, count=1000, concurrency=4)
    print(result.p50_ms, result.p99_ms, result.statuses)

Each worker thread keeps one HTTP/1.1 connection open, as Alertmanager does. By default every
request is the same firing alert (an alert storm: the first one queues a run, the rest are
deduplicated); pass ``body`` to send something else.
"""

from __future__ import annotations

import http.client
import json
import statistics
import threading
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from typing import Any


def alert(
    alertname: str,
    fingerprint: str,
    status: str = "firing",
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {"alertname": alertname, **(labels or {})},
        "annotations": {"summary": f"{alertname} is {status}"},
        "startsAt": "2026-01-01T00:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://127.0.0.1:9090/graph",
        "fingerprint": fingerprint,
    }


def notification(*alerts: dict[str, Any], status: str = "") -> dict[str, Any]:
    """An Alertmanager version 4 webhook payload holding ``alerts``."""
    firing = any(a.get("status") == "firing" for a in alerts)
    common = alerts[0]["labels"] if len(alerts) == 1 else {}
    return {
        "version": "4",
        "groupKey": '{}:{alertname="' + str(common.get("alertname", "")) + '"}',
        "truncatedAlerts": 0,
        "status": status or ("firing" if firing else "resolved"),
        "receiver": "pflow-ops",
        "groupLabels": {"alertname": common["alertname"]} if common else {},
        "commonLabels": dict(common),
        "commonAnnotations": {},
        "externalURL": "http://127.0.0.1:9093",
        "alerts": list(alerts),
    }


@dataclass
class LoadResult:
    count: int
    wall_s: float
    latencies_ms: list[float] = field(repr=False)
    statuses: Counter[int]

    @property
    def p50_ms(self) -> float:
        return _percentile(self.latencies_ms, 50)

    @property
    def p99_ms(self) -> float:
        return _percentile(self.latencies_ms, 99)

    @property
    def max_ms(self) -> float:
        return max(self.latencies_ms, default=0.0)


def _percentile(values: list[float], pct: int) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[pct - 1]


def measure(
    url: str,
    token: str,
    count: int = 1000,
    concurrency: int = 4,
    body: bytes | None = None,
    timeout: float = 10.0,
) -> LoadResult:
    """POST ``count`` notifications to ``url`` from ``concurrency`` keep-alive connections."""
    parts = urllib.parse.urlsplit(url)
    if body is None:
        body = json.dumps(notification(alert("BackendServiceDown", "0123456789abcdef"))).encode()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    shares = [
        count // concurrency + (1 if i < count % concurrency else 0) for i in range(concurrency)
    ]

    def client(n: int) -> None:
        conn = http.client.HTTPConnection(
            parts.hostname or "127.0.0.1", parts.port, timeout=timeout
        )
        try:
            for _ in range(n):
                started = time.perf_counter()
                conn.request("POST", parts.path or "/", body=body, headers=headers)
                resp = conn.getresponse()
                resp.read()
                elapsed = (time.perf_counter() - started) * 1000
                with lock:
                    latencies.append(elapsed)
                    statuses[resp.status] += 1
                if resp.will_close:
                    conn.close()
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in shares if n]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return LoadResult(len(latencies), time.perf_counter() - started, latencies, statuses)
