"""pflow_ops' side of the coordination store: the inventory reader and its fail-closed cases,
RunLock's refusals, the run_lock plugin's holder name and documentation, and the file backend's
guards (a reused pid is never signalled). No service is started here: an etcd that is needed is
a dead loopback port (the live ones are in tests/integration/test_coordination.py)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from pflow_ops import coordination, inventory
from pflow_ops.errors import RefusedError
from pflow_ops.lock import LockHeld, RunLock
from pflow_ops.sandbox.net import free_ports
from tests.plugins import PLUGINS, load_plugin

run_lock = load_plugin("run_lock", kind="action")
restart_budget = load_plugin("restart_budget", kind="action")


def _inventory(
    tmp_path: Path, hosts: dict[str, Any], group_vars: dict[str, Any] | None = None
) -> Path:
    (tmp_path / "group_vars").mkdir()
    if group_vars is not None:
        (tmp_path / "group_vars" / "all.yml").write_text(yaml.safe_dump(group_vars))
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
    return path


def test_no_setting_is_the_file_store(tmp_path: Path) -> None:
    source = _inventory(tmp_path, {"a": None, "b": None})
    assert inventory.coordination_settings(source) == {}
    assert coordination.settings_for(source).is_file


def test_group_vars_name_the_store_for_every_host(tmp_path: Path) -> None:
    source = _inventory(
        tmp_path,
        {"a": None, "b": None},
        {"pflow_coordination_url": "etcds://etcd.example:2379", "pflow_coordination_lock_ttl": 5},
    )
    config = coordination.settings_for(source)
    assert config.name() == "etcds://etcd.example:2379" and config.lock_ttl == 5


def test_hosts_that_disagree_refuse(tmp_path: Path) -> None:
    source = _inventory(tmp_path, {"a": {"pflow_coordination_url": "etcd://one:2379"}, "b": None})
    with pytest.raises(coordination.CoordinationError, match=r"disagree.*etcd://one:2379, file"):
        coordination.settings_for(source)


def test_a_template_in_the_inventory_is_refused_not_rendered(tmp_path: Path) -> None:
    source = _inventory(tmp_path, {"a": None}, {"pflow_coordination_url": "{{ etcd_url }}"})
    with pytest.raises(coordination.CoordinationError, match="is a template"):
        coordination.settings_for(source)


def test_an_unreadable_inventory_names_no_store(tmp_path: Path) -> None:
    broken = tmp_path / "hosts.yml"
    broken.write_text("all: [unbalanced")
    with pytest.raises(coordination.CoordinationError, match="coordination settings of"):
        coordination.settings_for(broken)


def _dead_store() -> coordination.Store:
    config = coordination.settings(
        {"pflow_coordination_url": f"etcd://127.0.0.1:{free_ports(1)[0]}"}
    )
    return coordination.open_store(config)


def test_run_lock_on_an_unreachable_etcd_is_refused(tmp_path: Path) -> None:
    lock = RunLock("prod", "database", "r1", directory=tmp_path, store=_dead_store())
    with pytest.raises(
        RefusedError, match=r"coordination store etcd://127\.0\.0\.1:\d+ unreachable"
    ):
        lock.acquire()
    assert not lock.lost
    lock.release()  # nothing held: nothing to do


def test_budget_on_an_unreachable_etcd_is_refused_never_allowed() -> None:
    for override in (False, True):
        res = restart_budget.evaluate(
            _dead_store(),
            "prod/db1/database",
            consume=True,
            override=override,
            override_reason="INC-1",
        )
        assert res["allowed"] is False and res["changed"] is False
        assert res["refusal"].startswith("coordination store etcd://127.0.0.1:")
        assert res["summary"].startswith("refused: coordination store")


def test_file_run_lock_keeps_its_refusal_line(tmp_path: Path) -> None:
    store = coordination.file_store(tmp_path, tmp_path / "locks")
    with RunLock("prod", "database", "r1", directory=tmp_path / "locks", store=store):
        with pytest.raises(
            LockHeld, match=r"another recovery is running for prod-database \(run r1, pid"
        ):
            RunLock("prod", "database", "r2", directory=tmp_path / "locks", store=store).acquire()
        assert (store.holder("prod", "database") or {})["run_id"] == "r1"
    assert store.holder("prod", "database") is None


def test_file_release_never_signals_a_process_that_is_not_a_holder(tmp_path: Path) -> None:
    store: Any = coordination.file_store(tmp_path)
    # this test process's own pid: its command line is pytest's, so it is not signalled
    assert store.release_for("prod", "database", {"pid": os.getpid()}) is False
    assert store.release_for("prod", "database", {"pid": "junk"}) is False


@pytest.mark.parametrize(
    ("cmdline", "holder"),
    [
        (b"/usr/bin/python3\0/c/plugins/module_utils/coordination_hold.py\0", True),
        (b"python\0coordination_hold.py", True),
        (b"python\0-m\0pytest\0tests/unit/test_coordination_hold.py\0", False),
        (b"python\0/x/coordination_hold.py\0--other\0", False),
        (b"python\0/x/coordination.py\0", False),
        (b"", False),
    ],
)
def test_only_a_holder_command_line_is_a_holder(cmdline: bytes, holder: bool) -> None:
    module: Any = coordination._engine.sibling("coordination_file")
    assert module.is_holder_command(cmdline) is holder


@pytest.mark.parametrize(
    ("args", "task_vars", "name"),
    [
        ({"holder": "ticket-7"}, {"pflow_run_id": "r1"}, "ticket-7"),
        ({}, {"pflow_run_id": "20260101-rb02-ab12"}, "20260101-rb02-ab12"),
        ({}, {"awx_job_id": 42}, "awx-job-42"),
        ({}, {"tower_job_id": "43"}, "awx-job-43"),
        ({}, {"awx_job_id": True}, None),
        ({}, {}, None),
    ],
)
def test_run_lock_holder_name(
    args: dict[str, Any], task_vars: dict[str, Any], name: str | None
) -> None:
    got = run_lock.holder_name(args, task_vars, 4242)
    assert got == (name or f"ansible-playbook-4242@{os.uname().nodename}")


@pytest.mark.parametrize("plugin", ["run_lock", "restart_budget"])
def test_action_plugin_docs_match_their_argument_spec(plugin: str) -> None:
    """The doc-only module files document exactly what the action plugins accept."""
    doc = yaml.safe_load(load_plugin(plugin).DOCUMENTATION)["options"]
    spec = load_plugin(plugin, kind="action").ARGUMENT_SPEC
    assert set(doc) == set(spec)
    for name, arg in spec.items():
        assert doc[name].get("type", "str") == arg.get("type", "str"), name
        assert doc[name].get("default") == arg.get("default"), name
        assert bool(doc[name].get("required")) == bool(arg.get("required")), name
        assert list(doc[name].get("choices") or []) == list(arg.get("choices") or []), name
    assert (PLUGINS / "modules" / f"{plugin}.py").exists()


def _hold_in_child(hold: Path, seconds: float) -> Any:
    """A process of an 'earlier run' holding the hold flock for ``seconds`` (as the watchdog's
    children do while they are being stopped); returns once the flock is taken."""
    import subprocess
    import sys

    code = (
        "import fcntl, os, sys, time\n"
        "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        'os.write(fd, b\'{"run_id": "killed", "pid": 1}\')\n'
        "print('held', flush=True)\n"
        "time.sleep(float(sys.argv[2]))\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code, str(hold), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None and child.stdout.readline() == "held\n"
    return child


def test_a_new_run_waits_for_a_killed_runs_processes_to_be_stopped(tmp_path: Path) -> None:
    """The CLI of a run was killed and its processes are being stopped: the next run waits for
    them (bounded) instead of refusing at once, and takes the lock when they are gone."""
    hold = tmp_path / "local-backend.lock.hold"
    child = _hold_in_child(hold, 0.5)
    try:
        coordination.check_hold(hold, "local-backend", wait=60)
        assert child.poll() is not None  # it returned because the holder was gone
    finally:
        child.kill()
        child.wait()


def test_processes_that_outlive_the_wait_still_refuse(tmp_path: Path) -> None:
    hold = tmp_path / "local-backend.lock.hold"
    child = _hold_in_child(hold, 60)
    try:
        with pytest.raises(coordination.Held) as refused:
            coordination.check_hold(hold, "local-backend", wait=0.3)
        assert str(refused.value).startswith(
            "processes of an earlier run still act on local-backend (run killed, pid 1)"
        )
    finally:
        child.kill()
        child.wait()
