# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Pivotal Flow SRE <sre@pivotal-flow.example>
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Decisions of the Alerta incident sink (``sink_alerta.yml``): one Alerta alert per incident.

Alerta (https://alerta.io, alerta-server) is an open-source alert console with a REST API. The
sink opens one alert for the incident on its first document (``POST /alert``), adds one note per
run to that same alert (``PUT /alert/{id}/note``) and closes it (``PUT /alert/{id}/status``) only
on the ``resolved`` event, never on an escalation. These pure functions decide which calls a
document makes, shape each request body, check each answer and word the failure line; the task
file only sends them. No Ansible import, so the unit tests load it directly.

Alerta correlates alerts by (environment, resource, event): the resource is the incident key, so
two incidents never land in one Alerta alert, and a repeat of a create (a retry after a lost
answer) is deduplicated by Alerta into the same alert instead of opening a second one.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import re

from ansible_collections.pivotal.flow_ops.plugins.module_utils import incident_saas as _saas

CREATE = "create"  # POST /alert: the incident's alert
NOTE = "note"  # PUT /alert/{id}/note: this run, on the same alert
CLOSE = "close"  # PUT /alert/{id}/status closed: only when the alert resolved

# The outcome severities (module_utils/incident.py) and the catalogue's words to Alerta's own
# (alerta/models/severity_code.py); an unknown word is "major", so a new runbook's incident is
# still shown as serious rather than informational.
SEVERITY_MAP = {
    "critical": "critical",
    "error": "major",
    "high": "major",
    "medium-high": "minor",
    "medium": "warning",
    "warning": "warning",
    "low": "informational",
    "maintenance": "informational",
    "info": "informational",
}
DEFAULT_SEVERITY = "major"
DEFAULT_ENVIRONMENT = "Production"  # in Alerta's default ALLOWED_ENVIRONMENTS
TEXT_MAX = 4000  # the alert's text and each note: the full record stays in the run report
ALERT_ID = re.compile(r"^[A-Za-z0-9-]{1,64}$")  # Alerta's ids are UUIDs


class AlertaError(ValueError):
    """An Alerta answer that cannot be used; one line for the report."""


def calls(action, handle=None, check_mode=False):
    """The API calls one document makes, in order: the first creates the alert and notes this
    run on it, every later one notes, the resolution notes and closes. A handle without an id (the
    create failed last time) creates again; check mode and ``skip`` make none."""
    handle = handle if isinstance(handle, dict) else {}
    if check_mode or action not in ("create", "update", "resolve"):
        return []
    first = [NOTE] if handle.get("id") else [CREATE, NOTE]
    return first + [CLOSE] if action == "resolve" else first


def severity(word):
    return SEVERITY_MAP.get(str(word or "").strip().lower(), DEFAULT_SEVERITY)


def _text(text):
    text = str(text or "")
    return text if len(text) <= TEXT_MAX else text[: TEXT_MAX - 15] + "\n...(truncated)"


def _services(results):
    found = []
    for result in results if isinstance(results, list) else []:
        service = result.get("service") if isinstance(result, dict) else None
        if service and str(service) not in found:
            found.append(str(service))
    return found


def alert_body(key, messages, results=None, sink=None, run_id="", env="", sev=""):
    """The ``POST /alert`` body: resource = the incident key (one alert per incident), event = the
    runbook, the services of the run's results, the title as text, the key and run in attributes."""
    messages = messages if isinstance(messages, dict) else {}
    sink = sink if isinstance(sink, dict) else {}
    runbook = str(messages.get("runbook") or "pflow-ops")
    return {
        "resource": str(key),
        "event": runbook,
        "environment": str(sink.get("environment") or DEFAULT_ENVIRONMENT),
        "severity": severity(sev or messages.get("severity")),
        "service": _services(results) or [runbook],
        "group": str(sink.get("group") or "pflow-ops"),
        "origin": "pflow-ops",
        "type": "pflowIncident",
        "text": _text(messages.get("ticket_title")),
        "tags": ["pflow-ops", "env:%s" % (env or "default")],
        "attributes": {"incidentKey": str(key), "runId": str(run_id), "pflowEnv": str(env or "default")},
    }


def note_body(messages, run_id="", event="", outcome=""):
    """The ``PUT /alert/{id}/note`` body: one note per run, the run's id, event and outcome first."""
    messages = messages if isinstance(messages, dict) else {}
    head = "run %s, %s, %s" % (run_id or "-", event or "-", outcome or "-")
    return {"text": _text(head + "\n" + str(messages.get("ticket") or ""))}


def close_body(messages):
    """The ``PUT /alert/{id}/status`` body that closes the alert after the alert resolved."""
    messages = messages if isinstance(messages, dict) else {}
    return {"status": "closed", "text": _text(messages.get("subject") or "resolved")}


def alert_id(result):
    """The id of the alert a create answered with, checked: it becomes part of the next URLs,
    so a hostile or broken server cannot steer them elsewhere."""
    data = result.get("json") if isinstance(result, dict) else None
    data = data if isinstance(data, dict) else {}
    value = data.get("id")
    if data.get("status") != "ok" or not isinstance(value, str) or not ALERT_ID.match(value):
        raise AlertaError("Alerta answered the create without a usable alert id")
    return value


def response_ok(result):
    """Whether a registered ``ansible.builtin.uri`` result is Alerta's success: a 2xx with
    ``{"status": "ok"}`` (Alerta answers its errors as ``{"status": "error", "message": ...}``)."""
    result = result if isinstance(result, dict) else {}
    data = result.get("json") if isinstance(result.get("json"), dict) else {}
    status = result.get("status")
    return isinstance(status, int) and 200 <= status < 300 and data.get("status") == "ok"


def response_done(result):
    """Whether to stop retrying: a success, or an answer a retry cannot fix (400, 401, 403, 404);
    refused connections, timeouts, 429 and 5xx are retried within the task's bounded retries."""
    if response_ok(result):
        return True
    return _saas.response_done(result, "alerta")


def handle(old, created_id="", notes_added=0, closed=False):
    """The complete handle to store: the alert id (kept from before, or just created), the
    number of notes, and whether this sink closed it."""
    old = old if isinstance(old, dict) else {}
    alert = created_id or old.get("id") or ""
    if not alert:
        return {}
    out = {"id": str(alert), "notes": int(old.get("notes") or 0) + int(notes_added or 0)}
    if closed or old.get("closed"):
        out["closed"] = True
    return out


def sent(calls_made, alert=""):
    """Status and detail of a sink that did not fail (``ok`` with its calls, or ``skipped``)."""
    out = _saas.sent_summary(calls_made)
    if calls_made and alert:
        out["detail"] = "%s: alert %s" % (out["detail"], alert)
    return out


def failure(sink, call, result, api_key=""):
    """The failure line: sink, call, HTTP status and Alerta's message, the API key masked (Alerta
    echoes an invalid key back in its 401 message)."""
    return _saas.failure_line(sink, call, result, [api_key])
