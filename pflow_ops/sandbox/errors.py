"""The one exception type the sandbox raises for anything a user can cause or fix."""

from __future__ import annotations

from pflow_ops.errors import INTERNAL, USAGE, PflowError

__all__ = ["FAILURE", "USAGE", "SandboxError"]
# USAGE (2): a bad request (unknown fault, invalid port): the user must change the command.

FAILURE = INTERNAL
"""Exit code for an operation that was valid but failed (a service did not start, ...)."""


class SandboxError(PflowError):
    """A failure shown to the user as a single line (``pflow-ops: sandbox: ...``); ``exit_code``
    is what the CLI returns. One of the CLI's error family, caught once in ``main``."""

    label = "sandbox"

    def __init__(self, message: str, exit_code: int = FAILURE) -> None:
        super().__init__(message, exit_code)
