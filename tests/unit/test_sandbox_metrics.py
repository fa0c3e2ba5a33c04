"""The backend's Prometheus exposition (prometheus_client)."""

from __future__ import annotations

import math
import re
import time

from pflow_ops.sandbox.metrics import BUCKETS, Metrics


def _samples(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def test_counters_and_cumulative_histogram() -> None:
    metrics = Metrics(start_time=1700000000.25)
    metrics.observe("GET", "/health", 200, 0.003)
    metrics.observe("GET", "/api/items/:id", 500, 0.2)
    metrics.observe("GET", "/api/items/:id", 500, 20.0)
    samples = _samples(metrics.render())
    assert samples['http_requests_total{method="GET",route="/api/items/:id",status="500"}'] == 2
    assert samples['http_requests_total{method="GET",route="/health",status="200"}'] == 1
    assert samples['http_request_duration_seconds_bucket{le="0.005"}'] == 1
    assert samples['http_request_duration_seconds_bucket{le="0.25"}'] == 2
    assert samples['http_request_duration_seconds_bucket{le="10"}'] == 2
    assert samples['http_request_duration_seconds_bucket{le="+Inf"}'] == 3
    assert samples["http_request_duration_seconds_count"] == 3
    assert math.isclose(samples["http_request_duration_seconds_sum"], 20.203)
    assert samples["process_start_time_seconds"] == 1700000000.25
    assert BUCKETS[0] == 0.005 and BUCKETS[-1] == 10


def test_every_family_has_help_and_type() -> None:
    text = Metrics().render()
    for family, kind in [
        ("http_requests_total", "counter"),
        ("http_request_duration_seconds", "histogram"),
        ("pivotal_cache_hit_rate", "gauge"),
        ("process_start_time_seconds", "gauge"),
    ]:
        assert f"# TYPE {family} {kind}" in text
        assert re.search(rf"^# HELP {family} \S", text, re.MULTILINE)


def test_cache_hit_rate_moves_with_lookups() -> None:
    metrics = Metrics()
    key = 'pivotal_cache_hit_rate{cache_type="redis"}'
    assert math.isnan(_samples(metrics.render())[key])  # no lookups yet: no rate to report
    metrics.cache_lookup("miss")
    assert _samples(metrics.render())[key] == 0
    metrics.cache_lookup("hit")
    assert _samples(metrics.render())[key] == 0.5
    metrics.cache_lookup("error")  # Redis down: the cache served nothing
    assert math.isclose(metrics.hit_rate(), 1 / 3)


def test_the_hit_rate_covers_a_recent_window_only() -> None:
    metrics = Metrics(hit_rate_window=0.2)
    metrics.cache_lookup("miss")
    metrics.cache_lookup("miss")
    time.sleep(0.3)  # the misses age out: a recovered cache is not judged by its past
    metrics.cache_lookup("hit")
    assert metrics.hit_rate() == 1.0
    time.sleep(0.3)
    assert math.isnan(metrics.hit_rate())
    # The counters keep everything, for rate() in Prometheus.
    assert 'result="miss"} 2' in metrics.render()


def test_label_values_are_escaped() -> None:
    metrics = Metrics()
    metrics.observe("GET", 'a"b\\c', 404, 0.1)
    assert 'route="a\\"b\\\\c"' in metrics.render()


def test_wait_quiet_leaves_out_pflow_ops_own_alerts() -> None:
    """A heal clears the services' alerts; the receiver's own (a run in progress, a queue) are
    not faults of the sandbox and must not hold the bench or the tests up."""
    from pflow_ops.sandbox.observe import service_alerts

    alerts = [
        {"labels": {"alertname": "RedisConnectionFailure"}},
        {"labels": {"alertname": "X", "pflow_ops_self": "false"}},
        {"labels": {"alertname": "PflowOpsQueueNotDraining", "pflow_ops_self": "true"}},
        {},
    ]
    assert [a.get("labels", {}).get("alertname") for a in service_alerts(alerts)] == [
        "RedisConnectionFailure",
        "X",
        None,
    ]
