"""The receiver's Prometheus exposition."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from pflow_ops.receiver.metrics import Metrics
from tests.unit.test_sandbox_metrics import _samples


def _metrics() -> Metrics:
    m = Metrics()
    m.inc("alerts_received_total", status="firing")
    m.inc("alerts_received_total", status="firing")
    m.inc("alerts_received_total", status="resolved")
    m.inc("alerts_deduplicated_total")
    m.inc("requests_rejected_total", reason="unauthorized")
    m.inc("requests_rejected_total", reason='we"ird\\\n')
    m.observe_run("RB-01", "recovered", 3.2)
    m.observe_run("RB-01", "recovered", 45.0)
    m.observe_run("RB-02", "escalate", 0.4)
    return m


def test_counters_histogram_and_gauges_render() -> None:
    text = _metrics().render(queue_depth=2, running=1)
    samples = _samples(text)
    lines = [f"{name} {value:g}" for name, value in samples.items()] + text.splitlines()
    assert 'pflow_receiver_alerts_received_total{status="firing"} 2' in lines
    assert 'pflow_receiver_alerts_received_total{status="resolved"} 1' in lines
    assert "pflow_receiver_alerts_deduplicated_total 1" in lines
    assert "pflow_receiver_alerts_throttled_total 0" in lines
    assert 'pflow_receiver_requests_rejected_total{reason="unauthorized"} 1' in lines
    assert 'pflow_receiver_requests_rejected_total{reason="we\\"ird\\\\\\n"} 1' in lines
    assert 'pflow_receiver_runs_total{outcome="recovered",runbook="RB-01"} 2' in lines
    assert 'pflow_receiver_runs_total{outcome="escalate",runbook="RB-02"} 1' in lines
    assert 'pflow_receiver_run_duration_seconds_bucket{le="1"} 1' in lines
    assert 'pflow_receiver_run_duration_seconds_bucket{le="5"} 2' in lines
    assert 'pflow_receiver_run_duration_seconds_bucket{le="60"} 3' in lines
    assert 'pflow_receiver_run_duration_seconds_bucket{le="+Inf"} 3' in lines
    assert "pflow_receiver_run_duration_seconds_sum 48.6" in lines
    assert "pflow_receiver_run_duration_seconds_count 3" in lines
    assert "pflow_receiver_queue_depth 2" in lines
    assert "pflow_receiver_runs_in_progress 1" in lines
    assert "# TYPE pflow_receiver_run_duration_seconds histogram" in lines


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_promtool_accepts_the_exposition() -> None:
    text = _metrics().render(queue_depth=0, running=0)
    proc = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    # promtool exits 0 when clean, 3 for lint remarks only; 1 means it could not parse it.
    assert proc.returncode in (0, 3), proc.stderr
    assert "error" not in proc.stderr.lower(), proc.stderr
