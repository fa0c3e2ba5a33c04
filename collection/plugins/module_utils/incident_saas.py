# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Pivotal Flow SRE <sre@pivotal-flow.example>
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Decisions of the SaaS incident sinks (Slack, PagerDuty Events API v2, Jira).

The role's ``sink_slack.yml``, ``sink_pagerduty.yml`` and ``sink_jira.yml`` only send what these
pure functions decide: which API calls a document makes (``calls``), the PagerDuty dedup_key and
severity, the request bodies, whether a response is a success or worth a retry, and the one line a
failed sink leaves in the report. No Ansible import, so the unit tests load it directly.

The core (``module_utils/incident.py``) decides the sink's *action* (create, update, resolve,
trigger, change, skip) from the incident record; ``calls`` turns that action and the sink's own
handle into API calls, falling back to a create when a handle the action needs is missing (a
create that failed last time left none), so a mismatch can never edit a message that does not
exist. No branch ever returns a PagerDuty ``acknowledge``: acknowledging on the human's behalf
stops the escalation clock.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import hashlib
import re

# --- calls -----------------------------------------------------------------------------------

SLACK_POST = "post"  # chat.postMessage: the incident's message
SLACK_UPDATE = "update"  # chat.update by ts: the same message, edited in place
SLACK_REPLY = "reply"  # chat.postMessage with thread_ts: this run, in the message's thread
PD_TRIGGER = "trigger"  # Events API v2 trigger with the incident's dedup_key
PD_CHANGE = "change"  # change event per remediation action: never pages
PD_RESOLVE = "resolve"  # Events API v2 resolve, same dedup_key
JIRA_CREATE = "create"
JIRA_COMMENT = "comment"
JIRA_TRANSITION = "transition"

ACTIONS = frozenset(("create", "update", "resolve", "trigger", "change", "skip"))


def _slack_calls(action, handle):
    if action == "skip":
        return []
    if not (handle.get("ts") and handle.get("channel")):
        return [SLACK_POST]
    return [SLACK_UPDATE, SLACK_REPLY]


def _pagerduty_calls(action, handle, changes, event):
    # Change events come from the runbook's own document only: the closed loop's documents
    # (resolved, still_firing) carry the same run's actions, already sent.
    change = [PD_CHANGE] if changes and event == "documented" else []
    if action == "trigger":
        return [PD_TRIGGER] + change
    if action == "resolve":
        # Resolve only what this sink triggered: an incident nobody paged is not ours to close
        # (Alertmanager's own PagerDuty integration resolves its own when the alert resolves).
        return [PD_RESOLVE] if handle.get("dedup_key") and handle.get("triggered") else []
    if action in ("change", "update", "create"):
        return change
    return []


def _jira_calls(action, handle):
    if action == "skip":
        return []
    first = [JIRA_COMMENT] if handle.get("issue") else [JIRA_CREATE]
    if action == "resolve":
        return first + [JIRA_TRANSITION]
    return first


TICKET_CREATE = "create"  # POST <url>/tickets
TICKET_COMMENT = "comment"  # POST <url>/tickets/<id>/comments
TICKET_RESOLVE = "resolve"  # POST <url>/tickets/<id>/resolve (the comment in its body)


def _ticket_calls(action, handle):
    if action == "skip":
        return []
    first = [] if handle.get("id") else [TICKET_CREATE]
    return first + [TICKET_RESOLVE if action == "resolve" else TICKET_COMMENT]


def calls(kind, action, handle=None, changes=None, check_mode=False, event="documented"):
    """The API calls one document makes for one sink, in order.

    Unknown actions and check mode make none: a dry run does not post, page or open tickets.
    """
    handle = handle if isinstance(handle, dict) else {}
    if check_mode or action not in ACTIONS:
        return []
    if kind == "slack":
        return _slack_calls(action, handle)
    if kind == "pagerduty":
        return _pagerduty_calls(action, handle, list(changes or []), event)
    if kind == "jira":
        return _jira_calls(action, handle)
    if kind == "ticket":
        return _ticket_calls(action, handle)
    return []


# --- PagerDuty -------------------------------------------------------------------------------

# The catalogue's severities (catalogue.yml) to the four PagerDuty accepts. An unknown word maps
# to "error", Alertmanager's own default for its PagerDuty notifier, so an incident from a new
# runbook still pages with high urgency rather than as info.
PD_SEVERITIES = ("critical", "error", "warning", "info")
SEVERITY_MAP = {
    "critical": "critical",
    "high": "error",
    "medium-high": "warning",
    "medium": "warning",
    "low": "info",
    "maintenance": "info",
    "info": "info",
    "warning": "warning",
    "error": "error",
}
DEFAULT_SEVERITY = "error"
PD_SUMMARY_MAX = 1024  # Events API v2 payload.summary limit


def pagerduty_severity(severity):
    return SEVERITY_MAP.get(str(severity or "").strip().lower(), DEFAULT_SEVERITY)


# The catalogue's words, worst first: a batch of several runbooks pages as its worst.
CATALOGUE_ORDER = ("critical", "high", "medium-high", "medium", "low", "maintenance")


def catalogue_severity(results, severities):
    """The catalogue severity of the runbook(s) a document is about: ``results`` are the
    batch's ``pflow_run_result`` dicts (each names its ``runbook``), ``severities`` the
    catalogue's {runbook id: severity} (the incident role's ``incident_severities``). The worst
    one known, else "" (a runbook the map does not name: the trigger falls back)."""
    severities = severities if isinstance(severities, dict) else {}
    found = set()
    for result in results if isinstance(results, list) else []:
        if isinstance(result, dict):
            word = str(severities.get(str(result.get("runbook") or ""), "") or "").strip().lower()
            if word:
                found.add(word)
    for word in CATALOGUE_ORDER:
        if word in found:
            return word
    return sorted(found)[0] if found else ""


def trigger_severity(sink_severity, catalogue, outcome_severity):
    """The trigger's PagerDuty severity: the sink's own ``severity`` when its config pins one,
    else the runbook's catalogue severity (critical -> critical, high -> error, medium-high ->
    warning...), else the outcome's (messages.severity), else Alertmanager's default."""
    for word in (sink_severity, catalogue, outcome_severity):
        if str(word or "").strip():
            return pagerduty_severity(word)
    return DEFAULT_SEVERITY


def alertmanager_dedup_key(group_key):
    """The dedup_key Alertmanager's PagerDuty notifier sends for a group: the hex sha256 of the
    group key (notify.Key.Hash in notify/util.go, used by notify/pagerduty notifyV2), the same
    string the webhook notifier sends as ``groupKey``."""
    return hashlib.sha256(group_key.encode("utf-8")).hexdigest()


ROUTE_SEPARATOR = "}:{"


def pager_group_key(group_key, route_key=""):
    """The group key the pager route's notifications carry, from the one pflow-ops received.

    Alertmanager's group key is ``<route key>:<group labels>`` (dispatch.aggrGroup: route.Key()
    + ":" + the group's labels), so the same alert group has another key on each route. When the
    PagerDuty config sits on another route than the pflow-ops webhook (the production example:
    pflow-ops with ``continue: true``, then the pager), the sink names that route's key
    (``alertmanager_route_key``, e.g. ``{}/{severity=~"critical|high"}``) and the group-labels
    part is kept: with the same ``group_by`` on both routes that is the pager's own group key.
    No route key: the key as received (the PagerDuty config in the same receiver). A key whose
    split is ambiguous is not rewritten (None): the caller falls back and says so."""
    group_key, route_key = str(group_key or ""), str(route_key or "").strip()
    if not route_key or not group_key:
        return group_key
    if not (route_key.startswith("{") and route_key.endswith("}")) or group_key.count(ROUTE_SEPARATOR) != 1:
        return None
    return route_key + ":" + group_key[group_key.index(ROUTE_SEPARATOR) + 2:]


def dedup_key(handle, group_key, incident_key, route_key=""):
    """The incident's dedup_key: the one already used (stable across runs), else Alertmanager's
    for the alert's group on the pager's route (``route_key``, see pager_group_key), so the
    human's incident is the same one, else the incident key."""
    handle = handle if isinstance(handle, dict) else {}
    if handle.get("dedup_key"):
        return str(handle["dedup_key"])
    if group_key:
        pager_key = pager_group_key(group_key, route_key)
        return alertmanager_dedup_key(pager_key if pager_key is not None else str(group_key))
    return str(incident_key)


def _one_line(text, limit):
    line = " ".join(str(text or "").split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def pagerduty_event(action, key, summary="", severity="", source="pflow-ops", details=None):
    """The body of an Events API v2 event without its routing_key (the task adds the secret)."""
    if action == PD_RESOLVE:
        return {"event_action": "resolve", "dedup_key": key}
    if action != PD_TRIGGER:
        raise ValueError("not an Events API v2 action of this sink: %r" % (action,))
    return {
        "event_action": "trigger",
        "dedup_key": key,
        "client": "pflow-ops",
        "payload": {
            "summary": _one_line(summary, PD_SUMMARY_MAX) or "pflow-ops incident",
            "source": source or "pflow-ops",
            "severity": pagerduty_severity(severity),
            "custom_details": dict(details or {}),
        },
    }


def change_summaries(changes):
    """One change event summary per remediation action (each one line, PagerDuty's limit)."""
    return [_one_line(c, PD_SUMMARY_MAX) for c in (changes or []) if str(c or "").strip()]


def pagerduty_handle(handle, key, done):
    """The pager's handle after this document's calls: the dedup_key, and whether the incident
    this sink triggered is still open (only an open one is resolved later)."""
    handle = dict(handle) if isinstance(handle, dict) else {}
    if PD_TRIGGER in done:
        handle.update(dedup_key=key, triggered=True)
    if PD_RESOLVE in done:
        handle.update(dedup_key=key, triggered=False)
    return handle


# --- Slack -----------------------------------------------------------------------------------

SLACK_TEXT_MAX = 3500  # chat.postMessage truncates at 40k; Slack advises staying under 4k
_TRUNCATED = "\n...(truncated)"


def slack_text(text):
    """Text for Slack's mrkdwn with &, < and > escaped, as Slack asks: alert data in a message
    can then neither mention ``<!channel>`` / ``<!here>`` nor hide a link ``<https://x|y>``.
    Cut before escaping, so the cut never splits an entity (escaping stays far below 40k)."""
    text = str(text or "")
    if len(text) > SLACK_TEXT_MAX:
        text = text[: SLACK_TEXT_MAX - len(_TRUNCATED)] + _TRUNCATED
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_body(call, channel, text, handle=None):
    """The JSON body of a Web API call; ``parse: none`` and ``link_names: false`` so Slack does
    not turn names in the text into mentions either."""
    handle = handle if isinstance(handle, dict) else {}
    body = {
        "channel": channel,
        "text": slack_text(text),
        "parse": "none",
        "link_names": False,
        "unfurl_links": False,
        "unfurl_media": False,
    }
    if call == SLACK_UPDATE:
        body.update(channel=handle["channel"], ts=handle["ts"])
        for key in ("unfurl_links", "unfurl_media"):
            del body[key]  # chat.update takes neither
    elif call == SLACK_REPLY:
        body.update(channel=handle["channel"], thread_ts=handle["ts"])
    elif call != SLACK_POST:
        raise ValueError("not a Slack call of this sink: %r" % (call,))
    return body


def slack_handle(handle, posted):
    """The chat handle: the channel id and ts Slack answered to the first post (updates and
    replies keep it)."""
    handle = dict(handle) if isinstance(handle, dict) else {}
    data = (posted or {}).get("json") or {}
    if data.get("ok") and data.get("ts"):
        handle.update(channel=str(data.get("channel") or handle.get("channel", "")), ts=str(data["ts"]))
    return handle


# --- responses -------------------------------------------------------------------------------

RETRYABLE = frozenset((408, 425, 429, 500, 502, 503, 504))
SLACK_RETRYABLE = frozenset(
    ("ratelimited", "rate_limited", "internal_error", "fatal_error", "service_unavailable", "request_timeout")
)


def response_ok(result, kind):
    """Whether a registered ``ansible.builtin.uri`` result is the API's success."""
    result = result if isinstance(result, dict) else {}
    status = result.get("status")
    data = result.get("json") if isinstance(result.get("json"), dict) else {}
    if kind == "slack":
        return status == 200 and data.get("ok") is True
    if kind == "pagerduty":
        return status == 202
    return isinstance(status, int) and 200 <= status < 300


def response_done(result, kind):
    """Whether to stop retrying: a success, or a failure a retry cannot fix (400, 401, 403,
    404, Slack's ``channel_not_found``...). Refused connections and timeouts (status -1), 429
    and 5xx are retried, within the task's bounded ``retries``."""
    if response_ok(result, kind):
        return True
    result = result if isinstance(result, dict) else {}
    status = result.get("status")
    if not isinstance(status, int) or status < 0 or status in RETRYABLE:
        return False
    if kind == "slack" and status == 200:
        data = result.get("json") if isinstance(result.get("json"), dict) else {}
        return str(data.get("error", "")) not in SLACK_RETRYABLE
    return True


FAILURE_MAX = 300


def sent_summary(calls):
    """The status and detail of a sink that did not fail: ``ok`` with the calls it made, or
    ``skipped`` when the event asked for none (the three SaaS sinks report the same way)."""
    calls = list(calls or ())
    if calls:
        return {"status": "ok", "detail": ", ".join(calls)}
    return {"status": "skipped", "detail": "nothing to send"}


def failure_line(sink, call, result, secrets=None):
    """The one line a failed sink leaves in the report: sink, call, HTTP status, then the API's
    error word or the module's message, with every secret string masked (a hostile or broken
    server may echo a token back) and never a body or a header. No attempt count: ansible-core
    reports ``attempts`` one short when the retries run out, so the number would mislead."""
    result = result if isinstance(result, dict) else {}
    facts = []
    status = result.get("status")
    if isinstance(status, int) and status >= 0:
        facts.append("HTTP %d" % status)
    data = result.get("json") if isinstance(result.get("json"), dict) else {}
    reason = data.get("error") or data.get("message") or result.get("msg") or ""
    line = "%s: %s failed" % (sink, call)
    if facts:
        line += " (" + ", ".join(facts) + ")"
    if reason:
        line += ": " + str(reason)
    # Mask before cutting the line short: a cut must not leave half a secret behind.
    for secret in secrets or []:
        if secret and len(str(secret)) >= 4:
            line = line.replace(str(secret), "***")
    return _one_line(line, FAILURE_MAX)


# --- Jira and the ticket webhook ---------------------------------------------------------------

# Jira wiki markup: always markup are macros and {{monospace}} ({}), links, mentions and images
# ([] !), tables (|) and numbered lists (#); the backslash (an escape, and two a line break) becomes
# an entity. Text effects (*bold* _em_ -strike- +ins+ ^sup^ ~sub~ ??cite??) and bullets are markup
# only at a word's edge, so they are escaped there and "web-1", "max_conn" stay readable.
_JIRA_MARKUP = re.compile(r"\\|[{}\[\]|!#]|(?<![A-Za-z0-9])[*_+^~?-]|[*_+^~?-](?![A-Za-z0-9])")
_JIRA_LINE = re.compile(r"^(\s*)(h[1-6]|bq)\.", re.M)  # headings and block quotes


def _jira_escape(match):
    char = match.group(0)
    return "&#92;" if char == "\\" else "\\" + char


def jira_text(text):
    """Text from findings and actions as Jira wiki markup that renders as the same text, never
    as markup: every markup character backslash-escaped (``{code}``, ``[x|y]``, ``|`` tables,
    ``!image!``, ``*bold*``, ``{color}``...), the backslash itself as ``&#92;``, and a line
    starting ``h1.`` or ``bq.`` with its dot as ``&#46;``."""
    text = _JIRA_MARKUP.sub(_jira_escape, str(text or ""))
    return _JIRA_LINE.sub(lambda m: m.group(1) + m.group(2) + "&#46;", text)


def jira_handle(handle, created=""):
    """The Jira handle: the issue opened by this document (also when a later call failed, so
    the next document comments on it), else the one already kept."""
    handle = dict(handle) if isinstance(handle, dict) else {}
    if created:
        handle["issue"] = str(created)
    return handle


def ticket_answer(handle, created=None):
    """Where the ticket id comes from: the tracker's answer when this document opened the
    ticket, else the stored handle (both checked by incident.ticket_id before a URL uses it)."""
    created = created if isinstance(created, dict) else {}
    if not created.get("skipped") and isinstance(created.get("json"), dict):
        return created["json"]
    return handle if isinstance(handle, dict) else {}


def ticket_handle(handle, ticket, done=()):
    """The ticket handle: its id and the number of comments posted; {} without an id (a failed
    create leaves none, so the next document opens the ticket again)."""
    handle = handle if isinstance(handle, dict) else {}
    if not ticket:
        return {}
    comments = int(handle.get("comments") or 0)
    if TICKET_COMMENT in done or TICKET_RESOLVE in done:
        comments += 1
    return {"id": str(ticket), "comments": comments}
