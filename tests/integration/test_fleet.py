"""RB-01 at fleet scale: 20 inventory hosts, each a local connection to its own sandbox backend
(one supervisord, the sandbox's PostgreSQL and Redis). Recovery is a rolling restart in batches
(a canary, then 25 % of the fleet) that stops at the first batch with a host it cannot recover;
diagnosis takes every host at once and changes nothing.

The runs go through the real CLI, `pflow-ops recover|diagnose rb-01 --env fleet`, in a throwaway
project (PFLOW_OPS_PROJECT) whose only inventory is the fleet's: environments are the project's
inventories/ directories, and a test fleet on random ports does not belong in the checkout's.
"""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import ROOT, Run, Stack
from tests.integration.fleet import Fleet, build

pytestmark = pytest.mark.integration

HOSTS = [f"backend-{i:02d}" for i in range(1, 21)]
# serial [1, "25%"] over 20 hosts, in inventory order: a canary, then batches of 5, 5, 5 and 4.
BATCHES = [HOSTS[:1], HOSTS[1:6], HOSTS[6:11], HOSTS[11:16], HOSTS[16:]]


@pytest.fixture(scope="module")
def fleet(stack: Stack) -> Iterator[Fleet]:
    root = Path(tempfile.mkdtemp(prefix="pfo-fleet-", dir="/tmp"))
    fl = build(root, stack.endpoints, hosts=len(HOSTS), instances=len(HOSTS))
    try:
        fl.start()
        # The API sample is left out: test_rb01 covers it, and on a 2-core runner each module
        # run over 20 local hosts costs seconds.
        fl.project(root / "project", sample_api=False)
        yield fl
    finally:
        fl.shutdown()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def healthy_fleet(fleet: Fleet, sandbox: Stack) -> Fleet:
    """Every instance up; `sandbox` has already reset the restart budget and the locks."""
    fleet.heal()
    return fleet


def pflow(stack: Stack, fleet: Fleet, *args: str) -> Run:
    env = {**stack.env, "PFLOW_OPS_PROJECT": str(fleet.root / "project")}
    proc = subprocess.run(
        [sys.executable, "-m", "pflow_ops", *args, "--env", "fleet", "--output", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
        check=False,
        cwd=ROOT,
    )
    return Run(proc.returncode, proc.stdout, proc.stderr)


def artifact_data(report: dict[str, Any]) -> dict[str, Any]:
    """set_stats of the run (the rollout plan and batches), from ansible-runner's artifacts."""
    for path in sorted(Path(report["runner"]["artifacts"], "job_events").glob("*.json")):
        event = json.loads(path.read_text())
        if event.get("event") == "playbook_on_stats":
            data: dict[str, Any] = event["event_data"].get("artifact_data") or {}
            return data
    raise AssertionError("no playbook_on_stats event in the runner artifacts")


def pids(fleet: Fleet) -> dict[str, int]:
    return {host: fleet.pid(host) for host in HOSTS}


def steps_by_host(report: dict[str, Any]) -> dict[str, list[tuple[datetime, datetime]]]:
    """Start and end of each host's RB-01 steps; the closed-loop play that follows the rollout
    (its tasks all name the alert) runs over every host at once, so it is left out."""
    out: dict[str, list[tuple[datetime, datetime]]] = {}
    for step in report["timeline"]:
        if "alert" in step["name"].lower():
            continue
        start = datetime.fromisoformat(step["start"])
        end = start + timedelta(seconds=step["duration_s"])
        out.setdefault(step["host"], []).append((start, end))
    return out


def assert_batches_in_order(report: dict[str, Any], batches: list[list[str]]) -> None:
    """Every step of a batch ended before any step of the next one began."""
    spans = steps_by_host(report)
    for earlier, later in itertools.pairwise(batches):
        done = max(end for host in earlier for _, end in spans[host])
        began = min(start for host in later for start, _ in spans[host])
        assert done <= began, f"batch {later} started before batch {earlier} finished"


def restarted_hosts(report: dict[str, Any]) -> set[str]:
    return {a["host"] for a in report["actions"] if a["action"] == "restart"}


def test_rolling_recovery_restarts_down_hosts_batch_by_batch(
    healthy_fleet: Fleet, sandbox: Stack
) -> None:
    fleet = healthy_fleet
    down = ["backend-01", "backend-04", "backend-09", "backend-15", "backend-19"]
    for host in down:
        fleet.crash(host)
    before = pids(fleet)

    run = pflow(sandbox, fleet, "recover", "rb-01")
    data = run.json
    assert run.rc == 0, run.stderr
    assert data["outcome"] == "recovered", data["reason"]
    assert restarted_hosts(data) == set(down)
    after = pids(fleet)
    for host in HOSTS:
        assert fleet.health(host) == 200, host
        if host in down:
            assert before[host] == 0 and after[host] > 0, host
        else:
            assert after[host] == before[host], f"{host} was healthy and must not be restarted"

    stats = artifact_data(data)
    assert stats["pflow_rollout"]["rolling"] is True
    assert stats["pflow_rollout"]["max_fail_percentage"] == 0
    assert stats["pflow_rollout_batches"] == BATCHES
    assert set(data["logs"]) == set(HOSTS), "every host reported its result"
    assert_batches_in_order(data, BATCHES)


def test_rollout_stops_at_the_batch_with_a_host_that_cannot_recover(
    healthy_fleet: Fleet, sandbox: Stack
) -> None:
    fleet = healthy_fleet
    fleet.crash("backend-03")  # batch 2: recoverable
    fleet.block("backend-08")  # batch 3: its port is taken, so every start fails
    later_down = ["backend-13", "backend-18"]  # batches 4 and 5: never reached
    for host in later_down:
        fleet.crash(host)
    before = pids(fleet)

    run = pflow(sandbox, fleet, "recover", "rb-01")
    data = run.json
    assert run.rc == 4, run.stderr
    assert data["outcome"] == "escalate"
    # Its port is held by another process: escalated before any restart (issue 12), naming it.
    assert "backend-08: another process holds the backend's port" in data["reason"]
    assert fleet.settled_down("backend-08") in ("FATAL", "EXITED")
    assert fleet.health("backend-08") is None
    assert fleet.health("backend-03") == 200

    reached = [h for batch in BATCHES[:3] for h in batch]
    stats = artifact_data(data)
    assert stats["pflow_rollout_batches"] == BATCHES[:3]
    assert stats["pflow_rollout"]["hosts"] == HOSTS, "the plan names the whole fleet"
    assert set(data["logs"]) == set(reached)
    assert {s["host"] for s in data["timeline"]} <= set(reached)
    assert restarted_hosts(data) == {"backend-03"}
    after = pids(fleet)
    for host in later_down:
        assert fleet.info(host)["statename"] == "EXITED" and fleet.health(host) is None, host
    for host in HOSTS[11:]:
        assert after[host] == before[host], f"{host} is past the stop and must be untouched"


def test_diagnosis_takes_the_whole_fleet_at_once_and_changes_nothing(
    healthy_fleet: Fleet, sandbox: Stack
) -> None:
    fleet = healthy_fleet
    down = ["backend-05", "backend-17"]
    for host in down:
        fleet.crash(host)
    before = pids(fleet)

    run = pflow(sandbox, fleet, "diagnose", "rb-01")
    data = run.json
    # A dry run that found something to fix exits 4 and says what recovery would do.
    assert run.rc == 4, run.stderr
    assert data["outcome"] == "escalate" and data["changed"] == 0 and data["check"] is True
    assert all(host in data["reason"] for host in down)
    stats = artifact_data(data)
    assert stats["pflow_rollout"]["rolling"] is False
    assert stats["pflow_rollout_batches"] == [HOSTS], "one batch: every host in parallel"
    assert set(data["logs"]) == set(HOSTS)
    assert pids(fleet) == before
    for host in down:
        assert fleet.health(host) is None, host


def test_check_mode_recovery_is_not_serialised_either(healthy_fleet: Fleet, sandbox: Stack) -> None:
    """`recover --check` (an AWX "check" job) sets no pflow_mode=diagnose: check mode alone
    must take the hosts in one batch, where a real recovery of these 4 would take four."""
    fleet = healthy_fleet
    fleet.crash("backend-03")
    before = pids(fleet)
    subset = HOSTS[:4]

    run = pflow(sandbox, fleet, "recover", "rb-01", "--check", "--limit", ",".join(subset))
    data = run.json
    assert run.rc == 4, run.stderr
    assert data["outcome"] == "escalate" and data["check"] is True
    would = [a["host"] for a in data["actions"] if a["result"].startswith("would restart")]
    assert would == ["backend-03"]
    assert "backend-03: check mode: recovery would restart the backend" in data["reason"]
    stats = artifact_data(data)
    assert stats["pflow_rollout"]["serial"] == ["100%"]
    assert stats["pflow_rollout_batches"] == [subset]
    assert pids(fleet) == before and fleet.health("backend-03") is None


def test_example_fleet_inventory_parses_with_twenty_backend_hosts() -> None:
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-inventory"),
            "-i",
            str(ROOT / "inventories" / "examples" / "fleet.yml"),
            "--list",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    inventory = json.loads(proc.stdout)
    backends = inventory["pivotal_backend"]["hosts"]
    assert len(backends) == 20 and backends[0] == "backend-01.prod.pivotal.internal"
    assert not (ROOT / "inventories" / "examples" / "hosts.yml").exists(), "not an environment"
