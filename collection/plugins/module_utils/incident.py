# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Pivotal Flow SRE <sre@pivotal-flow.example>
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The incident record of a run (issue 16): which key, what each sink does, what it says.

Pure Python with no Ansible import: the incident role reaches it through the
``pivotal.flow_ops`` incident filters, the ``incident_record`` action plugin and the
``pflow-ops incident`` command load this very file. Every decision about documenting an incident
is here, with a unit test per branch; the role's Jinja only passes values and prints texts.

Event data is data: the key, the alert name and the fingerprint are checked against a narrow
pattern and only ever copied into texts, never evaluated.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import hashlib
import re

try:
    from ansible_collections.pivotal.flow_ops.plugins.module_utils import outcome as _outcome
except ImportError:  # loaded by file path from pflow_ops (the CLI): the sibling file is the same one
    import importlib.util as _util
    import os as _os

    _spec = _util.spec_from_file_location(
        "pflow_ops._collection_outcome_for_incident",
        _os.path.join(_os.path.dirname(_os.path.abspath(__file__)), "outcome.py"))
    _outcome = _util.module_from_spec(_spec)
    _spec.loader.exec_module(_outcome)

KEY_PATTERN = re.compile(r"^[A-Za-z0-9._:/-]{1,128}$")
# renotify: the scheduled re-notification of an unacknowledged escalation (incident_renotify.py).
EVENTS = ("documented", "resolved", "still_firing", "renotify")
# The sink kinds and the family that decides what each does.
FAMILY = {"email": "chat", "slack": "chat", "ticket": "ticket", "jira": "ticket", "pagerduty": "pager",
          "alerta": "ticket"}
FAMILY.update(mattermost="chat", matrix="chat", teams="chat")
SINK_KINDS = tuple(sorted(FAMILY))
SEVERITY = {"error": "critical", "escalate": "critical", "refused": "error", "recovered": "warning",
            "healthy": "info"}
PAGER_SUMMARY_MAX = 1024  # PagerDuty Events API v2: payload.summary is at most 1024 characters
ITEMS_MAX = 20  # findings / actions listed per message; the full list stays in the run report


class IncidentError(ValueError):
    """A key or a sink configuration that cannot be used; one line for the operator."""


def valid_key(key):
    """Whether ``key`` may name an incident: an identifier-ish string, no spaces, no templating."""
    return isinstance(key, str) and bool(KEY_PATTERN.match(key))


def _given(value, source):
    """A key given by a human or an alert, stripped; IncidentError when it is not a valid key."""
    value = "" if value is None else str(value).strip()
    if value and not valid_key(value):
        raise IncidentError("%s incident key %r is not valid: 1-128 characters of A-Z a-z 0-9 . _ : / -"
                            % (source, value[:140]))
    return value


def select_key(explicit="", fingerprint="", env="", runbook="", run_id="", annotation="", group_key=""):
    """{key, source}: the incident this run documents, the first of:

    1. ``given``: the key the operator gave (``--incident``, the AWX survey's
       ``pflow_incident_key``);
    2. ``annotation``: the alert's ``incident`` annotation (a ticket id the alert rule names);
    3. ``group_key``: Alertmanager's group key, hashed (it holds braces, quotes and label
       values, so it never names anything itself): the key is then the very dedup_key
       Alertmanager's own PagerDuty notifier sends for that group (notify.Key.Hash);
    4. ``fingerprint``: the alert's fingerprint;
    5. ``run``: the run itself (``<env>/<runbook>/<run_id>``).

    A given key or annotation that is not valid raises (fail closed: it is never replaced by
    another key, which would document into the wrong incident). The group key is hashed
    exactly as received (never stripped: Alertmanager hashes the raw string).
    """
    explicit = _given(explicit, "the given")
    if explicit:
        return {"key": explicit, "source": "given"}
    annotation = _given(annotation, "the alert's annotation")
    if annotation:
        return {"key": annotation, "source": "annotation"}
    if isinstance(group_key, str) and group_key:
        return {"key": alertmanager_key(group_key), "source": "group_key"}
    fingerprint = "" if fingerprint is None else str(fingerprint).strip()
    if fingerprint and valid_key(fingerprint):
        return {"key": fingerprint, "source": "fingerprint"}
    parts = [str(p).strip() or "-" for p in (env, runbook, run_id)]
    key = "/".join(re.sub(r"[^A-Za-z0-9._:-]", "_", p) for p in parts)[:128]
    return {"key": key, "source": "run"}


def alertmanager_key(group_key):
    """The hex sha256 of Alertmanager's group key, as its PagerDuty notifier sends it for the
    group (``dedup_key``), or "" without a group key. The same digest as key_sha."""
    return key_sha(group_key) if isinstance(group_key, str) and group_key else ""


def key_sha(key):
    """The record's file name stem: the key never becomes a path itself."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_record(key, now):
    return {"key": key, "key_sha": key_sha(key), "created": now, "updated": now, "runs": [],
            "events": [], "handles": {}, "ack": None, "resolved": False, "last_outcome": ""}


def sink_name(sink):
    """A sink's handle slot in the record: its ``name``, else its ``kind``."""
    return str(sink.get("name") or sink.get("kind") or "")


def check_sinks(sinks):
    """The sink configs, checked: a list of dicts with a known kind and unique names."""
    if not isinstance(sinks, list):
        raise IncidentError("pflow_incident_sinks must be a list of sink configs")
    seen = set()
    for sink in sinks:
        if not isinstance(sink, dict) or sink.get("kind") not in FAMILY:
            raise IncidentError("every incident sink needs a kind among %s" % ", ".join(SINK_KINDS))
        name = sink_name(sink)
        if not valid_key(name) or name in seen:
            raise IncidentError("incident sink name %r is not valid or not unique" % name[:140])
        seen.add(name)
    return sinks


def sink_action(kind, handle, event, outcome, acked=False, resolved=False, key_source="given"):
    """What one sink does for this event: create | update | resolve | trigger | change | skip.

    - chat (email, Slack, Mattermost, Matrix, Teams): the first message creates the thread, every later one updates it
      (edit in place + thread reply); the resolution is a ``resolve`` message.
    - ticket (generic webhook, Jira): create, then a comment per run; resolve only on the
      ``resolved`` event (the closed loop saw the alert clear), never on an escalation.
    - pager (PagerDuty): trigger when a human is needed, a change event (never pages) for a run
      that changed something, resolve only on ``resolved`` and only an incident it triggered.
    - an acknowledged incident stops re-notification: a ``still_firing`` event no longer
      reaches chat or the pager (the ticket keeps the record).
    - ``renotify`` (the scheduled re-notification, module_utils/incident_renotify.py) reaches
      the chat and the ticket, never the pager, and nothing once acknowledged.
    - a healthy manual run (no alert, no given key: the run is its own incident) opens nothing:
      nothing happened that a human needs to read.
    """
    family = FAMILY.get(kind)
    if family is None:
        raise IncidentError("unknown incident sink kind %r" % (kind,))
    if event not in EVENTS:
        raise IncidentError("unknown incident event %r" % (event,))
    has = bool(handle)
    outcome = _outcome.normalize(outcome)
    if acked and event == "still_firing" and family in ("chat", "pager"):
        return "skip"
    if event == "renotify":  # chat and ticket only: a configured pager escalates by itself
        return "skip" if family == "pager" or acked else ("update" if has else "create")
    if not has and key_source == "run" and outcome == _outcome.HEALTHY:
        return "skip"
    if family == "pager":
        if event == "resolved":
            return "resolve" if handle and handle.get("triggered") else "skip"
        if event == "still_firing" or _outcome.needs_human(outcome):
            return "trigger"
        return "change" if outcome == _outcome.RECOVERED else "skip"
    if event == "resolved":
        if not has:
            return "skip" if family == "ticket" else "create"
        return "skip" if resolved else "resolve"
    return "update" if has else "create"


def severity(outcome):
    return SEVERITY[_outcome.normalize(outcome)]


def _s(value):
    return "" if value is None else str(value)


def _dicts(raw):
    return [i for i in raw if isinstance(i, dict)] if isinstance(raw, list) else []


def build_model(results, event="documented", key="", run_id="", env="", alertname="", fingerprint="",
                escalation=None, loop=None):
    """One model of the run for every sink: the batch's host results combined.

    ``results`` is the list of ``pflow_run_result`` dicts (one per host, as the runbook roles
    publish them); ``escalation`` the runbook's path from the catalogue ({runbook: [{level, who,
    when}]}); ``loop`` the alert loop's verdict ({state, detail}) for the resolution events.
    """
    hosts = _dicts(results)
    outcome = _outcome.combine([h.get("outcome") for h in hosts]) if hosts else _outcome.ERROR
    runbooks = sorted(set(_s(h.get("runbook")) for h in hosts if h.get("runbook")))
    runbook = runbooks[0] if len(runbooks) == 1 else ",".join(runbooks) or "-"
    path = []
    if isinstance(escalation, dict):
        for rb in runbooks:
            path.extend(_dicts(escalation.get(rb)))
    model = {
        "key": key, "event": event, "run_id": _s(run_id), "env": _s(env) or "default",
        "alertname": _s(alertname), "fingerprint": _s(fingerprint), "runbook": runbook,
        "outcome": outcome, "severity": severity(outcome),
        "services": sorted(set(_s(h.get("service")) for h in hosts if h.get("service"))),
        "hosts": [], "escalation": path if _outcome.needs_human(outcome) or event == "still_firing" else [],
        "loop": loop if isinstance(loop, dict) else {},
    }
    for h in hosts:
        model["hosts"].append({
            "host": _s(h.get("host")), "outcome": _outcome.normalize(h.get("outcome")),
            "reason": _s(h.get("reason")), "next_runbook": _s(h.get("next_runbook")),
            "findings": [f for f in _dicts(h.get("findings")) if f.get("status") in ("warning", "critical")],
            "actions": _dicts(h.get("actions")), "verification": _dicts(h.get("verification")),
        })
    return model


def _finding_line(f):
    measured = ""
    if "value" in f or "threshold" in f:
        measured = " (value %s, threshold %s)" % (_s(f.get("value")) or "-", _s(f.get("threshold")) or "-")
    return "[%s] %s: %s%s" % (_s(f.get("status")), _s(f.get("check")), _s(f.get("detail")), measured)


def _action_line(a):
    """``action target: result (before -> after)``; the values only when the result text does
    not already say them (most roles' results name the change)."""
    result, before, after = _s(a.get("result")), _s(a.get("before")), _s(a.get("after"))
    change = ""
    if (before or after) and not (after and after in result and before in result):
        change = " (%s -> %s)" % (before or "-", after or "-")
    return "%s %s: %s%s" % (_s(a.get("action")), _s(a.get("target")), result, change)


def _capped(lines):
    if len(lines) <= ITEMS_MAX:
        return lines
    return lines[:ITEMS_MAX] + ["... %d more in the run report" % (len(lines) - ITEMS_MAX)]


def headline(model):
    """One line: what happened, for the subject, the ticket title and the pager summary."""
    what = {"resolved": "resolved (alert cleared)", "still_firing": "STILL FIRING after recovery"}
    state = what.get(model["event"], model["outcome"])
    service = ",".join(model["services"]) or "-"
    alert = (" %s" % model["alertname"]) if model["alertname"] else ""
    return "[pflow-ops] %s %s %s:%s %s (%s)" % (
        model["env"], model["runbook"], state, alert, service, model["key"])


def body_lines(model):
    """The text every sink shares (chat, email, ticket comment): plain text, one fact a line."""
    lines = [headline(model), ""]
    lines.append("Event: %s   Outcome: %s   Severity: %s" % (model["event"], model["outcome"], model["severity"]))
    lines.append("Run: %s   Environment: %s" % (model["run_id"] or "-", model["env"]))
    if model["alertname"]:
        lines.append("Alert: %s   Fingerprint: %s" % (model["alertname"], model["fingerprint"] or "-"))
    if model["loop"]:
        lines.append("Alert state: %s: %s" % (_s(model["loop"].get("state")), _s(model["loop"].get("detail"))))
    for h in model["hosts"]:
        lines.append("")
        lines.append("Host %s: %s: %s" % (h["host"] or "-", h["outcome"], h["reason"]))
        if h["next_runbook"]:
            lines.append("  Next runbook: %s" % h["next_runbook"])
        if h["findings"]:
            lines.append("  Findings:")
            lines.extend("  - " + x for x in _capped([_finding_line(f) for f in h["findings"]]))
        lines.append("  Actions:" if h["actions"] else "  Actions: none")
        lines.extend("  - " + x for x in _capped([_action_line(a) for a in h["actions"]]))
        if h["verification"]:
            lines.append("  Verification:")
            lines.extend("  - " + x for x in _capped([_finding_line(v) for v in h["verification"]]))
    if model["escalation"]:
        lines.append("")
        lines.append("Escalation path:")
        lines.extend("  %s %s: %s" % (_s(e.get("level")), _s(e.get("who")), _s(e.get("when")))
                     for e in model["escalation"])
    return lines


def pager_summary(model):
    first = model["hosts"][0]["reason"] if model["hosts"] else ""
    text = headline(model) + (": " + first if first else "")
    return text[:PAGER_SUMMARY_MAX]


def render(model):
    """{subject, ticket_title, chat, ticket, pager, severity, changes}: one message per sink
    kind; ``changes`` is one line per remediation action (PagerDuty change events)."""
    lines = body_lines(model)
    text = "\n".join(lines)
    changes = ["%s: %s" % (h["host"] or "-", _action_line(a)) for h in model["hosts"] for a in h["actions"]]
    return {
        "changes": changes,
        "subject": headline(model),
        "ticket_title": headline(model)[:255],
        "chat": text,
        "ticket": text,
        "pager": pager_summary(model),
        "severity": model["severity"],
    }


TICKET_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def ticket_id(response):
    """The ticket id a tracker answered a create with ({"id": ...}), checked: it becomes part of
    the next request's URL, so a hostile or broken tracker cannot steer it elsewhere."""
    value = response.get("id") if isinstance(response, dict) else None
    if isinstance(value, bool) or not isinstance(value, (str, int)) or not TICKET_ID.match(str(value)):
        raise IncidentError("the ticket tracker answered without a usable ticket id")
    return str(value)


def loop_event(state):
    """The incident event of the closed loop's verdict: ``resolved``, ``still_firing``, or ''
    (not checked / error: nothing new to document, the runbook run already did)."""
    return {"resolved": "resolved", "firing": "still_firing", "unknown": "still_firing"}.get(str(state), "")


def email_thread(key, domain):
    """The email thread's headers: every message of one incident names the same root, so mail
    clients (JWZ threading) show one conversation. The mail module sets each Message-ID itself;
    the root is a stable id derived from the key, never the key's text."""
    root = "<pflow-incident-%s@%s>" % (key_sha(key)[:32], domain)
    return {"root": root, "headers": ["In-Reply-To=%s" % root, "References=%s" % root,
                                      "X-Pflow-Incident=%s" % key_sha(key)[:32]]}


def apply_update(record, run_id, event, outcome, sink_results, now, ack=None):
    """The record after this run: run ids, the event, each sink's new handle, resolved and ack.

    A sink's non-empty handle replaces the stored one, also from a failed sink that created
    something before failing (a ticket opened, its comment refused: the next run comments on it);
    an empty handle leaves it (a failed create leaves none, so the next run creates again).
    Secrets never reach the record: only the handle dict a sink returns, with
    keys named like a secret dropped.
    """
    out = dict(record)
    out["handles"] = dict(record.get("handles") or {})
    out["runs"] = list(record.get("runs") or [])
    out["events"] = list(record.get("events") or [])
    if run_id and run_id not in out["runs"]:
        out["runs"].append(run_id)
    statuses = []
    for res in sink_results or []:
        if not isinstance(res, dict):
            continue
        name = _s(res.get("sink"))
        status = _s(res.get("status")) if res.get("status") in ("ok", "failed", "skipped") else "failed"
        statuses.append({"sink": name, "kind": _s(res.get("kind")), "status": status,
                         "detail": _s(res.get("detail"))[:500]})
        handle = res.get("handle")
        if status != "skipped" and name and isinstance(handle, dict) and handle:
            out["handles"][name] = scrub(handle)
    if event:
        out["events"].append({"at": now, "run_id": run_id, "event": event, "outcome": _s(outcome),
                              "sinks": statuses})
        out["events"] = out["events"][-50:]
        out["last_outcome"] = _s(outcome) or out.get("last_outcome", "")
    # A new run of a resolved incident means it came back: the next resolution resolves again.
    if event == "resolved":
        out["resolved"] = True
    elif event:
        out["resolved"] = False
    if ack:
        out["ack"] = {"by": _s(ack.get("by")), "at": _s(ack.get("at"))}
    out["updated"] = now
    return out


SECRET_WORDS = ("password", "token", "secret", "authorization", "webhook", "url", "routing_key",
                "integration_key", "api_key")


def scrub(handle):
    """A handle without anything named like a secret (a webhook URL, a token)."""
    return {k: v for k, v in handle.items() if not any(w in str(k).lower() for w in SECRET_WORDS)}
