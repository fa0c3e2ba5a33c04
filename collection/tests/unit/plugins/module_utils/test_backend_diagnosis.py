"""backend_diagnose's investigation, branch by branch: the plan, each check's stand-ins, the
timeline's words, and whole runs against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from ansible_collections.pivotal.flow_ops.plugins.module_utils import backend_diagnosis as bd
from ansible_collections.pivotal.flow_ops.plugins.module_utils import backend_timeline as bt
from ansible_collections.pivotal.flow_ops.plugins.module_utils import dependency_checks as dc
from ansible_collections.pivotal.flow_ops.plugins.module_utils import compose, service_state


METRICS = b"nodejs_eventloop_lag_seconds 0.004\nnodejs_heap_size_used_bytes 1000\n"


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/metrics":
            self.send_response(200)
            self.send_header("Content-Length", str(len(METRICS)))
            self.end_headers()
            self.wfile.write(METRICS)
            return
        status = 200 if self.path in ("/health", "/api") else 503
        body = json.dumps({"status": "ok" if status == 200 else "down"}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def params(tmp_path: Path, base: str, **over: object) -> dict:
    out: dict = {
        "service": "backend",
        "manager": "supervisord",
        "manager_timeout": 5.0,
        "log_lines": 5,
        # No supervisord there: the manager is unreachable, a finding and not a failure.
        "supervisor": {"server_url": f"unix://{tmp_path}/none.sock", "username": None, "password": None},
        "compose": None,
        "health_url": f"{base}/health",
        "health_timeout": 1.0,
        "probe_url": f"{base}/api",
        "probe_samples": 3,
        "resources": {"paths": [str(tmp_path)], "thresholds": {}},
        "postgres": None,
        "redis": None,
    }
    out.update(over)
    return out


def test_a_whole_run_keeps_each_modules_shape_and_times_every_check(tmp_path: Path, http: str) -> None:
    result, warnings = bd.diagnose(params(tmp_path, http))
    assert warnings == [] and result["changed"] is False
    status = result["status"]
    assert status["manager"] == "supervisord" and status["reachable"] is False and status["running"] is False
    # The manager could not be asked: no squatter to name, so no /proc scan.
    assert result["health"]["healthy"] is True and result["health"]["listener"] is None
    assert result["probe"]["samples"]["count"] == 3
    assert result["resources"]["findings"] and result["dependencies"]["available"] is True
    rows = {r["check"]: r for r in result["timeline"]}
    assert list(rows) == ["service_status", "host_resources", "health_endpoint", "api_sample"]
    assert rows["service_status"]["status"] == "critical" and rows["health_endpoint"]["status"] == "ok"
    assert rows["api_sample"]["status"] == "ok" and rows["api_sample"]["step"].startswith("Sample the backend API")
    assert all(r["duration_s"] >= 0 and r["start_s"] >= 0 for r in rows.values())


def test_no_sample_when_health_fails(tmp_path: Path, http: str) -> None:
    result = bd.diagnose(params(tmp_path, http, health_url=f"{http}/down"))[0]
    assert result["health"]["healthy"] is False and result["probe"] == {"changed": False, "skipped": True}
    assert result["timeline"][-1]["status"] == "skipped"


def test_no_probe_url_samples_nothing(tmp_path: Path, http: str) -> None:
    result = bd.diagnose(params(tmp_path, http, probe_url="", resources=None))[0]
    assert result["probe"].get("skipped") and result["resources"] is None
    assert [r["check"] for r in result["timeline"]] == ["service_status", "health_endpoint", "api_sample"]


def test_dependencies_run_in_the_same_call(tmp_path: Path, http: str) -> None:
    redis = {"host": "127.0.0.1", "port": 1, "user": None, "password": None, "timeout": 0.5, "tls": False,
             "validate_certs": True}
    result = bd.diagnose(params(tmp_path, http, redis=redis))[0]
    assert result["dependencies"]["down"] == ["redis"]
    row = next(r for r in result["timeline"] if r["check"] == "dependency_redis")
    assert row["status"] == "critical" and "refused" in row["detail"]


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"health_timeout": 0.0}, "health_timeout and manager_timeout must be > 0"),
        ({"probe_samples": 0}, "probe_samples must be >= 1"),
        ({"log_lines": -1}, "log_lines must be >= 0"),
        ({"manager": "compose"}, "compose.project is required"),
        ({"supervisor": None}, "supervisor.server_url is required"),
        ({"redis": {"host": "h", "port": 0, "timeout": 1.0}}, r"redis\.port must be between 1 and 65535"),
    ],
)
def test_bad_parameters_fail_the_task(tmp_path: Path, over: dict, message: str) -> None:
    with pytest.raises(dc.ModuleFailure, match=message):
        bd.diagnose(params(tmp_path, "http://127.0.0.1:1", **over))


def test_a_bad_url_fails_the_task(tmp_path: Path) -> None:
    with pytest.raises(dc.ModuleFailure, match="expected http"):
        bd.diagnose(params(tmp_path, "ftp://x"))


def test_bad_thresholds_fail_the_task(tmp_path: Path, http: str) -> None:
    bad = {"paths": [], "thresholds": {"load_per_cpu_max": 0}}
    with pytest.raises(dc.ModuleFailure, match="resources: thresholds.load_per_cpu_max"):
        bd.diagnose(params(tmp_path, http, resources=bad))


def test_a_refusing_manager_fails_the_task(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, http: str) -> None:
    def refused(rpc: dict) -> tuple:
        raise bd.supervisor_rpc.ModuleFailure("supervisord at x has no program 'backend'")

    monkeypatch.setattr(bd.supervisor_rpc, "read_program", refused)
    with pytest.raises(dc.ModuleFailure, match="has no program"):
        bd.diagnose(params(tmp_path, http))


def test_compose_without_the_sdk_fails_the_task(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compose, "HAS_DOCKER", False)
    out = bd.manager_status({"service": "backend", "manager": "compose", "compose": {}, "log_lines": 0})
    assert "Docker SDK" in out["failure"]


def test_compose_status_is_the_neutral_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compose, "HAS_DOCKER", True)
    monkeypatch.setattr(compose, "run", lambda p: dict(compose.unreachable("engine down"), seen=p))
    out = bd.manager_status({"service": "backend", "manager": "compose", "compose": {"project": "p"}, "log_lines": 3})
    assert out["status"]["manager"] == "compose" and out["status"]["msg"] == "engine down"
    assert out["failure"] is None


@pytest.mark.parametrize(
    ("name", "manager", "key", "expected"),
    [
        ("service_status", "supervisord", "status", {"manager": "supervisord", "reachable": False}),
        ("service_status", "compose", "status", {"manager": "compose", "reachable": False}),
        ("host_resources", "supervisord", "status", "unknown"),
        ("health_endpoint", "supervisord", "probe", {"changed": False, "skipped": True}),
        ("dependency_redis", "supervisord", "state", "timeout"),
    ],
)
def test_a_check_that_does_not_come_back_has_a_stand_in(name: str, manager: str, key: str, expected: object) -> None:
    out = bd.late({"service": "backend", "manager": manager, "health_url": "http://h/health"})(name, 2.0)
    got = out[key]
    if isinstance(expected, dict):
        assert {k: got[k] for k in expected} == expected
    else:
        assert got == expected


@pytest.mark.parametrize(("name", "failure"), [("dependency_postgresql", False), ("service_status", True)])
def test_a_check_that_raised(name: str, failure: bool) -> None:
    out = bd.crashed({})(name, "boom")
    assert ("failure" in out) is failure


def test_a_hung_check_is_abandoned_in_time(tmp_path: Path, http: str, monkeypatch: pytest.MonkeyPatch) -> None:
    gate = threading.Event()
    monkeypatch.setattr(bd, "RESOURCES_TIMEOUT_S", 0.1)
    monkeypatch.setattr(bd, "resources", lambda p: (gate.wait(5), {})[1])
    result = bd.diagnose(params(tmp_path, http))[0]
    gate.set()
    assert result["resources"]["status"] == "unknown"
    assert "no result within" in result["resources"]["findings"][0]["detail"]


@pytest.mark.parametrize(
    ("status", "word"),
    [({"running": True, "detail": "up"}, "ok"), ({"running": False, "msg": "unreachable"}, "critical")],
)
def test_status_words(status: dict, word: str) -> None:
    assert bt.status_words(status)[0] == word


@pytest.mark.parametrize(
    ("dep", "word"),
    [
        ({"available": True, "msg": "ok"}, "ok"),
        ({"available": False, "state": "driver_missing"}, "warning"),
        ({"available": False, "state": "timeout"}, "timeout"),
        ({"available": False, "state": "refused"}, "critical"),
    ],
)
def test_dependency_words(dep: dict, word: str) -> None:
    assert bt.dependency_words(dep)[0] == word


def test_resources_words_name_the_worst_findings() -> None:
    res = {"status": "warning", "findings": [{"status": "ok", "detail": "a"}, {"status": "warning", "detail": "b"}]}
    assert bt.resources_words(res) == ("warning", "b")


@pytest.mark.parametrize(
    ("health", "word", "text"),
    [
        ({"url": "u", "healthy": True, "state": "healthy", "status": 200}, "ok", "u healthy, HTTP 200"),
        ({"url": "u", "healthy": False, "state": "hung", "reason": "no answer"}, "critical", "u hung: no answer"),
    ],
)
def test_health_words(health: dict, word: str, text: str) -> None:
    # (the retried case: test_a_health_probe_that_ran_out_of_time_is_retried_once)
    assert bt.health_words(health) == (word, text)


@pytest.mark.parametrize(
    ("probe", "word"),
    [
        ({"skipped": True}, "skipped"),
        ({"samples": {"count": 5, "failures": 0, "p95_ms": 3.0}}, "ok"),
        ({"samples": {"count": 5, "failures": 2, "p95_ms": 3.0}}, "warning"),
    ],
)
def test_sample_words(probe: dict, word: str) -> None:
    assert bt.sample_words(probe)[0] == word


def test_compose_status_from_the_info_result() -> None:
    raw = {"reachable": True, "found": True, "running": True, "state": "running", "pid": "3f2a@12", "detail": "d",
           "msg": "", "logs": ["l"], "instances": [{"id": "3f2a"}]}
    out = service_state.compose_status(raw, "backend")
    assert out["manager"] == "compose" and out["pid"] == "3f2a@12" and out["logs"] == ["l"]
    assert service_state.compose_status(None, "backend")["state"] == "unknown"


@pytest.mark.parametrize(
    ("status", "state", "named"),
    [
        ({"reachable": True, "running": False}, "healthy", True),
        ({"reachable": True, "running": False}, "refused", False),
        ({"reachable": True, "running": True}, "healthy", False),
        ({"reachable": False, "running": False}, "healthy", False),
    ],
)
def test_the_ports_owner_is_read_only_for_a_possible_squatter(
    http: str, status: dict, state: str, named: bool
) -> None:
    out = bd.listener(status, {"state": state}, f"{http}/health")
    assert (out is not None) is named
    if named:
        assert out["port"] == int(http.rsplit(":", 1)[1])


@pytest.mark.parametrize(
    ("manager", "over", "expected"),
    [
        ("supervisord", {}, {"server_url": "unix:///s.sock"}),
        ("compose", {}, {"project": "pf", "docker_host": "unix:///d.sock"}),
        ("supervisord", {"compose": None}, {"server_url": "unix:///s.sock"}),
        ("compose", {"supervisor": None}, {"project": "pf", "docker_host": "unix:///d.sock"}),
    ],
)
def test_the_manager_picks_its_own_connection(manager: str, over: dict, expected: dict) -> None:
    both = {"manager": manager, "supervisor": {"server_url": "unix:///s.sock"},
            "compose": {"project": "pf", "docker_host": "unix:///d.sock"}, **over}
    assert bd.manager_connection(both) == expected


@pytest.mark.parametrize(
    ("manager", "connections", "message"),
    [
        ("supervisord", {"supervisor": {"server_url": ""}, "compose": {"project": "pf"}}, "supervisor.server_url"),
        ("compose", {"supervisor": {"server_url": "unix:///s.sock"}, "compose": None}, "compose.project"),
    ],
)
def test_a_manager_without_its_connection_fails(manager: str, connections: dict, message: str) -> None:
    with pytest.raises(dc.ModuleFailure, match=message):
        bd.manager_connection({"manager": manager, **connections})


NODE = {"metrics_url": "", "timeout": 1.0, "cpu_sample_seconds": 0.05}


def test_the_node_signals_run_in_the_same_call(tmp_path: Path, http: str) -> None:
    result = bd.diagnose(params(tmp_path, http, node=dict(NODE, metrics_url=f"{http}/metrics")))[0]
    node = result["node"]
    assert node["metrics"] == {"eventloop_lag_s": 0.004, "heap_used_bytes": 1000.0} and node["metrics_error"] == ""
    # supervisord unreachable: no pid to sample, no log tail to read.
    assert node["process"] == {} and node["logs"]["heap_limit"] == "" and "elapsed_s" not in node
    rows = {r["check"]: r for r in result["timeline"]}
    assert list(rows)[-1] == "node_signals" and rows["node_signals"]["status"] == "ok"
    assert "event loop lag 4 ms" in rows["node_signals"]["detail"]
    assert bd.diagnose(params(tmp_path, http))[0]["node"] is None


def test_the_node_check_reads_the_pid_and_log_tail_the_manager_returns(
    tmp_path: Path, http: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    logs = ["listening on :3000", "FATAL ERROR: Reached heap limit Allocation failed"]
    status = {"manager": "supervisord", "reachable": True, "running": True, "pid": os.getpid(), "logs": logs}
    monkeypatch.setattr(bd, "manager_status", lambda p: {"status": status, "warnings": [], "failure": None})
    result = bd.diagnose(params(tmp_path, http, probe_url="", node=NODE))[0]
    node = result["node"]
    # No metrics URL: the event loop is not known to run, so the CPU is sampled.
    assert node["metrics_error"] == "no metrics URL" and node["process"]["cpu_share"] is not None
    assert node["logs"]["heap_limit"].startswith("FATAL ERROR") and node["logs"]["heap_limit_crashes"] == 1
    row = result["timeline"][-1]
    assert row["check"] == "node_signals" and row["status"] == "warning" and "heap-limit abort" in row["detail"]


def test_the_node_check_does_not_wait_past_the_managers_timeout() -> None:
    out = bd.node_after_status(bd.Handoff(), {"manager_timeout": 0.05, "node": NODE})
    assert out["process"] == {} and out["metrics_error"] == "no metrics URL"


def test_a_failed_status_check_still_releases_the_node_check(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(p: dict) -> dict:
        raise RuntimeError("bug")

    monkeypatch.setattr(bd, "manager_status", boom)
    handoff = bd.Handoff()
    with pytest.raises(RuntimeError):
        bd.status_handed_off(handoff, {})
    assert handoff.get(0) is None and handoff._ready.is_set()


def test_a_node_check_that_does_not_come_back_has_a_stand_in() -> None:
    out = bd.late({"service": "backend", "manager": "supervisord", "health_url": "u"})("node_signals", 2.0)
    assert out["metrics_error"] == "no result within 2 s" and out["process"] == {}
    assert out["logs"]["heap_limit_crashes"] == 0


def test_the_node_checks_bound_covers_the_managers_answer_and_the_cpu_sample() -> None:
    assert bd.node_timeout({"manager_timeout": 15.0, "node": NODE}) == 15.0 + 0.05 + bd.HEALTH_SLACK_S


def test_bad_node_parameters_fail_the_task(tmp_path: Path) -> None:
    with pytest.raises(dc.ModuleFailure, match="node.timeout must be > 0"):
        bd.diagnose(params(tmp_path, "http://127.0.0.1:1", node=dict(NODE, timeout=0.0)))


@pytest.mark.parametrize(
    ("signals", "word", "text"),
    [
        ({"metrics": {"eventloop_lag_s": 0.004}, "metrics_error": "", "process": {"state": "S", "cpu_share": None},
          "logs": {}}, "ok", "event loop lag 4 ms; process S"),
        ({"metrics": {}, "metrics_error": "u did not answer", "process": {"state": "R", "cpu_share": 0.98},
          "logs": {}}, "unknown", "metrics: u did not answer; process R, 0.98 CPU"),
        ({"metrics": {}, "metrics_error": "x", "process": {"error": "cannot read /proc/1/stat"},
          "logs": {"unhandled_rejection": "U", "addr_in_use": "E"}}, "warning",
         "metrics: x; cannot read /proc/1/stat; log: unhandled rejection, EADDRINUSE"),
    ],
)
def test_node_words(signals: dict, word: str, text: str) -> None:
    assert bt.node_words(signals) == (word, text)


@pytest.mark.parametrize(
    ("state", "retried"),
    [("hung", True), ("timeout", True), ("refused", False), ("unhealthy", False), ("healthy", False),
     ("error", False)],
)
def test_retry_health(state: str, retried: bool) -> None:
    assert bd.retry_health({"state": state}) is retried


def test_a_health_probe_that_ran_out_of_time_is_retried_once(
    tmp_path: Path, http: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A loaded controller: the first probe misses its timeout, the second gets the answer."""
    answers = [{"state": "hung", "reason": "no HTTP response within 1 s after connecting"}]
    real = bd.http_check

    def first_hangs(p: dict) -> dict:
        if p["url"].endswith("/health") and answers:
            out = real(p)
            out.update(healthy=False, status=None, **answers.pop())
            return out
        return real(p)

    monkeypatch.setattr(bd, "http_check", first_hangs)
    result = bd.diagnose(params(tmp_path, http))[0]
    assert result["health"]["healthy"] is True and result["health"]["retried"]["state"] == "hung"
    assert result["probe"]["samples"]["count"] == 3
    row = next(r for r in result["timeline"] if r["check"] == "health_endpoint")
    assert row["status"] == "ok" and "probed twice: the first probe hung: no HTTP response" in row["detail"]


def test_a_refused_health_probe_is_not_retried(tmp_path: Path) -> None:
    result = bd.diagnose(params(tmp_path, "http://127.0.0.1:1", probe_url=""))[0]
    assert result["health"]["state"] == "refused" and "retried" not in result["health"]


def test_a_backend_that_misses_both_probes_is_hung(tmp_path: Path, http: str, monkeypatch: pytest.MonkeyPatch) -> None:
    real = bd.http_check
    calls: list[str] = []

    def always_hangs(p: dict) -> dict:
        calls.append(p["url"])
        return dict(real(p), healthy=False, status=None, state="hung", reason="no HTTP response within 1 s")

    monkeypatch.setattr(bd, "http_check", always_hangs)
    result = bd.diagnose(params(tmp_path, http))[0]
    assert result["health"]["state"] == "hung" and result["health"]["retried"]["state"] == "hung"
    assert calls == [f"{http}/health", f"{http}/health"] and result["probe"].get("skipped")
