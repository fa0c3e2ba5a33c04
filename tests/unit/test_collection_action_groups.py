"""meta/runtime.yml action_groups: ``module_defaults: {group/pivotal.flow_ops.<group>: ...}``
reaches the modules of the group (a real playbook run, nothing listening on the given
addresses: each module reports the address it was given), and every module documents the groups
runtime.yml puts it in (its ``action_group`` attribute), no more, no fewer."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
COLLECTION = ROOT / "collection"
BIN = Path(sys.executable).parent
RUNTIME = yaml.safe_load((COLLECTION / "meta" / "runtime.yml").read_text())
FQCN = "pivotal.flow_ops"


def _closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env["ANSIBLE_CONFIG"] = str(ROOT / "ansible.cfg")
    return env


def test_module_defaults_through_each_group_reach_the_module(tmp_path: Path) -> None:
    pg_port, redis_port = _closed_port(), _closed_port()
    sock = tmp_path / "no-supervisord.sock"
    play = [
        {
            "name": "Module defaults through the action groups",
            "hosts": "localhost",
            "gather_facts": False,
            "module_defaults": {
                f"group/{FQCN}.supervisor": {"server_url": f"unix://{sock}"},
                f"group/{FQCN}.postgresql": {
                    "host": "127.0.0.1",
                    "port": pg_port,
                    "database": "from_the_group",
                    "user": "nobody",
                    "connect_timeout": 5,
                },
                f"group/{FQCN}.redis": {"host": "127.0.0.1", "port": redis_port, "timeout": 5},
            },
            "tasks": [
                {"name": "Read a program", f"{FQCN}.supervisor_program_info": {"name": "backend"}},
                {"name": "Diagnose PostgreSQL", f"{FQCN}.pg_diagnose": {}},
                {"name": "Ping Redis", f"{FQCN}.redis_ping": {}},
            ],
        }
    ]
    playbook = tmp_path / "groups.yml"
    playbook.write_text(yaml.safe_dump(play, sort_keys=False))
    inventory = tmp_path / "hosts.yml"
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"localhost": local}}}))
    env = {**_env(), "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"}
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(inventory), str(playbook)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    results: dict[str, Any] = {
        task["task"]["name"]: task["hosts"]["localhost"]
        for task in json.loads(proc.stdout)["plays"][0]["tasks"]
    }
    program = results["Read a program"]
    assert program["reachable"] is False and str(sock) in program["msg"]
    pg = results["Diagnose PostgreSQL"]
    assert pg["connectivity"]["state"] == "refused"
    assert f"127.0.0.1:{pg_port}/from_the_group" in pg["connectivity"]["msg"]
    redis = results["Ping Redis"]
    assert redis["state"] == "refused" and f"127.0.0.1:{redis_port}" in redis["msg"]


def test_every_module_documents_the_groups_runtime_yml_puts_it_in() -> None:
    groups = RUNTIME["action_groups"]
    modules = sorted(p.stem for p in (COLLECTION / "plugins" / "modules").glob("*.py"))
    proc = subprocess.run(
        [str(BIN / "ansible-doc"), "-t", "module", "--json", *(f"{FQCN}.{m}" for m in modules)],
        env=_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    docs = json.loads(proc.stdout)
    for module in modules:
        attributes = docs[f"{FQCN}.{module}"]["doc"].get("attributes") or {}
        documented = set((attributes.get("action_group") or {}).get("membership") or [])
        declared = {f"{FQCN}.{group}" for group, members in groups.items() if module in members}
        assert documented == declared, module
