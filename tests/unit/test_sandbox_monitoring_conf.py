"""Time-compressed alert rules and the rendered monitoring configuration of `up --monitoring`."""

from __future__ import annotations

import configparser
import math
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from pflow_ops import cli
from pflow_ops.sandbox import SandboxPorts, render
from pflow_ops.sandbox import monitoring_conf as conf
from pflow_ops.sandbox.layout import (
    Layout,
    MonitoringPorts,
    MonitoringState,
    SandboxState,
)

ROOT = Path(__file__).resolve().parents[2]
PROGRAMS = render.Programs(
    pg_bin=Path("/usr/lib/postgresql/15/bin"),
    redis_server=Path("/usr/bin/redis-server"),
    python=Path("/venv/bin/python"),
    supervisorctl=Path("/venv/bin/supervisorctl"),
)

RULES = """\
# a comment that the copy replaces with its own header
groups:
  - name: demo
    interval: 30s
    rules:
      - alert: HighErrorRate
        expr: |
          sum(rate(http_requests_total{status=~"5..", path=~"/api/[0-9]+"}[5m]))
          / sum(rate(http_requests_total[1h30m])) > 0.05
        for: 10m
        labels:
          severity: critical
        annotations:
          description: >-
            5xx share above 5 % over [5m] for 10m; {{ $value | humanizePercentage }}.
      - alert: Quick
        expr: max_over_time(up[30s]) == 0 and up offset 5m == 1
        for: 30s
      - alert: NoWait
        expr: vector(1)
      - record: job:requests:rate1m
        expr: rate(http_requests_total[1m])
"""


def _compressed(text: str = RULES, factor: int = 20) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(conf.compress_rules(text, factor))
    return data


def _rules(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    rules = data["groups"][0]["rules"]
    return {r.get("alert") or r.get("record"): r for r in rules}


def test_ranges_and_for_are_divided_with_floors() -> None:
    rules = _rules(_compressed())
    assert rules["HighErrorRate"]["for"] == "30s"  # 10m / 20
    expr = rules["HighErrorRate"]["expr"]
    assert "[15s]" in expr and "[4m30s]" in expr  # 5m / 20, 1h30m / 20
    assert rules["Quick"]["for"] == "2s"  # 30s / 20 = 1.5s, floored at 2s
    assert "up[4s]" in rules["Quick"]["expr"]  # 30s / 20, floored at 4s for rate()
    assert rules["job:requests:rate1m"]["expr"] == "rate(http_requests_total[4s])"
    assert "for" not in rules["NoWait"]


def test_nothing_but_those_durations_changes() -> None:
    original = yaml.safe_load(RULES)
    out = _compressed()
    for before, after in zip(
        original["groups"][0]["rules"], out["groups"][0]["rules"], strict=True
    ):
        assert set(before) == set(after)
        for key in before:
            if key not in ("expr", "for"):
                assert after[key] == before[key], key
    rules = _rules(out)
    # Annotations keep their text, "[5m]" and "10m" included; regexes stay.
    assert rules["HighErrorRate"]["annotations"] == original["groups"][0]["rules"][0]["annotations"]
    assert 'path=~"/api/[0-9]+"' in rules["HighErrorRate"]["expr"]
    assert out["groups"][0]["interval"] == "30s"
    assert out["groups"][0]["name"] == "demo"


def test_offsets_follow_the_ranges_they_pair_with() -> None:
    """``increase(x[15m])`` and ``x offset 15m`` must look back equally far once compressed."""
    expr = "increase(x[15m]) > 0 or (x unless x offset 15m) > 0"
    assert conf.compress_expr(expr, 20) == "increase(x[45s]) > 0 or (x unless x offset 45s) > 0"
    assert conf.compress_expr("up offset 1m", 20) == "up offset 4s"  # the range floor
    assert conf.compress_expr("up offset -10m", 20) == "up offset -30s"
    # The word in a string, and in a metric name, is not a modifier.
    same = 'clock_offset_seconds{l="offset 5m"} offset  10m'
    assert conf.compress_expr(same, 20) == 'clock_offset_seconds{l="offset 5m"} offset  30s'


def test_string_literals_and_subqueries() -> None:
    expr = 'max_over_time(rate(x{l="[5m]"}[10m])[30m:1m]) > 0'
    assert conf.compress_expr(expr, 20) == 'max_over_time(rate(x{l="[5m]"}[30s])[1m30s:3s]) > 0'
    assert conf.compress_expr("rate(x[5m:])", 20) == "rate(x[15s:])"
    assert conf.compress_expr("rate(x[5m])", 1) == "rate(x[5m])"


def test_output_says_it_is_compressed_and_passes_for_yaml() -> None:
    text = conf.compress_rules(RULES, 20, "monitoring/rules/demo.rules.yml")
    head = text.splitlines()[:3]
    assert all(line.startswith("#") for line in head)
    assert "monitoring/rules/demo.rules.yml" in head[1]
    assert "x20" in head[1] and "5m -> 15s" in head[1]
    assert "a comment that the copy replaces" not in text
    assert "expr: |" in text  # PromQL stays a readable block scalar


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("groups: [", "not valid YAML"),
        ("- a\n- b\n", "no top-level `groups` list"),
        ("groups:\n  - name: x\n", "a group without a `rules` list"),
    ],
)
def test_not_a_rule_file_is_refused(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        conf.compress_rules(text, 20)


def test_bad_factor_is_refused() -> None:
    with pytest.raises(ValueError, match="positive integer"):
        conf.compress_rules(RULES, 0)


def test_shipped_rules_compress_and_keep_every_alert() -> None:
    shipped = sorted((ROOT / "monitoring" / "rules").glob("*.rules.yml"))
    assert shipped, "monitoring/rules has no rule files"
    for path in shipped:
        text = path.read_text(encoding="utf-8")
        before, after = yaml.safe_load(text), _compressed(text)
        names = [[r.get("alert") for r in g["rules"]] for g in before["groups"]]
        assert [[r.get("alert") for r in g["rules"]] for g in after["groups"]] == names
        pairs = zip(_all_rules(before), _all_rules(after), strict=True)
        for old, new in pairs:
            for pattern in (RANGE, OFFSET):
                before_s = [_seconds(r) for r in pattern.findall(old["expr"])]
                assert [_seconds(r) for r in pattern.findall(new["expr"])] == [
                    max(4, math.ceil(r / 20)) for r in before_s
                ], old["expr"]
            if "for" in old:
                assert _seconds(new["for"]) == _compressed_for(_seconds(old["for"]))


RANGE = re.compile(r"\[((?:\d+[smh])+)\]")
OFFSET = re.compile(r"\boffset\s+((?:\d+[smh])+)")


def _compressed_for(seconds: float) -> float:
    """``for: 0s`` (fire at once) stays 0; anything else is divided, floored at 2 s."""
    return 0 if seconds == 0 else max(2, math.ceil(seconds / 20))


def _seconds(text: str) -> float:
    return conf.parse_duration(text)


def _all_rules(data: dict[str, Any]) -> list[dict[str, Any]]:
    return [rule for group in data["groups"] for rule in group["rules"]]


def test_cli_refuses_monitoring_options_that_do_not_apply(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["sandbox", "up", "--monitoring", "--runtime", "docker"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "pflow-ops: sandbox: --monitoring runs under the supervisor runtime only; "
        "drop --runtime docker"
    ]
    assert cli.main(["sandbox", "up", "--no-receiver"]) == 2
    assert "only apply with --monitoring" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "seconds"), [("5m", 300), ("1h30m", 5400), ("500ms", 0.5), ("2d", 172800)]
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert conf.parse_duration(text) == seconds


def test_format_duration() -> None:
    assert [conf.format_duration(s) for s in (15, 90, 3600, 5430, 0)] == [
        "15s", "1m30s", "1h", "1h30m30s", "0s",
    ]  # fmt: skip
    with pytest.raises(ValueError):
        conf.parse_duration("5 minutes")


@pytest.fixture
def layout() -> Layout:
    return Layout(Path("/tmp/pfo-t/sandbox"), privileged=False)


@pytest.fixture
def mon() -> MonitoringState:
    return MonitoringState(ports=MonitoringPorts(9090, 9093, 9187, 9121, 9400), time_factor=20)


@pytest.fixture
def state(mon: MonitoringState) -> SandboxState:
    return SandboxState(ports=SandboxPorts(3100, 45432, 46379), monitoring=mon)


def test_prometheus_config(layout: Layout, state: SandboxState, mon: MonitoringState) -> None:
    text = conf.prometheus_config(layout, state, mon)
    assert text.startswith("# ")
    data = yaml.safe_load(text)
    assert data["global"]["scrape_interval"] == data["global"]["evaluation_interval"] == "1s"
    assert data["rule_files"] == ["/tmp/pfo-t/sandbox/monitoring/rules/*.rules.yml"]
    targets = {
        job["job_name"]: job["static_configs"][0]["targets"] for job in data["scrape_configs"]
    }
    assert targets == {
        "pivotal-backend": ["127.0.0.1:3100"],
        "postgres": ["127.0.0.1:9187"],
        "redis": ["127.0.0.1:9121"],
        "pflow-ops-receiver": ["127.0.0.1:9400"],  # the job its own rules watch
    }
    services = {j["job_name"]: j["static_configs"][0]["labels"] for j in data["scrape_configs"]}
    assert services["pflow-ops-receiver"] == {"service": "pflow-ops"}
    am = data["alerting"]["alertmanagers"][0]
    assert am["static_configs"][0]["targets"] == ["127.0.0.1:9093"]


def test_receiver_is_scraped_only_when_the_sandbox_runs_it(
    layout: Layout, state: SandboxState, mon: MonitoringState
) -> None:
    mon.receiver = False  # `up --no-receiver`: the port belongs to whoever the caller puts there
    data = yaml.safe_load(conf.prometheus_config(layout, state, mon))
    assert [j["job_name"] for j in data["scrape_configs"]] == [
        "pivotal-backend",
        "postgres",
        "redis",
    ]
    assert list(conf.scrape_targets(state, mon)) == ["pivotal-backend", "postgres", "redis"]


def test_alertmanager_config(layout: Layout, mon: MonitoringState) -> None:
    data = yaml.safe_load(conf.alertmanager_config(layout, mon))
    route = data["route"]
    assert route["group_by"] == ["alertname", "service"]
    assert (route["group_wait"], route["group_interval"], route["repeat_interval"]) == (
        "1s", "2s", "1m",
    )  # fmt: skip
    receivers = {r["name"]: r for r in data["receivers"]}
    assert set(receivers) == {"pflow-ops", "sre"}
    # The receiver's own alerts go to a receiver without integrations, never to the webhook.
    assert route["routes"] == [{"receiver": "sre", "matchers": ['pflow_ops_self="true"']}]
    assert receivers["sre"] == {"name": "sre"}
    receiver = receivers[route["receiver"]]
    (hook,) = receiver["webhook_configs"]
    assert hook["url"] == "http://127.0.0.1:9400/webhook"
    assert hook["send_resolved"] is True
    auth = hook["http_config"]["authorization"]
    assert auth["credentials_file"] == "/tmp/pfo-t/sandbox/monitoring/receiver.token"


def _sections(layout: Layout, state: SandboxState, mon: MonitoringState) -> Any:
    parser = configparser.RawConfigParser()
    extra = conf.program_sections(layout, state, mon, PROGRAMS.python)
    parser.read_string(render.supervisord_conf(layout, state, PROGRAMS, extra))
    return parser


def _argv(section: Any) -> list[str]:
    return shlex.split(section["command"].replace("%%", "%"))


def test_supervisord_programs(layout: Layout, state: SandboxState, mon: MonitoringState) -> None:
    sv = _sections(layout, state, mon)
    for name in (*render.PROGRAMS, *conf.PROGRAMS):
        section = sv[f"program:{name}"]
        # Faults must stay until healed; only the receiver comes back by itself, with its
        # journal, as its production unit would.
        assert section["autorestart"] == ("true" if name == "receiver" else "false")
    recv = _argv(sv["program:receiver"])
    assert recv[recv.index("--throttle-window") + 1] == str(round(600 / mon.time_factor))
    for name in conf.PROGRAMS:  # `down` finds them by this directory if supervisord is gone
        assert sv[f"program:{name}"]["directory"] == "/tmp/pfo-t/sandbox/monitoring"
    prom = _argv(sv["program:prometheus"])
    assert "--web.listen-address=127.0.0.1:9090" in prom
    assert "--storage.tsdb.path=/tmp/pfo-t/sandbox/monitoring/prometheus-data" in prom
    assert "--rules.alert.resend-delay=3s" in prom  # the default 1m, on the sandbox clock
    assert "--enable-feature=extra-scrape-metrics" in prom  # BackendEventLoopBlocked's timeout
    am = _argv(sv["program:alertmanager"])
    assert "--cluster.listen-address=" in am and "--web.listen-address=127.0.0.1:9093" in am
    pg = sv["program:postgres_exporter"]
    assert "--web.listen-address=127.0.0.1:9187" in _argv(pg)
    assert state.monitor_password not in pg["command"]  # in the 0600 conf's environment only
    assert "DATA_SOURCE_NAME=" in pg["environment"] and state.monitor_password in pg["environment"]
    assert "-redis.addr=redis://127.0.0.1:46379" in _argv(sv["program:redis_exporter"])
    assert sv["program:traffic"]["autostart"] == "false"
    assert "--port 3100" in sv["program:traffic"]["command"]


def test_receiver_program(layout: Layout, state: SandboxState, mon: MonitoringState) -> None:
    recv = _sections(layout, state, mon)["program:receiver"]
    argv = _argv(recv)
    assert argv[:4] == ["/venv/bin/python", "-m", "pflow_ops", "serve"]
    assert argv[argv.index("--port") + 1] == "9400"
    assert argv[argv.index("--token-file") + 1] == str(layout.receiver_token_file)
    assert 'PFLOW_OPS_HOME="/tmp/pfo-t"' in recv["environment"]
    assert recv["autostart"] == "true"
    mon.receiver = False
    assert _sections(layout, state, mon)["program:receiver"]["autostart"] == "false"


def test_plain_supervisord_conf_has_no_monitoring(layout: Layout, state: SandboxState) -> None:
    parser = configparser.RawConfigParser()
    parser.read_string(render.supervisord_conf(layout, state, PROGRAMS))
    assert {s for s in parser.sections() if s.startswith("program:")} == {
        f"program:{name}" for name in render.PROGRAMS
    }


def test_endpoints_section(layout: Layout, mon: MonitoringState) -> None:
    section = conf.endpoints_section(layout, mon)
    assert section["prometheus_url"] == "http://127.0.0.1:9090"
    assert section["alertmanager_url"] == "http://127.0.0.1:9093"
    assert section["receiver_webhook_url"] == "http://127.0.0.1:9400/webhook"
    assert section["postgres_exporter_url"] == "http://127.0.0.1:9187/metrics"
    assert section["time_factor"] == 20 and "5m -> 15s" in section["time_compression"]


def test_state_round_trips_monitoring(state: SandboxState) -> None:
    again = SandboxState.from_json(state.to_json())
    assert again.monitoring == state.monitoring
    plain = SandboxState(ports=state.ports)
    assert SandboxState.from_json(plain.to_json()).monitoring is None
