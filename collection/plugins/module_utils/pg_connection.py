# Copyright: (c) 2026, pflow-ops team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The PostgreSQL connection surface of the collection: one argument spec, one connect().

The options are community.postgresql's (``postgres_common_argument_spec()``: login_host,
login_port, login_user, login_password, login_db, ssl_mode, ca_cert, ssl_cert, ssl_key,
connect_params), so a task written for its modules, or a ``module_defaults`` group shared with
them, works here; the modules' earlier option names stay as aliases. The driver is the one
community.postgresql uses, psycopg2; without it the modules fail with ``missing_required_lib``.

Every PostgreSQL module (pg_diagnose, pg_remediate, and dependency_check's PostgreSQL part) connects
through connect(), which opens psycopg2's asynchronous connection and drives it against a deadline
of our own, measured on time.monotonic(). libpq's ``connect_timeout`` cannot give the bound a
check needs: it takes whole seconds only (0.5 is refused as invalid, 1 is its minimum) and
applies per address tried; measured against a port that accepts and never answers, ``1`` waited
1.03 s with one address and 2.00 s with two. Our deadline covers the whole connection, every
address included, to the millisecond.
"""

from __future__ import annotations

import selectors
import time
import traceback

try:
    import psycopg2
    from psycopg2 import extensions
except ImportError:
    psycopg2 = None
    extensions = None
    HAS_PSYCOPG2 = False
    PSYCOPG2_IMPORT_ERROR = traceback.format_exc()
else:
    HAS_PSYCOPG2 = True
    PSYCOPG2_IMPORT_ERROR = None

APPLICATION_NAME = "pflow-ops"
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")

# libpq keywords the modules set themselves: the deadline is ours (not connect_timeout), the
# session options carry the statement/lock timeouts and read-only mode, and the connection is
# asynchronous. connect_params may add any other libpq keyword, never one of these.
OWNED_KEYWORDS = frozenset(
    (
        "host", "hostaddr", "port", "dbname", "user", "password", "sslmode", "sslrootcert",
        "sslcert", "sslkey", "application_name", "options", "connect_timeout", "async", "async_",
    )
)
_TLS_FILES = (("ca_cert", "sslrootcert"), ("ssl_cert", "sslcert"), ("ssl_key", "sslkey"))


class DeadlineReached(Exception):
    """The connection or statement was not done when the deadline passed."""


def postgres_common_argument_spec() -> dict:
    """The connection options every PostgreSQL module of the collection takes."""
    return dict(
        login_host=dict(type="str", default="127.0.0.1", aliases=["host"]),
        login_port=dict(type="int", default=5432, aliases=["port"]),
        login_user=dict(type="str", aliases=["user"]),
        login_password=dict(type="str", no_log=True, aliases=["password"]),
        login_db=dict(type="str", aliases=["database", "db"]),
        ssl_mode=dict(type="str", default="prefer", choices=list(SSL_MODES)),
        ca_cert=dict(type="path", aliases=["ssl_rootcert"]),
        ssl_cert=dict(type="path"),
        ssl_key=dict(type="path"),
        connect_params=dict(type="dict", default={}),
    )


def required_connection_spec() -> dict:
    """postgres_common_argument_spec() for the RB-02 modules, which need a role and a database."""
    spec = postgres_common_argument_spec()
    spec["login_user"]["required"] = True
    spec["login_db"]["required"] = True
    return spec


def where(params: dict) -> str:
    """host:port/db, as the modules' messages name a server."""
    db = params.get("login_db")
    return f"{params['login_host']}:{params['login_port']}" + (f"/{db}" if db else "")


def connect_kwargs(params: dict) -> dict:
    """The libpq keywords for I(params) (the common argument spec's names).

    Raises ValueError when connect_params sets a keyword the modules own.
    """
    extra = params.get("connect_params") or {}
    clash = sorted(set(extra) & OWNED_KEYWORDS)
    if clash:
        raise ValueError(f"connect_params may not set {', '.join(clash)}: use the module's own options")
    kwargs = {
        "host": params["login_host"],
        "port": params["login_port"],
        "dbname": params.get("login_db"),
        "user": params.get("login_user"),
        "password": params.get("login_password"),
        "sslmode": params.get("ssl_mode") or "prefer",
    }
    for option, keyword in _TLS_FILES:
        if params.get(option):
            kwargs[keyword] = params[option]
    kwargs.update((key, str(value)) for key, value in extra.items())
    return kwargs


def wait(conn, deadline: float) -> None:  # type: ignore[no-untyped-def]
    """Drive an asynchronous connection or query until it is done or the deadline passes."""
    while True:
        state = conn.poll()
        if state == extensions.POLL_OK:
            return
        left = deadline - time.monotonic()
        if left <= 0:
            raise DeadlineReached()
        event = selectors.EVENT_READ if state == extensions.POLL_READ else selectors.EVENT_WRITE
        # Registered anew each round: libpq opens a new socket for each address it tries.
        with selectors.DefaultSelector() as selector:
            selector.register(conn.fileno(), event)
            selector.select(left)


def connect(params: dict, deadline: float, options: str = "", application_name: str = APPLICATION_NAME):  # type: ignore[no-untyped-def]
    """An open psycopg2 connection (asynchronous, so autocommit) to I(params), ready by I(deadline).

    Raises DeadlineReached, psycopg2.Error or OSError (classified by pg_check.classify), or
    ValueError for unusable options. Callers check HAS_PSYCOPG2 first.
    """
    kwargs = connect_kwargs(params)
    conn = psycopg2.connect(application_name=application_name, options=options or None, async_=True, **kwargs)
    try:
        wait(conn, deadline)
    except BaseException:
        conn.close()
        raise
    return conn
