# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Pivotal Flow SRE <sre@pivotal-flow.example>
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one outcome vocabulary of every runbook, and the one way to combine outcomes.

Pure Python with no Ansible import: the roles reach it through the ``pivotal.flow_ops``
outcome filters, the AWX recovery gate through the same filters, and the ``pflow_ops`` launcher
(report, exit code, receiver) loads this very file. No other copy of these words exists.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

HEALTHY = "healthy"  # nothing needed doing
RECOVERED = "recovered"  # something was wrong, the runbook fixed it and verified the fix
ESCALATE = "escalate"  # a human is needed: outside the runbook's scope, not fixed, or a dry run found work
REFUSED = "refused"  # a guard stopped the run (budget, confirmation, lock)
ERROR = "error"  # the run could not reach an outcome

# Worst first: a run's outcome is the worst of its hosts' outcomes.
ORDER = (ERROR, REFUSED, ESCALATE, RECOVERED, HEALTHY)
OUTCOMES = frozenset(ORDER)
OK = frozenset((HEALTHY, RECOVERED))
# Outcomes for which a recover run fails its job (AWX, ansible-playbook): a human must act.
NEEDS_HUMAN = frozenset((ESCALATE, REFUSED, ERROR))

# The documented exit codes of pflow-ops (README "Exit codes"). 2 (bad usage) is not an outcome.
EXIT_CODES = {HEALTHY: 0, RECOVERED: 0, ERROR: 1, REFUSED: 3, ESCALATE: 4}
USAGE_EXIT_CODE = 2


def normalize(outcome):
    """An outcome word, or ``error`` for anything outside the vocabulary (fail closed)."""
    text = str(outcome or "").strip().lower()
    return text if text in OUTCOMES else ERROR


def combine(outcomes):
    """One outcome for several hosts (or several verdicts): the worst one.

    No outcome at all is an ``error``: a run that produced no result did not succeed.
    """
    seen = set(normalize(o) for o in outcomes)
    for outcome in ORDER:
        if outcome in seen:
            return outcome
    return ERROR


def is_ok(outcome):
    return normalize(outcome) in OK


def needs_human(outcome):
    return normalize(outcome) in NEEDS_HUMAN


def exit_code(outcome):
    return EXIT_CODES[normalize(outcome)]


def from_exit_code(rc):
    """The outcome a finished ``pflow-ops`` child process stands for, from its exit code alone
    (0 cannot tell healthy from recovered: it says healthy; the report has the exact word)."""
    for outcome in (HEALTHY, REFUSED, ESCALATE):
        if EXIT_CODES[outcome] == rc:
            return outcome
    return ERROR


def verdict(outcome, reason, next_runbook=""):
    """A runbook verdict in the shape every role publishes: outcome, reason, next_runbook."""
    if outcome not in OUTCOMES:
        raise ValueError("unknown outcome %r (one of %s)" % (outcome, ", ".join(ORDER)))
    return {"outcome": outcome, "reason": str(reason), "next_runbook": str(next_runbook or "")}


def combine_results(results):
    """The outcome of a mapping host -> published result (``pflow_results``), with the hosts
    that are not ok and why, worst first: what the AWX gate and the report show."""
    rows = []
    for host in sorted(results or {}):
        data = results[host] if isinstance(results[host], dict) else {}
        outcome = normalize(data.get("outcome"))
        reason = str(data.get("reason") or "no reason given")
        rows.append({"host": host, "outcome": outcome, "reason": reason,
                     "line": "%s: %s (%s)" % (host, outcome, reason)})
    rows.sort(key=lambda row: ORDER.index(row["outcome"]))
    return {
        "outcome": combine(row["outcome"] for row in rows),
        "hosts": len(rows),
        "not_ok": [row for row in rows if row["outcome"] not in OK],
    }
