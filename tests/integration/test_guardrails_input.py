"""Guardrail matrix, input rows (issue 13, sections 3 and 4): bad input is exit 2 before
anything runs, and a protected environment is refused without --yes whatever inventory layout
says so. Each case runs the real CLI against the sandbox with a crashed backend and asserts the
real effect: the backend is still down, no restart budget was spent, no run was launched."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import ROOT, Stack

pytestmark = pytest.mark.integration

BAD_INPUT = [
    (("-e", "backend_health_gate_timout=40"), "did you mean backend_health_gate_timeout?"),
    (("-e", "backend_data_paths={a: 1}"), "backend_data_paths='{a: 1}': expects a list"),
    (("-e", "backend_soak_seconds=soon"), "backend_soak_seconds='soon': expects a number"),
    (("-e", "backend_health_url=file:///etc/passwd"), "expects an http or https URL"),
    (("-e", "pflow_prometheus_url=file:///etc/passwd"), "expects an http or https URL"),
    (("-e", "backend_error_rate_max=5"), "backend_error_rate_max='5': out of range"),
    (("-e", "pflow_mode=maintain"), "-e pflow_mode is set by pflow-ops"),
    (("--limit", "no-such-host"), "matches no host of pivotal_backend in env 'local'"),
    (("--env", "moon"), "unknown environment 'moon'"),
]


def _runs(stack: Stack) -> set[str]:
    runs = stack.home / "runs"
    return {p.name for p in runs.iterdir()} if runs.is_dir() else set()


@pytest.mark.parametrize(("args", "needle"), BAD_INPUT, ids=[c[1][:30] for c in BAD_INPUT])
def test_bad_input_is_exit_2_and_nothing_runs(
    sandbox: Stack, args: tuple[str, ...], needle: str
) -> None:
    assert sandbox.cli("sandbox", "break", "backend-crash").rc == 0
    before = _runs(sandbox)
    run = sandbox.cli("recover", "rb-01", "--output", "json", *args)
    assert run.rc == 2, run.stderr
    data = run.json  # one JSON object on stdout, usage errors included
    assert (data["outcome"], data["exit_code"], data["run_id"]) == ("usage", 2, None)
    assert needle in data["reason"] and needle in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and "Traceback" not in run.stderr
    # Nothing ran: no run directory at all, no budget unit, the crashed backend still down.
    assert _runs(sandbox) == before
    assert sandbox.budget_entries() == []
    assert sandbox.backend_pid() is None and sandbox.health() is None


def test_a_list_value_reaches_the_playbook_as_a_list(sandbox: Stack) -> None:
    """0.3.0 passed `[/path]` on as the text '[/path]' (one bogus path): now it is a list."""
    missing = "/nonexistent/pflow-guardrail"
    run = sandbox.cli(
        "diagnose", "rb-01", "--output", "json", "-e", f"backend_data_paths=[{missing}]"
    )
    report = json.loads((sandbox.home / "runs" / run.json["run_id"] / "report.json").read_text())
    text = json.dumps(report)
    assert missing in text and f"[{missing}]" not in text, text[:2000]


HOSTS = """\
all:
  children:
    pivotal_backend:
      hosts:
        localhost:
  vars:
    ansible_connection: local
    ansible_python_interpreter: "{{{{ ansible_playbook_python }}}}"
{extra}"""


def _guarded_project(tmp_path: Path, files: dict[str, str]) -> Path:
    """A project copy whose inventories/guarded has ``files`` (and the local env's group_vars)."""
    proj = tmp_path / "proj"
    proj.mkdir()
    for name in ("collection", "catalogue.yml", "playbooks", "collections", "ansible.cfg"):
        (proj / name).symlink_to(ROOT / name)
    shutil.copytree(ROOT / "inventories", proj / "inventories")
    env_dir = proj / "inventories" / "guarded"
    for rel, text in {"hosts.yml": HOSTS.format(extra=""), **files}.items():
        (env_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        (env_dir / rel).write_text(text)
    return proj


LAYOUTS = {
    "hosts.yml vars": {"hosts.yml": HOSTS.format(extra="    pflow_protected: true\n")},
    "group_vars/all.yaml": {"group_vars/all.yaml": "pflow_protected: true\n"},
    "group_vars/all/vars.yml": {"group_vars/all/vars.yml": "pflow_protected: true\n"},
    "vault": {"group_vars/all/vault.yml": "pflow_protected: true\n"},
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_a_protected_env_is_refused_without_yes_in_every_layout(
    sandbox: Stack, tmp_path: Path, layout: str
) -> None:
    proj = _guarded_project(tmp_path, LAYOUTS[layout])
    env = {**sandbox.env, "PFLOW_OPS_PROJECT": str(proj)}
    if layout == "vault":
        password = tmp_path / "vault-pass"
        password.write_text("correct horse\n")
        vault_file = proj / "inventories" / "guarded" / "group_vars" / "all" / "vault.yml"
        subprocess.run(
            [
                str(Path(sys.executable).parent / "ansible-vault"),
                "encrypt",
                str(vault_file),
                "--vault-password-file",
                str(password),
            ],
            check=True,
            capture_output=True,
            env=os.environ.copy(),
        )
        assert vault_file.read_text().startswith("$ANSIBLE_VAULT;")
        env["ANSIBLE_VAULT_PASSWORD_FILE"] = str(password)
    assert sandbox.cli("sandbox", "break", "backend-crash").rc == 0
    before = _runs(sandbox)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pflow_ops",
            "recover",
            "rb-01",
            "--env",
            "guarded",
            "--output",
            "json",
        ],
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        cwd=ROOT,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 3, proc.stderr
    data = json.loads(proc.stdout)
    assert data["outcome"] == "refused" and "pflow_protected: true" in data["reason"]
    # The refusal is on record; nothing was launched, the backend is still down.
    new = _runs(sandbox) - before
    assert len(new) == 1 and not (sandbox.home / "runs" / new.pop() / "artifacts").exists()
    assert sandbox.budget_entries() == [] and sandbox.backend_pid() is None


def test_the_local_env_is_not_protected(sandbox: Stack) -> None:
    run = sandbox.recover()  # no --yes, no terminal: goes ahead
    assert run.rc == 0 and run.json["outcome"] == "healthy", run.stderr
