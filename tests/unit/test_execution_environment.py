"""execution-environment.yml: ansible-builder (schema 3) generates a build context with the
dependencies the roles need, and the collection installs from that context as the image's
galaxy stage would install it. No container engine is needed."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
# Third-party imports of collection/plugins -> the pip requirement that provides them.
DISTRIBUTIONS = {"psycopg2": "psycopg2-binary", "requests": "requests"}


def _run(*argv: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=180, check=False
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc.stdout


@pytest.fixture(scope="module")
def context(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ctx = tmp_path_factory.mktemp("ee") / "context"
    _run(
        str(VENV_BIN / "ansible-builder"),
        "create",
        "--file",
        "execution-environment.yml",
        "--context",
        str(ctx),
        "--output-filename",
        "Containerfile",
    )
    return ctx


def _pins(text: str) -> dict[str, str]:
    lines = (line.split("#")[0].strip() for line in text.splitlines())
    return dict(line.split("==", 1) for line in lines if "==" in line)


def _pyproject_pins() -> dict[str, str]:
    quoted = re.findall(r'"([A-Za-z0-9_.-]+==[^"]+)"', (ROOT / "pyproject.toml").read_text())
    return dict(pin.split("==", 1) for pin in quoted)


def test_definition_is_schema_3_with_the_base_image_as_a_build_arg(context: Path) -> None:
    definition = yaml.safe_load((ROOT / "execution-environment.yml").read_text())
    assert definition["version"] == 3
    containerfile = (context / "Containerfile").read_text()
    base = definition["images"]["base_image"]["name"]
    assert f'ARG EE_BASE_IMAGE="{base}"' in containerfile
    assert "FROM $EE_BASE_IMAGE AS base" in containerfile
    # The collection's community.docker dependency comes from the `ansible` bundle, not Galaxy.
    assert 'ARG ANSIBLE_GALAXY_CLI_COLLECTION_OPTS="--no-deps"' in containerfile


def test_ansible_versions_are_the_ones_ci_runs(context: Path) -> None:
    containerfile = (context / "Containerfile").read_text()
    refs = f"ansible-core=={version('ansible-core')} ansible-runner=={version('ansible-runner')}"
    assert f'ARG ANSIBLE_INSTALL_REFS="{refs}"' in containerfile
    pinned = _pyproject_pins()
    ee = _pins((context / "_build" / "requirements.txt").read_text())
    for name in ("ansible", "psycopg2-binary"):
        assert ee[name] == pinned[name] == version(name)


def test_python_requirements_cover_the_plugins_third_party_imports(context: Path) -> None:
    requirements = (context / "_build" / "requirements.txt").read_text()
    names = {re.split(r"[=<>\[ ]", line.strip())[0] for line in requirements.splitlines()}
    imported: set[str] = set()
    for path in (ROOT / "collection" / "plugins").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                imported.add(node.module.split(".")[0])
    third_party = imported - set(sys.stdlib_module_names) - {"ansible", "ansible_collections"}
    assert third_party <= set(DISTRIBUTIONS), (
        f"unmapped imports: {third_party - set(DISTRIBUTIONS)}"
    )
    assert {DISTRIBUTIONS[name] for name in third_party} <= names
    # community.docker's API client (compose_service) needs requests.
    assert "requests" in names


def test_system_requirements_reach_bindep(context: Path) -> None:
    bindep = (context / "_build" / "bindep.txt").read_text()
    assert "libpq [platform:rpm]" in bindep
    assert "openssh-clients [platform:rpm]" in bindep


def test_collection_installs_from_the_build_context(context: Path, tmp_path: Path) -> None:
    build = context / "_build"
    galaxy = yaml.safe_load((ROOT / "collection" / "galaxy.yml").read_text())
    assert (build / "pflow_collection" / "galaxy.yml").is_file()
    # As the Containerfile's galaxy stage: WORKDIR /build, then ansible-galaxy with the opts.
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(tmp_path)}
    _run(
        str(VENV_BIN / "ansible-galaxy"),
        "collection",
        "install",
        "--no-deps",
        "-r",
        "requirements.yml",
        "--collections-path",
        str(tmp_path),
        cwd=build,
        env=env,
    )
    manifest = tmp_path / "ansible_collections" / "pivotal" / "flow_ops" / "MANIFEST.json"
    assert f'"version": "{galaxy["version"]}"' in manifest.read_text()


def test_awx_project_sync_installs_the_collection_from_the_checkout(tmp_path: Path) -> None:
    # AWX runs this from the project root with its own collections path; the dependency
    # (community.docker) is found in the `ansible` bundle, so Galaxy is not needed.
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(tmp_path)}
    out = _run(
        str(VENV_BIN / "ansible-galaxy"),
        "collection",
        "install",
        "-r",
        "collections/requirements.yml",
        "--collections-path",
        str(tmp_path),
        env=env,
    )
    assert "pivotal.flow_ops:" in out and "installed successfully" in out
    assert (tmp_path / "ansible_collections" / "pivotal" / "flow_ops" / "MANIFEST.json").is_file()
