"""Pure renderers of `sandbox up --monitoring`: time-compressed alert rules, the Prometheus and
Alertmanager configurations, the supervisord programs and the endpoints.json section.

No I/O here, so the unit tests cover every byte the monitoring stack is started with.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import yaml

from pflow_ops.sandbox import render
from pflow_ops.sandbox.layout import HOST, Layout, MonitoringState, SandboxState

PROMETHEUS_BIN = Path("/usr/bin/prometheus")
ALERTMANAGER_BIN = Path("/usr/bin/prometheus-alertmanager")
POSTGRES_EXPORTER_BIN = Path("/usr/bin/prometheus-postgres-exporter")
REDIS_EXPORTER_BIN = Path("/usr/bin/prometheus-redis-exporter")
TRAFFIC_MODULE = "pflow_ops.sandbox.traffic"
WEBHOOK_PATH = "/webhook"  # pflow_ops.receiver.server
RECEIVER_WINDOW_S = 600  # `pflow-ops serve` --throttle-window / --dedupe-window defaults
RECEIVER_NAME = "pflow-ops"
SELF_RECEIVER_NAME = "sre"
"""The receiver's own alerts go here: no integration in the sandbox, never the pflow-ops webhook."""
SELF_MATCHER = 'pflow_ops_self="true"'  # monitoring/rules/pflow-ops-receiver.rules.yml
RECEIVER_JOB = "pflow-ops-receiver"
PROGRAMS = (
    "postgres_exporter",
    "redis_exporter",
    "prometheus",
    "alertmanager",
    "receiver",
    "traffic",
)
SCRAPE_JOBS = {
    "pivotal-backend": "backend",
    "postgres": "database",
    "redis": "cache",
    RECEIVER_JOB: "pflow-ops",
}
"""Prometheus job name -> the ``service`` label its target carries (Alertmanager groups by it)."""
RANGE_FLOOR_S = 4
"""A compressed range keeps >= 4 samples at a 1 s scrape, so rate() still has two to work on."""
FOR_FLOOR_S = 2
SCRAPE_INTERVAL = "1s"
RESEND_DELAY = "3s"

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
_DURATION = r"(?:\d+(?:ms|[smhdwy]))+"
_DURATION_PART = re.compile(r"(\d+)(ms|[smhdwy])")
# String literals first, so a range-looking text inside a label matcher ("[5m]") is left alone.
_EXPR_TOKEN = re.compile(
    rf'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`'
    rf"|\[\s*(?P<range>{_DURATION})\s*(?::\s*(?P<step>{_DURATION})?\s*)?\]"
    rf"|\boffset(?P<gap>\s+)(?P<sign>-?)(?P<offset>{_DURATION})"
)


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (PromQL, descriptions) stay block scalars, readable as written."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def _dump(data: Any) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=1000)


def parse_duration(text: str) -> float:
    """Seconds in a Prometheus duration such as ``5m``, ``1h30m`` or ``500ms``."""
    text = text.strip()
    if not re.fullmatch(_DURATION, text):
        raise ValueError(f"not a Prometheus duration: {text!r}")
    return sum(int(n) * _UNITS[unit] for n, unit in _DURATION_PART.findall(text))


def format_duration(seconds: float) -> str:
    """Whole seconds as the shortest exact duration: 15s, 2m, 1h30m."""
    total, parts = int(seconds), []
    for unit in ("h", "m", "s"):
        size = int(_UNITS[unit])
        if total >= size:
            parts.append(f"{total // size}{unit}")
            total %= size
    return "".join(parts) or "0s"


def _compress(text: str, factor: int, floor: int) -> str:
    seconds = parse_duration(text)
    if seconds == 0:
        return text
    return format_duration(max(floor, math.ceil(seconds / factor)))


def compress_expr(expr: str, factor: int) -> str:
    """Divide every range selector, subquery step and offset of a PromQL expression by ``factor``.

    An offset gets the range floor, so ``increase(x[15m])`` and ``x offset 15m`` (a series new
    within the window) still look back equally far once compressed.
    """

    def replace(match: re.Match[str]) -> str:
        if match.group("offset") is not None:
            shifted = _compress(match.group("offset"), factor, RANGE_FLOOR_S)
            return f"offset{match.group('gap')}{match.group('sign')}{shifted}"
        if match.group("range") is None:
            return match.group(0)  # a string literal
        out = _compress(match.group("range"), factor, RANGE_FLOOR_S)
        if match.group("step") is not None:
            out += ":" + _compress(match.group("step"), factor, 1)
        elif ":" in match.group(0):
            out += ":"
        return f"[{out}]"

    return _EXPR_TOKEN.sub(replace, expr)


def _compress_rule(rule: dict[str, Any], factor: int) -> None:
    if isinstance(rule.get("expr"), str):
        rule["expr"] = compress_expr(rule["expr"], factor)
    duration = rule.get("for")
    if isinstance(duration, str):
        rule["for"] = _compress(duration, factor, FOR_FLOOR_S)


def compression_note(factor: int) -> str:
    five = format_duration(max(RANGE_FLOOR_S, math.ceil(300 / factor)))
    return (
        f"time-compressed x{factor}: range selectors, offsets and `for:` durations divided by "
        f"{factor} (5m -> {five}; ranges and offsets >= {RANGE_FLOOR_S}s, for >= {FOR_FLOOR_S}s)"
    )


def compress_rules(text: str, factor: int, source: str = "") -> str:
    """A Prometheus rule file with its durations divided by ``factor``, everything else kept.

    Only each rule's ``expr`` range selectors and offsets and its ``for`` change; names, labels and
    annotations come back as they were. Raises ValueError on a file that is not a rule file.
    """
    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
        raise ValueError(f"time factor must be a positive integer, got {factor!r}")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"not valid YAML: {' '.join(str(exc).split())}") from None
    groups = data.get("groups") if isinstance(data, dict) else None
    if not isinstance(groups, list):
        raise ValueError("not a Prometheus rule file: no top-level `groups` list")
    for group in groups:
        rules = group.get("rules") if isinstance(group, dict) else None
        if not isinstance(rules, list):
            raise ValueError("not a Prometheus rule file: a group without a `rules` list")
        for rule in rules:
            if isinstance(rule, dict):
                _compress_rule(rule, factor)
    origin = f" of {source}" if source else ""
    header = [
        f"# {render.HEADER}.",
        f"# Sandbox copy{origin}, {compression_note(factor)}.",
        "# Edit the source file, not this one.",
    ]
    body = _dump(data)
    return "\n".join(header) + "\n" + body


def _url(port: int, path: str = "") -> str:
    return f"http://{HOST}:{port}{path}"


def scrape_targets(state: SandboxState, mon: MonitoringState) -> dict[str, int]:
    """Prometheus job -> the loopback port it scrapes.

    The receiver is scraped only when the sandbox runs it (`up --no-receiver` leaves its port to
    whatever the caller puts there); its own rules then report it absent, to humans only.
    """
    targets = {
        "pivotal-backend": state.ports.backend,
        "postgres": mon.ports.postgres_exporter,
        "redis": mon.ports.redis_exporter,
    }
    if mon.receiver:
        targets[RECEIVER_JOB] = mon.ports.receiver
    return targets


def prometheus_config(
    layout: Layout, state: SandboxState, mon: MonitoringState, rules: bool = True
) -> str:
    """Prometheus' configuration; ``rules=False`` for its first start (see load_rules)."""
    targets = scrape_targets(state, mon)
    config = {
        "global": {
            "scrape_interval": SCRAPE_INTERVAL,
            "scrape_timeout": SCRAPE_INTERVAL,
            "evaluation_interval": SCRAPE_INTERVAL,
        },
        "rule_files": [str(layout.rules_dir / "*.rules.yml")] if rules else [],
        "alerting": {
            "alertmanagers": [
                {
                    "api_version": "v2",
                    "static_configs": [{"targets": [f"{HOST}:{mon.ports.alertmanager}"]}],
                }
            ]
        },
        "scrape_configs": [
            {
                "job_name": job,
                "static_configs": [
                    {"targets": [f"{HOST}:{port}"], "labels": {"service": SCRAPE_JOBS[job]}}
                ],
            }
            for job, port in targets.items()
        ],
    }
    header = f"# {render.HEADER}.\n# Rules: {compression_note(mon.time_factor)}.\n"
    return header + _dump(config)


def webhook_url(mon: MonitoringState) -> str:
    return _url(mon.ports.receiver, WEBHOOK_PATH)


def alertmanager_config(layout: Layout, mon: MonitoringState) -> str:
    """Every alert goes to the pflow-ops receiver, fast (the sandbox runs on a compressed clock),
    except the receiver's own alerts: they go to a receiver without integrations, so pflow-ops
    never acts on (or counts as unknown) an alert about itself."""
    config = {
        "route": {
            "receiver": RECEIVER_NAME,
            "group_by": ["alertname", "service"],
            "group_wait": "1s",
            "group_interval": "2s",
            "repeat_interval": "1m",
            "routes": [{"receiver": SELF_RECEIVER_NAME, "matchers": [SELF_MATCHER]}],
        },
        "receivers": [
            {"name": SELF_RECEIVER_NAME},
            {
                "name": RECEIVER_NAME,
                "webhook_configs": [
                    {
                        "url": webhook_url(mon),
                        "send_resolved": True,
                        "http_config": {
                            "authorization": {
                                "type": "Bearer",
                                "credentials_file": str(layout.receiver_token_file),
                            }
                        },
                    }
                ],
            },
        ],
    }
    return f"# {render.HEADER}.\n" + _dump(config)


def _settings(priority: int, autostart: bool, stopwait: int) -> dict[str, object]:
    settings = render.common_settings(priority, autostart, "TERM", stopwait)
    settings["stopasgroup"] = "true"
    return settings


def _env(values: dict[str, str]) -> str:
    return ",".join(f'{k}="{render.sv(v)}"' for k, v in values.items())


def _exporters(layout: Layout, state: SandboxState, mon: MonitoringState) -> list[str]:
    pg = _settings(20, True, 5)
    pg["command"] = render.command(
        [str(POSTGRES_EXPORTER_BIN), f"--web.listen-address={HOST}:{mon.ports.postgres_exporter}"]
    )
    # The DSN carries the monitor role's password: environment (0600 conf), not argv.
    dsn = render.pg_dsn(state, render.PG_MONITOR_USER, state.monitor_password)
    pg["environment"] = _env({"DATA_SOURCE_NAME": f"{dsn}?sslmode=disable"})
    rd = _settings(20, True, 5)
    rd["command"] = render.command(
        [
            str(REDIS_EXPORTER_BIN),
            f"-redis.addr=redis://{HOST}:{state.ports.redis}",
            f"-web.listen-address={HOST}:{mon.ports.redis_exporter}",
        ]
    )
    # The sandbox Redis has no password; a REDIS_PASSWORD environment entry would go here.
    return [
        render.program_section("postgres_exporter", _in_dir(pg, layout), layout),
        render.program_section("redis_exporter", _in_dir(rd, layout), layout),
    ]


def _in_dir(settings: dict[str, object], layout: Layout) -> dict[str, object]:
    # The working directory is how `down` recognises these processes if supervisord is gone.
    settings["directory"] = render.sv(layout.monitoring_dir)
    return settings


def _servers(layout: Layout, mon: MonitoringState) -> list[str]:
    prom = _settings(40, True, 10)
    prom["command"] = render.command(
        [
            str(PROMETHEUS_BIN),
            f"--config.file={layout.prometheus_conf}",
            f"--storage.tsdb.path={layout.prometheus_data}",
            "--storage.tsdb.retention.time=1d",
            f"--web.listen-address={HOST}:{mon.ports.prometheus}",
            "--web.enable-lifecycle",
            # Firing alerts are re-sent this often (1m by default, compressed): an Alertmanager
            # that restarted, or was not discovered yet, hears of them within seconds.
            f"--rules.alert.resend-delay={RESEND_DELAY}",
            # scrape_timeout_seconds: BackendEventLoopBlocked tells a scrape that timed out
            # (a blocked event loop) from one that was refused (a crash) by it.
            "--enable-feature=extra-scrape-metrics",
        ]
    )
    am = _settings(40, True, 5)
    am["command"] = render.command(
        [
            str(ALERTMANAGER_BIN),
            f"--config.file={layout.alertmanager_conf}",
            f"--storage.path={layout.alertmanager_data}",
            f"--web.listen-address={HOST}:{mon.ports.alertmanager}",
            "--cluster.listen-address=",  # no HA gossip (it would bind 0.0.0.0:9094)
        ]
    )
    return [
        render.program_section("prometheus", _in_dir(prom, layout), layout),
        render.program_section("alertmanager", _in_dir(am, layout), layout),
    ]


def _python_env(layout: Layout) -> dict[str, str]:
    return {
        "PFLOW_OPS_HOME": str(layout.root.parent),
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        "PYTHONUNBUFFERED": "1",
    }


def _helpers(layout: Layout, state: SandboxState, mon: MonitoringState, python: Path) -> list[str]:
    recv = _settings(50, mon.receiver, 10)
    # Unlike the services, the receiver is restarted when it dies, as a real deployment's unit
    # would be: its journal carries the received alerts over the restart.
    recv["autorestart"] = "true"
    recv["startretries"] = 3
    # Its dedupe and throttle windows (production default 600 s) follow the compressed clock.
    window = str(max(10, round(RECEIVER_WINDOW_S / mon.time_factor)))
    argv = [str(python), "-m", "pflow_ops", "serve", "--env", "local"]
    argv += ["--port", str(mon.ports.receiver), "--token-file", str(layout.receiver_token_file)]
    argv += ["--throttle-window", window, "--dedupe-window", window]
    recv["command"] = render.command(argv)
    recv["environment"] = _env(_python_env(layout))
    traffic = _settings(60, False, 3)  # started by `up` once the backend is healthy
    argv = [str(python), "-m", TRAFFIC_MODULE, "--port", str(state.ports.backend)]
    traffic["command"] = render.command(argv)
    traffic["environment"] = _env(_python_env(layout))
    return [
        render.program_section("receiver", _in_dir(recv, layout), layout),
        render.program_section("traffic", _in_dir(traffic, layout), layout),
    ]


def program_sections(
    layout: Layout, state: SandboxState, mon: MonitoringState, python: Path
) -> list[str]:
    """The supervisord ``[program:*]`` sections of the monitoring stack, in start order."""
    return [
        *_exporters(layout, state, mon),
        *_servers(layout, mon),
        *_helpers(layout, state, mon, python),
    ]


def endpoints_section(layout: Layout, mon: MonitoringState) -> dict[str, Any]:
    """``endpoints.json["monitoring"]``: where the stack answers, and on which clock."""
    ports = mon.ports
    return {
        "prometheus_url": _url(ports.prometheus),
        "alertmanager_url": _url(ports.alertmanager),
        "receiver_url": _url(ports.receiver),
        "receiver_webhook_url": webhook_url(mon),
        "receiver_token_file": str(layout.receiver_token_file),
        "receiver_enabled": mon.receiver,
        "postgres_exporter_url": _url(ports.postgres_exporter, "/metrics"),
        "redis_exporter_url": _url(ports.redis_exporter, "/metrics"),
        "time_factor": mon.time_factor,
        "time_compression": compression_note(mon.time_factor),
        "rules_dir": str(layout.rules_dir),
        "rules_source": mon.rules_source,
        "scrape_interval": SCRAPE_INTERVAL,
        "programs": list(PROGRAMS),
    }
