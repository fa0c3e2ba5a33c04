"""The ``pflow-ops`` command line. ``main(argv) -> int`` so tests call it in-process.

Exit codes: 0 healthy or recovered; 1 internal error; 2 bad usage or input; 3 refused by a
guard (confirmation, lock, restart budget); 4 escalate. Keep the imports here cheap:
``--help`` and ``list`` must not import Ansible.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from pflow_ops import __version__, exitcodes


class UsageError(Exception):
    """Bad input from the user: one line on stderr, exit 2."""


def _add_run_args(p: argparse.ArgumentParser, target: str = "runbook") -> None:
    if target == "runbook":
        p.add_argument("runbook", metavar="RUNBOOK", help="runbook id, e.g. rb-01 (see `list`)")
    elif target == "alert":
        p.add_argument(
            "alertname", metavar="ALERTNAME", help="e.g. RedisHighEvictions (see `list`)"
        )
    else:
        p.add_argument("service", metavar="SERVICE", help="database or cache (see `list`)")
    p.add_argument("--env", default="local", help="environment (inventories/ENV); default: local")
    p.add_argument("--limit", metavar="HOSTS", help="only these hosts (Ansible pattern)")
    p.add_argument(
        "-e",
        "--extra-var",
        dest="extra_vars",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a role variable (repeatable)",
    )
    p.add_argument("--output", choices=["text", "json"], default="text")


def _add_sandbox_parser(p: argparse.ArgumentParser) -> None:
    sb = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    up = sb.add_parser(
        "up", help="start PostgreSQL, Redis and the backend under supervisord or as containers"
    )
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
    st = sb.add_parser("status", help="show the sandbox programs and health")
    st.add_argument("--output", choices=["text", "json"], default="text")
    down = sb.add_parser("down", help="stop everything; leave no process behind")
    down.add_argument("--purge", action="store_true", help="also delete the sandbox data")
    br = sb.add_parser("break", help="inject a fault")
    br.add_argument("fault", metavar="FAULT")
    sb.add_parser("heal", help="undo every fault")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pflow-ops",
        description="Runbook automation for the Pivotal Flow platform.",
        epilog="Exit codes: 0 healthy/recovered, 1 internal error, 2 bad usage, "
        "3 refused by a guard, 4 escalate.",
    )
    parser.add_argument("--version", action="version", version=f"pflow-ops {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("list", help="list the runbooks with their severity and alerts")
    p.add_argument("--output", choices=["text", "json"], default="text")

    p = sub.add_parser("recover", help="investigate, then recover when needed")
    _add_run_args(p)
    p.add_argument(
        "--check", action="store_true", help="dry run: diagnose for real, change nothing"
    )
    p.add_argument("--yes", action="store_true", help="confirm a run on a protected environment")
    p.add_argument(
        "--override-budget",
        metavar="REASON",
        help="restart even if the restart budget is spent (recorded in the report)",
    )

    p = sub.add_parser("diagnose", help="investigation only; never changes anything")
    _add_run_args(p)

    p = sub.add_parser(
        "alert",
        help="run the runbook an alert maps to, then wait for the alert to resolve",
    )
    _add_run_args(p, target="alert")
    p.add_argument("--check", action="store_true", help="dry run: diagnose, change nothing")
    p.add_argument("--yes", action="store_true", help="confirm a run on a protected environment")
    p.add_argument(
        "--fingerprint",
        metavar="HEX",
        help="Alertmanager fingerprint of the firing alert: the closed loop waits for that one",
    )

    p = sub.add_parser("maintain", help="run a scheduled maintenance job (database, cache)")
    _add_run_args(p, target="service")
    p.add_argument("--check", action="store_true", help="dry run: report what it would do")
    p.add_argument("--yes", action="store_true", help="confirm a run on a protected environment")

    p = sub.add_parser("serve", help="Alertmanager webhook receiver: each alert starts its runbook")
    from pflow_ops.receiver.options import add_serve_args  # argparse only: cheap to import

    add_serve_args(p)

    p = sub.add_parser("history", help="past runs, newest first")
    p.add_argument("-n", "--count", type=int, default=20, help="how many runs to show")
    p.add_argument("--output", choices=["text", "json"], default="text")

    p = sub.add_parser("report", help="print a run's Markdown report")
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("--output", choices=["md", "json"], default="md")

    _add_sandbox_parser(sub.add_parser("sandbox", help="the local Pivotal Flow sandbox"))
    return parser


def cmd_list(args: argparse.Namespace) -> int:
    from pflow_ops import catalogue

    cat = catalogue.load()
    if args.output == "json":
        jobs = [{**job.to_dict(), "schedule": job.schedule} for job in cat.maintenance]
        runbooks = [rb.to_dict() for rb in cat.runbooks]
        print(json.dumps({"runbooks": runbooks, "maintenance": jobs}, indent=2))
        return exitcodes.OK
    for rb in cat.runbooks:
        state = "" if rb.implemented else "  (catalogued, not automated yet)"
        print(f"{rb.slug}  {rb.title} [{rb.severity}]{state}")
        print(f"        alerts: {', '.join(rb.alerts)}")
        print(f"        playbook: {rb.playbook}")
    if cat.maintenance:
        print("\nmaintenance (pflow-ops maintain SERVICE):")
    for job in cat.maintenance:
        print(f"{job.service:<9} {job.title}, schedule '{job.schedule}' (cron, UTC)")
        print(f"        playbook: {job.playbook}")
    return exitcodes.OK


def cmd_history(args: argparse.Namespace) -> int:
    from pflow_ops import report
    from pflow_ops.paths import runs_dir

    rows = report.history(runs_dir())[: max(args.count, 0)]
    if args.output == "json":
        print(json.dumps({"runs": rows}, indent=2))
        return exitcodes.OK
    if not rows:
        print("no runs yet")
    for r in rows:
        check = " (check)" if r["check"] else ""
        print(
            f"{r['run_id']}  {r['runbook']}  {r['env']}{check}  {r['outcome']}  "
            f"changed={r['changed']}  {r['duration_s']} s"
        )
    return exitcodes.OK


def cmd_report(args: argparse.Namespace) -> int:
    from pflow_ops.paths import runs_dir

    name = "report.json" if args.output == "json" else "report.md"
    run_dir = runs_dir() / args.run_id
    path = run_dir / name
    if "/" in args.run_id or args.run_id.startswith(".") or not path.is_file():
        raise UsageError(f"no report for run '{args.run_id}': see `pflow-ops history`")
    sys.stdout.write(path.read_text(encoding="utf-8"))
    return exitcodes.OK


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "list":
        return cmd_list(args)
    if args.command == "history":
        return cmd_history(args)
    if args.command == "report":
        return cmd_report(args)
    if args.command == "serve":
        from pflow_ops.receiver.service import cmd_serve

        return cmd_serve(args)
    if args.command == "sandbox":
        from pflow_ops.sandbox_cli import cmd_sandbox

        return cmd_sandbox(args)
    from pflow_ops.recovery import cmd_run

    return cmd_run(args)


def _user_error_types() -> tuple[type[Exception], ...]:
    from pflow_ops.catalogue import CatalogueError, UnknownRunbook
    from pflow_ops.environments import UnknownEnvironment

    return (CatalogueError, UnknownRunbook, UnknownEnvironment)


def _serve_error_type() -> type[Exception]:
    from pflow_ops.receiver.service import ServeError

    return ServeError


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _dispatch(args)
    except UsageError as exc:
        print(f"pflow-ops: error: {exc}", file=sys.stderr)
        return exitcodes.USAGE
    except _user_error_types() as exc:
        print(f"pflow-ops: error: {exc}", file=sys.stderr)
        return exitcodes.USAGE
    except _serve_error_type() as exc:
        print(f"pflow-ops: error: {exc}", file=sys.stderr)
        return int(getattr(exc, "code", exitcodes.USAGE))
    except KeyboardInterrupt:
        print("pflow-ops: interrupted", file=sys.stderr)
        return exitcodes.ERROR
    except Exception as exc:
        # A bug or a broken installation: one line by default, the traceback on request.
        if os.environ.get("PFLOW_OPS_DEBUG"):
            raise
        print(
            f"pflow-ops: internal error: {exc.__class__.__name__}: {exc} "
            "(set PFLOW_OPS_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return exitcodes.ERROR


def emit_json(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj, indent=2) + "\n")
