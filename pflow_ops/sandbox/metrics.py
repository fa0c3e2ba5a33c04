"""Hand-written Prometheus text exposition for the reference backend (no prometheus_client)."""

from __future__ import annotations

import math
import threading
import time
from collections import deque

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _fmt(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(pairs: dict[str, str]) -> str:
    return ",".join(f'{key}="{_escape(val)}"' for key, val in pairs.items())


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
        with self._lock:
            requests = sorted(self._requests.items())
            buckets = list(self._bucket_counts)
            dsum, dcount = self._duration_sum, self._duration_count
            cache = dict(self._cache)
        out = [
            "# HELP http_requests_total HTTP requests served, by method, route and status.",
            "# TYPE http_requests_total counter",
        ]
        for (method, route, status), count in requests:
            labels = _labels({"method": method, "route": route, "status": status})
            out.append(f"http_requests_total{{{labels}}} {count}")
        out += [
            "# HELP http_request_duration_seconds HTTP request latency.",
            "# TYPE http_request_duration_seconds histogram",
        ]
        for bound, count in zip(BUCKETS, buckets, strict=True):
            out.append(f'http_request_duration_seconds_bucket{{le="{_fmt(bound)}"}} {count}')
        out.append(f'http_request_duration_seconds_bucket{{le="+Inf"}} {dcount}')
        out.append(f"http_request_duration_seconds_sum {_fmt(dsum)}")
        out.append(f"http_request_duration_seconds_count {dcount}")
        out += self._cache_lines(cache)
        out += [
            "# HELP process_start_time_seconds Start time of the process since unix epoch.",
            "# TYPE process_start_time_seconds gauge",
            f"process_start_time_seconds {_fmt(round(self.start_time, 3))}",
        ]
        return "\n".join(out) + "\n"

    def _cache_lines(self, cache: dict[str, int]) -> list[str]:
        lines = [
            "# HELP pivotal_cache_hit_rate Share of API cache lookups answered from the cache "
            "over the last minute.",
            "# TYPE pivotal_cache_hit_rate gauge",
            f'pivotal_cache_hit_rate{{cache_type="redis"}} {_fmt(self.hit_rate())}',
            "# HELP pivotal_cache_lookups_total API cache lookups by result.",
            "# TYPE pivotal_cache_lookups_total counter",
        ]
        for result in ("hit", "miss", "error"):
            labels = _labels({"cache_type": "redis", "result": result})
            lines.append(f"pivotal_cache_lookups_total{{{labels}}} {cache[result]}")
        return lines
