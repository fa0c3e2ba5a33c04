"""A protected environment asks on a terminal; only its exact name goes ahead."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
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


HOSTS = """\
all:
  children:
    pivotal_backend:
      hosts:
        web-1:
        web-2:
  vars:
    ansible_connection: local
{extra}"""


def _project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, files: dict[str, str]) -> Path:
    """A project whose inventories/guarded has ``files`` (path -> text); the rest is the repo's."""
    proj = tmp_path / "proj"
    proj.mkdir()
    for name in ("collection", "catalogue.yml", "playbooks", "collections", "ansible.cfg"):
        (proj / name).symlink_to(ROOT / name)
    shutil.copytree(ROOT / "inventories", proj / "inventories")
    env_dir = proj / "inventories" / "guarded"
    for rel, text in {"hosts.yml": HOSTS.format(extra=""), **files}.items():
        (env_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        (env_dir / rel).write_text(text)
    monkeypatch.setenv("PFLOW_OPS_PROJECT", str(proj))
    monkeypatch.setenv("PFLOW_OPS_HOME", str(tmp_path / "home"))
    return env_dir


def _vault(path: Path, tmp_path: Path) -> Path:
    password = tmp_path / "vault-pass"
    password.write_text("correct horse\n")
    subprocess.run(
        ["ansible-vault", "encrypt", "--vault-password-file", str(password), str(path)],
        check=True,
        capture_output=True,
        env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"},
    )
    assert path.read_text().startswith("$ANSIBLE_VAULT;")
    return password


def _refused_and_nothing_ran(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    from pflow_ops import cli

    code = cli.main(["recover", "rb-01", "--env", "guarded", "--output", "json"])
    captured = capsys.readouterr()
    assert code == 3, captured.err
    assert json.loads(captured.out)["outcome"] == "refused"
    assert not list((tmp_path / "home" / "runs").glob("*/artifacts")), "nothing ran"
    assert not (tmp_path / "home" / "budget").exists()
    return captured.err


@pytest.mark.parametrize(
    "files",
    [
        {"hosts.yml": HOSTS.format(extra="    pflow_protected: true\n")},
        {"group_vars/all.yaml": "pflow_protected: true\n"},
        {"group_vars/all/vars.yml": "pflow_env: guarded\npflow_protected: true\n"},
        {"group_vars/pivotal_backend.yml": "pflow_protected: yes\n"},
        {"host_vars/web-2.yml": "pflow_protected: true\n"},
        # Not a literal boolean: fail closed rather than evaluate or guess.
        {"group_vars/all.yml": "pflow_protected: \"{{ lookup('env', 'NOPE') }}\"\n"},
    ],
    ids=["hosts-vars", "all-yaml", "all-dir", "group", "one-host", "template"],
)
def test_every_inventory_layout_protects(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    files: dict[str, str],
) -> None:
    from pflow_ops import environments

    _project(tmp_path, monkeypatch, files)
    env = environments.get("guarded")
    assert env.protected and "pflow_protected" in env.why
    assert "pflow_protected" in _refused_and_nothing_ran(tmp_path, capsys)


def test_a_vaulted_group_vars_file_protects_with_its_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from pflow_ops import environments

    files = {"group_vars/all/vars.yml": "pflow_env: guarded\n"}
    files["group_vars/all/vault.yml"] = "pflow_protected: true\nvault_secret: s3cr3t\n"
    env_dir = _project(tmp_path, monkeypatch, files)
    password = _vault(env_dir / "group_vars" / "all" / "vault.yml", tmp_path)
    monkeypatch.setenv("ANSIBLE_VAULT_PASSWORD_FILE", str(password))
    env = environments.get("guarded")
    assert env.protected and env.why.startswith("pflow_protected: true on web-1")
    assert "pflow_protected: true" in _refused_and_nothing_ran(tmp_path, capsys)


def test_an_inventory_that_cannot_be_read_is_protected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from pflow_ops import environments

    # A vault file and no password to open it: whatever it says, the env is protected.
    files = {"group_vars/all/vault.yml": "pflow_protected: false\n"}
    env_dir = _project(tmp_path, monkeypatch, files)
    _vault(env_dir / "group_vars" / "all" / "vault.yml", tmp_path)
    monkeypatch.delenv("ANSIBLE_VAULT_PASSWORD_FILE", raising=False)
    env = environments.get("guarded")
    assert env.protected and "cannot be read" in env.why and "vault" in env.why.lower()
    assert "cannot be read" in _refused_and_nothing_ran(tmp_path, capsys)


def test_an_inventory_that_does_not_parse_is_protected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from pflow_ops import environments

    _project(tmp_path, monkeypatch, {"hosts.yml": "all: [unclosed\n"})
    env = environments.get("guarded")
    assert env.protected and "cannot be read" in env.why
    _refused_and_nothing_ran(tmp_path, capsys)


def test_false_and_absent_are_not_protected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pflow_ops import environments

    _project(tmp_path, monkeypatch, {"group_vars/all/vars.yml": "pflow_protected: false\n"})
    assert not environments.get("guarded").protected
    assert not environments.get("local").protected and not environments.get("staging").protected
