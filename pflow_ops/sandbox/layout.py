"""Where every sandbox file lives, which ports it uses, and the state kept between commands."""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pflow_ops.sandbox.errors import USAGE, SandboxError

HOST = "127.0.0.1"
UNIX_SOCKET_MAX = 107
"""sun_path is 108 bytes on Linux, including the terminating NUL."""

PRIVILEGED_PG_BASE = Path("/var/lib/pflow-ops")
"""Root-run sandboxes keep PostgreSQL data here: $PFLOW_OPS_HOME may sit under /root (0700)."""

PORT_ENV = {
    "backend": "PFLOW_SANDBOX_BACKEND_PORT",
    "postgres": "PFLOW_SANDBOX_PG_PORT",
    "redis": "PFLOW_SANDBOX_REDIS_PORT",
}
MAXMEMORY_ENV = "PFLOW_SANDBOX_REDIS_MAXMEMORY"
DEFAULT_MAXMEMORY = "64mb"
DEFAULT_TIME_FACTOR = 20
"""`up --monitoring` divides alert-rule durations by this: 5m -> 15s, a sandbox timescale."""


def _check_ports(pairs: list[tuple[str, int]]) -> None:
    seen: dict[int, str] = {}
    for name, port in pairs:
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise SandboxError(f"{name} port must be an integer 1-65535, got {port!r}", USAGE)
        if port in seen:
            raise SandboxError(f"{name} and {seen[port]} cannot share port {port}", USAGE)
        seen[port] = name


@dataclass(frozen=True)
class SandboxPorts:
    """Loopback TCP ports of the three services."""

    backend: int = 3000
    postgres: int = 55432
    redis: int = 56379

    def __post_init__(self) -> None:
        _check_ports(self.items())

    def items(self) -> list[tuple[str, int]]:
        return [("backend", self.backend), ("postgres", self.postgres), ("redis", self.redis)]


@dataclass(frozen=True)
class MonitoringPorts:
    """Loopback ports of the monitoring programs, chosen free by `up --monitoring`."""

    prometheus: int
    alertmanager: int
    postgres_exporter: int
    redis_exporter: int
    receiver: int

    def __post_init__(self) -> None:
        _check_ports(self.items())

    def items(self) -> list[tuple[str, int]]:
        return [(name, getattr(self, name)) for name in self.__dataclass_fields__]


@dataclass
class MonitoringState:
    """What `up --monitoring` decided: ports, the rules' time factor, whether the receiver runs."""

    ports: MonitoringPorts
    time_factor: int = DEFAULT_TIME_FACTOR
    receiver: bool = True
    rules_source: str = ""

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MonitoringState:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["ports"] = MonitoringPorts(**known.get("ports", {}))
        return cls(**known)


def pflow_ops_home(home: Path | None = None) -> Path:
    """Resolved like pflow_ops.paths.state_home, so both name the same directory."""
    if home is None:
        home = Path(os.environ.get("PFLOW_OPS_HOME") or "~/.pflow-ops")
    return Path(home).expanduser().resolve()


def sandbox_dir(home: Path | None = None) -> Path:
    """``$PFLOW_OPS_HOME/sandbox`` (``~/.pflow-ops/sandbox`` by default), as an absolute path."""
    return pflow_ops_home(home) / "sandbox"


def default_ports() -> SandboxPorts:
    """Built-in defaults, each overridable by its ``PFLOW_SANDBOX_*_PORT`` variable."""
    values: dict[str, int] = {}
    for name, var in PORT_ENV.items():
        raw = os.environ.get(var, "").strip()
        if not raw:
            continue
        try:
            values[name] = int(raw)
        except ValueError:
            raise SandboxError(f"{var} must be a port number, got {raw!r}", USAGE) from None
    return SandboxPorts(**values)


def default_maxmemory(current: str = DEFAULT_MAXMEMORY) -> str:
    """``$PFLOW_SANDBOX_REDIS_MAXMEMORY`` if set (e.g. 64mb, 1gb, 100000), else ``current``."""
    value = os.environ.get(MAXMEMORY_ENV, "").strip().lower()
    if not value:
        return current
    if not re.fullmatch(r"[1-9]\d*(?:b|k|kb|m|mb|g|gb)?", value):
        raise SandboxError(f"{MAXMEMORY_ENV} must be a size such as 64mb, got {value!r}", USAGE)
    return value


@dataclass(frozen=True)
class Layout:
    """Every path of one sandbox. ``privileged`` moves PostgreSQL's data out of the home dir."""

    root: Path
    privileged: bool

    @classmethod
    def for_home(cls, home: Path | None = None) -> Layout:
        return cls(sandbox_dir(home), os.geteuid() == 0)

    @property
    def run_dir(self) -> Path:
        return self.root / "run"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def supervisord_conf(self) -> Path:
        return self.root / "supervisord.conf"

    @property
    def supervisor_socket(self) -> Path:
        return self.run_dir / "supervisor.sock"

    @property
    def supervisord_pidfile(self) -> Path:
        return self.run_dir / "supervisord.pid"

    @property
    def redis_dir(self) -> Path:
        return self.root / "redis"

    @property
    def redis_conf(self) -> Path:
        return self.redis_dir / "redis.conf"

    @property
    def backend_dir(self) -> Path:
        return self.root / "backend"

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def endpoints_file(self) -> Path:
        return self.root / "endpoints.json"

    @property
    def monitoring_dir(self) -> Path:
        """Configs, time-compressed rules, TSDB and the receiver token of `up --monitoring`;
        also the working directory of every monitoring program (how `down` finds them)."""
        return self.root / "monitoring"

    @property
    def prometheus_conf(self) -> Path:
        return self.monitoring_dir / "prometheus.yml"

    @property
    def alertmanager_conf(self) -> Path:
        return self.monitoring_dir / "alertmanager.yml"

    @property
    def rules_dir(self) -> Path:
        return self.monitoring_dir / "rules"

    @property
    def prometheus_data(self) -> Path:
        return self.monitoring_dir / "prometheus-data"

    @property
    def alertmanager_data(self) -> Path:
        return self.monitoring_dir / "alertmanager-data"

    @property
    def receiver_token_file(self) -> Path:
        return self.monitoring_dir / "receiver.token"

    @property
    def pg_parent(self) -> Path:
        if not self.privileged:
            return self.root / "postgres"
        digest = hashlib.sha256(str(self.root).encode()).hexdigest()[:12]
        return PRIVILEGED_PG_BASE / f"sandbox-{digest}"

    @property
    def pg_data(self) -> Path:
        return self.pg_parent / "data"

    @property
    def pg_socket_dir(self) -> Path:
        return self.pg_parent / "run"

    def log(self, program: str) -> Path:
        return self.logs_dir / f"{program}.log"

    def check_socket_paths(self, pg_port: int) -> None:
        """Fail early, and clearly, where the kernel would refuse a unix socket path."""
        paths = [self.supervisor_socket, self.pg_socket_dir / f".s.PGSQL.{pg_port}"]
        for path in paths:
            size = len(os.fsencode(path))
            if size > UNIX_SOCKET_MAX:
                raise SandboxError(
                    f"unix socket path {path} is {size} bytes, over the {UNIX_SOCKET_MAX}-byte "
                    "limit; set PFLOW_OPS_HOME to a shorter directory",
                    USAGE,
                )


@dataclass
class SandboxState:
    """What ``up`` decided once and later commands reuse (ports, passwords, pids)."""

    ports: SandboxPorts
    superuser_password: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    app_password: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    monitor_password: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    redis_maxmemory: str = DEFAULT_MAXMEMORY
    service_user: str | None = None
    pg_bin_dir: str = ""
    pg_version: str = ""
    pids: dict[str, list[int]] = field(default_factory=dict)
    """name -> [pid, start time in clock ticks]; the start time guards against pid reuse."""
    faults: list[str] = field(default_factory=list)
    monitoring: MonitoringState | None = None
    """Set by `up --monitoring`, None for a plain `up`."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SandboxState:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["ports"] = SandboxPorts(**known.get("ports", {}))
        if isinstance(known.get("monitoring"), dict):
            known["monitoring"] = MonitoringState.from_json(known["monitoring"])
        return cls(**known)


def write_private_json(path: Path, data: dict[str, Any]) -> None:
    """Write atomically with mode 0600: the files carry passwords."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, sort_keys=False)
        fh.write("\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise SandboxError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise SandboxError(f"cannot read {path}: expected a JSON object")
    return data


def load_state(layout: Layout) -> SandboxState | None:
    data = read_json(layout.state_file)
    if data is None:
        return None
    try:
        return SandboxState.from_json(data)
    except (TypeError, SandboxError) as exc:
        raise SandboxError(
            f"{layout.state_file} is corrupt ({exc}); run `pflow-ops sandbox down --purge`"
        ) from None


def save_state(layout: Layout, state: SandboxState) -> None:
    write_private_json(layout.state_file, state.to_json())
