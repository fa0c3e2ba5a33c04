"""Each module's documentation (doc fragments included) matches its argument spec.

ansible-test's validate-modules does this, but it needs to download pip; this does the part that
matters to users: every option a module accepts is documented with the same type, default,
choices and required flag, and nothing is documented that the module does not accept.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.plugins import PLUGINS, load_plugin

ROOT = Path(__file__).resolve().parents[2]
MODULES = sorted(p.stem for p in (PLUGINS / "modules").glob("*.py") if p.stem != "__init__")
# restart_budget, run_lock and alert_input work in their action plugins; their module files only
# carry docs.
DOC_ONLY = {"restart_budget", "run_lock", "alert_input", "incident_record", "incident_renotify"}


class _Captured(Exception):
    def __init__(self, spec: dict[str, Any]):
        super().__init__("captured")
        self.spec = spec


def _argument_spec(name: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The module's own options, caught where main() builds its AnsibleModule (or, for the
    Docker modules, community.docker's AnsibleDockerClient)."""
    module = load_plugin(name)

    def fake(*args: Any, **kwargs: Any) -> None:
        raise _Captured(kwargs.get("argument_spec") or args[0])

    if hasattr(module, "AnsibleModule"):
        monkeypatch.setattr(module, "AnsibleModule", fake)
    else:
        from ansible_collections.community.docker.plugins.module_utils import common_api

        def fake_client(self: Any, *args: Any, **kwargs: Any) -> None:
            fake(**kwargs)

        monkeypatch.setattr(common_api.AnsibleDockerClient, "__init__", fake_client)
    with pytest.raises(_Captured) as caught:
        module.main()
    return caught.value.spec


def _docker_common_options() -> set[str]:
    """Options community.docker adds to every Docker module, documented by its own fragment."""
    from ansible_collections.community.docker.plugins.module_utils.util import (
        DOCKER_COMMON_ARGS,
    )

    return set(DOCKER_COMMON_ARGS)


@pytest.fixture(scope="module")
def docs() -> dict[str, Any]:
    ansible_doc = Path(sys.executable).parent / "ansible-doc"
    names = [f"pivotal.flow_ops.{m}" for m in MODULES]
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")}
    out = subprocess.run(
        [str(ansible_doc), "--json", "-t", "module", *names],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env=env,
    )
    data: dict[str, Any] = json.loads(out.stdout)
    return {name.rsplit(".", 1)[1]: entry["doc"] for name, entry in data.items()}


def _same(doc_value: Any, spec_value: Any) -> bool:
    if isinstance(spec_value, float) and isinstance(doc_value, int | float):
        return float(doc_value) == spec_value
    return bool(doc_value == spec_value)


def _compare(prefix: str, documented: dict[str, Any], spec: dict[str, Any]) -> list[str]:
    problems = []
    if set(documented) != set(spec):
        problems.append(
            f"{prefix}: documented-only {sorted(set(documented) - set(spec))}, "
            f"undocumented {sorted(set(spec) - set(documented))}"
        )
    for key in set(documented) & set(spec):
        doc, arg = documented[key], spec[key]
        where = f"{prefix}.{key}"
        if doc.get("type", "str") != arg.get("type", "str"):
            problems.append(f"{where}: type {doc.get('type')} != {arg.get('type')}")
        if not _same(doc.get("default"), arg.get("default")):
            problems.append(f"{where}: default {doc.get('default')!r} != {arg.get('default')!r}")
        if bool(doc.get("required")) != bool(arg.get("required")):
            problems.append(f"{where}: required flag differs")
        if doc.get("choices") and list(doc["choices"]) != list(arg.get("choices") or []):
            problems.append(f"{where}: choices {doc['choices']} != {arg.get('choices')}")
        if doc.get("suboptions") or arg.get("options"):
            problems += _compare(where, doc.get("suboptions") or {}, arg.get("options") or {})
    return problems


@pytest.mark.parametrize("name", [m for m in MODULES if m not in DOC_ONLY])
def test_documented_options_match_the_argument_spec(
    name: str, docs: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = _argument_spec(name, monkeypatch)
    documented = dict(docs[name].get("options") or {})
    if "AnsibleModule" not in vars(load_plugin(name)):
        common = _docker_common_options()
        assert common <= set(documented), "community.docker's common options are documented"
        documented = {k: v for k, v in documented.items() if k not in common or k in spec}
    assert _compare(name, documented, spec) == []


def _secret_options(spec: dict[str, Any], prefix: str = "") -> dict[str, bool]:
    out = {}
    for key, arg in spec.items():
        if any(word in key for word in ("password", "token", "secret")):
            out[prefix + key] = bool(arg.get("no_log"))
        out.update(_secret_options(arg.get("options") or {}, f"{prefix}{key}."))
    return out


@pytest.mark.parametrize("name", [m for m in MODULES if m not in DOC_ONLY])
def test_secret_options_are_never_logged(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = _secret_options(_argument_spec(name, monkeypatch))
    assert all(secrets.values()), f"options without no_log: {secrets}"
