"""What the launcher writes: results on stdout, messages and diagnostics on stderr.

stdout carries the command's result only (text, or the one JSON object of ``--output json``),
so a reader that goes away (``pflow-ops list | head -1``) ends the output quietly, never a
run: the rest is dropped, like any Unix filter's. The launcher's own diagnostics (lock taken,
runner arguments, artifact directory) go through ``logging`` to stderr, shown with ``-v``
(info) and ``-vv`` (debug).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import sys
from typing import Any

_LOGGER = "pflow_ops"


class _Stderr(logging.Handler):
    """Writes to the current ``sys.stderr`` (not the one at set-up time)."""

    def emit(self, record: logging.LogRecord) -> None:
        # stderr closed or gone: diagnostics are best effort
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.write(self.format(record) + "\n")


def configure_logging(verbosity: int) -> None:
    """``-v`` shows the launcher's info messages, ``-vv`` its debug ones; warnings always."""
    level = logging.DEBUG if verbosity >= 2 else logging.INFO if verbosity == 1 else logging.WARNING
    logger = logging.getLogger(_LOGGER)
    logger.setLevel(level)
    logger.propagate = False  # ansible-runner's own logging stays its business
    for handler in list(logger.handlers):
        if isinstance(handler, _Stderr):
            logger.removeHandler(handler)
    handler = _Stderr()
    handler.setFormatter(logging.Formatter("pflow-ops: %(levelname)s: %(message)s"))
    logger.addHandler(handler)


def stdout_gone() -> bool:
    """Whether stdout is a pipe whose reader has gone away (the kernel flags it POLLERR)."""
    try:
        fd = sys.stdout.fileno()
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        return any(ev & select.POLLERR for _, ev in poller.poll(0))
    except (OSError, ValueError, AttributeError):
        return False


def silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's final flush has nowhere to fail."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def out(text: str = "") -> None:
    """One line of the command's result on stdout."""
    write(text + "\n")


def write(text: str) -> None:
    try:
        sys.stdout.write(text)
    except BrokenPipeError:
        silence_stdout()


_json_emitted: list[bool] = []  # one entry per JSON object written (cli.main counts them)


def emit_json(obj: dict[str, Any]) -> None:
    _json_emitted.append(True)
    write(json.dumps(obj, indent=2) + "\n")


def json_count() -> int:
    """How many JSON objects this process wrote on stdout so far."""
    return len(_json_emitted)


def flush() -> None:
    """Flush stdout at the end of a command; a reader gone by then is no error."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        silence_stdout()
    except (OSError, ValueError):
        pass


def error(label: str, message: str) -> None:
    """``pflow-ops: <label>: <message>``: the one line a user sees for an error or refusal."""
    print(f"pflow-ops: {label}: {message}", file=sys.stderr)
