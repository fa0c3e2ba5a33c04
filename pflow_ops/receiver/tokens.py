"""The bearer token, and its rotation without a restart.

A token from ``--token-file`` is re-read on SIGHUP and when the file changes (its inode, size or
mtime; looked at, on a request, at most once a second). A new token that is unusable (unreadable,
empty, too short, with spaces) does not replace the one in use: a half-written file or a typo
must not lock Alertmanager out. Each attempt is one log line and one
``token_reloads_total{result}``; the token itself is never logged.

A token from ``$PFLOW_OPS_RECEIVER_TOKEN`` cannot change without a restart (a process's
environment is fixed), so it is never reloaded.
"""

from __future__ import annotations

import hmac
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

MIN_TOKEN_LENGTH = 16
CHECK_INTERVAL = 1.0  # seconds between two looks at the file's metadata

Signature = tuple[int, int, int]  # inode, size, mtime in nanoseconds


def problem(token: str) -> str | None:
    """Why ``token`` (already stripped) cannot be used, or None if it can."""
    if not token:
        return "the token is empty"
    if len(token) < MIN_TOKEN_LENGTH or any(c.isspace() for c in token):
        return f"the bearer token must be at least {MIN_TOKEN_LENGTH} characters, without spaces"
    return None


def signature(path: Path) -> Signature | None:
    """What changes when the file is rewritten or replaced; None if it cannot be looked at."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def read(path: Path) -> bytes:
    """The token in ``path``; ValueError with the reason (never the token) if unusable."""
    try:
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read the token file: {type(exc).__name__}") from None
    reason = problem(text)
    if reason:
        raise ValueError(reason)
    return text.encode("utf-8")


class TokenSource:
    """The token the server compares against, replaced only by a usable new one."""

    def __init__(
        self,
        token: bytes,
        path: Path | None = None,
        *,
        log: Callable[..., Any],
        count: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._token = token
        self.path = path
        self._log = log
        self._count = count  # called with "ok" or "error"
        self._clock = clock
        self._lock = threading.Lock()
        self._seen = signature(path) if path else None
        self._next_check = clock() + CHECK_INTERVAL

    @property
    def rotates(self) -> bool:
        return self.path is not None

    def current(self) -> bytes:
        """The token in use, after a cheap look at the file if a second has passed."""
        if self.path is not None and self._clock() >= self._next_check:
            self._next_check = self._clock() + CHECK_INTERVAL
            if signature(self.path) != self._seen:
                self.reload("file_changed")
        return self._token

    def reload(self, trigger: str = "sighup") -> bool:
        """Re-read the file; True if a new token is now in use."""
        if self.path is None:
            self._log("token_reload_skipped", trigger=trigger, reason="token_from_environment")
            return False
        with self._lock:
            self._seen = signature(self.path)
            try:
                token = read(self.path)
            except ValueError as exc:
                self._count("error")
                self._log("token_reload_failed", trigger=trigger, error=str(exc), kept="old")
                return False
            # Constant time, like the request check: the comparison must not leak the old token.
            changed = not hmac.compare_digest(token, self._token)
            self._token = token
            self._count("ok")
            self._log("token_reloaded", trigger=trigger, changed=changed)
            return True
