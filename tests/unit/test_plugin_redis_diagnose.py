"""redis_diagnose's collection helpers (module_utils/redis_collect): rates over the window,
without our own lookups, and the optional Prometheus hit-rate query against a real HTTP server."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.plugins import PLUGINS, load_plugin

sys.path.insert(0, str(PLUGINS.parents[1] / "collections"))
diag = load_plugin("redis_collect", "module_utils")


class Prometheus(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        value = "0.42" if "pivotal_cache_hit_rate" in self.path else None
        result = [{"metric": {}, "value": [0, value]}] if value else []
        body = json.dumps({"status": "success", "data": {"result": result}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def prometheus() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Prometheus)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _params(
    url: str, query: str = 'pivotal_cache_hit_rate{cache_type="redis"}'
) -> dict[str, object]:
    return {
        "prometheus_url": url,
        "prometheus_query": query,
        "prometheus_timeout": 2.0,
        "thresholds": {},
    }


def test_backend_hit_rate_from_prometheus(prometheus: str) -> None:
    finding = diag.prometheus(_params(prometheus))
    assert (finding["status"], finding["value"], finding["threshold"]) == (
        "warning",
        "42.0%",
        "80.0%",
    )


def test_no_url_or_no_series_is_skipped(prometheus: str) -> None:
    assert diag.prometheus(_params(""))["status"] == "skipped"
    assert diag.prometheus(_params(prometheus, "other_metric"))["status"] == "skipped"


def test_rates_are_deltas_over_the_window_without_our_own_lookups() -> None:
    keys = ("evicted_keys", "keyspace_hits", "keyspace_misses", "rejected_connections")
    first = {**dict(zip(keys, (100, 1000, 50, 1), strict=True)), "total_commands_processed": 0}
    second = {**dict(zip(keys, (400, 1600, 80, 1), strict=True)), "total_commands_processed": 3000}
    first["errorstat_OOM"], second["errorstat_OOM"] = {"count": 2}, {"count": 7}
    rates = diag.rates(first, second, 3.0, own_lookups=120, own_hits=100)
    assert rates["evicted"] == 300 and rates["evicted_per_s"] == 100.0
    assert (rates["hits"], rates["misses"]) == (500, 10)
    assert rates["oom_errors"] == 5 and rates["rejected"] == 0 and rates["ops_per_s"] == 1000.0


class AclConnection:
    """Two keys, and an ACL that refuses the commands named in ``refused``."""

    def __init__(self, refused: set[str]) -> None:
        self.refused = refused

    def _reply(self, parts: tuple[object, ...]) -> object:
        name = str(parts[0]).lower()
        full = f"{name}|{str(parts[1]).lower()}" if name in ("memory", "config") else name
        if full in self.refused:
            return diag.RedisReplyError(
                f"NOPERM this user has no permissions to run the '{full}' command"
            )
        return {"scan": ["0", ["a", "b"]], "memory": 2_000_000, "type": "string", "pttl": -1}[name]

    def try_call(self, *parts: object) -> object:
        return self._reply(parts)

    def pipeline(self, commands: list[tuple[object, ...]]) -> list[object]:
        return [self._reply(c) for c in commands]


def test_a_refused_pttl_leaves_no_error_object_in_the_result() -> None:
    denied: list[dict[str, str]] = []
    sample = diag.sample_bigkeys(AclConnection({"pttl"}), 1.0, 5, denied)
    json.dumps(sample)  # what exit_json does: an error object here crashed the module
    assert sample["sampled"] == 2 and sample["top"][0]["ttl_ms"] is None
    assert denied == [
        {"command": "PTTL", "rule": "+pttl", "effect": "whether the big keys expire is unknown"}
    ]


def test_a_refused_memory_usage_is_not_a_silent_empty_sample() -> None:
    denied: list[dict[str, str]] = []
    sample = diag.sample_bigkeys(AclConnection({"memory|usage"}), 1.0, 5, denied)
    assert (sample["denied"], sample["denied_command"]) == ("+memory|usage", "MEMORY USAGE")
    assert [d["rule"] for d in denied] == ["+memory|usage"]
