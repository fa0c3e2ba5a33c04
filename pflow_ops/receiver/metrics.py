"""The receiver's own Prometheus metrics, exposed by prometheus_client (text format 0.0.4).

Counters live in memory and restart at zero with the receiver: Prometheus treats that as a
counter reset. Label values come from the catalogue and a fixed set of reasons, never from an
alert's labels; prometheus_client escapes them. The values are kept here (their label sets vary
by counter and are only known when first counted) and handed to prometheus_client as metric
families at each scrape by a custom collector, so formatting and escaping are the library's.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, disable_created_metrics, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import Collector

PREFIX = "pflow_receiver"
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
DURATION_BUCKETS = (1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)

# Our counters restart with the process; the extra *_created series would only add noise
# (the function is untyped upstream).
disable_created_metrics()  # type: ignore[no-untyped-call]


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[str, dict[tuple[tuple[str, str], ...], float]] = defaultdict(dict)
        self._buckets = [0] * len(DURATION_BUCKETS)
        self._duration_sum = 0.0
        self._duration_count = 0
        self._gauges: dict[str, tuple[str, Callable[[], int]]] = {}  # read at each scrape
        self._set_gauges: dict[str, float] = {}  # set by the receiver (paused)

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            series = self._counters[name]
            series[key] = series.get(key, 0.0) + amount

    def observe_run(self, runbook: str, outcome: str, seconds: float) -> None:
        self.inc("runs_total", runbook=runbook, outcome=outcome)
        with self._lock:
            self._duration_sum += seconds
            self._duration_count += 1
            for i, bound in enumerate(DURATION_BUCKETS):
                if seconds <= bound:
                    self._buckets[i] += 1

    def value(self, name: str, **labels: str) -> float:
        with self._lock:
            return self._counters.get(name, {}).get(tuple(sorted(labels.items())), 0.0)

    def render(self, queue_depth: int, running: int) -> str:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Families(lambda: self._families(queue_depth, running)))
        return generate_latest(registry).decode()

    def _families(self, queue_depth: int, running: int) -> list[Metric]:
        out: list[Metric] = []
        with self._lock:
            for name, help_text in _COUNTERS:
                full = f"{PREFIX}_{name}"
                family = Metric(full.removesuffix("_total"), help_text, "counter")
                series = self._counters.get(name) or {}
                if not series and name in _UNLABELLED:
                    family.add_sample(full, {}, 0.0)
                for key, value in sorted(series.items()):
                    family.add_sample(full, dict(key), value)
                out.append(family)
            out.append(self._histogram())
        out.append(_gauge("queue_depth", "Alerts queued, waiting for their run", queue_depth))
        out.append(_gauge("runs_in_progress", "Runs in progress", running))
        out += self._read_gauges()
        out += self._policy_gauges()
        return out

    # -- HTTP server (issue 14, part 2): gauges read when scraped ----------------------------
    def gauge(self, name: str, help_text: str, read: Callable[[], int]) -> None:
        """Register a gauge whose value ``read()`` gives at each scrape (e.g. connections)."""
        self._gauges[name] = (help_text, read)

    def _read_gauges(self) -> list[Metric]:
        return [_gauge(name, text, read()) for name, (text, read) in sorted(self._gauges.items())]

    # -- end of the HTTP server's part --------------------------------------------------------

    def _histogram(self) -> HistogramMetricFamily:
        cumulative = list(zip((_num(b) for b in DURATION_BUCKETS), self._buckets, strict=True))
        return HistogramMetricFamily(
            f"{PREFIX}_run_duration_seconds",
            "Duration of the runs the receiver launched",
            buckets=[*cumulative, ("+Inf", self._duration_count)],
            sum_value=round(self._duration_sum, 3),
        )

    # -- the policy's gauges (pause switch) -------------------------------------------------
    def set_gauge(self, name: str, value: float) -> None:
        with self._lock:
            self._set_gauges[name] = value

    def _policy_gauges(self) -> list[Metric]:
        with self._lock:
            values = dict(self._set_gauges)
        return [_gauge(name, text, int(values.get(name, 0))) for name, text in _POLICY_GAUGES]


def _gauge(name: str, help_text: str, value: int) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"{PREFIX}_{name}", help_text, value=value)


class _Families(Collector):
    """A prometheus_client collector that yields the families read at scrape time."""

    def __init__(self, read: Callable[[], list[Metric]]) -> None:
        self._read = read

    def collect(self) -> Iterator[Metric]:
        yield from self._read()


_COUNTERS = (
    ("alerts_received_total", "Alerts received, by status"),
    ("alerts_deduplicated_total", "Firing alerts already queued, running or handled recently"),
    ("alerts_throttled_total", "Firing alerts deferred as the follow-up run of their runbook"),
    (
        "alerts_ignored_total",
        "Alerts not acted on, by reason (routing reasons, bad_fingerprint, bad_group_key,"
        " bad_incident)",
    ),
    ("alerts_cancelled_total", "Queued runs cancelled because their alert resolved"),
    ("requests_rejected_total", "HTTP requests refused, by reason"),
    ("runs_total", "Runs finished, by runbook and outcome"),
    ("token_reloads_total", "Bearer token reloads from --token-file, by result"),
    # The policy: attachments, the pre-start Alertmanager check.
    ("alerts_attached_total", "Firing alerts that joined a queued run of their runbook"),
    ("alerts_skipped_total", "Queued alerts not run: silenced, inhibited or not active"),
    ("alertmanager_check_errors_total", "Pre-start Alertmanager checks that could not be made"),
    # The journal: what Alertmanager left out, compactions.
    ("truncated_alerts_total", "Alerts Alertmanager left out of its notifications (max_alerts)"),
    ("journal_compactions_total", "Journal compactions (the old journal archived)"),
)
_UNLABELLED = {
    "alerts_deduplicated_total",
    "alerts_throttled_total",
    "alerts_cancelled_total",
    "alertmanager_check_errors_total",
    "truncated_alerts_total",
    "journal_compactions_total",
}
_POLICY_GAUGES = (("paused", "1 while `pflow-ops receiver pause` holds every run start"),)
