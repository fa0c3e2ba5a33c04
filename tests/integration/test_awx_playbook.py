"""awx/configure.yml against a closed loopback port: every awx.awx task validates its arguments,
then fails only because nothing answers; and the workflow gate decides on real artifacts.

The awx.awx modules check their parameters (names, types, choices) before they connect. To see
every controller task reach the connection, not just the first, the test runs a copy of the
playbook in which the awx.awx tasks carry `ignore_errors: true`; each task's result must then
be a connection error to that port. A misspelt or unknown parameter shows up as "Unsupported
parameters" instead, which `test_a_wrong_parameter_name_is_caught` proves the check notices.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.test_awx_templates import EE_IMAGE, make_project

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = sys.executable.rsplit("/", 1)[0] + "/ansible-playbook"
CONNECTION_ERROR = re.compile(r"Connection refused|\[Errno 111\]")
SECRET = "not-a-real-etcd-password"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _controller_tasks() -> dict[str, str]:
    """Task name -> awx.awx module, from the playbook itself."""
    play = yaml.safe_load((ROOT / "awx" / "configure.yml").read_text())[0]
    return {
        task["name"]: module
        for task in play["tasks"]
        for module in task
        if module.startswith("awx.awx.")
    }


def _run_configure(tmp: Path, port: int, bogus: str | None = None) -> dict[str, Any]:
    """Run a copy of awx/configure.yml whose controller tasks ignore errors. With `bogus`, only
    the organization task runs after the render, carrying an extra parameter of that name. The
    project's inventories name an etcd store, as configure.yml requires."""
    project = make_project(tmp)
    shutil.copytree(ROOT / "awx", tmp / "awx")
    path = tmp / "awx" / "configure.yml"
    plays = yaml.safe_load(path.read_text())
    for task in plays[0]["tasks"]:
        module = next((k for k in task if k.startswith("awx.awx.")), None)
        if module:
            task["ignore_errors"] = True
        if bogus and module == "awx.awx.organization":
            task[module][bogus] = "x"
            task["tags"] = "pflow_awx_probe"
    path.write_text(yaml.safe_dump(plays, sort_keys=False))
    tags = ["--tags", "pflow_awx_render,pflow_awx_probe"] if bogus else []
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
        "ANSIBLE_NOCOLOR": "1",
    }
    for name in ("CONTROLLER_HOST", "CONTROLLER_OAUTH_TOKEN", "CONTROLLER_USERNAME"):
        env.pop(name, None)
    # The coordination credential's secrets come from the environment, as for the CLI.
    env.update(PFLOW_COORDINATION_USER="etcd-test-user", PFLOW_COORDINATION_PASSWORD=SECRET)
    proc = subprocess.run(
        [
            PLAYBOOK,
            str(path),
            "-e",
            f"controller_host=https://127.0.0.1:{port}",
            "-e",
            "controller_oauthtoken=not-a-real-token",
            "-e",
            f"pflow_awx_project_root={project}",
            "-e",
            f"pflow_awx_ee_image={EE_IMAGE}",
            "-e",
            f"pflow_awx_export={tmp / 'objects.json'}",
            *tags,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert SECRET not in proc.stdout + proc.stderr
    out: dict[str, Any] = json.loads(proc.stdout)
    out["rc"] = proc.returncode
    out["objects"] = json.loads((tmp / "objects.json").read_text())
    return out


def _results(run: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Task name -> its per-item results (one item for a task without a loop)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for task in run["plays"][0]["tasks"]:
        result = task["hosts"]["localhost"]
        out[task["task"]["name"]] = result.get("results", [result])
    return out


def _not_connection_failures(run: dict[str, Any], port: int) -> list[str]:
    """Every controller task result that is not a connection error to the closed port."""
    problems = []
    results = _results(run)
    for name in _controller_tasks():
        for item in results.get(name, [{"msg": "task never ran"}]):
            msg = str(item.get("msg", ""))
            if not (item.get("failed") and CONNECTION_ERROR.search(msg) and f":{port}/" in msg):
                problems.append(f"{name}: {msg[:300]}")
    return problems


@pytest.fixture(scope="module")
def closed_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], int]:
    port = _closed_port()
    return _run_configure(tmp_path_factory.mktemp("awx"), port), port


def test_every_controller_task_fails_only_at_the_connection(
    closed_run: tuple[dict[str, Any], int],
) -> None:
    run, port = closed_run
    assert _not_connection_failures(run, port) == []
    stats = run["stats"]["localhost"]
    assert stats["failures"] == 0
    assert stats["ignored"] == len(_controller_tasks())
    # Everything before the controller tasks (inputs, catalogue, argument specs) succeeded.
    controller = set(_controller_tasks())
    for name, items in _results(run).items():
        if name not in controller:
            assert not any(item.get("failed") for item in items), name


def test_each_object_reaches_its_module_with_the_rendered_arguments(
    closed_run: tuple[dict[str, Any], int],
) -> None:
    run, _ = closed_run
    objects, results = run["objects"], _results(run)
    by_module = {module: results[name] for name, module in _controller_tasks().items()}
    catalogue = yaml.safe_load((ROOT / "catalogue.yml").read_text())
    runbooks = [rb for rb in catalogue["runbooks"] if rb.get("implemented", True)]
    # The local sandbox is not imported unless asked for.
    environments = [
        p for p in (ROOT / "inventories").glob("*/hosts.yml") if p.parent.name != "local"
    ]
    protected = [inv for inv in objects["inventories"] if inv["protected"]]
    assert runbooks and environments and protected
    assert len(by_module["awx.awx.inventory"]) == len(environments)
    assert len(by_module["awx.awx.inventory_source"]) == len(environments)
    assert len(by_module["awx.awx.schedule"]) == len(catalogue["maintenance"])
    assert len(by_module["awx.awx.workflow_job_template"]) == len(runbooks) * len(protected)
    sent = [item["invocation"]["module_args"] for item in by_module["awx.awx.job_template"]]
    slices = yaml.safe_load((ROOT / "awx" / "vars" / "main.yml").read_text())[
        "pflow_awx_diagnose_slices"
    ]
    assert (
        len(sent)
        == len(objects["job_templates"])
        == 2 * len(runbooks) + len(slices) + len(catalogue["maintenance"]) + 1
    )
    ee = objects["execution_environment"]["name"]
    for args, jt in zip(sent, objects["job_templates"], strict=True):
        for key in ("name", "playbook", "job_type", "credentials", "survey_spec", "extra_vars"):
            assert args[key] == jt[key], (jt["name"], key)
        assert args["survey_enabled"] is bool(jt["survey_spec"])
        assert args["allow_simultaneous"] is False
        # Never the organization's default EE; slicing only where the render says.
        assert args["execution_environment"] == ee
        assert args["job_slice_count"] == jt["job_slice_count"]
        assert args["ask_job_slice_count_on_launch"] is False
        assert args["ask_execution_environment_on_launch"] is False
        # The token is a no_log value; unset connection options stay unset (omitted).
        assert args["controller_oauthtoken"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
        assert args["controller_username"] is None
    [org] = [i["invocation"]["module_args"] for i in by_module["awx.awx.organization"]]
    assert org["galaxy_credentials"] == []
    [registered] = [
        i["invocation"]["module_args"] for i in by_module["awx.awx.execution_environment"]
    ]
    assert (registered["name"], registered["image"]) == (ee, EE_IMAGE)
    [credential] = [i["invocation"]["module_args"] for i in by_module["awx.awx.credential"]]
    assert credential["credential_type"] == objects["coordination_credential_type"]["name"]
    # The secrets never reach the result (nor the output: _run_configure checks).
    hidden = "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
    assert credential["inputs"] == {"username": hidden, "password": hidden}
    [kind] = [i["invocation"]["module_args"] for i in by_module["awx.awx.credential_type"]]
    # Sent unevaluated: AWX renders the injector with the credential's inputs.
    assert kind["injectors"]["env"]["PFLOW_COORDINATION_PASSWORD"] == "{{ password }}"
    [project] = [i["invocation"]["module_args"] for i in by_module["awx.awx.project"]]
    assert project["default_environment"] == ee
    sources = [i["invocation"]["module_args"] for i in by_module["awx.awx.inventory_source"]]
    assert {s["execution_environment"] for s in sources} == {ee}
    wf_args = [i["invocation"]["module_args"] for i in by_module["awx.awx.workflow_job_template"]]
    assert [a["workflow_nodes"] for a in wf_args] == [
        w["workflow_nodes"] for w in objects["workflows"]
    ]


def test_a_wrong_parameter_name_is_caught(tmp_path: Path) -> None:
    port = _closed_port()
    run = _run_configure(tmp_path, port, bogus="descripton")
    problems = _not_connection_failures(run, port)
    [organization] = [p for p in problems if p.startswith("Create the organization:")]
    assert "Unsupported parameters" in organization and "descripton" in organization
    # The other controller tasks did not run here, and are reported as such, never as passing.
    assert len(problems) == len(_controller_tasks())


def test_playbooks_pass_syntax_check() -> None:
    for playbook in ("awx/configure.yml", "awx/recovery_gate.yml"):
        proc = subprocess.run(
            [PLAYBOOK, "--syntax-check", playbook],
            cwd=ROOT,
            env={**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize(
    ("artifacts", "passes", "message"),
    [
        ({"pflow_results": {"backend-01": {"outcome": "healthy"}}}, True, "nothing to recover"),
        (
            {
                "pflow_results": {
                    "backend-01": {"outcome": "healthy"},
                    "backend-02": {"outcome": "escalate", "reason": "backend process down"},
                }
            },
            False,
            "Recovery needed: backend-02: escalate (backend process down)",
        ),
        ({}, False, "No pflow_results artifact"),
        # A word outside the outcome vocabulary fails closed: it counts as error.
        (
            {"pflow_results": {"backend-01": {"outcome": "fixed", "reason": "looks fine"}}},
            False,
            "Recovery needed: backend-01: error (looks fine)",
        ),
    ],
    ids=["healthy", "needs-recovery", "no-artifacts", "unknown-outcome"],
)
def test_gate_ends_the_workflow_only_when_every_host_is_healthy(
    artifacts: dict[str, Any], passes: bool, message: str
) -> None:
    proc = subprocess.run(
        [PLAYBOOK, "awx/recovery_gate.yml", "-e", json.dumps(artifacts)],
        cwd=ROOT,
        env={**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (proc.returncode == 0) is passes, proc.stdout[-2000:]
    assert message in " ".join((proc.stdout + proc.stderr).split())
