"""The coordination store's pure parts, branch by branch: the settings (URL, TLS, credentials,
lock TTL) and what they refuse, key names, TTLs, refusal lines, and the etcd transaction
response mapping. The backends themselves run against real stores in
tests/integration/test_coordination.py."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from ansible_collections.pivotal.flow_ops.plugins.module_utils import coordination as co

URL = co.URL_VAR
etcd = co.sibling("coordination_etcd")


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize("value", [None, "", "file"])
def test_file_is_the_default(value: Any) -> None:
    settings = co.parse({URL: value}, environ={})
    assert settings.is_file and settings.name() == "file" and settings.lock_ttl == 15


def test_an_etcd_url_with_its_defaults() -> None:
    s = co.parse({URL: "etcd://10.0.0.5"}, environ={})
    assert (s.scheme, s.host, s.port, s.user, s.ca_cert) == ("etcd", "10.0.0.5", 2379, None, None)
    assert s.name() == "etcd://10.0.0.5:2379"


def test_etcds_with_tls_files_and_an_ipv6_host() -> None:
    s = co.parse(
        {
            URL: "etcds://[::1]:2380/",
            co.CA_CERT_VAR: "/etc/pki/ca.pem",
            co.CLIENT_CERT_VAR: "/etc/pki/c.pem",
            co.CLIENT_KEY_VAR: "/etc/pki/c.key",
        },
        environ={},
    )
    assert (s.host, s.port, s.ca_cert, s.client_cert, s.client_key) == (
        "::1",
        2380,
        "/etc/pki/ca.pem",
        "/etc/pki/c.pem",
        "/etc/pki/c.key",
    )
    assert s.name() == "etcds://[::1]:2380"


@pytest.mark.parametrize(
    ("values", "refusal"),
    [
        ({URL: "redis://h:1"}, "use file, etcd://HOST:PORT or etcds://HOST:PORT"),
        ({URL: "h:2379"}, "use file, etcd://HOST:PORT"),
        ({URL: "etcd://root:pw@h:2379"}, "carries credentials"),
        ({URL: "etcd://root@h"}, "carries credentials"),
        ({URL: "etcd://h:2379/v3"}, "only scheme, host and port"),
        ({URL: "etcd://h:2379?x=1"}, "only scheme, host and port"),
        ({URL: "etcd://h:99999"}, "port is not a number"),
        ({URL: "etcd://:2379"}, "names no host"),
        ({URL: "{{ lookup('env', 'X') }}"}, "is a template"),
        ({URL: "etcd://{{ alert.labels.host }}:2379"}, "is a template"),
        ({URL: 2379}, "must be a string"),
        ({URL: "etcd://h", co.CA_CERT_VAR: "/ca.pem"}, "use etcds:// for TLS"),
        ({URL: "etcds://h", co.CLIENT_CERT_VAR: "/c.pem"}, "go together"),
        ({URL: "etcds://h", co.CLIENT_KEY_VAR: "/c.key"}, "go together"),
        ({URL: "etcd://h", co.USER_VAR: "root"}, "need both a user and a password"),
        ({URL: "etcd://h", co.PASSWORD_VAR: "pw"}, "need both a user and a password"),
        ({URL: "etcd://h", co.PASSWORD_VAR: "{{ vault_pw }}", co.USER_VAR: "u"}, "is a template"),
        ({co.LOCK_TTL_VAR: 1}, "between 2 and 3600"),
        ({co.LOCK_TTL_VAR: 3601}, "between 2 and 3600"),
        ({co.LOCK_TTL_VAR: "soon"}, "whole number of seconds"),
        ({co.LOCK_TTL_VAR: True}, "between 2 and 3600"),
    ],
)
def test_settings_that_are_not_literally_valid_refuse(values: dict[str, Any], refusal: str) -> None:
    with pytest.raises(co.CoordinationError, match=None) as caught:
        co.parse(values, environ={})
    assert refusal in str(caught.value) and "\n" not in str(caught.value)


def test_credentials_from_vars_or_the_environment_never_shown() -> None:
    from_vars = co.parse({URL: "etcd://h", co.USER_VAR: "ops", co.PASSWORD_VAR: "s3cret"}, {})
    from_env = co.parse({URL: "etcd://h"}, {co.USER_ENV: "ops", co.PASSWORD_ENV: "s3cret"})
    for s in (from_vars, from_env):
        assert (s.user, s.password) == ("ops", "s3cret")
        assert "s3cret" not in repr(s) and "s3cret" not in s.name() and "ops" in repr(s)
    assert "s3cret" not in co.unavailable_line(from_vars, "timed out")


def test_a_vault_value_is_decrypted_by_str_not_templated() -> None:
    class EncryptedString:  # stands for Ansible 2.19's vault type (not a str subclass)
        def __init__(self, text: str) -> None:
            self.text = text

        def __str__(self) -> str:
            return self.text

    for secret in ("s3cret", " s3cret {{ looks like a template }} "):
        s = co.parse(
            {URL: "etcd://h", co.USER_VAR: "ops", co.PASSWORD_VAR: EncryptedString(secret)}, {}
        )
        assert s.password == secret, "the decrypted secret, as it is"
    s = co.parse({URL: "etcd://h", co.USER_VAR: "ops", co.PASSWORD_VAR: " pw "}, {})
    assert s.password == " pw ", "a password is never stripped"


def test_settings_values_reads_only_the_coordination_vars_raw() -> None:
    raw = {URL: "etcd://h", "pflow_env": "prod", co.PASSWORD_VAR: "{{ x }}", co.USER_VAR: None}
    assert co.settings_values(raw) == {URL: "etcd://h", co.PASSWORD_VAR: "{{ x }}"}


@pytest.mark.parametrize(
    ("ttl", "expected"), [(None, 15), ("", 15), (2, 2), ("30", 30), (3600, 3600)]
)
def test_lock_ttl(ttl: Any, expected: int) -> None:
    assert co.lock_ttl(ttl) == expected


@pytest.mark.parametrize(("seconds", "ttl"), [(0, 2), (1.2, 2), (1800, 1800), (86400.1, 86401)])
def test_lease_ttl_never_ends_before_the_retention(seconds: float, ttl: int) -> None:
    assert co.lease_ttl(seconds) == ttl


@pytest.mark.parametrize(("ttl", "every"), [(15, 5.0), (2, 2 / 3), (1, 0.5)])
def test_keepalive_gives_three_chances_before_expiry(ttl: int, every: float) -> None:
    assert co.keepalive_interval(ttl) == pytest.approx(every)


@pytest.mark.parametrize("name", ["", "a/b", "../x", "-x", "a b", "x" * 129, None, "é"])
def test_key_components_refuse_anything_but_plain_names(name: Any) -> None:
    with pytest.raises(co.CoordinationError):
        co.lock_key(name, "database")
    with pytest.raises(co.CoordinationError):
        co.leader_key("prod", name)


def test_key_names() -> None:
    assert co.lock_key("prod", "database") == "/pflow-ops/locks/prod/database"
    assert co.leader_key("prod", "receiver") == "/pflow-ops/leaders/prod/receiver"
    assert co.budget_prefix("prod/db1/database") == "/pflow-ops/budget/prod%2Fdb1%2Fdatabase/"
    # quoting: no key's prefix contains another key's
    assert not co.budget_prefix("a/b").startswith(co.budget_prefix("a"))
    with pytest.raises(co.CoordinationError):
        co.budget_prefix("")


@pytest.mark.parametrize(
    ("record", "line"),
    [
        ({"run_id": "r1", "pid": 7}, "run r1, pid 7"),
        ({"run_id": "r1", "pid": 7, "host": "ctl-2"}, "run r1, pid 7 on ctl-2"),
        ({"pid": 7}, "run ?, pid 7"),
        ({}, "holder unknown"),
        (None, "holder unknown"),
        ("junk", "holder unknown"),
    ],
)
def test_holder_line(record: Any, line: str) -> None:
    assert co.holder_line(record) == line


def test_refusal_lines_name_what_and_who() -> None:
    assert co.held_line("prod-database", {"run_id": "r", "pid": 1}) == (
        "another recovery is running for prod-database (run r, pid 1); "
        "wait for it to finish or check `pflow-ops history`"
    )
    assert co.hold_line("prod-database", {}).startswith(
        "processes of an earlier run still act on prod-database (holder unknown)"
    )
    s = co.parse({URL: "etcds://h:1"}, {})
    line = co.unavailable_line(s, "[Errno 111] Connection refused")
    assert line.startswith(
        "coordination store etcds://h:1 unreachable ([Errno 111] Connection refused)"
    )
    assert "refused, nothing was changed" in line and co.URL_VAR in line
    assert co.unavailable_line(s, "etcdserver: permission denied", reached=True).startswith(
        "coordination store etcds://h:1 answered with an error (etcdserver: permission denied)"
    )


@pytest.mark.parametrize(
    ("text", "short"),
    [
        (
            "HTTPConnectionPool(host='h', port=1): Max retries exceeded with url: /v3/kv/txn "
            "(Caused by NewConnectionError('<urllib3.connection.HTTPConnection object>: Failed "
            "to establish a new connection: [Errno 111] Connection refused'))",
            "[Errno 111] Connection refused",
        ),
        ("HTTPConnectionPool(host='h', port=1): Read timed out. (read timeout=5.0)", "timed out"),
        (
            "HTTPSConnectionPool(host='127.0.0.1', port=1): Max retries exceeded with url: "
            "/v3/kv/txn (Caused by SSLError(SSLCertVerificationError(1, '[SSL: "
            "CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate "
            "in certificate chain (_ssl.c:1006)')))",
            "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed "
            "certificate in certificate chain (_ssl.c:1006",
        ),
        (
            '{"error":"etcdserver: user name is empty","message":"etcdserver: user name is empty",'
            '"code":3}',
            "etcdserver: user name is empty",
        ),
        ("etcdserver: plain text", "etcdserver: plain text"),
        (
            "HTTPSConnectionPool(host='127.0.0.1', port=1): Max retries exceeded with url: "
            "/v3/kv/txn (Caused by SSLError(SSLEOFError(8, 'EOF occurred in violation of "
            "protocol (_ssl.c:2427)')))",
            "SSLEOFError: EOF occurred in violation of protocol (_ssl.c:2427)",
        ),
        (
            "('Connection aborted.', RemoteDisconnected('Remote end closed connection without "
            "response'))",
            "RemoteDisconnected: Remote end closed connection without response",
        ),
        ("x" * 300, "x" * 200),
    ],
)
def test_short_reason(text: str, short: str) -> None:
    assert co.short_reason(text) == short


# -- etcd transaction responses (the gateway's JSON) ---------------------------------------


def test_txn_kvs_and_mod_revision() -> None:
    kv = {"key": _b64("k"), "mod_revision": "42", "value": _b64("v")}
    response = {"responses": [{"response_range": {"kvs": [kv]}}, {"response_range": {}}]}
    assert etcd.txn_kvs(response, 0) == [kv] and etcd.txn_kvs(response, 1) == []
    assert etcd.txn_kvs(response, 2) == [] and etcd.txn_kvs({}, 0) == []
    assert etcd.mod_revision([kv]) == 42 and etcd.mod_revision([]) == 0


def test_range_end_is_the_prefix_with_its_last_byte_incremented() -> None:
    assert base64.b64decode(etcd._range_end("/p/a/")) == b"/p/a0"


def test_parse_entries_keeps_entries_and_names_the_bad_values() -> None:
    good = {"ts": 1.5, "reason": "r", "override": False}
    kvs = [
        {"key": _b64("/b/1"), "value": _b64(json.dumps(good))},
        {"key": _b64("/b/2"), "value": _b64("not json")},
        {"key": _b64("/b/3"), "value": _b64(json.dumps({"ts": "soon"}))},
        {"key": _b64("/b/4"), "value": _b64(json.dumps([1]))},
    ]
    entries, bad = etcd.parse_entries(kvs)
    assert entries == [good]
    assert [name for name, _raw in bad] == ["/b/2", "/b/3", "/b/4"]
    assert bad[0][1] == "not json"


def test_record_of_a_lock_value() -> None:
    assert etcd._record([{"value": _b64('{"run_id": "r"}')}]) == {"run_id": "r"}
    assert etcd._record([{"value": _b64("garbage")}]) == {}
    assert etcd._record([{"value": _b64("[1]")}]) == {}
    assert etcd._record([]) == {}


@pytest.mark.parametrize(
    ("names", "refusal"),
    [
        ([], ""),
        (None, ""),
        (["database_soak_seconds", "pflow_run_id"], ""),
        (["pflow_env"], "run lock environment cannot be set per run (-e pflow_env)"),
        (["database_env", "pflow_env", "x"], "(-e database_env, pflow_env)"),
    ],
)
def test_per_run_env_refusal(names: Any, refusal: str) -> None:
    line = co.per_run_env_refusal(names)
    assert (refusal in line) if refusal else line == ""
