"""``pflow-ops incident show KEY | list | ack KEY [--by NAME] | renotify --env ENV``: the incident
records (issue 16); ``renotify`` is :mod:`pflow_ops.renotify`.

The records are written by the collection's ``incident_record`` action plugin under
``$PFLOW_OPS_HOME/incidents/``; this command reads them with the collection's own code
(``module_utils/incident.py`` and ``incident_store.py``, loaded by path, as the outcome
vocabulary is), so the CLI and the playbooks agree on the key, the file and the lock.
``ack`` marks an incident handled: recorded, and re-notification (chat, pager) stops.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import getpass
import importlib.util
import json
from types import ModuleType
from typing import Any

from pflow_ops import console
from pflow_ops.errors import OK, PflowError, UsageError
from pflow_ops.paths import project_root, state_home
from pflow_ops.request import check_incident_key


class NoSuchIncident(PflowError):
    """No record for that key: exit 1 with one line."""

    label = "not found"


def _load(name: str) -> ModuleType:
    path = project_root() / "collection" / "plugins" / "module_utils" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"pflow_ops._collection_{name}", path)
    if spec is None or spec.loader is None:  # pragma: no cover - a broken checkout
        raise ImportError(f"the collection's {name} module is missing: {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@functools.cache
def _modules() -> tuple[ModuleType, ModuleType]:
    """The collection's incident model and store, loaded on first use (``--help`` stays cheap)."""
    return _load("incident"), _load("incident_store")


@functools.cache
def _renotify_module() -> ModuleType:
    return _load("incident_renotify")


def add_incident_parser(p: argparse.ArgumentParser) -> None:
    """The ``incident`` command's actions (argparse only: cheap to import)."""
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = sub.add_parser("show", help="one incident's record: sinks, runs, events, ack")
    show.add_argument("key", metavar="KEY")
    show.add_argument("--output", choices=["text", "json"], default="text")
    lst = sub.add_parser("list", help="the incident records, newest first")
    lst.add_argument("--output", choices=["text", "json"], default="text")
    ack = sub.add_parser("ack", help="mark an incident handled (re-notification stops)")
    ack.add_argument("key", metavar="KEY")
    ack.add_argument("--by", metavar="NAME", help="who handled it (default: this user)")
    ack.add_argument("--output", choices=["text", "json"], default="text")
    renotify = sub.add_parser(
        "renotify",
        help="notify the escalation level due for each unacknowledged incident (cron, no pager)",
    )
    renotify.add_argument("--env", default="local", help="environment (inventories/ENV)")
    renotify.add_argument(
        "--check", action="store_true", help="print what is due; send and journal nothing"
    )
    renotify.add_argument(
        "--now",
        metavar="TIME",
        help="decide as if it were TIME (ISO 8601 with its zone, e.g. 2026-12-05T10:30:00Z): "
        "what will be due then; only with --check on a protected environment",
    )
    renotify.add_argument("--output", choices=["text", "json"], default="text")


def read_record(key: str) -> dict[str, Any]:
    _incident, _store = _modules()
    path = _store.record_path(str(state_home()), _incident.key_sha(key))
    record, _warning = _store.read_only(path)
    if record is None:
        raise NoSuchIncident(f"no incident record for {key}: see `pflow-ops incident list`")
    out: dict[str, Any] = record
    return out


def ack_record(key: str, by: str) -> dict[str, Any]:
    """Mark the incident handled, under the record's lock (a run may be updating it)."""
    _incident, _store = _modules()
    home = str(state_home())
    sha = _incident.key_sha(key)
    path = _store.record_path(home, sha)
    with _store.locked(home, sha):
        record, _warning = _store.read_only(path)
        if record is None:
            raise NoSuchIncident(f"no incident record for {key}: see `pflow-ops incident list`")
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        updated: dict[str, Any] = _incident.apply_update(
            record, "", "", "", [], now, ack={"by": by, "at": now}
        )
        _store.write(path, updated)
    return updated


def summary_line(record: dict[str, Any]) -> str:
    ack = record.get("ack") or {}
    state = "resolved" if record.get("resolved") else "open"
    if ack:
        state += f", acked by {ack.get('by')}"
    sinks = ", ".join(sorted(record.get("handles") or {})) or "no sink handle"
    return (
        f"{record.get('key')}  {state}  last {record.get('last_outcome') or '-'}  "
        f"runs {len(record.get('runs') or [])}  updated {record.get('updated')}  [{sinks}]"
    )


def show_text(record: dict[str, Any]) -> str:
    lines = [summary_line(record), ""]
    for name, handle in sorted((record.get("handles") or {}).items()):
        lines.append(f"  {name}: {json.dumps(handle, sort_keys=True)}")
    lines.append("")
    for event in record.get("events") or []:
        sinks = "; ".join(
            f"{s.get('sink')} {s.get('status')}: {s.get('detail')}" for s in event.get("sinks", [])
        )
        lines.append(
            f"  {event.get('at')} {event.get('run_id') or '-'} {event.get('event')} "
            f"{event.get('outcome') or event.get('level') or ''}  {sinks}"
        )
    return "\n".join(lines)


def cmd_incident(args: argparse.Namespace) -> int:
    as_json = getattr(args, "output", "text") == "json"
    if args.action == "list":
        records = _modules()[1].list_records(str(state_home()))
        if as_json:
            console.emit_json({"incidents": records})
        else:
            for record in records:
                console.out(summary_line(record))
        return OK
    if args.action == "renotify":
        from pflow_ops.renotify import cmd_renotify  # imports Ansible's inventory: not for --help

        return cmd_renotify(
            args.env, args.check, args.now, as_json, (*_modules(), _renotify_module())
        )
    key = check_incident_key(args.key)
    if key is None:  # pragma: no cover - argparse requires KEY
        raise UsageError("an incident key is required")
    if args.action == "ack":
        by = (args.by or getpass.getuser()).strip()
        if not by or len(by) > 128:
            raise UsageError("--by needs a name of up to 128 characters")
        record = ack_record(key, by)
    else:
        record = read_record(key)
    if as_json:
        console.emit_json(record)
    else:
        console.out(show_text(record))
    return OK
