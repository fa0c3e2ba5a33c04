"""awx/lookup_plugins/pflow_environment.py: which environments awx/configure.yml treats as protected
(approval workflows) and whether their hosts share one coordination store, read the way the run
reads the inventory. The decisions branch by branch, then the lookup in a real playbook over
inventory layouts: a hosts.yml var, group_vars/all.yml, a group_vars/all/ directory, a child
group, a vault file and an inline !vault value opened with the playbook's own vault password,
and a vault file it cannot open (fails closed: protected, no store)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PLUGINS = ROOT / "awx" / "lookup_plugins"
STORE = "etcds://etcd.example.internal:2379"


def _plugin() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "pflow_environment", PLUGINS / "pflow_environment.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


P = _plugin()


@pytest.mark.parametrize(
    ("values", "protected", "why"),
    [
        ({}, False, ""),
        ({"a": None, "b": False, "c": "no"}, False, ""),
        ({"a": False, "b": True}, True, "pflow_protected: true on b"),
        ({"a": True, "b": "yes"}, True, "pflow_protected: true on a and 1 more host(s)"),
        # Anything that is not a clear boolean fails closed, by the CLI's rule.
        ({"a": "maybe"}, True, "pflow_protected is not true or false (str): treated as true on a"),
        # Read, never templated: a template is not a clear false.
        (
            {"a": "{{ x }}"},
            True,
            "pflow_protected is not true or false (str): treated as true on a",
        ),
    ],
)
def test_protection(values: dict[str, Any], protected: bool, why: str) -> None:
    assert P.protection(values) == (protected, why)


@pytest.mark.parametrize(
    ("values", "shared", "why"),
    [
        ({}, False, "the inventory has no hosts"),
        (
            {"a": STORE, "b": None},
            False,
            "pflow_coordination_url is not set on b: the file store, one machine only",
        ),
        (
            {"a": ""},
            False,
            "pflow_coordination_url is not set on a: the file store, one machine only",
        ),
        ({"a": "file"}, False, "pflow_coordination_url is file on a: one machine only"),
        ({"a": 2379}, False, "pflow_coordination_url on a is a int, not a URL"),
        (
            {"a": "{{ etcd_url }}"},
            False,
            "pflow_coordination_url on a is a template: configure reads values, never templates",
        ),
        ({"a": "https://etcd:2379"}, False, "pflow_coordination_url on a is not an etcd:// URL"),
        (
            {"a": STORE, "b": "etcd://other:2379"},
            False,
            "hosts name 2 different stores: one lock must be one store",
        ),
        ({"a": STORE, "b": STORE}, True, "etcd at etcd.example.internal:2379"),
        ({"a": "etcd://etcd.example.internal"}, True, "etcd at etcd.example.internal:2379"),
        # Credentials in the URL never reach the export or the log.
        ({"a": "etcds://user:secret@etcd:2379"}, True, "etcd at etcd:2379"),
    ],
)
def test_coordination(values: dict[str, Any], shared: bool, why: str) -> None:
    assert P.coordination(values) == (shared, why)


def test_an_unreadable_inventory_is_protected_and_shares_nothing() -> None:
    got = P.unreadable("prod", ValueError("Decryption failed\n  on vault.yml"))
    assert got["protected"] is True and got["coordination_shared"] is False
    assert got["protected_why"] == (
        "its inventory cannot be read (Decryption failed on vault.yml): treated as protected"
    )


def _vault(tmp: Path, password: str, text: str) -> str:
    pw = tmp / f"pw-{password}"
    pw.write_text(password)
    proc = subprocess.run(
        [str(BIN / "ansible-vault"), "encrypt", "--vault-password-file", str(pw), "--output", "-"],
        input=text,
        capture_output=True,
        text=True,
        check=True,
    )
    return proc.stdout


def _env(root: Path, name: str, hosts_vars: dict[str, Any], files: dict[str, str]) -> None:
    env = root / name
    hosts = {
        "all": {
            "children": {
                "pivotal_backend": {"hosts": {f"backend-01.{name}": None}},
                "pivotal_database": {"hosts": {f"db-01.{name}": None}},
            },
            "vars": {"pflow_coordination_url": STORE, **hosts_vars},
        }
    }
    (env / "group_vars").mkdir(parents=True)
    (env / "hosts.yml").write_text(yaml.safe_dump(hosts))
    for path, text in files.items():
        (env / path).parent.mkdir(parents=True, exist_ok=True)
        (env / path).write_text(text)


@pytest.fixture(scope="module")
def layouts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("layouts")
    root = tmp / "inventories"
    protect = "pflow_protected: true\n"
    _env(root, "plain", {"pflow_protected": False}, {})
    _env(root, "hostsvar", {"pflow_protected": True}, {})
    _env(root, "allfile", {}, {"group_vars/all.yml": protect})
    _env(root, "alldir", {}, {"group_vars/all/vars.yml": "pflow_env: alldir\n" + protect})
    _env(root, "childgroup", {}, {"group_vars/pivotal_database.yml": protect})
    _env(root, "vaultfile", {}, {"group_vars/all/vault.yml": _vault(tmp, "right", protect)})
    _env(root, "otherpassword", {}, {"group_vars/all/vault.yml": _vault(tmp, "wrong", protect)})
    inline = _vault(tmp, "right", STORE)
    _env(root, "inlinevault", {"pflow_coordination_url": "VAULTED"}, {})
    hosts = root / "inlinevault" / "hosts.yml"
    block = "!vault |\n" + "".join(f"        {line}\n" for line in inline.splitlines())
    hosts.write_text(hosts.read_text().replace("VAULTED\n", block))
    _env(root, "nostore", {"pflow_coordination_url": "file"}, {})
    names = sorted(p.name for p in root.iterdir())
    play = tmp / "read.yml"
    play.write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.copy:\n"
        "        content: \"{{ query('pflow_environment', *envs, root=root) | to_json }}\"\n"
        "        dest: '{{ out }}'\n        mode: '0644'\n"
    )
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_LOOKUP_PLUGINS": str(PLUGINS),
    }
    out = tmp / "out.json"
    extra = json.dumps({"envs": names, "root": str(root), "out": str(out)})
    # The playbook's own vault secret, given on its command line (not in the environment):
    # the lookup must open vault content with the secrets of the run it is part of.
    env.pop("ANSIBLE_VAULT_PASSWORD_FILE", None)
    proc = subprocess.run(
        [
            str(BIN / "ansible-playbook"),
            str(play),
            "--vault-password-file",
            str(tmp / "pw-right"),
            "-e",
            extra,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    return {item["environment"]: item for item in json.loads(out.read_text())}


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("hostsvar", "pflow_protected: true on backend-01.hostsvar and 1 more host(s)"),
        ("allfile", "pflow_protected: true on backend-01.allfile and 1 more host(s)"),
        ("alldir", "pflow_protected: true on backend-01.alldir and 1 more host(s)"),
        ("childgroup", "pflow_protected: true on db-01.childgroup"),
        ("vaultfile", "pflow_protected: true on backend-01.vaultfile and 1 more host(s)"),
    ],
)
def test_every_layout_that_protects_counts(
    layouts: dict[str, dict[str, Any]], name: str, why: str
) -> None:
    assert (layouts[name]["protected"], layouts[name]["protected_why"]) == (True, why)
    assert layouts[name]["coordination_shared"] is True


def test_an_unprotected_environment_with_a_store(layouts: dict[str, dict[str, Any]]) -> None:
    assert layouts["plain"] == {
        "environment": "plain",
        "protected": False,
        "protected_why": "",
        "coordination_shared": True,
        "coordination_why": "etcd at etcd.example.internal:2379",
    }


def test_an_inline_vault_value_is_opened(layouts: dict[str, dict[str, Any]]) -> None:
    assert layouts["inlinevault"]["coordination_shared"] is True
    assert layouts["inlinevault"]["coordination_why"] == "etcd at etcd.example.internal:2379"


def test_a_vault_file_the_run_cannot_open_fails_closed(layouts: dict[str, dict[str, Any]]) -> None:
    got = layouts["otherpassword"]
    assert (got["protected"], got["coordination_shared"]) == (True, False)
    assert got["protected_why"].startswith("its inventory cannot be read (")
    assert got["protected_why"].endswith(": treated as protected")


def test_the_file_store_is_not_shared(layouts: dict[str, dict[str, Any]]) -> None:
    got = layouts["nostore"]
    assert (got["coordination_shared"], got["coordination_why"]) == (
        False,
        "pflow_coordination_url is file on backend-01.nostore: one machine only",
    )
