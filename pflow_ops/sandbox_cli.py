"""``pflow-ops sandbox ...``: the CLI face of :mod:`pflow_ops.sandbox`."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from pflow_ops import exitcodes


def _status_text(st: dict[str, Any]) -> None:
    if not st.get("running"):
        print("sandbox: down (start it with `pflow-ops sandbox up`)")
        return
    print("sandbox: up")
    for name, prog in sorted((st.get("programs") or {}).items()):
        pid = f" pid {prog['pid']}" if prog.get("pid") else ""
        print(f"  {name:<10} {prog.get('state', '?')}{pid}")
    health = st.get("health")
    if health is not None:
        print(f"  health     {json.dumps(health)}")
    ep = st.get("endpoints") or {}
    if ep:
        print(f"  backend    {ep['backend']['health_url']}")
        pg = ep["postgres"]
        print(f"  postgres   {pg['host']}:{pg['port']}/{pg['database']}")
        print(f"  redis      {ep['redis']['host']}:{ep['redis']['port']}")


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


def cmd_sandbox(args: argparse.Namespace) -> int:
    from pflow_ops import sandbox

    try:
        if args.action == "up":
            ep = sandbox.up(ports=_ports(sandbox, args))
            print(
                f"sandbox up: backend {ep['backend']['health_url']}, "
                f"postgres 127.0.0.1:{ep['postgres']['port']}, "
                f"redis 127.0.0.1:{ep['redis']['port']}"
            )
        elif args.action == "status":
            st = sandbox.status()
            if args.output == "json":
                print(json.dumps(st, indent=2, default=str))
            else:
                _status_text(st)
        elif args.action == "down":
            sandbox.down(purge=args.purge)
            print("sandbox down")
        elif args.action == "break":
            print(sandbox.break_fault(args.fault))
        elif args.action == "heal":
            for line in sandbox.heal() or ["nothing to heal"]:
                print(line)
    except sandbox.SandboxError as exc:
        print(f"pflow-ops: sandbox: {exc}", file=sys.stderr)
        return int(getattr(exc, "exit_code", exitcodes.USAGE))
    except OSError as exc:
        print(f"pflow-ops: sandbox: {exc}", file=sys.stderr)
        return exitcodes.ERROR
    return exitcodes.OK
