#!/usr/bin/env python3
"""RB-03 speed figures (issue #4 target: diagnosis with 1,000,000 keys within 1.5x the empty one).

Starts its own sandbox (temporary PFLOW_OPS_HOME, free ports, maxmemory 1gb), then prints the
median (and minimum) over --repeat runs of `pflow-ops diagnose rb-03 --env local`:
  empty    on the empty sandbox Redis
  large    after loading --keys keys with pipelined MSETs (never DEBUG POPULATE)
  ratio    large / empty
The big-key SCAN is time-boxed (cache_bigkeys_budget_seconds) and runs inside the sampling window,
which is why the ratio stays near 1. The sandbox is stopped and purged at the end.
Usage: .venv/bin/python bench/rb03_diagnose.py [--repeat N] [--keys N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

from pflow_ops.sandbox.net import free_ports

ROOT = Path(__file__).resolve().parents[1]
PFLOW = str(Path(sys.executable).parent / "pflow-ops")
TARGET = 1.5


def diagnose(env: dict[str, str]) -> float:
    cmd = [PFLOW, "diagnose", "rb-03", "--env", "local", "--output", "json"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False, cwd=ROOT)
    elapsed = time.perf_counter() - start
    if proc.returncode not in (0, 4):  # healthy, or escalate with findings
        sys.exit(f"diagnose exited {proc.returncode}:\n{proc.stdout[-2000:]}\n{proc.stderr}")
    return elapsed


def load(port: int, keys: int) -> float:
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=30)
    start = time.perf_counter()
    batch = 1000
    pipe = client.pipeline(transaction=False)
    for first in range(0, keys, batch):
        pipe.mset({f"bench:key:{i}": f"value-{i}" for i in range(first, min(first + batch, keys))})
        if (first // batch) % 50 == 49:
            pipe.execute()
    pipe.execute()
    loaded = int(client.dbsize())
    if loaded < keys:
        sys.exit(f"only {loaded} of {keys} keys loaded (maxmemory too small?)")
    return time.perf_counter() - start


def summary(name: str, runs: list[float]) -> str:
    return f"{name:6} median {statistics.median(runs):6.2f} s  min {min(runs):6.2f} s"


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keys", type=int, default=1_000_000)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="pfo-bench-rb03-", dir="/tmp"))
    backend, pg, rd = free_ports(3)
    env = {
        **os.environ,
        "PFLOW_OPS_HOME": str(home),
        "PFLOW_SANDBOX_REDIS_MAXMEMORY": "1gb",
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
    }
    up = [PFLOW, "sandbox", "up", "--backend-port", str(backend), "--postgres-port", str(pg)]
    subprocess.run([*up, "--redis-port", str(rd)], env=env, check=True, capture_output=True)
    try:
        diagnose(env)  # warm-up: first-run caches of Ansible and Python
        empty = [diagnose(env) for _ in range(args.repeat)]
        loaded_in = load(rd, args.keys)
        large = [diagnose(env) for _ in range(args.repeat)]
    finally:
        subprocess.run([PFLOW, "sandbox", "down", "--purge"], env=env, capture_output=True)
        shutil.rmtree(home, ignore_errors=True)
    ratio = statistics.median(large) / statistics.median(empty)
    print(summary("empty", empty))
    print(summary("large", large) + f"  ({args.keys:,} keys, loaded in {loaded_in:.1f} s)")
    verdict = "OK" if ratio <= TARGET else "OVER TARGET"
    print(f"ratio  {ratio:.2f} (target <= {TARGET}) {verdict}")
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
