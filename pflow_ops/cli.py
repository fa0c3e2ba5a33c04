"""The ``pflow-ops`` command line. ``main(argv) -> int`` so tests call it in-process.

argv becomes a typed request here (:class:`~pflow_ops.request.RunRequest` for the run
commands); every error a user can cause is a :class:`~pflow_ops.errors.PflowError`, caught once
in :func:`main`: one line on stderr and the error's exit code. Exit codes: 0 healthy or
recovered; 1 internal error; 2 bad usage or input; 3 refused by a guard (confirmation, lock,
restart budget); 4 escalate. Keep the imports here cheap: ``--help`` and ``list`` must not
import Ansible.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from pflow_ops import __version__, console, outcome
from pflow_ops.commands import discover
from pflow_ops.errors import INTERNAL, OK, REFUSED, USAGE, PflowError, UsageError
from pflow_ops.paths import PROJECT_ENV
from pflow_ops.request import (
    COMMANDS,
    RunRequest,
    check_alert_incident,
    check_fingerprint,
    check_group_key,
    check_incident_key,
    check_receipt,
    parse_extra_vars,
)

log = logging.getLogger(__name__)


def _verbose(p: argparse.ArgumentParser, default: object) -> None:
    p.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=default,
        help="the launcher's own diagnostics on stderr (-v info, -vv debug)",
    )


def _project(p: argparse.ArgumentParser, default: object) -> None:
    p.add_argument(
        "--project",
        metavar="DIR",
        default=default,
        help="the project: inventories/ (and playbooks/, catalogue.yml, ansible.cfg if it has "
        "them; else the installed wheel's and collection's); default: $PFLOW_OPS_PROJECT, the "
        "checkout, else the current directory",
    )


def use_project(path: str | None) -> None:
    """``--project DIR`` for everything the run starts (the console script has already set it
    for this process: :mod:`pflow_ops.launch`)."""
    if not path:
        return
    resolved = os.path.abspath(os.path.expanduser(path))
    if not os.path.isdir(resolved):
        raise UsageError(f"--project {path}: not a directory")
    os.environ[PROJECT_ENV] = resolved


def _common() -> argparse.ArgumentParser:
    """Options every command takes after its name too (`pflow-ops recover rb-01 -vv`)."""
    common = argparse.ArgumentParser(add_help=False)
    _verbose(common, default=argparse.SUPPRESS)  # unset unless given after the command
    _project(common, default=argparse.SUPPRESS)
    return common


def _add_run_args(p: argparse.ArgumentParser, target: str = "runbook") -> None:
    """What every run command takes; options a command lacks get their neutral value, so the
    Namespace of any run command has every field of a RunRequest."""
    p.set_defaults(
        check=False,
        yes=False,
        override_budget=None,
        fingerprint=None,
        runbook=None,
        receipt=None,
        incident=None,
        group_key=None,
        alert_incident=None,
    )
    if target == "runbook":
        p.add_argument("target", metavar="RUNBOOK", help="runbook id, e.g. rb-01 (see `list`)")
    elif target == "alert":
        p.add_argument("target", metavar="ALERTNAME", help="e.g. RedisHighEvictions (see `list`)")
    else:
        p.add_argument("target", metavar="SERVICE", help="database or cache (see `list`)")
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
    if p.prog.split()[-1] != "diagnose":
        p.add_argument(
            "--incident",
            metavar="KEY",
            help="the incident this run documents (a ticket id, an incident key); default: "
            "the alert's fingerprint, else the run itself",
        )
    p.add_argument(
        "--vault-password-file",
        metavar="PATH",
        help="Ansible Vault password file for the inventory's vault.yml (default: "
        "$ANSIBLE_VAULT_PASSWORD_FILE); only its path is passed on, never the password",
    )


def use_vault_password_file(path: str | None) -> None:
    """The run's vault password file, handed to Ansible (the run and the inventory reads) as
    ANSIBLE_VAULT_PASSWORD_FILE: a path in the environment, never the password on argv."""
    if not path:
        return
    resolved = os.path.abspath(os.path.expanduser(path))
    if not os.access(resolved, os.R_OK) or not os.path.isfile(resolved):
        raise UsageError(f"--vault-password-file {path}: not a readable file")
    os.environ["ANSIBLE_VAULT_PASSWORD_FILE"] = resolved


def _add_run_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: list[argparse.ArgumentParser]
) -> None:
    p = sub.add_parser("recover", parents=common, help="investigate, then recover when needed")
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

    p = sub.add_parser(
        "diagnose", parents=common, help="investigation only; never changes anything"
    )
    _add_run_args(p)

    p = sub.add_parser(
        "alert",
        parents=common,
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
    p.add_argument(
        "--runbook",
        metavar="ID",
        help="run this runbook whatever the alert's name (as a `runbook` label routes it); "
        "default: the catalogue's alerts and aliases, then the environment's pflow_alert_aliases",
    )
    p.add_argument(
        "--group-key",
        metavar="TEXT",
        help="Alertmanager's groupKey of the alert's notification: the incident (and the "
        "PagerDuty dedup_key) is then the one Alertmanager's PagerDuty integration uses",
    )
    p.add_argument(
        "--alert-incident",
        metavar="KEY",
        help="the alert's `incident` annotation (a ticket id): the incident key unless "
        "--incident is given",
    )
    # The receiver's plumbing: the receipt of the alert that queued this run, kept in the run
    # record. Hidden from --help like the receiver's other test and plumbing options.
    p.add_argument("--receipt", help=argparse.SUPPRESS)

    p = sub.add_parser(
        "maintain", parents=common, help="run a scheduled maintenance job (database, cache)"
    )
    _add_run_args(p, target="service")
    p.add_argument("--check", action="store_true", help="dry run: report what it would do")
    p.add_argument("--yes", action="store_true", help="confirm a run on a protected environment")


def build_parser() -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = _Parser(
        prog="pflow-ops",
        description="Runbook automation for the Pivotal Flow platform.",
        epilog="Exit codes: 0 healthy/recovered, 1 internal error, 2 bad usage, "
        "3 refused by a guard, 4 escalate.",
    )
    parser.add_argument("--version", action="version", version=f"pflow-ops {__version__}")
    _verbose(parser, default=0)
    _project(parser, default=None)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = [_common()]

    p = sub.add_parser(
        "list", parents=common, help="list the runbooks with their severity and alerts"
    )
    p.add_argument("--output", choices=["text", "json"], default="text")

    _add_run_commands(sub, common)

    p = sub.add_parser(
        "serve", parents=common, help="Alertmanager webhook receiver: each alert starts its runbook"
    )
    from pflow_ops.receiver.options import add_serve_args  # argparse only: cheap to import

    add_serve_args(p)
    from pflow_ops.receiver.control import add_receiver_parser  # argparse only: cheap to import

    add_receiver_parser(sub.add_parser("receiver", parents=common, help="pause|resume|status"))

    p = sub.add_parser("history", parents=common, help="past runs, newest first")
    p.add_argument("-n", "--count", type=int, default=20, help="how many runs to show")
    p.add_argument("--output", choices=["text", "json"], default="text")
    p.add_argument(
        "--prune",
        action="store_true",
        help="remove runs older than --older-than (default: the retention, 90d, or "
        "PFLOW_OPS_RETENTION_DAYS); every run also prunes past the retention when it starts",
    )
    p.add_argument("--older-than", metavar="AGE", help="with --prune: e.g. 30d, 12h")

    p = sub.add_parser("report", parents=common, help="print a run's Markdown report")
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("--output", choices=["md", "json"], default="md")

    for name, command in sorted(discover().items()):  # the sandbox, when installed
        command.add_arguments(sub.add_parser(name, parents=common, help=command.help))
    from pflow_ops.eda_cli import add_eda_parser  # argparse only: cheap to import

    add_eda_parser(sub.add_parser("eda", parents=common, help="Event-Driven Ansible rulebooks"))
    from pflow_ops.docs_cli import add_docs_parser, add_review_parser  # argparse only

    add_docs_parser(sub.add_parser("docs", parents=common, help="the generated runbooks"))
    add_review_parser(
        sub.add_parser("review", parents=common, help="the monthly runbook review, from runs/")
    )
    from pflow_ops.incident_cli import add_incident_parser

    add_incident_parser(
        sub.add_parser(
            "incident", parents=common, help="incident records: show, list, ack, renotify"
        )
    )
    return parser


def cmd_list(args: argparse.Namespace) -> int:
    from pflow_ops import catalogue

    cat = catalogue.load()
    if args.output == "json":
        jobs = [{**job.to_dict(), "schedule": job.schedule} for job in cat.maintenance]
        runbooks = [rb.to_dict() for rb in cat.runbooks]
        console.emit_json({"runbooks": runbooks, "maintenance": jobs})
        return OK
    for rb in cat.runbooks:
        state = "" if rb.implemented else "  (catalogued, not automated yet)"
        console.out(f"{rb.slug}  {rb.title} [{rb.severity}]{state}")
        console.out(f"        alerts: {', '.join(rb.alerts)}")
        console.out(f"        playbook: {rb.playbook}")
    if cat.maintenance:
        console.out("\nmaintenance (pflow-ops maintain SERVICE):")
    for job in cat.maintenance:
        console.out(f"{job.service:<9} {job.title}, schedule '{job.schedule}' (cron, UTC)")
        console.out(f"        playbook: {job.playbook}")
    return OK


def _age_days(text: str) -> float:
    units = {"d": 1.0, "h": 1 / 24, "w": 7.0}
    number, unit = text[:-1], text[-1:].lower()
    try:
        if unit in units and float(number) >= 0:
            return float(number) * units[unit]
    except ValueError:
        pass
    raise UsageError(f"bad --older-than '{text}': expected a number with d, h or w (30d)")


def cmd_prune(args: argparse.Namespace) -> int:
    from pflow_ops import runrecord
    from pflow_ops.paths import runs_dir

    days = _age_days(args.older_than) if args.older_than else runrecord.retention_days()
    removed = runrecord.prune(runs_dir(), days)
    if args.output == "json":
        console.emit_json({"removed": removed, "older_than_days": days})
    else:
        console.out(f"removed {len(removed)} run(s) older than {days:g} day(s)")
    return OK


def cmd_history(args: argparse.Namespace) -> int:
    from pflow_ops import report
    from pflow_ops.paths import runs_dir

    if args.prune:
        return cmd_prune(args)
    if args.older_than:
        raise UsageError("--older-than goes with --prune")
    rows = report.history(runs_dir())[: max(args.count, 0)]
    if args.output == "json":
        console.emit_json({"runs": [r.to_dict() for r in rows]})
        return OK
    if not rows:
        console.out("no runs yet")
    for row in rows:
        console.out(row.line())
    return OK


def cmd_report(args: argparse.Namespace) -> int:
    from pflow_ops import report, runrecord
    from pflow_ops.paths import runs_dir

    name = "report.json" if args.output == "json" else "report.md"
    run_dir = runs_dir() / args.run_id
    path = run_dir / name
    if "/" in args.run_id or args.run_id.startswith("."):
        raise UsageError(f"no report for run '{args.run_id}': see `pflow-ops history`")
    record = runrecord.load(run_dir)
    state = runrecord.state(record) if record else ""
    if state == runrecord.INTERRUPTED and not path.is_file():
        report.settle(run_dir, record or {})  # what it did, from the events it left
    if not path.is_file():
        why = f"run '{args.run_id}' is {state}" if state else f"no report for run '{args.run_id}'"
        if record and record.get("reason"):
            why += f": {record['reason']}"
        raise UsageError(f"{why}: see `pflow-ops history`")
    console.write(path.read_text(encoding="utf-8"))
    return OK


def run_request(args: argparse.Namespace) -> RunRequest:
    """The run command argparse parsed, as a checked, typed request (the one place that reads
    the Namespace of a run command)."""
    return RunRequest(
        command=args.command,
        target=args.target,
        env=args.env,
        check=args.check,
        yes=args.yes,
        limit=args.limit,
        extra_vars=parse_extra_vars(args.extra_vars),
        override_reason=args.override_budget,
        fingerprint=check_fingerprint(args.fingerprint),
        runbook=args.runbook,
        receipt=check_receipt(args.receipt),
        incident=check_incident_key(args.incident),
        group_key=check_group_key(args.group_key),
        alert_incident=check_alert_incident(args.alert_incident),
        output=args.output,
    )


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
    if args.command == "receiver":
        from pflow_ops.receiver.control import cmd_receiver

        return cmd_receiver(args)
    plugins = discover()
    if args.command in plugins:
        return plugins[args.command].run(args)
    if args.command == "eda":
        from pflow_ops.eda_cli import cmd_eda

        return cmd_eda(args)
    if args.command == "docs":
        from pflow_ops.docs_cli import cmd_docs

        return cmd_docs(args)
    if args.command == "review":
        from pflow_ops.docs_cli import cmd_review

        return cmd_review(args)
    if args.command == "incident":
        from pflow_ops.incident_cli import cmd_incident

        return cmd_incident(args)
    if args.command not in COMMANDS:  # pragma: no cover - the parser knows every command
        raise UsageError(f"unknown command {args.command}")
    use_vault_password_file(args.vault_password_file)
    request = run_request(args)
    log.debug("request: %s, extra vars %s", request, sorted(request.extra_vars))
    from pflow_ops.run import cmd_run  # imports the runner and the report: not for --help

    return cmd_run(request)


class _ParseError(UsageError):
    """An argparse error, already printed the argparse way (usage line, then the error)."""


class _Parser(argparse.ArgumentParser):
    """argparse's own error text, then an exception, so ``main`` still prints the one JSON
    object ``--output json`` promises (subparsers inherit the class)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise _ParseError(message)


def _json_requested(argv: Sequence[str]) -> bool:
    pairs = zip(argv, [*argv[1:], ""], strict=True)
    return "--output=json" in argv or any(a == "--output" and b == "json" for a, b in pairs)


def error_object(args: argparse.Namespace | None, code: int, reason: str) -> dict[str, object]:
    """What ``--output json`` prints for a command that ended without its own object (a usage
    error, an internal error): the shape of a guard's refusal, the outcome word ``usage`` for
    exit 2 (not an outcome of the vocabulary: nothing ran), and the exit code."""
    word = {USAGE: "usage", REFUSED: outcome.REFUSED}.get(code, outcome.ERROR)
    return {
        "run_id": None,
        "runbook": None,
        "command": getattr(args, "command", None),
        "target": getattr(args, "target", None),
        "env": getattr(args, "env", None),
        "check": bool(getattr(args, "check", False)),
        "outcome": word,
        "exit_code": code,
        "reason": reason,
        "changed": 0,
        "findings": [],
        "actions": [],
        "report": None,
    }


def _run(argv: Sequence[str]) -> tuple[int, str, argparse.Namespace | None]:
    """(exit code, why it failed or "", the parsed arguments when they parsed)."""
    args: argparse.Namespace | None = None
    try:
        args = build_parser().parse_args(argv)
        console.configure_logging(int(args.verbose))
        use_project(args.project)
        return _dispatch(args), "", args
    except _ParseError as exc:
        return exc.exit_code, str(exc), args
    except PflowError as exc:
        console.error(exc.label, str(exc))
        return exc.exit_code, str(exc), args
    except KeyboardInterrupt:
        print("pflow-ops: interrupted", file=sys.stderr)
        return INTERNAL, "interrupted", args
    except Exception as exc:
        if isinstance(exc, BrokenPipeError) and console.stdout_gone():
            # The reader took what it wanted (`pflow-ops history | head`): not an error.
            console.silence_stdout()
            return OK, "", args
        # A bug or a broken installation: one line by default, the traceback on request.
        if os.environ.get("PFLOW_OPS_DEBUG"):
            raise
        why = f"internal error: {exc.__class__.__name__}: {exc}"
        print(f"pflow-ops: {why} (set PFLOW_OPS_DEBUG=1 for the traceback)", file=sys.stderr)
        return INTERNAL, why, args


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    emitted = console.json_count()
    code, why, args = _run(argv)
    if why and _json_requested(argv) and console.json_count() == emitted:
        # --output json: every exit prints one JSON object, usage errors included.
        console.emit_json(error_object(args, code, why))
    console.flush()
    return code
