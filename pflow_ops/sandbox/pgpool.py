"""A small thread-safe PostgreSQL pool that drops broken connections instead of reusing them.

Hand-written on purpose (issue 17): the maintained pool, ``psycopg_pool``, works with psycopg 3
connections only, and the sandbox backend, the community.postgresql modules and this project's
own modules use psycopg2; psycopg2's own ``ThreadedConnectionPool`` raises at once when
exhausted and hands out dead connections after a database restart (see ``PgPool``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg2
from psycopg2.extensions import connection as PgConnection


class PoolExhausted(Exception):
    """Every connection is in use and none freed up within the wait."""


class PgPool:
    """LIFO idle list bounded by a semaphore. psycopg2's ThreadedConnectionPool raises at once
    when exhausted and keeps dead connections after a database restart; this one waits briefly
    and discards any connection whose use raised."""

    def __init__(self, dsn: str, size: int = 8, connect_timeout: int = 1) -> None:
        self._dsn = dsn
        self._connect_timeout = connect_timeout
        self._slots = threading.BoundedSemaphore(size)
        self._idle: list[PgConnection] = []
        self._lock = threading.Lock()

    def _new(self) -> PgConnection:
        conn = psycopg2.connect(
            self._dsn,
            connect_timeout=self._connect_timeout,
            application_name="pivotal-flow-backend",
            options="-c statement_timeout=5000",
        )
        conn.autocommit = True
        return conn

    @contextmanager
    def connection(self, wait: float = 2.0) -> Iterator[PgConnection]:
        if not self._slots.acquire(timeout=wait):
            raise PoolExhausted(f"no database connection free within {wait:g}s")
        conn: PgConnection | None = None
        try:
            with self._lock:
                while self._idle and conn is None:
                    candidate = self._idle.pop()
                    conn = None if candidate.closed else candidate
            if conn is None:
                conn = self._new()
            yield conn
        except BaseException:
            if conn is not None:
                conn.close()
                conn = None
            raise
        finally:
            if conn is not None and not conn.closed:
                with self._lock:
                    self._idle.append(conn)
            self._slots.release()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
