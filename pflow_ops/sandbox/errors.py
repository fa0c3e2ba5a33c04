"""The one exception type the sandbox raises for anything a user can cause or fix."""

from __future__ import annotations

USAGE = 2
"""Exit code for a bad request (unknown fault, invalid port): the user must change the command."""

FAILURE = 1
"""Exit code for an operation that was valid but failed (a service did not start, ...)."""


class SandboxError(Exception):
    """A failure shown to the user as a single line; ``exit_code`` is what the CLI should return."""

    def __init__(self, message: str, exit_code: int = FAILURE) -> None:
        # Output from tools (initdb, supervisord) may span lines; the CLI prints exactly one.
        super().__init__(" ".join(message.split()))
        self.exit_code = exit_code

    @property
    def message(self) -> str:
        return str(self)
