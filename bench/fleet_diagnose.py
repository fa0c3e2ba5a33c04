#!/usr/bin/env python3
"""RB-01 diagnosis over a fleet: wall time of `pflow-ops diagnose rb-01` over 1, 10 and 50 hosts.

Starts a throwaway sandbox (PostgreSQL, Redis) in a temporary PFLOW_OPS_HOME and a fleet of
reference backends under one supervisord (tests/integration/fleet.py). Every inventory host is a
local connection; hosts share the backends round robin (--instances, default 10): the sandbox
PostgreSQL allows 50 connections and every backend keeps one open, so 50 hosts cannot each have
their own instance. Each host still runs every check of the runbook (service manager, resources,
both dependencies, /health, the API sample), which is what diagnosis costs; sharing an instance
only means two hosts probe the same process.

Prints JSON: per size the median wall time of --repeat runs (and the minimum), seconds per host,
growth against the 1-host run and a floor (one ping task over the same hosts: what Ansible
itself costs per host here); the RSS of one backend instance; the load average at the end.
With local connections every "remote" module runs on this machine, so on a small controller the
growth is CPU-bound; over SSH the modules run on the hosts and only the controller's share stays.
Usage: .venv/bin/python bench/fleet_diagnose.py [--sizes 1,10,50] [--instances 10] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pflow_ops.sandbox.net import free_ports  # noqa: E402
from tests.integration.fleet import Fleet, build  # noqa: E402

PFLOW = [sys.executable, "-m", "pflow_ops"]
FLOOR_PLAY = """
- name: Floor
  hosts: pivotal_backend
  gather_facts: false
  tasks:
    - name: One task
      ansible.builtin.ping:
"""


def _pflow(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PFLOW, *args], env=env, capture_output=True, text=True, check=False, cwd=ROOT
    )


def sandbox_up(env: dict[str, str]) -> dict[str, Any]:
    backend, pg, rd = free_ports(3)
    ports = ["--backend-port", str(backend), "--postgres-port", str(pg), "--redis-port", str(rd)]
    up = _pflow(env, "sandbox", "up", *ports)
    if up.returncode != 0:
        sys.exit(f"sandbox up failed: {up.stderr.strip()}")
    home = Path(env["PFLOW_OPS_HOME"])
    data: dict[str, Any] = json.loads((home / "sandbox" / "endpoints.json").read_text())
    return data


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def diagnose(env: dict[str, str], hosts: list[str]) -> float:
    args = ["diagnose", "rb-01", "--env", "fleet", "--output", "json", "--limit", ",".join(hosts)]
    start = time.perf_counter()
    proc = _pflow(env, *args)
    elapsed = time.perf_counter() - start
    data = json.loads(proc.stdout or "{}")
    if proc.returncode != 0 or data.get("outcome") != "healthy" or len(data["logs"]) != len(hosts):
        bad = [f for f in data.get("findings", []) if f.get("status") not in ("ok", "skipped")]
        sys.exit(
            f"diagnosis over {len(hosts)} hosts was not healthy: {data.get('reason')}; "
            f"{json.dumps(bad)[:3000]}; {proc.stderr[-300:]}"
        )
    return elapsed


def floor(env: dict[str, str], project: Path, hosts: list[str]) -> float:
    """One ping task over the same hosts: what Ansible itself costs per host on this machine."""
    play = project / "floor.yml"
    play.write_text(FLOOR_PLAY, encoding="utf-8")
    inventory = project / "inventories" / "fleet" / "hosts.yml"
    argv = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory)]
    argv += ["--limit", ",".join(hosts), str(play)]
    start = time.perf_counter()
    cfg = {**env, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")}
    proc = subprocess.run(argv, env=cfg, capture_output=True, text=True, check=False, cwd=ROOT)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"floor playbook failed: {proc.stdout[-300:]}")
    return elapsed


def measure(fleet: Fleet, env: dict[str, str], sizes: list[int], repeat: int) -> dict[str, Any]:
    names = list(fleet.hosts)
    project = Path(env["PFLOW_OPS_PROJECT"])
    diagnose(env, names[:1])  # warm-up: the first run pays for cold caches
    runs = {n: [diagnose(env, names[:n]) for _ in range(repeat)] for n in sizes}
    floors = {
        n: statistics.median(floor(env, project, names[:n]) for _ in range(repeat)) for n in sizes
    }
    base = statistics.median(runs[sizes[0]])
    return {
        str(n): {
            "median_s": round(statistics.median(times), 2),
            "min_s": round(min(times), 2),
            "per_host_s": round(statistics.median(times) / n, 3),
            "growth_vs_first": round(statistics.median(times) / base, 2),
            "floor_one_ping_task_s": round(floors[n], 2),
        }
        for n, times in runs.items()
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,10,50")
    parser.add_argument("--instances", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    home = Path(tempfile.mkdtemp(prefix="pfo-bench-fleet-", dir="/tmp"))
    env = {**os.environ, "PFLOW_OPS_HOME": str(home), "PYTHONPATH": str(ROOT)}
    fleet: Fleet | None = None
    try:
        endpoints = sandbox_up(env)
        fleet = build(home / "fleet", endpoints, hosts=sizes[-1], instances=args.instances)
        fleet.start()
        env["PFLOW_OPS_PROJECT"] = str(fleet.project(home / "project"))
        forks = _forks()
        results = measure(fleet, env, sizes, args.repeat)
        rss = [rss_mb(int(fleet.supervisor.info(i.program)["pid"])) for i in fleet.instances]
        print(
            json.dumps(
                {
                    "repeat": args.repeat,
                    "forks": forks,
                    "cpus": os.cpu_count(),
                    "backend_instances": len(fleet.instances),
                    "backend_rss_mb_median": round(statistics.median(rss), 1),
                    # A shared machine skews wall times: the load average says how much.
                    "loadavg_1m_at_end": round(os.getloadavg()[0], 2),
                    "sizes": results,
                },
                indent=2,
            )
        )
    finally:
        if fleet is not None:
            fleet.shutdown()
        _pflow(env, "sandbox", "down", "--purge")
        shutil.rmtree(home, ignore_errors=True)
    return 0


def _forks() -> int:
    for line in (ROOT / "ansible.cfg").read_text().splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "forks":
            return int(value)
    return 5


if __name__ == "__main__":
    raise SystemExit(main())
