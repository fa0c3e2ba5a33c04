"""The reference backend's Prometheus metrics, exposed by prometheus_client (text format 0.0.4).

The values are kept here, under one lock, and handed to prometheus_client as metric families at
each scrape (a custom collector): the families and names are the Node.js service's, which the
alert rules and dashboards read, and the library does the formatting and escaping.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, disable_created_metrics, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import Collector

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4

# The Node.js service has no *_created series either (the function is untyped upstream).
disable_created_metrics()  # type: ignore[no-untyped-call]

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _le(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else repr(float(bound))


class Metrics:
    """Thread-safe request, latency and cache counters."""

    def __init__(self, start_time: float | None = None, hit_rate_window: float = 60.0) -> None:
        self.start_time = time.time() if start_time is None else start_time
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str, str], int] = {}
        self._bucket_counts = [0] * len(BUCKETS)
        self._duration_sum = 0.0
        self._duration_count = 0
        self._cache: dict[str, int] = {"hit": 0, "miss": 0, "error": 0}
        # The hit-rate gauge covers the last minute, as the Node.js service computes it: a ratio
        # since start would keep CacheLowHitRate firing long after the cache recovered.
        self._window = hit_rate_window
        self._recent: deque[tuple[float, bool]] = deque()

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            key = (method, route, str(status))
            self._requests[key] = self._requests.get(key, 0) + 1
            for i, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    self._bucket_counts[i] += 1
            self._duration_sum += seconds
            self._duration_count += 1

    def cache_lookup(self, result: str) -> None:
        """``result`` is hit, miss, or error (Redis unreachable: the lookup served nothing)."""
        now = time.monotonic()
        with self._lock:
            self._cache[result] += 1
            self._recent.append((now, result == "hit"))
            self._forget(now)

    def _forget(self, now: float) -> None:
        while self._recent and self._recent[0][0] < now - self._window:
            self._recent.popleft()

    def hit_rate(self) -> float:
        """hits / lookups over the last ``hit_rate_window`` seconds, errors counting as misses;
        NaN when there was no lookup in the window."""
        with self._lock:
            self._forget(time.monotonic())
            hits = sum(1 for _, hit in self._recent if hit)
            total = len(self._recent)
        return hits / total if total else math.nan

    def render(self) -> str:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Families(self._families))
        return generate_latest(registry).decode()

    def _families(self) -> list[Metric]:
        with self._lock:
            requests = sorted(self._requests.items())
            buckets = list(self._bucket_counts)
            dsum, dcount = self._duration_sum, self._duration_count
            cache = dict(self._cache)
        served = CounterMetricFamily(
            "http_requests_total",
            "HTTP requests served, by method, route and status.",
            labels=["method", "route", "status"],
        )
        for key, count in requests:
            served.add_metric(list(key), count)
        latency = HistogramMetricFamily(
            "http_request_duration_seconds",
            "HTTP request latency.",
            buckets=[
                *((_le(b), n) for b, n in zip(BUCKETS, buckets, strict=True)),
                ("+Inf", dcount),
            ],
            sum_value=dsum,
        )
        started = GaugeMetricFamily(
            "process_start_time_seconds",
            "Start time of the process since unix epoch.",
            value=round(self.start_time, 3),
        )
        return [served, latency, *self._cache_families(cache), started]

    def _cache_families(self, cache: dict[str, int]) -> list[Metric]:
        rate = GaugeMetricFamily(
            "pivotal_cache_hit_rate",
            "Share of API cache lookups answered from the cache over the last minute.",
            labels=["cache_type"],
        )
        rate.add_metric(["redis"], self.hit_rate())
        lookups = CounterMetricFamily(
            "pivotal_cache_lookups_total",
            "API cache lookups by result.",
            labels=["cache_type", "result"],
        )
        for result in ("hit", "miss", "error"):
            lookups.add_metric(["redis", result], cache[result])
        return [rate, lookups]


class _Families(Collector):
    """A prometheus_client collector that yields the families read at scrape time."""

    def __init__(self, read: Callable[[], list[Metric]]) -> None:
        self._read = read

    def collect(self) -> Iterator[Metric]:
        yield from self._read()
