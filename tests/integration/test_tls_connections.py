"""TLS for real (issue 17): a redis-server with tls-port and a PostgreSQL with ssl=on, both serving
a certificate signed by a throw-away CA, reached through the collection's one connect of each
service (redis_resp.open_socket, pg_connection.connect) with the new options: verification
against the CA passes, a wrong CA fails closed, and so do a missing client certificate and a
plaintext connection where the server wants TLS. One ansible-playbook run checks the options as
tasks spell them (aliases included), and RB-02 and RB-03 diagnose through the CLI from an
inventory that sets the roles' TLS variables: verify-full end to end, a wrong CA refused in one
line."""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from pflow_ops.sandbox.net import free_ports
from tests.integration.conftest import ROOT, Run, Stack
from tests.integration.test_plugin_dependency_check import (
    PG_BIN,
    _accepts,
    _stop,
    _unprivileged,
    _wait_until,
    run_playbook,
)

pytestmark = pytest.mark.integration

# Importable once test_plugin_dependency_check (above) has put the checkout's collections/ on
# sys.path.
from ansible_collections.pivotal.flow_ops.plugins.module_utils import (  # noqa: E402
    pg_check,
    pg_session,
    redis_client,
    redis_resp,
)

PASSWORD = "tls-S3cret-91"


@dataclass
class Pki:
    ca: Path
    wrong_ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _ca(common: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common))
        .issuer_name(_name(common))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _leaf(
    ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate], common: str, server: bool
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    ca_key, ca_cert = ca
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if server:
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


@pytest.fixture(scope="module")
def pki() -> Iterator[Pki]:
    workdir = Path(tempfile.mkdtemp(prefix="pfo-tls-", dir="/tmp"))
    try:
        ca = _ca("pflow-ops test CA")
        _wrong_key, wrong = _ca("pflow-ops other CA")
        server, server_key = _leaf(ca, "localhost", server=True)
        client, client_key = _leaf(ca, "app", server=False)
        files = {
            "ca": ca[1].public_bytes(serialization.Encoding.PEM),
            "wrong_ca": wrong.public_bytes(serialization.Encoding.PEM),
            "server_cert": server.public_bytes(serialization.Encoding.PEM),
            "server_key": _pem_key(server_key),
            "client_cert": client.public_bytes(serialization.Encoding.PEM),
            "client_key": _pem_key(client_key),
        }
        paths = {}
        for name, data in files.items():
            path = workdir / f"{name}.pem"
            path.write_bytes(data)
            path.chmod(0o600 if name.endswith("key") else 0o644)
            paths[name] = path
        yield Pki(**paths)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def tls_redis(pki: Pki) -> Iterator[int]:
    """redis-server on a TLS port only, asking clients for a certificate from the CA."""
    workdir = tempfile.mkdtemp(prefix="pfo-redis-tls-")
    (port,) = free_ports(1)
    args = ["--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1", "--save", ""]
    args += ["--tls-cert-file", str(pki.server_cert), "--tls-key-file", str(pki.server_key)]
    args += ["--tls-ca-cert-file", str(pki.ca), "--tls-auth-clients", "yes"]
    args += ["--dir", workdir, "--requirepass", PASSWORD, "--appendonly", "no"]
    proc = subprocess.Popen(["redis-server", *args], stdout=subprocess.DEVNULL)
    try:
        _wait_until(lambda: _accepts(port), proc, "redis (tls)")
        yield port
    finally:
        _stop(proc)
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def tls_postgres(pki: Pki) -> Iterator[int]:
    """PostgreSQL with ssl=on; pg_hba lets the app role in over TLS only."""
    workdir = Path(tempfile.mkdtemp(prefix="pfo-pg-tls-", dir="/tmp"))
    as_postgres = _unprivileged()
    data = workdir / "data"
    proc = None
    try:
        # The server reads its key as its own user, and refuses a key others may read.
        for name in ("server_cert.pem", "server_key.pem"):
            shutil.copy(pki.server_cert.parent / name, workdir / name)
        if as_postgres:
            for path in (workdir, workdir / "server_cert.pem", workdir / "server_key.pem"):
                shutil.chown(path, "postgres", "postgres")
        subprocess.run(
            [PG_BIN / "initdb", "-D", data, "-U", "postgres", "--auth=trust", "-N", "-E", "UTF8"],
            check=True,
            capture_output=True,
            cwd=workdir,
            **as_postgres,
        )
        (data / "pg_hba.conf").write_text(
            "local all all trust\n"
            "hostssl all app 127.0.0.1/32 scram-sha-256\n"
            "hostnossl all all 127.0.0.1/32 reject\n"
        )
        (port,) = free_ports(1)
        settings = {
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(workdir),
            "ssl": "on",
            "ssl_cert_file": str(workdir / "server_cert.pem"),
            "ssl_key_file": str(workdir / "server_key.pem"),
            "fsync": "off",
            "shared_buffers": "16MB",
        }
        with (workdir / "postgres.log").open("wb") as log:
            proc = subprocess.Popen(
                [PG_BIN / "postgres", "-D", data, "-p", str(port)]
                + [f"--{key}={value}" for key, value in settings.items()],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=workdir,
                **as_postgres,
            )

        def admin(dbname: str = "postgres") -> Any:
            return psycopg2.connect(host=str(workdir), port=port, user="postgres", dbname=dbname)

        _wait_until(lambda: admin().close() is None, proc, "postgres (ssl)")
        conn = admin()
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("CREATE ROLE app LOGIN PASSWORD %s", (PASSWORD,))
            cur.execute("CREATE DATABASE appdb OWNER app")
            # RB-02's settings step runs ALTER SYSTEM and the reload as this role: PostgreSQL 15
            # grants it per parameter, so pg_diagnose sees can_alter and the plan keeps it.
            cur.execute("GRANT ALTER SYSTEM ON PARAMETER work_mem TO app")
        conn.close()
        conn = admin("appdb")  # a function's privileges live in each database's catalog
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("GRANT EXECUTE ON FUNCTION pg_reload_conf() TO app")
        conn.close()
        yield port
    finally:
        if proc is not None:
            _stop(proc, signal.SIGINT)
        shutil.rmtree(workdir, ignore_errors=True)


def _redis(port: int, pki: Pki, **kw: Any) -> dict[str, Any]:
    base = {
        "host": "127.0.0.1",
        "port": port,
        "user": None,
        "password": PASSWORD,
        "timeout": 3.0,
        "tls": True,
        "validate_certs": True,
        "ca_certs": str(pki.ca),
        "client_cert_file": str(pki.client_cert),
        "client_key_file": str(pki.client_key),
    }
    return {**base, **kw}


def _pg(port: int, pki: Pki, **kw: Any) -> dict[str, Any]:
    base = {
        "login_host": "127.0.0.1",
        "login_port": port,
        "login_db": "appdb",
        "login_user": "app",
        "login_password": PASSWORD,
        "ssl_mode": "verify-full",
        "ca_cert": str(pki.ca),
    }
    return {**base, **kw}


def test_redis_tls_verified_against_the_ca(tls_redis: int, pki: Pki) -> None:
    result = redis_resp.check(_redis(tls_redis, pki), budget=3.0)
    assert result["state"] == "ok", result["msg"]
    conn, connectivity = redis_client.connect(_redis(tls_redis, pki))
    assert connectivity["state"] == "ok" and conn is not None, connectivity["msg"]
    with conn:
        assert conn.call("SET", "tls-probe", "1") == "OK"
        assert conn.call("GET", "tls-probe") == "1"


def test_redis_tls_fails_closed(tls_redis: int, pki: Pki) -> None:
    wrong = redis_resp.check(_redis(tls_redis, pki, ca_certs=str(pki.wrong_ca)), budget=3.0)
    assert (wrong["available"], wrong["state"]) == (False, "tls_failed")
    assert "CERTIFICATE_VERIFY_FAILED" in wrong["msg"], wrong["msg"]
    # The server asks for a client certificate: without one the handshake or PING fails.
    anonymous = _redis(tls_redis, pki, client_cert_file=None, client_key_file=None)
    assert redis_resp.check(anonymous, budget=3.0)["available"] is False
    # Plaintext to a TLS port is no answer Redis can give: never "ok".
    plaintext = _redis(tls_redis, pki, tls=False, ca_certs=None)
    plaintext.update(client_cert_file=None, client_key_file=None)
    assert redis_resp.check(plaintext, budget=1.0)["available"] is False
    # Certificates without tls=true are refused before anything is sent.
    refused = redis_resp.check(_redis(tls_redis, pki, tls=False), budget=1.0)
    assert refused["state"] == "error" and "given without tls=true" in refused["msg"]


def test_postgres_verify_full_against_the_ca(tls_postgres: int, pki: Pki) -> None:
    result = pg_check.check(_pg(tls_postgres, pki), timeout=5.0)
    assert result["state"] == "ok", result["msg"]
    session, conn = pg_session.open_session(
        _pg(tls_postgres, pki), connect_timeout=5.0, statement_timeout_s=5.0, read_only=True
    )
    assert session is not None, conn["msg"]
    try:
        assert (
            session.one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")["ssl"] is True
        )
    finally:
        session.close()


def test_postgres_tls_fails_closed(tls_postgres: int, pki: Pki) -> None:
    wrong = pg_check.check(_pg(tls_postgres, pki, ca_cert=str(pki.wrong_ca)), timeout=5.0)
    assert (wrong["available"], wrong["state"]) == (False, "tls_failed")
    assert "certificate verify failed" in wrong["msg"], wrong["msg"]
    # The server takes the app role over TLS only: sslmode=disable is turned away by pg_hba.
    plain = pg_check.check(_pg(tls_postgres, pki, ssl_mode="disable"), timeout=5.0)
    assert plain["state"] == "not_allowed", plain["msg"]
    # connect_params may not undo the module's own settings.
    clash = pg_check.check(_pg(tls_postgres, pki, connect_params={"sslmode": "disable"}))
    assert clash["state"] == "error" and "connect_params may not set sslmode" in clash["msg"]


PLAYBOOK = """
- name: Reach PostgreSQL and Redis over verified TLS
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Ping Redis over TLS (validate_tls, the alias)
      pivotal.flow_ops.redis_ping: {redis}
      register: ping

    - name: Check both with the common PostgreSQL options (old names as aliases)
      pivotal.flow_ops.dependency_check:
        postgres: {pg}
        redis: {redis}
      register: deps

    - name: Check PostgreSQL against the wrong CA
      pivotal.flow_ops.dependency_check:
        postgres: {wrong_pg}
      register: wrong
"""


def test_through_ansible_playbook(
    tls_postgres: int, tls_redis: int, pki: Pki, tmp_path: Path
) -> None:
    redis = _redis(tls_redis, pki)
    redis["validate_tls"] = redis.pop("validate_certs")
    pg = {
        "host": "127.0.0.1",
        "port": tls_postgres,
        "database": "appdb",
        "user": "app",
        "password": PASSWORD,
        "ssl_mode": "verify-full",
        "ssl_rootcert": str(pki.ca),
        "connect_timeout": 5.0,
    }
    wrong_pg = {**pg, "ssl_rootcert": str(pki.wrong_ca)}
    playbook = tmp_path / "tls.yml"
    playbook.write_text(
        PLAYBOOK.format(redis=json.dumps(redis), pg=json.dumps(pg), wrong_pg=json.dumps(wrong_pg))
    )
    proc = run_playbook(playbook)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    tasks = json.loads(proc.stdout)["plays"][0]["tasks"]
    ping, deps, wrong = (task["hosts"]["localhost"] for task in tasks)
    assert ping["state"] == "ok", ping["msg"]
    assert deps["available"] is True, deps["msg"]
    assert wrong["available"] is False and wrong["down"] == ["postgresql"]
    assert "certificate verify failed" in wrong["dependencies"]["postgresql"]["msg"]
    assert PASSWORD not in proc.stdout


# --- RB-02 and RB-03 through the CLI, with the roles' TLS variables from an inventory -------------

# No supervisord here: a TLS failure must be told without asking a service manager.
NO_MANAGER = "unix:///nonexistent/pfo-tls-supervisor.sock"


def _inventory(pg_port: int, redis_port: int, pki: Pki) -> dict[str, Any]:
    host_vars = {
        "ansible_connection": "local",
        "ansible_python_interpreter": "{{ ansible_playbook_python }}",
        "pflow_env": "tls",
        "database_host": "127.0.0.1",
        "database_port": pg_port,
        "database_name": "appdb",
        "database_user": "app",
        "database_password": PASSWORD,
        "database_ssl_mode": "verify-full",
        "database_ca_cert": str(pki.ca),
        "database_supervisor_server_url": NO_MANAGER,
        "cache_redis_host": "127.0.0.1",
        "cache_redis_port": redis_port,
        "cache_redis_password": PASSWORD,
        "cache_redis_tls": True,
        "cache_redis_ca_certs": str(pki.ca),
        "cache_redis_client_cert_file": str(pki.client_cert),
        "cache_redis_client_key_file": str(pki.client_key),
        "cache_supervisor_server_url": NO_MANAGER,
        "cache_sample_seconds": 1.0,
    }
    groups = {"pivotal_database": {"hosts": {"localhost": None}}}
    groups["pivotal_cache"] = {"hosts": {"localhost": None}}
    return {"all": {"children": groups, "vars": host_vars}}


@pytest.fixture(scope="module")
def tls_project(
    tls_postgres: int, tls_redis: int, pki: Pki, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """A project (the checkout's playbooks and collection) whose one environment, ``tls``, reaches
    the TLS-only servers; a throw-away PFLOW_OPS_HOME."""
    base = tmp_path_factory.mktemp("tls-project")
    project = base / "project"
    (project / "inventories" / "tls").mkdir(parents=True)
    for name in ("catalogue.yml", "ansible.cfg", "playbooks", "collections", "collection"):
        (project / name).symlink_to(ROOT / name)
    hosts = project / "inventories" / "tls" / "hosts.yml"
    hosts.write_text(json.dumps(_inventory(tls_postgres, tls_redis, pki), indent=1))
    env = {**os.environ, "PFLOW_OPS_HOME": str(base / "home"), "PFLOW_OPS_PROJECT": str(project)}
    yield Stack(home=base / "home", env={**env, "PYTHONPATH": str(ROOT)})


def _diagnose(stack: Stack, runbook: str, *extra: str) -> Run:
    return stack.cli("diagnose", runbook, "--env", "tls", "--output", "json", *extra)


def _checks(data: dict[str, Any]) -> dict[str, str]:
    return {f["check"]: f["status"] for f in data["findings"]}


@pytest.mark.parametrize(
    ("runbook", "ca_var", "first_words", "handshake"),
    [
        (
            "rb-02",
            "database_ca_cert",
            "PostgreSQL answered but TLS failed",
            "certificate verify failed",
        ),
        (
            "rb-03",
            "cache_redis_ca_certs",
            "Redis answered but TLS failed",
            "CERTIFICATE_VERIFY_FAILED",
        ),
    ],
)
def test_diagnose_over_verified_tls_and_a_wrong_ca(
    tls_project: Stack, pki: Pki, runbook: str, ca_var: str, first_words: str, handshake: str
) -> None:
    """RB-02 with sslmode verify-full, RB-03 with TLS and a client certificate: both diagnose
    (connectivity ok); with the other CA both refuse (exit 4, escalate, nothing changed) in one
    line that says TLS failed and why, and neither restarts anything."""
    run = _diagnose(tls_project, runbook)
    data = run.json
    assert _checks(data)["connectivity"] == "ok", data["reason"]
    assert data["outcome"] != "error", data["reason"]

    wrong = _diagnose(tls_project, runbook, "-e", f"{ca_var}={pki.wrong_ca}")
    data = wrong.json
    assert (wrong.rc, data["outcome"], data["changed"]) == (4, "escalate", 0), data["reason"]
    assert data["reason"].startswith(first_words), data["reason"]
    assert handshake in data["reason"] and "\n" not in data["reason"]
    assert PASSWORD not in run.stdout + run.stderr + wrong.stdout + wrong.stderr


def _show_work_mem(port: int, pki: Pki) -> str:
    """work_mem as a new session sees it, over verified TLS."""
    conn = psycopg2.connect(
        host="127.0.0.1",
        port=port,
        dbname="appdb",
        user="app",
        password=PASSWORD,
        sslmode="verify-full",
        sslrootcert=str(pki.ca),
    )
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW work_mem")
            return str(cur.fetchone()[0])
    finally:
        conn.close()


def test_rb02_sets_work_mem_through_postgresql_alter_system(
    tls_project: Stack, tls_postgres: int, pki: Pki
) -> None:
    """community.postgresql's own test sequence, through the CLI and over verify-full TLS: check
    mode says what it would do and changes nothing; the real run changes it and the value is in
    effect for a new session; a second run has nothing to do."""
    before = _show_work_mem(tls_postgres, pki)
    assert before != "8MB"
    want = ("--output", "json", "-e", "database_desired_settings={work_mem: 8MB}")

    dry = tls_project.cli("recover", "rb-02", "--env", "tls", "--check", *want)
    data = dry.json
    sets = [a for a in data["actions"] if a["action"] == "set"]
    assert [a["target"] for a in sets] == ["work_mem"], data["actions"]
    assert sets[0]["result"].startswith("would ALTER SYSTEM SET work_mem = 8MB"), sets[0]
    assert data["outcome"] == "escalate" and "check mode" in data["reason"]
    assert _show_work_mem(tls_postgres, pki) == before

    real = tls_project.cli("recover", "rb-02", "--env", "tls", *want)
    data = real.json
    assert data["outcome"] == "recovered", data["reason"]
    sets = [a for a in data["actions"] if a["action"] == "set"]
    assert sets[0]["result"].startswith("applied (ALTER SYSTEM + pg_reload_conf"), sets[0]
    assert (sets[0]["before"], sets[0]["after"]) == (before, "8MB")
    assert _show_work_mem(tls_postgres, pki) == "8MB"

    again = tls_project.cli("recover", "rb-02", "--env", "tls", *want)
    data = again.json
    assert (again.rc, data["outcome"], data["changed"]) == (0, "healthy", 0), data["reason"]
    assert [a for a in data["actions"] if a["action"] == "set"] == []
    assert PASSWORD not in dry.stdout + real.stdout + again.stdout + again.stderr
