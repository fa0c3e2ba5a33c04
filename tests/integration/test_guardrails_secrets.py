"""Secrets (issue 13, section 5): a secret given through ``-e``, a vault file or the inventory
never lands in a file under ``$PFLOW_OPS_HOME`` nor on any process's command line, and the
shipped vault layout works with a real vault file."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from tests.integration.conftest import PFLOW, ROOT, Stack

E_SECRET = f"esecret-{secrets.token_hex(8)}"
VAULT_SECRET = f"vaultsecret-{secrets.token_hex(8)}"
INVENTORY_SECRET = f"invsecret-{secrets.token_hex(8)}"
ALL_SECRETS = (E_SECRET, VAULT_SECRET, INVENTORY_SECRET)


def _project_with_vaulted_env(tmp: Path, password_file: Path) -> Path:
    """The checkout, symlinked, plus an environment 'vaulted': the local inventory in the layout
    inventories/prod ships (group_vars/all/vars.yml + an encrypted group_vars/all/vault.yml)."""
    project = tmp / "project"
    project.mkdir()
    for item in ROOT.iterdir():
        if item.name not in ("inventories", ".git"):
            (project / item.name).symlink_to(item)
    inventories = project / "inventories"
    inventories.mkdir()
    for env in (ROOT / "inventories").iterdir():
        (inventories / env.name).symlink_to(env)
    vaulted = inventories / "vaulted"
    shutil.copytree(ROOT / "inventories" / "local", vaulted)
    group_vars = vaulted / "group_vars"
    (group_vars / "all").mkdir()
    (group_vars / "all.yml").rename(group_vars / "all" / "vars.yml")
    with (group_vars / "all" / "vars.yml").open("a") as f:
        f.write(f"pflow_inventory_probe_password: {INVENTORY_SECRET}\n")
        f.write("backend_supervisor_username: pflow\n")
        f.write("backend_supervisor_password: '{{ vault_supervisor_password }}'\n")
    vault = group_vars / "all" / "vault.yml"
    vault.write_text(f"---\nvault_supervisor_password: {VAULT_SECRET}\n")
    subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-vault"),
            "encrypt",
            str(vault),
            "--vault-password-file",
            str(password_file),
        ],
        check=True,
        capture_output=True,
    )
    assert VAULT_SECRET not in vault.read_text()
    return project


@pytest.fixture
def vaulted(sandbox: Stack, tmp_path: Path) -> Iterator[tuple[Stack, Path]]:
    password_file = tmp_path / "vault-pass"
    password_file.write_text("correct horse battery staple\n")
    project = _project_with_vaulted_env(tmp_path, password_file)
    env = {**sandbox.env, "PFLOW_OPS_PROJECT": str(project)}
    env["ANSIBLE_CONFIG"] = str(project / "ansible.cfg")
    yield replace(sandbox, env=env), password_file


def _cmdline_hits(caller: int) -> tuple[list[str], bool]:
    """Processes whose command line holds a secret; whether a playbook ran. The caller's own
    ``pflow-ops ... -e KEY=VALUE`` shows what its user typed: only what pflow-ops starts counts."""
    hits, playbook_seen = [], False
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == caller:
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        playbook_seen = playbook_seen or b"ansible-playbook" in cmdline
        hits += [f"pid {entry.name}: {s}" for s in ALL_SECRETS if s.encode() in cmdline]
    return hits, playbook_seen


def _files_with_secrets(home: Path) -> list[str]:
    """Regular files under ``home`` holding a secret (sockets and links are not files). A file
    or directory removed while the scan walks holds nothing on disk: os.walk skips a vanished
    directory, a vanished file is skipped here."""
    hits = []
    for top, _dirs, files in os.walk(home):
        for name in files:
            path = Path(top, name)
            if path.is_symlink() or not path.is_file():
                continue
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                continue
            hits += [f"{path}: {s}" for s in ALL_SECRETS if s.encode() in data]
    return hits


def test_no_secret_on_disk_or_in_ps(vaulted: tuple[Stack, Path]) -> None:
    stack, password_file = vaulted
    assert stack.cli("sandbox", "break", "backend-crash").rc == 0
    args = ["recover", "rb-01", "--env", "vaulted", "--output", "json"]
    args += ["-e", "backend_soak_seconds=3", "-e", f"backend_postgres_password={E_SECRET}"]
    args += ["--vault-password-file", str(password_file)]
    proc = subprocess.Popen(
        [*PFLOW, *args], env=stack.env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    ps_hits, seen = [], False
    while proc.poll() is None:
        hits, playbook = _cmdline_hits(proc.pid)
        ps_hits += hits
        seen = seen or playbook
        time.sleep(0.02)
    _out, err = proc.communicate()
    # A wrong PostgreSQL password makes RB-01 escalate (4); the secret was used all the same.
    assert proc.returncode in (0, 4), err.decode()
    assert seen, "the process table was sampled while the playbook ran"
    assert ps_hits == []
    assert _files_with_secrets(stack.home) == []


def test_the_vault_is_read_from_the_password_file_or_the_environment(
    vaulted: tuple[Stack, Path],
) -> None:
    stack, password_file = vaulted
    base = ["diagnose", "rb-01", "--env", "vaulted", "--output", "json"]
    without = stack.cli(*base)
    assert without.rc != 0  # the vault cannot be opened: nothing runs on a guess
    with_file = stack.cli(*base, "--vault-password-file", str(password_file))
    assert with_file.rc == 0, with_file.stderr
    by_env = replace(stack, env={**stack.env, "ANSIBLE_VAULT_PASSWORD_FILE": str(password_file)})
    assert by_env.cli(*base).rc == 0
    missing = stack.cli(*base, "--vault-password-file", str(password_file) + ".nope")
    assert missing.rc == 2 and "not a readable file" in missing.stderr
    assert _files_with_secrets(stack.home) == []


def test_the_shipped_prod_layout_keeps_plain_vars_and_an_example_vault() -> None:
    all_dir = ROOT / "inventories" / "prod" / "group_vars" / "all"
    assert not (ROOT / "inventories" / "prod" / "group_vars" / "all.yml").exists()
    assert "pflow_protected: true" in (all_dir / "vars.yml").read_text()
    assert "ansible-vault encrypt" in (all_dir / "vault.yml.example").read_text()
    shown = subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-inventory"),
            "-i",
            "inventories/prod/hosts.yml",
            "--list",
        ],
        cwd=ROOT,
        env={**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    # The example is not loaded: no vault_* variable is defined, only referred to.
    assert '"pflow_env": "prod"' in shown and '"vault_pflow_monitor_password":' not in shown
