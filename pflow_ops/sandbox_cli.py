"""``pflow-ops sandbox ...``: the CLI face of :mod:`pflow_ops.sandbox`, registered as the
``sandbox`` command by the entry point ``pflow_ops.commands`` (pyproject.toml). Its dependencies
come with the ``sandbox`` extra; without them the command says so in one line (exit 2)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from pflow_ops.commands import Command, missing_modules
from pflow_ops.errors import OK, UsageError

# What the sandbox imports beyond the core (the `sandbox` extra of pyproject.toml).
EXTRA_MODULES = ("supervisor", "docker", "redis", "psycopg2")


def add_sandbox_parser(p: argparse.ArgumentParser) -> None:
    """The ``sandbox`` command's actions (argparse only: cheap to import)."""
    sb = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    _add_up_args(
        sb.add_parser(
            "up", help="start PostgreSQL, Redis and the backend under supervisord or as containers"
        )
    )
    st = sb.add_parser("status", help="show the sandbox programs and health")
    st.add_argument("--output", choices=["text", "json"], default="text")
    down = sb.add_parser("down", help="stop everything; leave no process behind")
    down.add_argument("--purge", action="store_true", help="also delete the sandbox data")
    br = sb.add_parser("break", help="inject a fault")
    br.add_argument("fault", metavar="FAULT")
    sb.add_parser("heal", help="undo every fault")


def _add_up_args(up: argparse.ArgumentParser) -> None:
    up.add_argument("--backend-port", type=int)
    up.add_argument("--postgres-port", type=int)
    up.add_argument("--redis-port", type=int)
    up.add_argument(
        "--runtime",
        choices=["supervisor", "docker"],
        default="supervisor",
        help="supervisor (default): programs under supervisord; docker: containers of the "
        "Compose project pivotal-flow, as production runs them",
    )
    up.add_argument(
        "--docker-host",
        metavar="URL",
        help="Docker engine for --runtime docker (default: unix:///var/run/docker.sock if it "
        "answers, else a private dockerd started under the sandbox directory)",
    )
    up.add_argument(
        "--monitoring",
        action="store_true",
        help="also run Prometheus, Alertmanager, postgres/redis exporters, the alert receiver "
        "and light API traffic (supervisor runtime); alert rules load time-compressed",
    )
    up.add_argument(
        "--receiver",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="with --monitoring: start `pflow-ops serve` as the Alertmanager webhook "
        "(default: on); --no-receiver leaves its port free for another listener",
    )
    up.add_argument(
        "--time-factor",
        type=int,
        metavar="N",
        help="with --monitoring: divide rule ranges and `for:` durations by N (default: 20, "
        "so 5m -> 15s)",
    )
    up.add_argument(
        "--rules-dir",
        metavar="DIR",
        help="with --monitoring: load DIR/*.rules.yml instead of the shipped monitoring/rules",
    )


def _status_text(st: dict[str, Any]) -> None:
    if not st.get("running"):
        print("sandbox: down (start it with `pflow-ops sandbox up`)")
        return
    print("sandbox: up")
    for name, prog in sorted((st.get("programs") or {}).items()):
        pid = f" pid {prog['pid']}" if prog.get("pid") else ""
        print(f"  {name:<17} {prog.get('state', '?')}{pid}")
    health = st.get("health")
    if health is not None:
        print(f"  health     {json.dumps(health)}")
    ep = st.get("endpoints") or {}
    if ep:
        print(f"  backend    {ep['backend']['health_url']}")
        pg = ep["postgres"]
        print(f"  postgres   {pg['host']}:{pg['port']}/{pg['database']}")
        print(f"  redis      {ep['redis']['host']}:{ep['redis']['port']}")
    mon = st.get("monitoring")
    if mon:
        print(f"  prometheus {mon['prometheus_url']}")
        print(f"  alertmanager {mon['alertmanager_url']}")
        state = "on" if mon["receiver_enabled"] else "off: --no-receiver"
        print(f"  receiver   {mon['receiver_url']} ({state})")
        print(f"  rules      {mon['time_compression']}")


def _ports(sandbox: Any, args: argparse.Namespace) -> Any:
    """Explicit flags win; a port not given keeps what the sandbox would pick on its own."""
    if not (args.backend_port or args.postgres_port or args.redis_port):
        return None
    from pflow_ops.sandbox.layout import default_ports

    base = default_ports()
    return sandbox.SandboxPorts(
        backend=args.backend_port or base.backend,
        postgres=args.postgres_port or base.postgres,
        redis=args.redis_port or base.redis,
    )


def _docker_runtime() -> bool:
    """Whether the sandbox in $PFLOW_OPS_HOME was brought up with ``--runtime docker``."""
    from pflow_ops.sandbox.docker import lifecycle as docker_lifecycle
    from pflow_ops.sandbox.layout import Layout

    return docker_lifecycle.read_runtime(Layout.for_home()) is not None


def _monitoring(sandbox: Any, args: argparse.Namespace) -> Any:
    """MonitoringOptions for ``--monitoring``, None without it; its sub-options need it."""
    receiver = getattr(args, "receiver", None)
    factor = getattr(args, "time_factor", None)
    rules_dir = getattr(args, "rules_dir", None)
    if not getattr(args, "monitoring", False):
        if receiver is not None or factor is not None or rules_dir is not None:
            raise sandbox.SandboxError(
                "--receiver, --time-factor and --rules-dir only apply with --monitoring", 2
            )
        return None
    if getattr(args, "runtime", "supervisor") == "docker":
        raise sandbox.SandboxError(
            "--monitoring runs under the supervisor runtime only; drop --runtime docker", 2
        )
    from pathlib import Path

    from pflow_ops.sandbox.layout import DEFAULT_TIME_FACTOR
    from pflow_ops.sandbox.monitoring import MonitoringOptions

    return MonitoringOptions(
        receiver=True if receiver is None else receiver,
        time_factor=DEFAULT_TIME_FACTOR if factor is None else factor,
        rules_dir=Path(rules_dir) if rules_dir else None,
    )


def _up(sandbox: Any, args: argparse.Namespace) -> None:
    monitoring = _monitoring(sandbox, args)
    if getattr(args, "runtime", "supervisor") == "docker":
        from pflow_ops.sandbox.docker import lifecycle as docker_lifecycle

        ep = docker_lifecycle.up(ports=_ports(sandbox, args), docker_host=args.docker_host)
        where = f" (containers of {ep['docker']['project']} on {ep['docker']['host']})"
    else:
        if _docker_runtime():
            raise sandbox.SandboxError(
                "the sandbox is up with --runtime docker; run `pflow-ops sandbox down` first", 2
            )
        ep = sandbox.up(ports=_ports(sandbox, args), monitoring_options=monitoring)
        where = ""
    print(
        f"sandbox up: backend {ep['backend']['health_url']}, "
        f"postgres 127.0.0.1:{ep['postgres']['port']}, "
        f"redis 127.0.0.1:{ep['redis']['port']}{where}"
    )
    mon = ep.get("monitoring")
    if mon:
        receiver = "" if mon["receiver_enabled"] else " (not started: --no-receiver)"
        print(
            f"monitoring: prometheus {mon['prometheus_url']}, "
            f"alertmanager {mon['alertmanager_url']}, "
            f"receiver {mon['receiver_webhook_url']}{receiver}; "
            f"rules {mon['time_compression']}"
        )


def _docker_status_text(st: dict[str, Any]) -> None:
    print(f"sandbox: {'up' if st['running'] else 'down'} (docker runtime)")
    for name, c in sorted(st["programs"].items()):
        health = f", {c['health']}" if c.get("health") else ""
        print(f"  {name:<24} {c['state']}{health}")


def _docker_runtime_api() -> Any:
    """The docker runtime's status/down/break_fault/heal, the supervisor sandbox's API."""
    from pflow_ops.sandbox.docker import faults, lifecycle

    return SimpleNamespace(
        status=lifecycle.status,
        down=lifecycle.down,
        break_fault=faults.break_fault,
        heal=faults.heal,
    )


def _action(api: Any, args: argparse.Namespace, status_text: Callable[[Any], None]) -> None:
    """status, down, break or heal, the same on either runtime."""
    if args.action == "status":
        st = api.status()
        if args.output == "json":
            print(json.dumps(st, indent=2, default=str))
        else:
            status_text(st)
    elif args.action == "down":
        api.down(purge=args.purge)
        print("sandbox down")
    elif args.action == "break":
        print(api.break_fault(args.fault))
    elif args.action == "heal":
        for line in api.heal() or ["nothing to heal"]:
            print(line)


def cmd_sandbox(args: argparse.Namespace) -> int:
    """A :class:`~pflow_ops.sandbox.SandboxError` (one of the CLI's error family) reaches
    ``main``, which prints ``pflow-ops: sandbox: <message>`` and returns its exit code."""
    require_extra(missing_modules(EXTRA_MODULES))
    from pflow_ops import sandbox

    try:
        if args.action == "up":
            _up(sandbox, args)
        elif _docker_runtime():
            _action(_docker_runtime_api(), args, _docker_status_text)
        else:
            _action(sandbox, args, _status_text)
    except BrokenPipeError:
        raise  # stdout's reader went away (`status | head`): main ends quietly
    except OSError as exc:
        raise sandbox.SandboxError(str(exc)) from exc
    return OK


def require_extra(missing: list[str]) -> None:
    """A usage error naming the extra to install when any of its modules is missing."""
    if missing:
        raise UsageError(
            f"the sandbox needs {', '.join(missing)}: pip install 'pflow-ops[sandbox]'"
        )


COMMAND = Command(
    help="the local Pivotal Flow sandbox", add_arguments=add_sandbox_parser, run=cmd_sandbox
)
