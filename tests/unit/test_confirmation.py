"""A protected environment asks on a terminal; only its exact name goes ahead."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pexpect
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("answer", ["yes", "staging", ""])
def test_a_wrong_answer_at_the_prompt_is_refused(tmp_path: Path, answer: str) -> None:
    child = pexpect.spawn(
        sys.executable,
        ["-m", "pflow_ops", "recover", "rb-01", "--env", "prod"],
        cwd=str(ROOT),
        env={"PFLOW_OPS_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
        encoding="utf-8",
        timeout=20,
    )
    child.expect("Environment 'prod' is protected. Type its name to go ahead: ")
    child.sendline(answer)
    child.expect("refused: not confirmed")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 3
    # The refusal is on record (history lists it); nothing was launched.
    records = list((tmp_path / "runs").glob("*/run.json"))
    assert len(records) == 1 and json.loads(records[0].read_text())["state"] == "refused"
    assert not list((tmp_path / "runs").glob("*/artifacts")), "nothing ran"


def test_dry_runs_and_yes_need_no_confirmation() -> None:
    from pflow_ops import environments
    from pflow_ops.request import RunRequest
    from pflow_ops.run import confirm

    prod = environments.get("prod")
    assert prod.protected and not environments.get("local").protected
    assert confirm(prod, RunRequest("diagnose", "rb-01", env="prod")) is None
    assert confirm(prod, RunRequest("recover", "rb-01", env="prod", check=True)) is None
    assert confirm(prod, RunRequest("recover", "rb-01", env="prod", yes=True)) is None
