# Copyright: (c) 2026, pflow-ops team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Alert data is data: the checks that keep it from ever being evaluated.

Ansible 2.19 trusts extra vars (``-e``, ansible-rulebook's ``run_playbook``, AWX) as templates, so
an alert field such as ``{{ lookup('pipe', ...) }}`` that reaches a playbook as an extra var runs
the moment a role templates it. Two places use these pure functions, so they cannot disagree:

- the ``pivotal.flow_ops.alert_input`` action plugin, the first play of every collection playbook:
  it reads the RAW variables (never templated) and fails closed with one line;
- the ``pivotal.flow_ops.alert_guard`` EDA event filter: it splits an Alertmanager notification
  into one event per alert, keeps only what the rules and the run need (status, fingerprint,
  ``alertname``, ``runbook`` label, the notification's ``groupKey``, the ``incident``
  annotation) and turns a hostile alert into a refusal event, so the rule engine never sees, and
  no run ever receives, the hostile value.

The receiver (``pflow_ops/event_input.py`` loads this file) checks the group key and the
incident annotation with the same functions before it launches a run.

Standard library only: the EDA filter loads this file by path (ansible-rulebook runs filters
with ``runpy``, outside Ansible's collection loader).
"""

from __future__ import annotations

import re

# Same rules as pflow_ops/routing.py (ALERTNAME, FINGERPRINT, RUNBOOK_ID), whole-string matched:
# with `$`, re.match accepts a trailing newline.
ALERTNAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
FINGERPRINT = re.compile(r"[0-9a-f]{1,32}")
RUNBOOK_ID = re.compile(r"RB-[0-9]{2,3}")
MODES = ("recover", "diagnose", "maintain")
# Jinja's statement, expression and comment openers: any of them in data is refused, not escaped.
MARKERS = ("{{", "{%", "{#")
# Bounds: a real alert is a few labels and annotations of a few hundred characters.
MAX_STRING = 4096
MAX_DEPTH = 8
MAX_ITEMS = 1024

# Alertmanager's group key (the webhook's ``groupKey``: ``<route key>:<group labels>``, e.g.
# ``{}/{severity="critical"}:{alertname="X"}``): text with braces, quotes, ``=`` and ``:`` by
# design, so it is not matched against a pattern but bounded, printable and free of Jinja
# openers (a label name never follows a brace with ``{``, ``%`` or ``#``: only a hostile label
# value can). It is hashed before it names anything (the incident, the PagerDuty dedup_key).
GROUP_KEY_MAX = 2048
# The incident key (a ticket id, the ``incident`` annotation): module_utils/incident.py's
# KEY_PATTERN (a unit test keeps them equal; this file stays standard-library only).
INCIDENT_KEY = re.compile(r"[A-Za-z0-9._:/-]{1,128}")
INCIDENT_ANNOTATION = "incident"

ALERT_VARS = (
    "pflow_alert_name",
    "pflow_alert_fingerprint",
    "pflow_alert_group_key",
    "pflow_alert_incident",
)
EDA_VAR = "ansible_eda"  # what ansible-rulebook adds to every run it starts (the rule, the event)
ALERT_PREFIX = "pflow_alert_"
REFUSED_KEY = "pflow_refused"  # the EDA filter's refusal event: {"pflow_refused": "<one line>"}


def shown(value: object, limit: int = 40) -> str:
    """A value as it may appear in a message: repr (escaped, quoted), truncated, with ``{``
    written as ``\\x7b`` so that the message itself can never be a template."""
    text = repr(value)
    text = text if len(text) <= limit else text[: limit - 3] + "..."
    return text.replace("{", "\\x7b")


def _key(path: str, key: object) -> str:
    if isinstance(key, str) and ALERTNAME.fullmatch(key):
        return f"{path}.{key}"
    return f"{path}[{shown(key, 24)}]"


def _text_problem(path: str, text: str) -> str:
    if len(text) > MAX_STRING:
        return f"{path}: oversized ({len(text)} characters, at most {MAX_STRING})"
    if any(marker in text for marker in MARKERS):
        return f"{path}: carries a template marker (a Jinja opener): {shown(text)}"
    return ""


def group_key_problem(value: object, where: str = "groupKey") -> str:
    """Why ``value`` is not an Alertmanager group key that may travel with a run; "" when it
    may (the empty string: no group key)."""
    if not isinstance(value, str):
        return f"{where}: not a string: {shown(value)}"
    if len(value) > GROUP_KEY_MAX:
        return f"{where}: oversized ({len(value)} characters, at most {GROUP_KEY_MAX})"
    if any(marker in value for marker in MARKERS):
        return f"{where}: carries a template marker (a Jinja opener): {shown(value)}"
    if not value.isprintable():
        return f"{where}: carries a control character: {shown(value)}"
    return ""


def incident_key_problem(value: object, where: str = "incident") -> str:
    """Why ``value`` may not name an incident; "" when it may (the empty string: none given)."""
    if value == "":
        return ""
    if not isinstance(value, str) or not INCIDENT_KEY.fullmatch(value):
        return f"{where}: not an incident key (1-128 of A-Z a-z 0-9 . _ : / -): {shown(value)}"
    return ""


def hostile(value: object, path: str) -> str:
    """The first reason ``value`` (any JSON-like structure, keys included) may not be handed to
    Ansible as data, named by its path; "" when it may."""
    stack: list[tuple[str, object, int]] = [(path, value, 0)]
    seen = 0
    while stack:
        where, item, depth = stack.pop()
        seen += 1
        if seen > MAX_ITEMS:
            return f"{path}: oversized (more than {MAX_ITEMS} values)"
        if isinstance(item, str):
            problem = _text_problem(where, item)
        elif isinstance(item, dict):
            problem = f"{where}: nested deeper than {MAX_DEPTH}" if depth >= MAX_DEPTH else ""
            for key in sorted(item, key=str, reverse=True):
                problem = problem or (
                    _text_problem(f"{where} key", key) if isinstance(key, str) else ""
                )
                stack.append((_key(where, key), item[key], depth + 1))
        elif isinstance(item, (list, tuple)):
            problem = f"{where}: nested deeper than {MAX_DEPTH}" if depth >= MAX_DEPTH else ""
            stack.extend(
                (f"{where}[{i}]", v, depth + 1) for i, v in reversed(list(enumerate(item)))
            )
        else:
            problem = ""  # numbers, booleans, null: nothing to evaluate
        if problem:
            return problem
    return ""


def check_vars(variables: dict) -> str:
    """The first reason this run's variables carry alert data that may not run; "" when none.

    ``variables`` are the RAW values (never templated): pflow_alert_name must be a Prometheus
    identifier, pflow_alert_fingerprint an Alertmanager fingerprint, pflow_alert_group_key a
    group key (group_key_problem), pflow_alert_incident and pflow_incident_key incident keys,
    pflow_mode one of MODES, and nothing under ansible_eda or any other pflow_alert_* may carry
    a template marker or be oversized."""
    for name, rule, what in (
        (
            "pflow_alert_name",
            ALERTNAME,
            "not a Prometheus alert name ([A-Za-z_][A-Za-z0-9_]*, at most 128)",
        ),
        (
            "pflow_alert_fingerprint",
            FINGERPRINT,
            "not an Alertmanager fingerprint (1 to 32 lowercase hex digits)",
        ),
    ):
        value = variables.get(name)
        if value is None or value == "":
            continue  # unset (or the empty default of a run no alert started)
        if not isinstance(value, str) or not rule.fullmatch(value):
            return f"{name}: {what}: {shown(value)}"
    for name, check in (
        ("pflow_alert_group_key", group_key_problem),
        ("pflow_alert_incident", incident_key_problem),
        ("pflow_incident_key", incident_key_problem),
    ):
        value = variables.get(name)
        problem = check(value, name) if value is not None else ""
        if problem:
            return problem
    mode = variables.get("pflow_mode")
    if mode is not None and mode not in MODES:
        return f"pflow_mode: not one of {', '.join(MODES)}: {shown(mode)}"
    others = sorted(n for n in variables if n.startswith(ALERT_PREFIX) and n not in ALERT_VARS)
    names = [EDA_VAR, *others]
    for name in names:
        if name in variables:
            problem = hostile(variables[name], name)
            if problem:
                return problem
    return ""


def _refused(reason: str) -> dict:
    return {REFUSED_KEY: reason}


def screen_alert(alert: object, where: str = "alert", group_key: str = "") -> dict:
    """One Alertmanager alert as the EDA rules see it: ``{"alert": {status, fingerprint,
    group_key, incident, labels: {alertname[, runbook]}}}``, or ``{"pflow_refused": "<line>"}``
    when any of its values is hostile, its alertname or fingerprint malformed, its runbook label
    not a runbook id or its ``incident`` annotation not an incident key. ``group_key`` is the
    notification's (checked by alert_events); ``incident`` is "" when the alert has none.

    The runbook label is normalised as pflow_ops.routing.route does (stripped, upper case), so
    the rule comparing it routes exactly like the receiver."""
    if not isinstance(alert, dict):
        return _refused(f"{where}: not an alert object")
    problem = hostile(alert, where)
    if problem:
        return _refused(problem)
    labels = alert.get("labels")
    labels = labels if isinstance(labels, dict) else {}
    name, fingerprint = labels.get("alertname"), alert.get("fingerprint")
    if not isinstance(name, str) or not ALERTNAME.fullmatch(name):
        return _refused(f"{where}.labels.alertname: not a Prometheus alert name: {shown(name)}")
    if not isinstance(fingerprint, str) or not FINGERPRINT.fullmatch(fingerprint):
        return _refused(
            f"{where}.fingerprint ({name}): not an Alertmanager fingerprint: {shown(fingerprint)}"
        )
    kept = {"alertname": name}
    if "runbook" in labels:
        runbook = str(labels["runbook"]).strip().upper()
        if not RUNBOOK_ID.fullmatch(runbook):
            return _refused(
                f"{where}.labels.runbook ({name}): not a runbook id: {shown(labels['runbook'])}"
            )
        kept["runbook"] = runbook
    annotations = alert.get("annotations")
    annotations = annotations if isinstance(annotations, dict) else {}
    incident = annotations.get(INCIDENT_ANNOTATION, "")
    problem = incident_key_problem(incident, f"{where}.annotations.incident ({name})")
    if problem:
        return _refused(problem)
    status = alert.get("status")
    return {
        "alert": {
            "status": status if status in ("firing", "resolved") else "unknown",
            "fingerprint": fingerprint,
            "group_key": group_key,
            "incident": incident,
            "labels": kept,
        }
    }


def alert_events(event: object) -> list:
    """The events an Alertmanager notification received by a webhook source
    (``{"payload": {..., "alerts": [...]}, "meta": ...}``) becomes: one screened event per alert
    (see screen_alert), each with the notification's ``groupKey``; a group key that may not
    travel with a run refuses every alert of the notification. Nothing else of the notification
    or the request (headers) is kept."""
    payload = event.get("payload") if isinstance(event, dict) else None
    alerts = payload.get("alerts") if isinstance(payload, dict) else None
    if not isinstance(alerts, list):
        return [_refused("payload.alerts: not an Alertmanager notification (no alerts list)")]
    group_key = payload.get("groupKey", "")
    group_key = "" if group_key is None else group_key
    problem = group_key_problem(group_key, "payload.groupKey")
    if problem:
        return [_refused(problem) for _alert in alerts] or [_refused(problem)]
    return [screen_alert(alert, f"alerts[{i}]", group_key) for i, alert in enumerate(alerts)]
