"""The pre-start check: Alertmanager's answer -> run, skip (silenced, inhibited, not active) or
unchecked; and what the receiver does with each (skip the alert, try the next, run unchecked)."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from bench.loadtest import alert, notification
from pflow_ops import routing
from pflow_ops.receiver import alertmanager as am
from pflow_ops.receiver import payload, service
from pflow_ops.receiver.core import Receiver
from pflow_ops.receiver.journal import Journal
from pflow_ops.receiver.policy import Policy
from pflow_ops.receiver.worker import RunResult

FP = "0123456789abcdef"


def am_alert(state: str = "active", silenced: Any = (), inhibited: Any = ()) -> dict[str, Any]:
    status = {"state": state, "silencedBy": list(silenced), "inhibitedBy": list(inhibited)}
    return {"fingerprint": FP, "labels": {"alertname": "X"}, "status": status}


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ([am_alert()], am.Verdict(am.RUN)),
        ([am_alert("unprocessed")], am.Verdict(am.RUN)),
        ([{**am_alert(), "fingerprint": "ff"}, am_alert()], am.Verdict(am.RUN)),
        ([], am.Verdict(am.SKIP, am.NOT_ACTIVE, am.verdict([], FP).detail)),
        ([{**am_alert(), "fingerprint": "ff"}], am.Verdict(am.SKIP, am.NOT_ACTIVE, "")),
        ([am_alert("suppressed", silenced=["s-1"])], am.Verdict(am.SKIP, am.SILENCED, "")),
        ([am_alert("suppressed", inhibited=["i-1"])], am.Verdict(am.SKIP, am.INHIBITED, "")),
        ([am_alert("suppressed")], am.Verdict(am.SKIP, am.SILENCED, "")),
        ([am_alert("exploded")], am.Verdict(am.UNCHECKED)),
        ([{"fingerprint": FP, "status": "active"}], am.Verdict(am.UNCHECKED)),
        ({"alerts": []}, am.Verdict(am.UNCHECKED)),
        (None, am.Verdict(am.UNCHECKED)),
    ],
)
def test_verdict_per_answer(answer: Any, expected: am.Verdict) -> None:
    got = am.verdict(answer, FP)
    assert (got.action, got.reason) == (expected.action, expected.reason)
    assert got.check == ("unchecked" if expected.action == am.UNCHECKED else "ok")


def test_the_silence_ids_are_in_the_detail() -> None:
    got = am.verdict([am_alert("suppressed", silenced=["abc-123"])], FP)
    assert got.detail == "silence abc-123"


def test_the_filter_is_url_encoded() -> None:
    url = am.query_url("http://am:9093/", "HighErrorRate")
    assert url == "http://am:9093/api/v2/alerts?filter=alertname%3D%22HighErrorRate%22"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    "base",
    [f"http://127.0.0.1:{_closed_port()}", "not a url", "ftp://127.0.0.1/"],
)
def test_an_unreachable_alertmanager_is_unchecked_never_an_exception(base: str) -> None:
    got = am.check(base, "X", FP, timeout=2)
    assert got.action == am.UNCHECKED and got.detail


# -- the receiver's use of it ----------------------------------------------------------------
TABLE = routing.Table(
    targets={"RB-01": routing.Target("RB-01", "backend")},
    by_alert={"BackendServiceDown": "RB-01", "HighErrorRate": "RB-01"},
    aliases={},
    alias_of={},
)


class Launcher:
    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def run(self, argv: list[str], timeout: float) -> RunResult:
        self.calls.append(argv)
        return RunResult(0, "recovered", 0.01)

    def abort(self) -> None:
        pass


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PFLOW_OPS_HOME", str(tmp_path / "home"))


def _app(tmp_path: Path, verdicts: dict[str, am.Verdict], url: str = "http://am") -> Receiver:
    journal = Journal(tmp_path / "r")
    journal.open()
    return Receiver(
        "local",
        Policy(TABLE, throttle_window=600, dedupe_window=600),
        journal,
        Launcher(),
        prefix=("pflow-alert",),
        log=lambda *a, **k: None,
        alertmanager_url=url,
        check=lambda base, name, fp: verdicts[fp],
    )


def _drain(app: Receiver) -> None:
    """Run the backend worker until the queue is empty."""
    thread = threading.Thread(target=app.work, args=("backend",))
    thread.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and app.depth() != (0, 0):
        time.sleep(0.02)
    app.stop()
    thread.join(5)
    app.journal.close()


def _receive(app: Receiver, *alerts: dict[str, Any]) -> None:
    app.receive(payload.parse(json.dumps(notification(*alerts)).encode()))


def test_a_silenced_alert_is_skipped_and_the_next_attached_one_runs(tmp_path: Path) -> None:
    verdicts = {
        "aa": am.Verdict(am.SKIP, am.SILENCED, "silence s1"),
        "bb": am.Verdict(am.SKIP, am.NOT_ACTIVE, "gone"),
        "cc": am.Verdict(am.RUN),
    }
    app = _app(tmp_path, verdicts)
    _receive(
        app,
        alert("BackendServiceDown", "aa"),
        alert("HighErrorRate", "bb"),
        alert("HighErrorRate", "cc"),
    )
    _drain(app)
    launcher = app.launcher
    assert isinstance(launcher, Launcher)
    [argv] = launcher.calls
    assert argv[1] == "HighErrorRate" and argv[argv.index("--fingerprint") + 1] == "cc"
    log = list(app.journal.read())
    assert [(e["fingerprint"], e["reason"]) for e in log if e["event"] == "skipped"] == [
        ("aa", "silenced"),
        ("bb", "not_active"),
    ]
    [started] = [e for e in log if e["event"] == "started"]
    assert (started["fingerprint"], started["check"]) == ("cc", "ok")
    assert [a["fingerprint"] for a in started["alerts"]] == ["cc"]
    assert app.metrics.value("alerts_skipped_total", reason="silenced") == 1
    assert app.metrics.value("alerts_skipped_total", reason="not_active") == 1


def test_every_alert_skipped_cancels_the_run(tmp_path: Path) -> None:
    app = _app(tmp_path, {"aa": am.Verdict(am.SKIP, am.INHIBITED, "by i1")})
    _receive(app, alert("BackendServiceDown", "aa"))
    _drain(app)
    assert isinstance(app.launcher, Launcher) and app.launcher.calls == []
    events = [e["event"] for e in app.journal.read()]
    assert events[-2:] == ["skipped", "cancelled"]
    assert app.metrics.value("alerts_cancelled_total") == 1


@pytest.mark.parametrize(("url", "errors"), [("http://am", 1), ("", 0)])
def test_an_unchecked_alert_runs_and_an_error_is_counted(
    tmp_path: Path, url: str, errors: int
) -> None:
    app = _app(tmp_path, {"aa": am.Verdict(am.UNCHECKED, detail="connection refused")}, url)
    _receive(app, alert("BackendServiceDown", "aa"))
    _drain(app)
    assert isinstance(app.launcher, Launcher) and len(app.launcher.calls) == 1
    [started] = [e for e in app.journal.read() if e["event"] == "started"]
    assert started["check"] == "unchecked"
    assert app.metrics.value("alertmanager_check_errors_total") == errors


# -- where the URL comes from (service) --------------------------------------------------------
@pytest.mark.parametrize(
    ("override", "inventory_value", "expected"),
    [
        ("http://am:9093", "https://ignored", "http://am:9093"),
        ("", "https://ignored", ""),  # an empty option turns the check off
        (None, "https://am.prod.internal", "https://am.prod.internal"),
        (None, "{{ pflow_sandbox.monitoring.alertmanager_url }}", ""),  # never templated
        (None, "am.prod.internal", ""),
        (None, "", ""),
        (None, None, ""),
        (None, ["http://a"], ""),
    ],
)
def test_the_alertmanager_url_option_wins_over_the_inventory(
    monkeypatch: pytest.MonkeyPatch, override: str | None, inventory_value: Any, expected: str
) -> None:
    monkeypatch.setattr(service, "_inventory_value", lambda source, name: inventory_value)
    url, source = service._alertmanager_url("local", override)
    assert url == expected and source


def test_a_bad_alertmanager_url_option_is_a_usage_error() -> None:
    with pytest.raises(service.ServeError) as caught:
        service._alertmanager_url("local", "file:///etc/passwd")
    assert caught.value.code == 2


@pytest.mark.parametrize(
    ("env", "expected"),
    [("staging", "https://alertmanager.staging.pivotal-flow.internal"), ("local", "")],
)
def test_the_alertmanager_url_is_read_from_the_real_inventories(env: str, expected: str) -> None:
    url, source = service._alertmanager_url(env, None)
    assert url == expected
    if expected:
        assert source == "pflow_alertmanager_url"
    else:
        assert "template" in source
