"""Before a queued run starts: is its alert still active in Alertmanager, and not silenced?

One GET ``/api/v2/alerts?filter=alertname="X"`` per attached alert, then a pure verdict on the
answer (:func:`verdict`): the alert with that fingerprint is absent or not active -> skip
(``not_active``); silenced -> skip (``silenced``); inhibited -> skip (``inhibited``); else run.

When the check cannot be made (Alertmanager unreachable, an error status, an answer that is not
the v2 API's shape), the run goes ahead, journaled ``unchecked`` and counted
(``alertmanager_check_errors_total``). This is not a guard that fails closed, on purpose: the
receiver exists for outages, and Alertmanager is often down or unreachable in the same outage
(same host, same network); refusing to act then would silently switch remediation off when it
is most needed. The guards of the run itself (run lock, restart budget, protected environment)
still apply, and an operator who must stop runs has the pause switch, which does fail closed.

The alertname is a validated identifier and the fingerprint hex (``pflow_ops.routing``); the
filter is URL-encoded anyway. A tiny urllib client on purpose: one GET, no retries (the
worker's loop is the retry), no dependency for the receiver to carry.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

RUN = "run"
SKIP = "skip"
UNCHECKED = "unchecked"
# alerts_skipped_total reasons
SILENCED = "silenced"
INHIBITED = "inhibited"
NOT_ACTIVE = "not_active"
TIMEOUT = 5.0
MAX_ANSWER = 8 * 1024 * 1024


@dataclass(frozen=True)
class Verdict:
    action: str  # run | skip | unchecked
    reason: str = ""  # for skip: silenced | inhibited | not_active
    detail: str = ""  # the silence ids, the error

    @property
    def check(self) -> str:
        """The word the "started" record carries: ok, or unchecked."""
        return "unchecked" if self.action == UNCHECKED else "ok"


def verdict(answer: Any, fingerprint: str) -> Verdict:
    """What to do with the alert ``fingerprint``, given Alertmanager's /api/v2/alerts answer."""
    if not isinstance(answer, list):
        return Verdict(UNCHECKED, detail="the answer is not a list of alerts")
    mine = [a for a in answer if isinstance(a, dict) and a.get("fingerprint") == fingerprint]
    if not mine:
        return Verdict(SKIP, NOT_ACTIVE, "Alertmanager has no such alert (resolved or expired)")
    status = mine[0].get("status")
    if not isinstance(status, dict):
        return Verdict(UNCHECKED, detail="the alert has no status")
    silenced = _ids(status.get("silencedBy"))
    inhibited = _ids(status.get("inhibitedBy"))
    if silenced:
        return Verdict(SKIP, SILENCED, "silence " + ",".join(silenced))
    if inhibited:
        return Verdict(SKIP, INHIBITED, "inhibited by " + ",".join(inhibited))
    state = status.get("state")
    if state in ("active", "unprocessed"):
        return Verdict(RUN)
    if state == "suppressed":  # suppressed without a silence or inhibition: a muted time
        return Verdict(SKIP, SILENCED, "suppressed (a mute time interval)")
    return Verdict(UNCHECKED, detail=f"unknown alert state {str(state)[:40]!r}")


def _ids(value: Any) -> list[str]:
    return [str(v)[:64] for v in value] if isinstance(value, list) else []


def query_url(base: str, alertname: str) -> str:
    query = urllib.parse.urlencode({"filter": f'alertname="{alertname}"'})
    return f"{base.rstrip('/')}/api/v2/alerts?{query}"


def check(base: str, alertname: str, fingerprint: str, timeout: float = TIMEOUT) -> Verdict:
    """Ask Alertmanager at ``base`` about one alert; never raises."""
    try:
        with urllib.request.urlopen(query_url(base, alertname), timeout=timeout) as resp:
            body = resp.read(MAX_ANSWER + 1)
    except urllib.error.HTTPError as exc:
        return Verdict(UNCHECKED, detail=f"Alertmanager answered HTTP {exc.code}")
    except (OSError, ValueError) as exc:  # URLError, timeouts, a bad URL
        return Verdict(UNCHECKED, detail=f"cannot reach Alertmanager: {_reason(exc)}")
    if len(body) > MAX_ANSWER:
        return Verdict(UNCHECKED, detail="Alertmanager's answer is too large")
    try:
        answer = json.loads(body)
    except ValueError:
        return Verdict(UNCHECKED, detail="Alertmanager's answer is not JSON")
    return verdict(answer, fingerprint)


def _reason(exc: Exception) -> str:
    reason = getattr(exc, "reason", None) or exc
    return " ".join(str(reason).split())[:200]
