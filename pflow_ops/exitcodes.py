"""The exit codes of ``pflow-ops`` (documented in the README), in one place."""

from __future__ import annotations

OK = 0  # healthy or recovered
ERROR = 1  # internal error: the run could not reach an outcome
USAGE = 2  # bad usage or input
REFUSED = 3  # refused by a guard: confirmation, lock, restart budget
ESCALATE = 4  # the runbook could not restore service, or the fault is outside its scope

BY_OUTCOME = {
    "healthy": OK,
    "recovered": OK,
    "error": ERROR,
    "refused": REFUSED,
    "escalate": ESCALATE,
}
