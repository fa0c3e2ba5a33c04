"""The receiver's own Prometheus metrics, in the text exposition format (version 0.0.4).

Counters live in memory and restart at zero with the receiver: Prometheus treats that as a
counter reset. Label values come from the catalogue and a fixed set of reasons, never from an
alert's labels, and are escaped anyway.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable

PREFIX = "pflow_receiver"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
DURATION_BUCKETS = (1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)


def escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(pairs: tuple[tuple[str, str], ...]) -> str:
    if not pairs:
        return ""
    return "{" + ",".join(f'{k}="{escape(v)}"' for k, v in pairs) + "}"


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
        out: list[str] = []
        with self._lock:
            for name, help_text in _COUNTERS:
                full = f"{PREFIX}_{name}"
                out += [f"# HELP {full} {help_text}", f"# TYPE {full} counter"]
                series = self._counters.get(name) or {}
                if not series and name in _UNLABELLED:
                    out.append(f"{full} 0")
                for key, value in sorted(series.items()):
                    out.append(f"{full}{_labels(key)} {_num(value)}")
            out += self._histogram()
        out += _gauge("queue_depth", "Alerts queued, waiting for their run", queue_depth)
        out += _gauge("runs_in_progress", "Runs in progress", running)
        out += self._read_gauges()
        out += self._policy_gauges()
        return "\n".join(out) + "\n"

    # -- HTTP server (issue 14, part 2): gauges read when scraped ----------------------------
    def gauge(self, name: str, help_text: str, read: Callable[[], int]) -> None:
        """Register a gauge whose value ``read()`` gives at each scrape (e.g. connections)."""
        self._gauges[name] = (help_text, read)

    def _read_gauges(self) -> list[str]:
        out: list[str] = []
        for name, (help_text, read) in sorted(self._gauges.items()):
            out += _gauge(name, help_text, read())
        return out

    # -- end of the HTTP server's part --------------------------------------------------------

    def _histogram(self) -> list[str]:
        full = f"{PREFIX}_run_duration_seconds"
        out = [
            f"# HELP {full} Duration of the runs the receiver launched",
            f"# TYPE {full} histogram",
        ]
        for bound, count in zip(DURATION_BUCKETS, self._buckets, strict=True):
            out.append(f'{full}_bucket{{le="{_num(bound)}"}} {count}')
        out.append(f'{full}_bucket{{le="+Inf"}} {self._duration_count}')
        out.append(f"{full}_sum {_num(round(self._duration_sum, 3))}")
        out.append(f"{full}_count {self._duration_count}")
        return out

    # -- the policy's gauges (pause switch) -------------------------------------------------
    def set_gauge(self, name: str, value: float) -> None:
        with self._lock:
            self._set_gauges[name] = value

    def _policy_gauges(self) -> list[str]:
        with self._lock:
            values = dict(self._set_gauges)
        out: list[str] = []
        for name, help_text in _POLICY_GAUGES:
            out += _gauge(name, help_text, int(values.get(name, 0)))
        return out


def _gauge(name: str, help_text: str, value: int) -> list[str]:
    full = f"{PREFIX}_{name}"
    return [f"# HELP {full} {help_text}", f"# TYPE {full} gauge", f"{full} {value}"]


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
