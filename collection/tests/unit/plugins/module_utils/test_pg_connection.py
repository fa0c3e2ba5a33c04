"""pg_connection: the common argument spec and the libpq keywords it becomes, one test per branch."""

from __future__ import annotations

import pytest
from ansible_collections.pivotal.flow_ops.plugins.module_utils import pg_check, pg_connection

BASE = {"login_host": "db.example", "login_port": 5433, "login_db": "app", "login_user": "ops"}


def test_the_spec_is_community_postgresqls_with_the_old_names_as_aliases() -> None:
    spec = pg_connection.postgres_common_argument_spec()
    assert set(spec) == {
        "login_host", "login_port", "login_user", "login_password", "login_db",
        "ssl_mode", "ca_cert", "ssl_cert", "ssl_key", "connect_params",
    }  # fmt: skip
    aliases = {name: spec[name].get("aliases", []) for name in spec}
    assert aliases["login_host"] == ["host"] and aliases["login_port"] == ["port"]
    assert aliases["login_user"] == ["user"] and aliases["login_password"] == ["password"]
    assert "database" in aliases["login_db"]
    assert spec["login_password"]["no_log"] is True
    assert spec["ssl_mode"]["default"] == "prefer" and "verify-full" in spec["ssl_mode"]["choices"]


def test_the_rb02_modules_require_a_role_and_a_database() -> None:
    spec = pg_connection.required_connection_spec()
    assert spec["login_user"]["required"] and spec["login_db"]["required"]
    assert not pg_connection.postgres_common_argument_spec()["login_user"].get("required")


def test_plain_options_become_libpq_keywords() -> None:
    assert pg_connection.connect_kwargs({**BASE, "login_password": "pw"}) == {
        "host": "db.example",
        "port": 5433,
        "dbname": "app",
        "user": "ops",
        "password": "pw",
        "sslmode": "prefer",
    }


def test_tls_files_and_mode_are_passed_and_connect_params_added() -> None:
    params = {
        **BASE,
        "ssl_mode": "verify-full",
        "ca_cert": "/ca.pem",
        "ssl_cert": "/c.pem",
        "ssl_key": "/k.pem",
        "connect_params": {"target_session_attrs": "read-write", "keepalives": 1},
    }
    kwargs = pg_connection.connect_kwargs(params)
    assert kwargs["sslmode"] == "verify-full"
    assert (kwargs["sslrootcert"], kwargs["sslcert"], kwargs["sslkey"]) == (
        "/ca.pem",
        "/c.pem",
        "/k.pem",
    )
    assert kwargs["target_session_attrs"] == "read-write" and kwargs["keepalives"] == "1"


@pytest.mark.parametrize("keyword", ["connect_timeout", "options", "sslmode", "async_", "password"])
def test_connect_params_may_not_take_over_what_the_module_sets(keyword: str) -> None:
    with pytest.raises(ValueError, match=f"connect_params may not set {keyword}"):
        pg_connection.connect_kwargs({**BASE, "connect_params": {keyword: "x"}})


def test_where_names_the_server() -> None:
    assert pg_connection.where(BASE) == "db.example:5433/app"
    assert pg_connection.where({"login_host": "h", "login_port": 1}) == "h:1"


def test_missing_driver_is_a_state_not_a_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    # What pg_connection records when `import psycopg2` failed on the target (a unit test: the
    # driver's absence is simulated, no service is involved).
    monkeypatch.setattr(pg_connection, "HAS_PSYCOPG2", False)
    pg = pg_check.check({"login_host": "127.0.0.1", "login_port": 1}, timeout=1.0)
    assert pg["state"] == "driver_missing" and pg["available"] is False and "psycopg2" in pg["msg"]
