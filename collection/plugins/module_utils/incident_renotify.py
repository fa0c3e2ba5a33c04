# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Pivotal Flow SRE <sre@pivotal-flow.example>
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Re-notification of an unacknowledged incident along the catalogue's escalation path (issue 16).

With no pager configured, nobody's phone escalates an incident that a human has not taken: a
scheduled run (``pflow-ops incident renotify``, playbooks/incident-renotify.yml) asks this module,
for each open incident record of the environment, which escalation level is due now, sends it
through the chat and ticket sinks, and journals it in the record (an event ``renotify`` naming
the level). Pure Python with no Ansible import, like module_utils/incident.py: the action plugin
``incident_renotify`` and the CLI load this very file.

The rules, each a branch of :func:`decide` with its unit test:
- an acknowledged (``pflow-ops incident ack KEY``) or resolved incident is never re-notified;
- a configured pager sink means no re-notification: the pager's own escalation policy pages;
- the clock starts at the first event of the current episode (after the last resolution) that
  needed a human (an escalate/refused/error run, or the alert still firing after a recovery);
- a level is due once its ``after_minutes`` have passed, never before; level 0 is the escalate
  message itself; a level is sent once: a journaled level (and every level before it) is done;
  when several are due (a missed schedule), only the highest is sent;
- anything in the record or the path that is not what this module wrote (a corrupt time, an
  unknown level, a missing runbook) notifies nobody and says why (fail closed, but loudly).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import datetime
import re

try:
    from ansible_collections.pivotal.flow_ops.plugins.module_utils import incident as _incident
    from ansible_collections.pivotal.flow_ops.plugins.module_utils import outcome as _outcome
except ImportError:  # loaded by file path from pflow_ops (the CLI): the sibling files are the same
    import importlib.util as _util
    import os as _os

    def _sibling(name):
        spec = _util.spec_from_file_location(
            "pflow_ops._collection_%s_for_renotify" % name,
            _os.path.join(_os.path.dirname(_os.path.abspath(__file__)), name + ".py"))
        module = _util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    _outcome = _sibling("outcome")
    _incident = _sibling("incident")

EVENT = "renotify"
DUE, WAIT, NONE, INVALID = "due", "wait", "none", "invalid"
TIME_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})$")
LEVEL_PATTERN = re.compile(r"^[A-Za-z0-9._-]{1,32}$")
MAX_MINUTES = 1440


class RenotifyError(ValueError):
    """A record, a path or a time this module cannot trust: one line, nobody is notified."""


def parse_time(text):
    """An aware UTC datetime from ISO 8601 text with its zone (``2026-12-05T10:00:00Z``)."""
    if not isinstance(text, str) or not TIME_PATTERN.match(text):
        raise RenotifyError("not an ISO 8601 time with its zone: %r" % (str(text)[:40],))
    try:
        value = datetime.datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    except ValueError:
        raise RenotifyError("not a valid time: %r" % (text[:40],))
    return value.astimezone(datetime.timezone.utc)


def time_text(value):
    return value.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def check_path(path):
    """The runbook's escalation path, checked: [{level, who, when, after_minutes}], in order."""
    if not isinstance(path, list) or not path:
        raise RenotifyError("the escalation path is empty or not a list")
    previous = 0
    for entry in path:
        if not isinstance(entry, dict) or not LEVEL_PATTERN.match(str(entry.get("level", ""))):
            raise RenotifyError("an escalation level has no valid name")
        minutes = entry.get("after_minutes")
        if isinstance(minutes, bool) or not isinstance(minutes, int) or not 0 <= minutes <= MAX_MINUTES:
            raise RenotifyError("escalation %s has no after_minutes (0-%d)" % (entry["level"], MAX_MINUTES))
        if minutes < previous or not isinstance(entry.get("who"), str):
            raise RenotifyError("escalation %s is out of order or names nobody" % entry["level"])
        previous = minutes
    return path


def pager_sinks(sinks):
    """The names of the configured sinks that page (their own escalation policy escalates)."""
    if not isinstance(sinks, list):
        raise RenotifyError("the sinks are not a list")
    return [_incident.sink_name(s) for s in sinks
            if isinstance(s, dict) and _incident.FAMILY.get(s.get("kind")) == "pager"]


def _events(record):
    events = record.get("events")
    if not isinstance(events, list):
        raise RenotifyError("the record's events are not a list")
    for event in events:
        if not isinstance(event, dict) or not isinstance(event.get("event"), str):
            raise RenotifyError("the record holds an event that is not one")
        parse_time(event.get("at"))
    return events


def episode(events):
    """The events since the last resolution: a resolved incident that fires again starts over."""
    last = max([i for i, e in enumerate(events) if e["event"] == "resolved"] or [-1])
    return events[last + 1:]


def escalated_at(events):
    """When the episode first needed a human, or None: the escalation clock's start."""
    for event in events:
        if event["event"] == "still_firing" or (
                event["event"] == "documented" and _outcome.needs_human(event.get("outcome"))):
            return parse_time(event["at"])
    return None


def notified_index(events, path):
    """The index in ``path`` of the highest level already re-notified in the episode (-1: none)."""
    names = [str(e["level"]) for e in path]
    done = -1
    for event in events:
        if event["event"] != EVENT:
            continue
        level = event.get("level")
        if level not in names:
            raise RenotifyError("a re-notification names level %r, not on the path %s"
                                % (str(level)[:32], "/".join(names)))
        done = max(done, names.index(level))
    return done


def _result(status, reason, **extra):
    out = {"status": status, "reason": reason, "level": {}, "since": "", "minutes": 0}
    out.update(extra)
    return out


def _state(record):
    """(resolved, ack) of the record, checked: anything else than what incident.py writes raises."""
    resolved, ack = record.get("resolved"), record.get("ack")
    if not isinstance(resolved, bool):
        raise RenotifyError("the record's resolved flag is not true or false")
    if ack is not None and not (isinstance(ack, dict) and ack.get("by") and ack.get("at")):
        raise RenotifyError("the record's ack is neither empty nor {by, at}")
    return resolved, ack


def decide(record, escalation, sinks, now):
    """Which escalation level of this incident is due ``now``.

    ``record`` is the incident record (module_utils/incident.py), ``escalation`` the catalogue's
    paths ({runbook: [{level, who, when, after_minutes}]}, the role's ``incident_escalation``),
    ``sinks`` the environment's sink configs, ``now`` an aware datetime or ISO text.
    Returns {status, reason, level, since, minutes}: ``due`` (send ``level``), ``wait`` (a level
    is still to come), ``none`` (nothing more for this incident) or ``invalid`` (a record or
    path this module cannot trust: nobody is notified, ``reason`` says why).
    """
    try:
        if not isinstance(record, dict):
            raise RenotifyError("not an incident record")
        now = parse_time(now) if isinstance(now, str) else now
        if not isinstance(now, datetime.datetime) or now.tzinfo is None:
            raise RenotifyError("now is not an aware time")
        resolved, ack = _state(record)
        events = episode(_events(record))
        if resolved:
            return _result(NONE, "resolved")
        if ack:
            return _result(NONE, "acknowledged by %s at %s" % (ack["by"], ack["at"]))
        pagers = pager_sinks(sinks)
        if pagers:
            return _result(NONE, "a pager is configured (%s): its escalation policy pages" % ", ".join(pagers))
        start = escalated_at(events)
        if start is None:
            return _result(NONE, "not escalated: no run of this incident needed a human")
        runbook = record.get("runbook")
        if not isinstance(runbook, str) or not runbook:
            raise RenotifyError("the record names no runbook (documented before re-notification existed)")
        if not isinstance(escalation, dict) or runbook not in escalation:
            raise RenotifyError("no escalation path for runbook %s" % runbook[:32])
        path = check_path(escalation[runbook])
        return _due(path, notified_index(events, path), start, now)
    except RenotifyError as exc:
        return _result(INVALID, "not re-notified: %s" % exc)


def _due(path, done, start, now):
    minutes = int((now - start).total_seconds() // 60)
    since = time_text(start)
    due = [i for i, e in enumerate(path) if i > done and 0 < e["after_minutes"] <= minutes]
    if due:
        level = path[due[-1]]
        return _result(DUE, "unacknowledged for %d minutes: %s %s is due (after %d minutes)" % (
            minutes, level["level"], level["who"], level["after_minutes"]),
            level=dict(level), since=since, minutes=minutes)
    coming = [e for i, e in enumerate(path) if i > done and e["after_minutes"] > minutes]
    if coming:
        at = start + datetime.timedelta(minutes=coming[0]["after_minutes"])
        return _result(WAIT, "%s %s is due at %s" % (coming[0]["level"], coming[0]["who"], time_text(at)),
                       since=since, minutes=minutes)
    last = path[done]["level"] if done >= 0 else path[-1]["level"]
    return _result(NONE, "every level of the path was notified (last %s)" % last, since=since, minutes=minutes)


def message_lines(record, decision, env, path):
    """The re-notification's text: who is due, since when nobody took the incident, how to ack."""
    level = decision["level"]
    key = str(record.get("key", ""))
    lines = [
        headline(record, decision, env),
        "",
        "Re-notification: escalation level %s, %s (due after %d minutes)." % (
            level["level"], level["who"], level["after_minutes"]),
        "Unacknowledged since %s (%d minutes); last outcome: %s." % (
            decision["since"], decision["minutes"], record.get("last_outcome") or "-"),
        "Acknowledge to stop the re-notifications: pflow-ops incident ack %s" % key,
        "",
        "Escalation path:",
    ]
    for entry in path if isinstance(path, list) else []:
        lines.append("  %s %s: %s (after %s minutes)" % (
            entry.get("level"), entry.get("who"), entry.get("when"), entry.get("after_minutes")))
    return lines


def headline(record, decision, env):
    return "[pflow-ops] %s %s escalate: unacknowledged, %s %s (%s)" % (
        env or "default", record.get("runbook") or "-", decision["level"]["level"],
        decision["level"]["who"], record.get("key", ""))


def render(record, decision, env, escalation):
    """The incident role's message dict (module_utils/incident.py ``render``'s shape) for a due
    re-notification, so the chat and ticket sinks send it as they send any update."""
    path = escalation.get(record.get("runbook")) if isinstance(escalation, dict) else []
    text = "\n".join(message_lines(record, decision, env, path))
    title = headline(record, decision, env)
    return {"subject": title, "ticket_title": title[:255], "chat": text, "ticket": text,
            "pager": title[:_incident.PAGER_SUMMARY_MAX], "severity": "critical", "changes": [],
            "outcome": "escalate", "runbook": record.get("runbook") or "-"}


def journal(record, decision, sink_results, now, run_id=""):
    """The record with the re-notification journaled: an event ``renotify`` naming the level."""
    out = _incident.apply_update(record, "", EVENT, "", sink_results, now)
    out["events"][-1].update({"level": decision["level"]["level"], "who": decision["level"]["who"],
                              "run_id": run_id})
    return out


def open_records(records, env):
    """The records of ``env`` that are neither resolved nor acknowledged (cheap pre-filter; the
    decision checks again)."""
    return [r for r in records if isinstance(r, dict) and r.get("env") == env
            and r.get("resolved") is not True and not r.get("ack")]


def unplaced(records):
    """Keys of open records that name no environment (documented before re-notification existed,
    or not by pflow-ops): never re-notified, and said so."""
    return [str(r.get("key", "?")) for r in records if isinstance(r, dict) and not r.get("env")
            and r.get("resolved") is not True and not r.get("ack")]
