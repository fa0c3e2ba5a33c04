"""The coordination store's guarantees, tested once against both backends: ``file`` (one
machine's $PFLOW_OPS_HOME) and ``etcd`` (a real etcd-server started for the session on free
loopback ports). Every case goes through the real entry points: ansible-playbook running the
collection's restart_budget and run_lock action plugins (the store chosen by the inventory's
``pflow_coordination_url``), and the CLI's RunLock (the store read from the environment's
inventory). "Two controllers" are two PFLOW_OPS_HOMEs: with etcd they share one store; with the
file backend they are two processes of one home (one machine), and two homes do not share.
Assertions are on behaviour, with polling and generous deadlines, never on timings.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from pflow_ops import coordination
from pflow_ops.errors import RefusedError
from pflow_ops.lock import LockHeld, RunLock
from pflow_ops.sandbox.net import free_ports
from tests.integration import etcd_server
from tests.plugins import load_plugin

ROOT = Path(__file__).resolve().parents[2]
ENV, SERVICE = "it", "database"
KEY = f"{ENV}/localhost/{SERVICE}"
MAX = 3

pytestmark = pytest.mark.skipif(not etcd_server.available(), reason="etcd-server is not installed")


@dataclass
class Controller:
    """One controller: its own PFLOW_OPS_HOME, the shared project (inventory), one store URL."""

    home: Path
    project: Path
    url: str

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "PFLOW_OPS_HOME": str(self.home),
            "PFLOW_OPS_PROJECT": str(self.project),
            "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
            "ANSIBLE_NOCOLOR": "1",
            "PYTHONPATH": str(ROOT),
        }

    def store(self) -> Any:
        config = coordination.settings({coordination._engine.URL_VAR: self.url})
        return coordination.open_store(config, self.home)

    def playbook(self, tasks: list[dict[str, Any]], name: str = "play") -> dict[str, Any]:
        """Run ``tasks`` with ansible-playbook against the project's inventory; the result of
        each registered task comes back from a JSON file the play writes."""
        self.home.mkdir(parents=True, exist_ok=True)
        out = self.home / f"{name}.json"
        play = [
            {
                "name": "Coordination test",
                "hosts": "all",
                "gather_facts": False,
                "tasks": [
                    *tasks,
                    {
                        "name": "Write what the tasks returned",
                        "ansible.builtin.copy": {
                            "content": "{{ {'results': results | default({})} | to_json }}",
                            "dest": str(out),
                            "mode": "0600",
                        },
                    },
                ],
            }
        ]
        book = self.home / f"{name}.yml"
        book.write_text(yaml.safe_dump(play, sort_keys=False))
        proc = self.ansible_playbook(book)
        assert proc.wait(timeout=180) == 0, proc.stdout.read() if proc.stdout else ""
        data: dict[str, Any] = json.loads(out.read_text())["results"]
        return data

    def ansible_playbook(self, book: Path, *extra: str) -> subprocess.Popen[str]:
        self.home.mkdir(parents=True, exist_ok=True)
        inventory = self.project / "inventories" / ENV / "hosts.yml"
        ansible_playbook = str(Path(sys.executable).parent / "ansible-playbook")
        cmd = [ansible_playbook, "-i", str(inventory), *extra, str(book)]
        return subprocess.Popen(
            cmd, cwd=ROOT, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )

    def budget(self, *asks: dict[str, Any]) -> list[dict[str, Any]]:
        """One ansible-playbook run (a new controller process) asking the budget once per
        ``asks`` item (restart_budget options over a consume of KEY); the results in order."""
        tasks: list[dict[str, Any]] = []
        for n, ask in enumerate(asks or ({},)):
            options = {"key": KEY, "state": "consume", "max_restarts": MAX, "window_seconds": 600}
            tasks += [
                {
                    "name": f"Ask the budget ({n})",
                    "pivotal.flow_ops.restart_budget": {**options, **ask},
                    "register": "b",
                },
                {
                    "name": f"Keep answer {n}",
                    "ansible.builtin.set_fact": {
                        "results": "{{ results | default({}) | combine({'a" + str(n) + "': b}) }}"
                    },
                },
            ]
        got = self.playbook(tasks)
        return [dict(got[f"a{n}"]) for n in range(len(asks or ({},)))]

    def seed(self, count: int) -> None:
        """``count`` restarts taken in-process (through the plugin's evaluate, as a run would)."""
        rb = load_plugin("restart_budget", kind="action")
        for _ in range(count):
            assert rb.evaluate(self.store(), KEY, max_restarts=MAX, consume=True)["allowed"]


def _project(root: Path, values: dict[str, Any]) -> Path:
    """A project whose inventory names the store: the collection linked from the checkout."""
    project = root / "project"
    (project / "inventories" / ENV).mkdir(parents=True)
    (project / "collection").symlink_to(ROOT / "collection")
    inventory = {
        "all": {
            "hosts": {"localhost": None},
            "vars": {
                "ansible_connection": "local",
                "ansible_python_interpreter": "{{ ansible_playbook_python }}",
                "pflow_env": ENV,
                **values,
            },
        }
    }
    (project / "inventories" / ENV / "hosts.yml").write_text(yaml.safe_dump(inventory))
    return project


@pytest.fixture(params=["file", "etcd"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def controllers(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Controller, Controller]:
    """Two controllers of one environment. etcd: two homes, one etcd, its keys fresh per test
    (a prefix of its own is not needed: each test wipes /pflow-ops/). file: one home."""
    if backend == "etcd":
        server: etcd_server.EtcdServer = request.getfixturevalue("etcd")
        url = server.url
        values = {"pflow_coordination_url": url, "pflow_coordination_lock_ttl": 2}
    else:
        url, values = "file", {}
    project = _project(tmp_path, values)
    monkeypatch.setenv("PFLOW_OPS_PROJECT", str(project))
    one = Controller(tmp_path / "home-a", project, url)
    two = Controller(tmp_path / ("home-b" if backend == "etcd" else "home-a"), project, url)
    monkeypatch.setenv("PFLOW_OPS_HOME", str(one.home))
    if backend == "etcd":
        one.store().client.delete_prefix("/pflow-ops/")
    return one, two


def _entries(controller: Controller) -> list[dict[str, Any]]:
    """The budget entries of KEY as the store holds them (read raw, not through the plugin)."""
    store = controller.store()
    if controller.url == "file":
        path = controller.home / "budget" / "restarts.json"
        data = json.loads(path.read_text()) if path.exists() else {"keys": {}}
        return list(data["keys"].get(KEY, []))
    prefix = coordination._engine.budget_prefix(KEY)
    return [json.loads(value) for value, _meta in store.client.get_prefix(prefix)]


def _wait_for(check: Callable[[], bool], what: str, deadline_s: float = 60.0) -> None:
    deadline = time.monotonic() + deadline_s
    while not check():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.05)


# -- budget --------------------------------------------------------------------------------


def test_budget_refused_at_max_and_survives_a_controller_restart(
    controllers: tuple[Controller, Controller],
) -> None:
    one, _ = controllers
    taken = one.budget({}, {}, {})
    assert [t["allowed"] for t in taken] == [True] * MAX and [t["used"] for t in taken] == [1, 2, 3]
    spent, check = one.budget({}, {"state": "check"})  # a new ansible-playbook process
    assert spent["allowed"] is False and spent["refusal"].startswith("restart budget spent: 3 of 3")
    assert check["remaining"] == 0 and check["allowed"] is False
    assert len(_entries(one)) == MAX


def test_budget_is_shared_by_two_controllers(controllers: tuple[Controller, Controller]) -> None:
    one, two = controllers
    assert all(t["allowed"] for t in one.budget({}, {}, {}))
    [refused] = two.budget()
    assert refused["allowed"] is False and refused["used"] == MAX, refused


def test_two_homes_on_the_file_backend_do_not_share(tmp_path: Path) -> None:
    """Why etcd exists: two controllers with their own file store count separately."""
    project = _project(tmp_path, {})
    one = Controller(tmp_path / "a", project, "file")
    two = Controller(tmp_path / "b", project, "file")
    rb = load_plugin("restart_budget", kind="action")
    for _ in range(MAX):
        assert rb.evaluate(one.store(), KEY, max_restarts=MAX, consume=True)["allowed"]
    assert rb.evaluate(two.store(), KEY, max_restarts=MAX, consume=True)["used"] == 1


def test_override_is_recorded_in_the_store(controllers: tuple[Controller, Controller]) -> None:
    one, two = controllers
    one.seed(MAX)
    [over] = two.budget({"override": True, "override_reason": "INC-9 database down, by hand"})
    assert over["allowed"] is True and over["overridden"] is True, over
    recorded = [e for e in _entries(one) if e.get("override")]
    assert recorded == [
        {
            "ts": recorded[0]["ts"],
            "reason": None,
            "override": True,
            "override_reason": "INC-9 database down, by hand",
        }
    ]
    assert len(_entries(one)) == MAX + 1, "the override counts"


def _consume(home: str, project: str, url: str, out: Any) -> None:
    os.environ["PFLOW_OPS_HOME"] = home
    rb = load_plugin("restart_budget", kind="action")
    store = Controller(Path(home), Path(project), url).store()
    out.put(rb.evaluate(store, KEY, max_restarts=MAX, consume=True)["allowed"])


def test_concurrent_consumers_on_two_controllers_take_exactly_max(
    controllers: tuple[Controller, Controller],
) -> None:
    """20 processes, half on each controller, all at once: exactly MAX restarts allowed."""
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    procs = [
        ctx.Process(target=_consume, args=(str(c.home), str(c.project), c.url, out))
        for c in controllers * 10
    ]
    for proc in procs:
        proc.start()
    allowed = [out.get(timeout=120) for _ in procs]
    for proc in procs:
        proc.join(60)
    assert allowed.count(True) == MAX and len(allowed) == 20
    assert len(_entries(controllers[0])) == MAX


def test_unreachable_store_refuses_and_changes_nothing(
    backend: str, controllers: tuple[Controller, Controller], tmp_path: Path
) -> None:
    """etcd on a dead port: refused naming the store. file: its unreadable state refuses."""
    one, _ = controllers
    if backend == "etcd":
        dead = f"etcd://127.0.0.1:{free_ports(1)[0]}"
        project = _project(tmp_path / "dead", {"pflow_coordination_url": dead})
        ctl = Controller(tmp_path / "dead-home", project, dead)
        refused, override = ctl.budget({}, {"override": True, "override_reason": "INC-1"})
        assert refused["allowed"] is False and refused["changed"] is False
        assert refused["refusal"].startswith(f"coordination store {dead} unreachable (")
        assert "refused, nothing was changed" in refused["refusal"]
        assert override["allowed"] is False, "an override cannot be recorded: still refused"
        with pytest.raises(RefusedError, match=f"coordination store {dead} unreachable"):
            RunLock(ENV, SERVICE, "r", store=ctl.store()).acquire()
        assert not (ctl.home / "budget").exists() and not (ctl.home / "locks").exists()
    else:
        (one.home / "budget" / "restarts.json").mkdir(parents=True)  # EISDIR on read
        [refused] = one.budget()
        assert (
            refused["allowed"] is False and "restart budget state unreadable" in refused["refusal"]
        )


def test_corrupt_state_refuses_is_kept_aside_and_an_override_starts_afresh(
    backend: str, controllers: tuple[Controller, Controller]
) -> None:
    one, two = controllers
    one.seed(1)
    if backend == "etcd":
        one.store().client.put(coordination._engine.budget_prefix(KEY) + "bad", "not json")
    else:
        (one.home / "budget" / "restarts.json").write_text("garbage")
    refused, again, fresh = two.budget({}, {}, {"override": True, "override_reason": "INC-3 lost"})
    assert refused["allowed"] is False and "restart budget state unreadable" in refused["refusal"]
    assert "kept as" in refused["refusal"]
    assert again["refusal"] == refused["refusal"], "still refused, kept aside once"
    assert fresh["allowed"] is True and fresh["used"] == 1
    assert [e["override_reason"] for e in _entries(one)] == ["INC-3 lost"]


# -- run lock ------------------------------------------------------------------------------

HOLDER = textwrap.dedent(
    """
    import sys, time
    from pflow_ops.lock import RunLock
    RunLock(sys.argv[1], sys.argv[2], "victim").acquire()
    print("held", flush=True)
    time.sleep(600)
    """
)


def test_lock_refuses_a_second_holder_and_frees_when_the_holder_is_killed(
    controllers: tuple[Controller, Controller],
) -> None:
    one, two = controllers
    victim = subprocess.Popen(
        [sys.executable, "-c", HOLDER, ENV, SERVICE],
        env=one.env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert victim.stdout is not None and victim.stdout.readline().strip() == "held"
        other = RunLock(ENV, SERVICE, "other", directory=two.home / "locks")
        with pytest.raises(LockHeld, match="another recovery is running for it-database"):
            other.acquire()
        assert (other.store().holder(ENV, SERVICE) or {}).get("run_id") == "victim"
        victim.send_signal(signal.SIGKILL)
        victim.wait(30)

        def free() -> bool:
            try:
                other.acquire()
            except LockHeld:
                return False
            return True

        _wait_for(free, "the killed holder's lock is free (flock closed / lease expired)")
        assert (other.store().holder(ENV, SERVICE) or {}).get("run_id") == "other"
        other.release()
        assert other.store().holder(ENV, SERVICE) is None
    finally:
        victim.kill()
        victim.wait()


def test_leader_is_the_same_lock_primitive(controllers: tuple[Controller, Controller]) -> None:
    one, two = controllers
    first = one.store().leader(ENV, "receiver", {"run_id": "receiver-a", "pid": os.getpid()}, 2)
    with pytest.raises(coordination.Held, match="leader it/receiver"):
        two.store().leader(ENV, "receiver", {"run_id": "receiver-b", "pid": os.getpid()}, 2)
    first.release()
    two.store().leader(ENV, "receiver", {"run_id": "receiver-b", "pid": os.getpid()}, 2).release()


def _lock_play(controller: Controller, gate: Path) -> Path:
    play = [
        {
            "name": "A playbook started without the CLI takes the run lock",
            "hosts": "all",
            "gather_facts": False,
            "tasks": [
                {
                    "name": "Take the run lock",
                    "pivotal.flow_ops.run_lock": {
                        "state": "acquired",
                        "env": ENV,
                        "service": SERVICE,
                    },
                },
                {
                    "name": "Work while holding it",
                    "ansible.builtin.wait_for": {"path": str(gate), "timeout": 300},
                },
                {
                    "name": "Release the run lock",
                    "pivotal.flow_ops.run_lock": {
                        "state": "released",
                        "env": ENV,
                        "service": SERVICE,
                    },
                },
            ],
        }
    ]
    book = controller.home / "lock.yml"
    controller.home.mkdir(parents=True, exist_ok=True)
    book.write_text(yaml.safe_dump(play, sort_keys=False))
    return book


@pytest.mark.parametrize("end", ["released", "killed"])
def test_a_playbook_takes_the_cli_lock_and_lets_go(
    controllers: tuple[Controller, Controller], tmp_path: Path, end: str
) -> None:
    """run_lock in plain ansible-playbook on one controller: the CLI's RunLock on the other is
    refused while the play works; free after the play releases it, or after it is SIGKILLed."""
    one, two = controllers
    gate = tmp_path / "gate"
    play = one.ansible_playbook(_lock_play(one, gate))
    cli = RunLock(ENV, SERVICE, "cli-run", directory=two.home / "locks")
    try:
        _wait_for(
            lambda: (cli.store().holder(ENV, SERVICE) or {}).get("by") == "run_lock",
            "the play holds the lock",
        )
        assert str(cli.store().holder(ENV, SERVICE)["run_id"]).startswith("ansible-playbook-")
        with pytest.raises(LockHeld, match="another recovery is running for it-database"):
            cli.acquire()
        if end == "released":
            gate.touch()
            assert play.wait(180) == 0, play.stdout.read() if play.stdout else ""
            assert cli.store().holder(ENV, SERVICE) is None
        else:
            play.send_signal(signal.SIGKILL)
            play.wait(30)
            _wait_for(lambda: cli.store().holder(ENV, SERVICE) is None, "the lock is let go")
        cli.acquire()
        cli.release()
    finally:
        gate.touch()
        if play.poll() is None:
            play.kill()
        play.wait()


# -- credentials ---------------------------------------------------------------------------

AUTH_PASSWORD = "s3cret {{ not a template }}"  # a vault value is the secret as it is


@pytest.fixture(scope="module")
def etcd_auth() -> Iterator[etcd_server.EtcdServer]:
    """An etcd of its own with authentication on (a global switch: not the shared one)."""
    with etcd_server.running() as server:
        etcd_server.enable_auth(server, "root", AUTH_PASSWORD)
        yield server


def _vault(tmp_path: Path, name: str, secret: str) -> tuple[Path, str]:
    """A vault password file and ``name: !vault |...`` for ``secret`` (ansible-vault itself)."""
    password_file = tmp_path / "vault-pass"
    password_file.write_text("vault-test-pass\n")
    password_file.chmod(0o600)
    out = subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-vault"),
            "encrypt_string",
            "--vault-password-file",
            str(password_file),
            "--name",
            name,
            secret,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return password_file, out.stdout


LOCK_PROBE = textwrap.dedent(
    """
    import sys
    from pflow_ops.errors import RefusedError
    from pflow_ops.lock import RunLock
    lock = RunLock(sys.argv[1], sys.argv[2], "probe")
    try:
        lock.acquire()
    except RefusedError as exc:
        print("refused:", exc)
    else:
        print("held:", lock.store().holder(sys.argv[1], sys.argv[2])["run_id"])
        lock.release()
    """
)


def test_credentials_from_a_vault_var_work_and_bad_ones_refuse(
    etcd_auth: etcd_server.EtcdServer, tmp_path: Path
) -> None:
    """The password as an inline vault value in group_vars: the CLI's inventory reader and the
    action plugin both decrypt it, never template it, never pass it on argv. No credentials or
    a wrong password refuse with etcd's own reason."""
    password_file, vaulted = _vault(tmp_path, "pflow_coordination_password", AUTH_PASSWORD)
    project = _project(tmp_path, {})
    group_vars = project / "inventories" / ENV / "group_vars"
    group_vars.mkdir()
    (group_vars / "all.yml").write_text(
        f"pflow_coordination_url: {etcd_auth.url}\npflow_coordination_user: root\n{vaulted}"
    )
    ctl = Controller(tmp_path / "home", project, etcd_auth.url)
    env = {**ctl.env, "ANSIBLE_VAULT_PASSWORD_FILE": str(password_file)}
    probe = [sys.executable, "-c", LOCK_PROBE, ENV, SERVICE]
    said = subprocess.run(probe, env=env, capture_output=True, text=True, timeout=120)
    assert said.stdout.strip() == "held: probe", said.stdout + said.stderr
    lock = {"env": ENV, "service": SERVICE}
    tasks = [
        {
            "name": "Lock",
            "pivotal.flow_ops.run_lock": {"state": "acquired", **lock},
            "register": "a",
        },
        {
            "name": "Unlock",
            "pivotal.flow_ops.run_lock": {"state": "released", **lock},
            "register": "r",
        },
        {"name": "Keep", "ansible.builtin.set_fact": {"results": {"a": "{{ a }}", "r": "{{ r }}"}}},
    ]
    os.environ["ANSIBLE_VAULT_PASSWORD_FILE"] = str(password_file)
    try:
        [taken] = ctl.budget()
        locked = ctl.playbook(tasks, name="lock")
    finally:
        del os.environ["ANSIBLE_VAULT_PASSWORD_FILE"]
    assert taken["allowed"] is True and taken["path"].startswith(etcd_auth.url), taken
    assert locked["a"]["acquired"] is True and locked["a"]["taken"] is True, locked
    assert locked["r"]["released"] is True and locked["r"]["holder_record"]["by"] == "run_lock"
    assert not locked["a"]["changed"] and not locked["r"]["changed"], "bookkeeping: changed=0"
    assert AUTH_PASSWORD not in json.dumps(locked), "the secret is in no result"
    # no credentials at all, then a wrong password from the environment
    (group_vars / "all.yml").write_text(
        f"pflow_coordination_url: {etcd_auth.url}\npflow_coordination_user: root\n"
    )
    for extra, reason in (
        ({"PFLOW_COORDINATION_PASSWORD": ""}, "need both a user and a password"),
        ({"PFLOW_COORDINATION_PASSWORD": "wrong"}, "authentication failed"),
    ):
        said = subprocess.run(
            probe, env={**ctl.env, **extra}, capture_output=True, text=True, timeout=120
        )
        assert said.stdout.startswith("refused:") and reason in said.stdout, said.stdout
    (group_vars / "all.yml").write_text(f"pflow_coordination_url: {etcd_auth.url}\n")
    said = subprocess.run(probe, env=ctl.env, capture_output=True, text=True, timeout=120)
    assert said.stdout.startswith(f"refused: coordination store {etcd_auth.url} answered with")
    assert "user name is empty" in said.stdout


# -- TLS -----------------------------------------------------------------------------------


def test_etcds_with_a_ca_and_a_client_certificate(tmp_path: Path) -> None:
    """An etcd serving TLS only and requiring client certificates: etcds:// with the CA and the
    client pair works through ansible-playbook and the CLI's lock; without the client pair, or
    over plain etcd://, it refuses naming the store."""
    with etcd_server.running(tls=True) as server:
        pki = server.pki
        assert pki is not None
        tls = {
            "pflow_coordination_url": server.url,
            "pflow_coordination_ca_cert": str(pki.ca),
            "pflow_coordination_client_cert": str(pki.client_cert),
            "pflow_coordination_client_key": str(pki.client_key),
        }
        ctl = Controller(tmp_path / "home", _project(tmp_path, tls), server.url)
        [taken] = ctl.budget()
        assert taken["allowed"] is True and taken["path"].startswith(server.url), taken
        probe = [sys.executable, "-c", LOCK_PROBE, ENV, SERVICE]
        said = subprocess.run(probe, env=ctl.env, capture_output=True, text=True, timeout=120)
        assert said.stdout.strip() == "held: probe", said.stdout + said.stderr
        for n, values in enumerate(
            (
                {k: v for k, v in tls.items() if "client" not in k},
                {"pflow_coordination_url": f"etcd://127.0.0.1:{server.client_port}"},
            )
        ):
            other = Controller(tmp_path / f"h{n}", _project(tmp_path / str(n), values), "")
            [refused] = other.budget()
            store = values["pflow_coordination_url"]
            assert refused["allowed"] is False, refused
            assert refused["refusal"].startswith(f"coordination store {store} unreachable ("), (
                refused
            )
            assert "refused, nothing was changed" in refused["refusal"]
            assert "Pool(" not in refused["refusal"], "the cause, not urllib3's retry chatter"


def test_a_per_run_environment_cannot_move_the_lock(
    controllers: tuple[Controller, Controller], tmp_path: Path
) -> None:
    """-e pflow_env=elsewhere would lock another key and overlap this environment's runs."""
    one, _ = controllers
    gate = tmp_path / "gate"
    gate.touch()
    play = one.ansible_playbook(_lock_play(one, gate), "-e", "pflow_env=elsewhere")
    out = play.communicate(timeout=180)[0]
    assert play.returncode != 0
    assert "run lock environment cannot be set per run (-e pflow_env)" in out
    assert one.store().holder(ENV, SERVICE) is None


def test_a_stopped_etcd_refuses_and_its_holders_know_their_lock_is_lost(tmp_path: Path) -> None:
    """etcd stops while a lock is held and after a restart was taken: the holder's lease is
    marked lost (it may belong to someone else by now), and the budget refuses, never allows."""
    rb = load_plugin("restart_budget", kind="action")
    with etcd_server.running() as server:
        store = Controller(tmp_path, tmp_path, server.url).store()
        lock = store.acquire(ENV, SERVICE, {"run_id": "r1", "pid": os.getpid()}, 2)
        assert rb.evaluate(store, KEY, max_restarts=MAX, consume=True)["allowed"] is True
        server.proc.terminate()
        server.proc.wait(30)
        _wait_for(lambda: bool(lock.lost), "the holder sees its lease lost")
        refused = rb.evaluate(store, KEY, max_restarts=MAX, consume=True)
        assert refused["allowed"] is False and refused["changed"] is False
        assert refused["refusal"].startswith(f"coordination store {server.url} unreachable (")
        lock.release()  # nothing to reach: the lease expires on its own, no error


# -- one active receiver per environment -----------------------------------------------------
def _serve(controller: Controller, port: int) -> subprocess.Popen[str]:
    """`pflow-ops serve` of ``controller`` (its home, the shared project) on ``port``."""
    for name in ("catalogue.yml", "playbooks"):  # the receiver routes by the catalogue
        if not (controller.project / name).exists():
            (controller.project / name).symlink_to(ROOT / name)
    env = {**controller.env, "PFLOW_OPS_RECEIVER_TOKEN": "it-token-0123456789abcdef"}
    argv = [sys.executable, "-m", "pflow_ops", "serve", "--env", ENV, "--port", str(port)]
    return subprocess.Popen(
        argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )


def _healthy(port: int) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
            return int(answer.status) == 200
    except OSError:
        return False


def test_a_second_receiver_for_an_environment_is_refused_until_the_first_stops(
    controllers: tuple[Controller, Controller],
) -> None:
    """Two receivers (two controllers on etcd: two homes; on file: one home) for one env: the
    second exits 3 naming the first, so an alert is never run by both; once the first stops,
    the leadership is free and the other starts."""
    one, two = controllers
    first_port, second_port = free_ports(2)
    first = _serve(one, first_port)
    try:
        _wait_for(lambda: _healthy(first_port), "the first receiver to serve")
        second = _serve(two, second_port)
        assert second.wait(timeout=120) == 3
        assert second.stderr is not None
        assert "another receiver" in second.stderr.read()
        assert not _healthy(second_port)
    finally:
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=60) == 0
    third = _serve(two, second_port)
    try:
        _wait_for(lambda: _healthy(second_port), "the other receiver to take over")
    finally:
        third.send_signal(signal.SIGTERM)
        assert third.wait(timeout=60) == 0
