"""`sandbox up --monitoring`: real Prometheus, Alertmanager and exporters next to the sandbox.

supervisord runs them as programs on loopback ports chosen at `up` (kept in the state). The
shipped alert rules (``monitoring/rules/*.rules.yml``) are loaded as time-compressed copies, so
an alert whose rule says ``for: 5m`` fires within seconds of `sandbox break`. The renderers are
in :mod:`pflow_ops.sandbox.monitoring_conf`; this module does the I/O.
"""

from __future__ import annotations

import http.client
import os
import secrets
import shutil
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pflow_ops import paths
from pflow_ops.sandbox import monitoring_conf as conf
from pflow_ops.sandbox import procs
from pflow_ops.sandbox.errors import USAGE, SandboxError
from pflow_ops.sandbox.layout import (
    DEFAULT_TIME_FACTOR,
    HOST,
    Layout,
    MonitoringPorts,
    MonitoringState,
    SandboxState,
)
from pflow_ops.sandbox.net import free_ports, http_get, port_in_use, wait_for

RULES_GLOB = "*.rules.yml"
PACKAGES = {
    conf.PROMETHEUS_BIN: "prometheus",
    conf.ALERTMANAGER_BIN: "prometheus-alertmanager",
    conf.POSTGRES_EXPORTER_BIN: "prometheus-postgres-exporter",
    conf.REDIS_EXPORTER_BIN: "prometheus-redis-exporter",
}
SIGNATURES = ("prometheus", "pflow_ops")
"""What a monitoring program's command line contains (every Debian binary is prometheus-*)."""


@dataclass(frozen=True)
class MonitoringOptions:
    """What the user asked of `up --monitoring`."""

    receiver: bool = True
    time_factor: int = DEFAULT_TIME_FACTOR
    rules_dir: Path | None = None


def default_rules_dir() -> Path:
    return paths.project_root() / "monitoring" / "rules"


def check_binaries() -> None:
    missing = [pkg for path, pkg in PACKAGES.items() if not os.access(path, os.X_OK)]
    if missing:
        raise SandboxError(
            f"--monitoring needs {', '.join(missing)}; install with: "
            f"apt-get install {' '.join(missing)}"
        )


def rule_files(rules_dir: Path) -> list[Path]:
    files = sorted(rules_dir.glob(RULES_GLOB)) if rules_dir.is_dir() else []
    if not files:
        raise SandboxError(f"no alert rules ({RULES_GLOB}) in {rules_dir}", USAGE)
    return files


def choose_ports(previous: MonitoringPorts | None, taken: set[int]) -> MonitoringPorts:
    """The previous ports when all are still free (stable URLs across `up`), else fresh ones."""
    if previous is not None:
        values = [port for _, port in previous.items()]
        if not taken.intersection(values) and not any(port_in_use(p) for p in values):
            return previous
    while True:
        fresh = free_ports(len(MonitoringPorts.__dataclass_fields__))
        if not taken.intersection(fresh):
            return MonitoringPorts(*fresh)


def prepare(state: SandboxState, options: MonitoringOptions) -> MonitoringState:
    """The monitoring state of this `up` (options validated; the last run's ports if free)."""
    if options.time_factor < 1:
        raise SandboxError(f"--time-factor must be 1 or more, got {options.time_factor}", USAGE)
    check_binaries()
    rules_dir = (options.rules_dir or default_rules_dir()).expanduser().resolve()
    rule_files(rules_dir)
    previous = state.monitoring.ports if state.monitoring else None
    taken = {port for _, port in state.ports.items()}
    return MonitoringState(
        ports=choose_ports(previous, taken),
        time_factor=options.time_factor,
        receiver=options.receiver,
        rules_source=str(rules_dir),
    )


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(path, 0o600)


def _ensure_token(layout: Layout) -> None:
    """The receiver's bearer token: generated once, kept across `up` so clients keep working."""
    path = layout.receiver_token_file
    if path.is_file() and path.read_text(encoding="utf-8").strip():
        path.chmod(0o600)
        return
    _write_private(path, secrets.token_urlsafe(32) + "\n")


def _write_rules(layout: Layout, mon: MonitoringState) -> None:
    if layout.rules_dir.exists():
        shutil.rmtree(layout.rules_dir)  # a rule file removed at the source goes here too
    layout.rules_dir.mkdir(mode=0o700)
    for source in rule_files(Path(mon.rules_source)):
        try:
            text = conf.compress_rules(
                source.read_text(encoding="utf-8"), mon.time_factor, str(source)
            )
        except (OSError, ValueError) as exc:
            raise SandboxError(f"cannot load alert rules {source}: {exc}") from None
        _write_private(layout.rules_dir / source.name, text)


def write_files(layout: Layout, state: SandboxState) -> None:
    """Token, compressed rules and both configurations, all 0600 under the sandbox dir."""
    mon = state.monitoring
    if mon is None:
        return
    for directory in (layout.monitoring_dir, layout.prometheus_data, layout.alertmanager_data):
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    _ensure_token(layout)
    _write_rules(layout, mon)
    # Without rules at first: load_rules adds them once every target has been scraped.
    _write_private(layout.prometheus_conf, conf.prometheus_config(layout, state, mon, False))
    _write_private(layout.alertmanager_conf, conf.alertmanager_config(layout, mon))


def _answers(port: int, path: str) -> Callable[[], bool]:
    return lambda: http_get(port, path, timeout=1.0).status == 200


def _accepts(port: int) -> Callable[[], bool]:
    def probe() -> bool:
        try:
            with socket.create_connection((HOST, port), timeout=1.0):
                return True
        except OSError:
            return False

    return probe


def readiness(state: SandboxState) -> list[tuple[str, Callable[[], bool]]]:
    """(program, probe) for each monitoring program `up` waits for, in start order."""
    mon = state.monitoring
    if mon is None:
        return []
    ports = mon.ports
    probes = [
        ("postgres_exporter", _answers(ports.postgres_exporter, "/metrics")),
        ("redis_exporter", _answers(ports.redis_exporter, "/metrics")),
        ("prometheus", _answers(ports.prometheus, "/-/ready")),
        ("alertmanager", _answers(ports.alertmanager, "/-/ready")),
    ]
    if mon.receiver:
        probes.append(("receiver", _accepts(ports.receiver)))
    return probes


def _all_scraped(port: int, jobs: int) -> bool | None:
    body = http_get(port, "/api/v1/targets", timeout=1.0).json() or {}
    targets = (body.get("data") or {}).get("activeTargets") or []
    scraped = len(targets) == jobs
    return True if scraped and all(t.get("health") != "unknown" for t in targets) else None


def _rule_groups(port: int) -> bool | None:
    body = http_get(port, "/api/v1/rules", timeout=1.0).json() or {}
    return True if (body.get("data") or {}).get("groups") else None


def load_rules(layout: Layout, state: SandboxState, timeout: float) -> None:
    """Give Prometheus its rules once every target has been scraped, then reload it.

    Its scrape manager applies targets up to 5 s after start, while rules are evaluated at once:
    ``absent(up{...})`` would hold from the first evaluation and, with a compressed ``for: 1m``
    of 3 s, every `up` would fire the three connection-failure alerts at the receiver.
    The reload also restarts Alertmanager discovery (up to 5 s): alerts firing meanwhile are
    re-sent within the compressed resend delay, not lost.
    """
    mon = state.monitoring
    if mon is None:
        return
    port = mon.ports.prometheus
    jobs = len(conf.scrape_targets(state, mon))
    wait_for(
        lambda: _all_scraped(port, jobs), timeout / 2, "Prometheus' first scrape of every target"
    )
    _write_private(layout.prometheus_conf, conf.prometheus_config(layout, state, mon))
    conn = http.client.HTTPConnection(HOST, port, timeout=5)
    try:
        conn.request("POST", "/-/reload")
        resp = conn.getresponse()
        detail = resp.read().decode(errors="replace").strip()
    except (OSError, http.client.HTTPException) as exc:
        raise SandboxError(f"cannot reload Prometheus: {exc}") from None
    finally:
        conn.close()
    if resp.status != 200:
        raise SandboxError(f"Prometheus refused the alert rules: {detail or resp.status}")
    wait_for(lambda: _rule_groups(port), timeout / 2, "Prometheus to load the alert rules")


def _ours(layout: Layout, pid: int) -> bool:
    if procs.cwd(pid) != str(layout.monitoring_dir):
        return False
    cmd = procs.cmdline(pid)
    return any(sig in cmd for sig in SIGNATURES)


def owned_processes(layout: Layout) -> set[int]:
    """Live monitoring programs of this sandbox (by working directory), with descendants."""
    if not layout.monitoring_dir.exists():
        return set()
    me = os.getpid()
    roots = {pid for pid in procs.all_pids() if pid != me and _ours(layout, pid)}
    return procs.descendants(roots) - {me}


def reap(layout: Layout, grace: float = 3.0) -> set[int]:
    """Terminate monitoring programs left by a dead supervisord; return the survivors."""
    targets = owned_processes(layout)
    if not targets:
        return set()
    procs.terminate(targets, grace)
    return owned_processes(layout)


def status(state: SandboxState, programs: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """The `status` view of the stack: program states, and where it answers."""
    mon = state.monitoring
    if mon is None:
        return None
    states = {name: programs.get(name, {}).get("state") for name in conf.PROGRAMS}
    return {
        "programs": states,
        "prometheus_url": f"http://{HOST}:{mon.ports.prometheus}",
        "alertmanager_url": f"http://{HOST}:{mon.ports.alertmanager}",
        "receiver_url": f"http://{HOST}:{mon.ports.receiver}",
        "receiver_enabled": mon.receiver,
        "time_factor": mon.time_factor,
        "time_compression": conf.compression_note(mon.time_factor),
    }
