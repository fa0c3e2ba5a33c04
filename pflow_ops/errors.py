"""The errors ``pflow-ops`` shows to its user, in one family, and the exit codes they carry.

Every error a user can cause or fix is a :class:`PflowError`: ``main`` catches the family once
and prints one line, ``pflow-ops: <label>: <message>``, and returns the error's exit code. The
codes of run outcomes (refused 3, internal error 1) come from the collection's outcome
vocabulary, the one definition the roles, the AWX gate and the receiver share; only the
codes that are not outcomes (0 for a command that did what it was asked, 2 for bad usage) are
named here.
"""

from __future__ import annotations

from typing import ClassVar

from pflow_ops import outcome

OK = 0
"""A command that is not a run (list, history, report, sandbox) did what it was asked."""

USAGE = outcome.USAGE_EXIT_CODE
"""Bad usage or input: the user must change the command."""

INTERNAL = outcome.exit_code(outcome.ERROR)
"""The command could not do its work (a bug, a broken installation, a failed operation)."""

REFUSED = outcome.exit_code(outcome.REFUSED)
"""A guard said no: confirmation, the run lock, a protected environment."""


class PflowError(Exception):
    """An error shown to the user as one line; ``exit_code`` is what the CLI returns."""

    exit_code_default: ClassVar[int] = INTERNAL
    label: ClassVar[str] = "error"  # pflow-ops: <label>: <message>

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        # Output from tools (initdb, supervisord) may span lines; the CLI prints exactly one.
        super().__init__(" ".join(str(message).split()))
        self.exit_code = self.exit_code_default if exit_code is None else exit_code

    @property
    def message(self) -> str:
        return str(self)


class UsageError(PflowError):
    """Bad input from the user (an unknown runbook, a malformed -e): exit 2."""

    exit_code_default = USAGE


class RefusedError(PflowError):
    """A guard refused the command (confirmation, a held lock): exit 3."""

    exit_code_default = REFUSED
    label = "refused"
