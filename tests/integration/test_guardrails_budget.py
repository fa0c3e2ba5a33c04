"""Guardrail matrix, restart budget (issue 13 section 1), against the real sandbox through the
real CLI and plain ansible-playbook: an unreadable budget file refuses and is kept, a per-run
-e never widens the policy nor erases history, an override exists only with a reason and that
reason is recorded in the budget entry and the report. Each case asserts the budget file on
disk, the backend's process and report.json."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import ROOT, Run, Stack

pytestmark = pytest.mark.integration

KEY = "local/localhost/backend"
OTHER_KEY = "local/localhost/redis"
CORRUPT = '{"version": 1, "keys": {"local/localhost/backend": [{"ts": "yesterday"}]}}'


def _budget_file(stack: Stack) -> Path:
    return stack.home / "budget" / "restarts.json"


def _spend(stack: Stack, used: int = 3) -> str:
    """A budget spent by earlier runs (the default policy: 3 per 30 min), plus another key's
    history; returns the file's text, to compare byte for byte afterwards."""
    now = time.time()
    entries: list[dict[str, Any]] = [
        {"ts": now - 60 * (i + 1), "reason": "RB-01 down", "override": False}
        for i in reversed(range(used))
    ]
    data = {
        "version": 1,
        "keys": {
            KEY: entries,
            OTHER_KEY: [{"ts": now - 3600, "reason": "RB-03 down", "override": False}],
        },
    }
    path = _budget_file(stack)
    path.parent.mkdir(mode=0o700, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    return path.read_text()


def _crash_backend(stack: Stack) -> None:
    assert stack.cli("sandbox", "break", "backend-crash").rc == 0
    assert stack.health() is None


def _report(run: Run) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(Path(run.json["report"]["json"]).read_text())
    return data


def _budget_row(report: dict[str, Any]) -> dict[str, Any]:
    rows: list[dict[str, Any]] = [a for a in report["actions"] if a["action"] == "restart_budget"]
    assert len(rows) == 1, report["actions"]
    return rows[0]


def _playbook(stack: Stack, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-playbook"),
            "-i",
            "inventories/local/hosts.yml",
            "playbooks/rb-01-backend-down.yml",
            "-e",
            "backend_soak_seconds=0",
            *extra,
        ],
        env={**stack.env, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=180,
    )


def _said(proc: subprocess.CompletedProcess[str]) -> str:
    """Everything the run printed (task warnings go to stderr), on one line."""
    return " ".join((proc.stdout + proc.stderr).split())


def test_a_corrupt_budget_file_refuses_is_kept_and_an_override_starts_afresh(
    sandbox: Stack,
) -> None:
    path = _budget_file(sandbox)
    path.parent.mkdir(mode=0o700, exist_ok=True)
    path.write_text(CORRUPT)
    _crash_backend(sandbox)

    refused = sandbox.recover()
    assert refused.rc == 3, refused.stderr
    assert refused.json["outcome"] == "refused"
    assert sandbox.health() is None and sandbox.backend_pid() is None, "nothing was restarted"
    assert path.read_text() == CORRUPT, "the budget was neither consumed nor rewritten"
    (kept,) = path.parent.glob("restarts.json.corrupt-*")
    assert kept.read_text() == CORRUPT
    report = _report(refused)
    assert _budget_row(report)["result"] == (
        f"refused: restart budget state unreadable at {path} (kept as {kept}); "
        "a human may --override-budget"
    )
    unreadable = f"restart budget state unreadable at {path} (kept as {kept}): "
    assert any(w.startswith(unreadable) for w in report["warnings"]), report["warnings"]
    assert report["warnings"] == refused.json["warnings"], "the CLI prints the same warnings"

    again = sandbox.recover()  # still unreadable: never read as empty on the second try
    assert again.rc == 3 and sandbox.health() is None
    assert list(path.parent.glob("restarts.json.corrupt-*")) == [kept]

    override = sandbox.recover("--override-budget", "INC-7 budget file lost, restart by hand")
    assert override.rc == 0, override.stderr
    assert override.json["outcome"] == "recovered" and sandbox.health() == 200
    (entry,) = json.loads(path.read_text())["keys"][KEY]
    assert entry["override"] is True
    assert entry["override_reason"] == "INC-7 budget file lost, restart by hand"
    assert kept.read_text() == CORRUPT


@pytest.mark.parametrize("per_run", ["pflow_env=elsewhere", "backend_env=elsewhere"])
def test_a_per_run_environment_is_refused_before_anything_runs(
    sandbox: Stack, per_run: str
) -> None:
    """It would count restarts against a fresh key (elsewhere/localhost/backend) and take
    another environment's run lock: the CLI refuses it up front (the plugins refuse it too,
    for AWX and ansible-playbook: test_coordination.py)."""
    before = _spend(sandbox)
    _crash_backend(sandbox)
    run = sandbox.recover("-e", per_run)
    assert run.rc == 2, run.stderr
    assert f"-e {per_run.split('=')[0]} cannot be set per run" in run.stderr
    assert sandbox.health() is None, "nothing ran"
    assert _budget_file(sandbox).read_text() == before


@pytest.mark.parametrize(
    "per_run",
    [
        "backend_restart_budget_window=1",
        "backend_restart_budget_max=10",
    ],
)
def test_a_per_run_policy_is_refused_and_keeps_every_entry(sandbox: Stack, per_run: str) -> None:
    before = _spend(sandbox)
    _crash_backend(sandbox)
    run = sandbox.recover("-e", per_run)
    assert run.rc == 3, run.stderr
    assert run.json["outcome"] == "refused"
    assert sandbox.health() is None, "a refused run must not restart"
    assert _budget_file(sandbox).read_text() == before, "other keys' and older entries are kept"
    report = _report(run)
    name = per_run.split("=")[0]
    line = f"restart budget policy cannot be set per run (-e {name})"
    assert line in _budget_row(report)["result"]
    assert "comes from the inventory" in _budget_row(report)["result"]
    assert any(w.startswith(line) for w in report["warnings"]), report["warnings"]


@pytest.mark.parametrize(
    "per_run",
    [
        "backend_restart_budget_max=10",  # key=value on the command line
        '{"backend_restart_budget_window": 1}',  # JSON
        "cache_restart_budget_window=1",  # any runbook's policy variable
    ],
)
def test_plain_ansible_playbook_cannot_set_the_policy_per_run(sandbox: Stack, per_run: str) -> None:
    before = _spend(sandbox)
    _crash_backend(sandbox)
    proc = _playbook(sandbox, "-e", per_run)
    assert proc.returncode != 0, proc.stdout[-2000:]
    assert "restart budget policy cannot be set per run" in _said(proc)
    assert sandbox.health() is None
    assert _budget_file(sandbox).read_text() == before


def test_a_per_run_policy_from_an_extra_vars_file_is_refused(
    sandbox: Stack, tmp_path: Path
) -> None:
    """-e @file: the form ansible-runner (the CLI, AWX) passes extra vars in."""
    before = _spend(sandbox)
    _crash_backend(sandbox)
    extra = tmp_path / "extra.yml"
    extra.write_text("backend_restart_budget_max: 10\n")
    proc = _playbook(sandbox, "-e", f"@{extra}")
    assert proc.returncode != 0, proc.stdout[-2000:]
    assert "set per run (-e backend_restart_budget_max)" in _said(proc)
    assert sandbox.health() is None
    assert _budget_file(sandbox).read_text() == before


@pytest.mark.parametrize(
    "override",
    [
        ("-e", "pflow_restart_budget_override=true"),
        ("-e", "pflow_restart_budget_override=true", "-e", "pflow_restart_budget_override_reason="),
    ],
)
def test_an_override_without_a_reason_is_refused(sandbox: Stack, override: tuple[str, ...]) -> None:
    before = _spend(sandbox)
    _crash_backend(sandbox)
    run = sandbox.recover(*override)
    assert run.rc == 3, run.stderr
    assert run.json["outcome"] == "refused"
    assert sandbox.health() is None
    assert _budget_file(sandbox).read_text() == before
    assert _budget_row(_report(run))["result"].startswith(
        "refused: --override-budget needs a reason"
    )


def test_an_override_with_a_reason_is_recorded_in_the_entry_and_the_report(
    sandbox: Stack,
) -> None:
    _spend(sandbox)
    _crash_backend(sandbox)
    reason = "customer-facing outage, INC-42"
    run = sandbox.recover("--override-budget", reason)
    assert run.rc == 0, run.stderr
    assert run.json["outcome"] == "recovered" and sandbox.health() == 200
    stored = json.loads(_budget_file(sandbox).read_text())["keys"]
    assert len(stored[KEY]) == 4 and len(stored[OTHER_KEY]) == 1
    entry = stored[KEY][-1]
    assert entry["override"] is True and entry["override_reason"] == reason
    assert entry["run_id"] == run.json["run_id"]
    report = _report(run)
    assert report["budget_override"] is True
    assert reason in _budget_row(report)["result"]


def test_a_clock_jump_backwards_still_counts_and_is_reported(sandbox: Stack) -> None:
    path = _budget_file(sandbox)
    path.parent.mkdir(mode=0o700, exist_ok=True)
    ahead = [
        {"ts": time.time() + 600 + i, "reason": "RB-01 down", "override": False} for i in (0, 1, 2)
    ]
    path.write_text(json.dumps({"version": 1, "keys": {KEY: ahead}}))
    _crash_backend(sandbox)
    run = sandbox.recover()
    assert run.rc == 3 and run.json["outcome"] == "refused", "entries from the future still count"
    assert sandbox.health() is None
    assert json.loads(path.read_text())["keys"][KEY] == ahead
    warnings = _report(run)["warnings"]
    assert any(w.startswith("clock jumped backwards: 3 restart(s)") for w in warnings), warnings


def test_the_survey_reason_alone_is_an_override(sandbox: Stack) -> None:
    """AWX's survey asks only the reason (pflow_restart_budget_override_reason): given, it is
    the override; the flag is derived from it, never a separate switch."""
    _spend(sandbox)
    _crash_backend(sandbox)
    survey = {"pflow_restart_budget_override_reason": "INC-7 approved by lead"}
    proc = _playbook(sandbox, "-e", json.dumps(survey))
    assert proc.returncode == 0, _said(proc)[-2000:]
    assert sandbox.health() == 200
    entry = json.loads(_budget_file(sandbox).read_text())["keys"][KEY][-1]
    assert entry["override"] is True
    assert entry["override_reason"] == "INC-7 approved by lead"


def test_an_override_reason_is_data_never_a_template(sandbox: Stack, tmp_path: Path) -> None:
    """0.4.0-dev ran `{{ lookup('pipe', ...) }}` inside --override-budget on the controller."""
    _spend(sandbox)
    _crash_backend(sandbox)
    marker = tmp_path / "pwned"
    reason = "INC-9 {{ lookup('pipe', 'touch " + str(marker) + "') }}"
    run = sandbox.recover("--override-budget", reason)
    assert not marker.exists(), "the override reason was evaluated as a template"
    assert run.rc == 0, run.stderr
    entry = json.loads(_budget_file(sandbox).read_text())["keys"][KEY][-1]
    assert entry["override_reason"] == reason
    assert reason in _budget_row(_report(run))["result"]


@pytest.mark.parametrize("reason", ["", "   "])
def test_the_cli_refuses_a_blank_override_reason_before_anything_runs(
    sandbox: Stack, reason: str
) -> None:
    before = _spend(sandbox)
    _crash_backend(sandbox)
    run = sandbox.recover("--override-budget", reason)
    assert run.rc == 2 and run.json["outcome"] == "usage"
    assert "--override-budget needs a reason" in run.stderr
    assert sandbox.health() is None
    assert _budget_file(sandbox).read_text() == before
