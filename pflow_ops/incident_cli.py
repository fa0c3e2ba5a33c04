"""``pflow-ops incident show KEY | list | ack KEY [--by NAME] | renotify --env ENV``: the incident
records (issue 16); ``renotify`` is :mod:`pflow_ops.renotify`.

The records are written by the collection's ``incident_record`` action plugin under
``$PFLOW_OPS_HOME/incidents/``, or in the etcd store the environment's inventory names
(``--env``, as every command chooses its environment); this command reads them with the
collection's own code (``module_utils/incident.py`` and ``incident_store.py``, loaded by path,
as the outcome vocabulary is), so the CLI and the playbooks agree on the key, the store and the
lock.
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
from pflow_ops.errors import OK, PflowError, RefusedError, UsageError
from pflow_ops.paths import collection_file, state_home
from pflow_ops.request import check_incident_key


class NoSuchIncident(PflowError):
    """No record for that key: exit 1 with one line."""

    label = "not found"


def _load(name: str) -> ModuleType:
    path = collection_file("plugins", "module_utils", f"{name}.py")
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


ENV_HELP = "environment whose coordination store holds the records (inventories/ENV); default local"


@functools.cache
def _renotify_module() -> ModuleType:
    return _load("incident_renotify")


def add_incident_parser(p: argparse.ArgumentParser) -> None:
    """The ``incident`` command's actions (argparse only: cheap to import)."""
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = sub.add_parser("show", help="one incident's record: sinks, runs, events, ack")
    show.add_argument("key", metavar="KEY")
    show.add_argument("--output", choices=["text", "json"], default="text")
    show.add_argument("--env", default="local", help=ENV_HELP)
    lst = sub.add_parser("list", help="the incident records, newest first")
    lst.add_argument("--output", choices=["text", "json"], default="text")
    lst.add_argument("--env", default="local", help=ENV_HELP)
    ack = sub.add_parser("ack", help="mark an incident handled (re-notification stops)")
    ack.add_argument("key", metavar="KEY")
    ack.add_argument("--by", metavar="NAME", help="who handled it (default: this user)")
    ack.add_argument("--output", choices=["text", "json"], default="text")
    ack.add_argument("--env", default="local", help=ENV_HELP)

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


def records(env: str) -> Any:
    """Where ``env``'s incident records live: the etcd store its inventory names
    (``pflow_coordination_url``), else this machine's ``$PFLOW_OPS_HOME/incidents/``. One
    interface (``incident_store.open_records``) with the playbooks' ``incident_record``."""
    from pflow_ops import coordination, environments  # reads the inventory: Ansible

    config = coordination.settings_for(environments.get(env).inventory)
    return _modules()[1].open_records(config, str(state_home()), env, coordination.open_store)


def read_record(key: str, env: str = "local") -> dict[str, Any]:
    _incident, _store = _modules()
    record, _problem = records(env).show(_incident.key_sha(key))
    if record is None:
        raise NoSuchIncident(f"no incident record for {key}: see `pflow-ops incident list`")
    out: dict[str, Any] = record
    return out


def ack_record(key: str, by: str, env: str = "local") -> dict[str, Any]:
    """Mark the incident handled, under the record's lock or etcd's compare-and-swap (a run may
    be updating it)."""
    _incident, _store = _modules()

    def change(record: dict[str, Any] | None) -> dict[str, Any]:
        if record is None:
            raise NoSuchIncident(f"no incident record for {key}: see `pflow-ops incident list`")
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        updated: dict[str, Any] = _incident.apply_update(
            record, "", "", "", [], now, ack={"by": by, "at": now}
        )
        return updated

    got: dict[str, Any] = records(env).update(_incident.key_sha(key), change)["record"]
    return got


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
    from pflow_ops import coordination

    try:
        return _incident_action(args)
    except (coordination.CoordinationError, _modules()[1].StoreError) as exc:
        # etcd unreachable or contended: one line naming the store, never the local file instead
        raise RefusedError(f"incident records: {exc}") from None


def _incident_action(args: argparse.Namespace) -> int:
    as_json = getattr(args, "output", "text") == "json"
    env = getattr(args, "env", None) or "local"
    if args.action == "list":
        records_ = records(env).list()
        if as_json:
            console.emit_json({"incidents": records_})
        else:
            for record in records_:
                console.out(summary_line(record))
        return OK
    if args.action == "renotify":
        from pflow_ops.renotify import cmd_renotify  # imports Ansible's inventory: not for --help

        # The env's records (file or etcd), as incident_renotify reads them in the playbook.
        return cmd_renotify(
            args.env,
            args.check,
            args.now,
            as_json,
            (_modules()[0], records(env), _renotify_module()),
        )
    key = check_incident_key(args.key)
    if key is None:  # pragma: no cover - argparse requires KEY
        raise UsageError("an incident key is required")
    if args.action == "ack":
        by = (args.by or getpass.getuser()).strip()
        if not by or len(by) > 128:
            raise UsageError("--by needs a name of up to 128 characters")
        record = ack_record(key, by, env)
    else:
        record = read_record(key, env)
    if as_json:
        console.emit_json(record)
    else:
        console.out(show_text(record))
    return OK
