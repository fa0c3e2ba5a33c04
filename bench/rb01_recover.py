#!/usr/bin/env python3
"""RB-01 speed figures (targets since issue 20: diagnose <= 2.0x and recover <= 2.5x the floor,
`pflow-ops --help` <= 0.3 s).

Prints, each the median of --repeat runs (and the minimums, less sensitive to machine noise):
  floor    a one-task localhost `ansible-playbook` run (the cost of starting Ansible at all)
  diagnose `pflow-ops diagnose rb-01 --env local` on a crashed backend (exit 4: it found the crash)
  recover  `pflow-ops recover rb-01 --env local` on the same crashed backend, soak window 0
  ratio    recover / floor (diagnose_ratio: diagnose / floor)
  help     `pflow-ops --help`
  load     the 1-minute load average before and after (a shared machine moves every figure)

Needs a running sandbox (`pflow-ops sandbox up`); it breaks and recovers its backend.
Usage: .venv/bin/python bench/rb01_recover.py [--repeat N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
FLOOR_PLAY = """
- name: Floor
  hosts: localhost
  gather_facts: false
  tasks:
    - name: One task
      ansible.builtin.ping:
"""


def timed(cmd: list[str], env: dict[str, str], ok: tuple[int, ...] = (0,)) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode not in ok:
        sys.exit(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")}
    pflow = str(BIN / "pflow-ops")
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as fh:
        fh.write(FLOOR_PLAY)
        floor_play = fh.name
    floor_cmd = [
        str(BIN / "ansible-playbook"),
        "-i",
        "localhost,",
        "-c",
        "local",
        "-e",
        f"ansible_python_interpreter={sys.executable}",
        floor_play,
    ]
    load_before = os.getloadavg()[0]
    floors, diagnoses, recovers, helps = [], [], [], []
    for _ in range(args.repeat):
        floors.append(timed(floor_cmd, env))
        subprocess.run([pflow, "sandbox", "heal"], env=env, capture_output=True, check=True)
        subprocess.run(
            [pflow, "sandbox", "break", "backend-crash"], env=env, capture_output=True, check=True
        )
        diagnose = [pflow, "diagnose", "rb-01", "--env", "local", "--output", "json"]
        diagnoses.append(timed(diagnose, env, ok=(4,)))
        recovers.append(
            timed(
                [
                    pflow,
                    "recover",
                    "rb-01",
                    "--env",
                    "local",
                    "--output",
                    "json",
                    "-e",
                    "backend_soak_seconds=0",
                    "--override-budget",
                    "benchmark",
                ],
                env,
            )
        )
        helps.append(timed([pflow, "--help"], env))
    os.unlink(floor_play)
    floor, diag, recover, help_ = (
        statistics.median(x) for x in (floors, diagnoses, recovers, helps)
    )
    print(
        json.dumps(
            {
                "repeat": args.repeat,
                "floor_s": round(floor, 3),
                "diagnose_rb01_crash_s": round(diag, 3),
                "diagnose_ratio": round(diag / floor, 2),
                "recover_rb01_crash_soak0_s": round(recover, 3),
                "ratio": round(recover / floor, 2),
                "help_s": round(help_, 3),
                # Minimums are the least disturbed by a noisy machine; shown beside the medians.
                "floor_min_s": round(min(floors), 3),
                "diagnose_min_s": round(min(diagnoses), 3),
                "recover_min_s": round(min(recovers), 3),
                "ratio_of_mins": round(min(recovers) / min(floors), 2),
                "load1_before": round(load_before, 2),
                "load1_after": round(os.getloadavg()[0], 2),
                "cpus": os.cpu_count(),
                "targets": {"diagnose_ratio_max": 2.0, "ratio_max": 2.5, "help_max_s": 0.3},
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
