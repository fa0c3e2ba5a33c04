"""execution-environment.yml: ansible-builder (schema 3) generates a build context that can build
(a digest-pinned base with a Python ansible-core 2.19 accepts, the interpreter named), with the
versions CI tests; the collection declares its own requirements, and the build's galaxy and
builder stages, replayed here with the context's own scripts, install the collection and add
them. No container engine is needed (none can reach a registry here)."""

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
from bindep.depends import Depends
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
DEFINITION = yaml.safe_load((ROOT / "execution-environment.yml").read_text())
GALAXY = yaml.safe_load((ROOT / "collection" / "galaxy.yml").read_text())
FQCN = f"{GALAXY['namespace']}.{GALAXY['name']}"
# Third-party imports of collection/plugins -> the pip requirement that provides them.
DISTRIBUTIONS = {
    "psycopg2": "psycopg2-binary",
    "requests": "requests",
    "etcd3gw": "etcd3gw",
    "docker": "docker",
}
# What the collection must declare whatever the plugins import today: the contract.
COLLECTION_NEEDS = {"psycopg2-binary", "requests", "etcd3gw", "docker"}
RPM = ["platform:rpm", "platform:redhat", "platform:centos"]


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


@pytest.fixture(scope="module")
def stages(context: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The galaxy stage (WORKDIR /build, ansible-galaxy with the context's options) then the
    builder stage's introspection (the context's own introspect.py, the Containerfile's
    arguments): returns the directory holding the requirements the image would install."""
    out = tmp_path_factory.mktemp("stages")
    collections = out / "collections"
    build = context / "_build"
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(collections)}
    _run(
        str(VENV_BIN / "ansible-galaxy"),
        "collection",
        "install",
        "--no-deps",
        "-r",
        "requirements.yml",
        "--collections-path",
        str(collections),
        cwd=build,
        env=env,
    )
    _run(
        sys.executable,
        str(build / "scripts" / "introspect.py"),
        "introspect",
        str(collections),
        f"--user-pip={build / 'requirements.txt'}",
        f"--user-bindep={build / 'bindep.txt'}",
        f"--write-pip={out / 'requirements.txt'}",
        f"--write-bindep={out / 'bindep.txt'}",
    )
    return out


def _requirements(path: Path) -> list[Requirement]:
    lines = (line.split("#")[0].strip() for line in path.read_text().splitlines())
    return [Requirement(line) for line in lines if line]


def _pins(path: Path) -> dict[str, str]:
    return {
        r.name: str(r.specifier).removeprefix("==")
        for r in _requirements(path)
        if str(r.specifier).startswith("==")
    }


def _pyproject_pins() -> dict[str, str]:
    quoted = re.findall(r'"([A-Za-z0-9_.-]+==[^"]+)"', (ROOT / "pyproject.toml").read_text())
    return dict(pin.split("==", 1) for pin in quoted)


def test_base_image_is_pinned_by_digest_and_names_its_python(context: Path) -> None:
    base = DEFINITION["images"]["base_image"]["name"]
    # A tag moves; a digest is the same image on every rebuild.
    assert re.fullmatch(r"[a-z0-9.-]+(/[a-z0-9._-]+)+@sha256:[0-9a-f]{64}", base), base
    # awx-ee 24.x ships Python 3.9: ansible-core 2.19 cannot run there.
    assert "awx-ee" not in base
    interpreter = DEFINITION["dependencies"]["python_interpreter"]
    containerfile = (context / "Containerfile").read_text()
    assert f'ARG EE_BASE_IMAGE="{base}"' in containerfile
    assert "FROM $EE_BASE_IMAGE AS base" in containerfile
    assert f'ARG PYCMD="{interpreter["python_path"]}"' in containerfile
    assert f'ARG PYPKG="{interpreter["package_system"]}"' in containerfile
    assert "RUN $PKGMGR install $PYPKG -y" in containerfile
    assert f'ARG PKGMGR="{DEFINITION["options"]["package_manager_path"]}"' in containerfile
    # The collection's community.general dependency comes from the `ansible` bundle, not Galaxy.
    assert 'ARG ANSIBLE_GALAXY_CLI_COLLECTION_OPTS="--no-deps"' in containerfile


def test_ansible_and_pins_are_the_ones_ci_runs(context: Path) -> None:
    containerfile = (context / "Containerfile").read_text()
    refs = f"ansible-core=={version('ansible-core')} ansible-runner=={version('ansible-runner')}"
    assert f'ARG ANSIBLE_INSTALL_REFS="{refs}"' in containerfile
    pyproject = _pyproject_pins()
    ee = _pins(context / "_build" / "requirements.txt")
    assert {"ansible", "psycopg2-binary", "etcd3gw"} <= set(ee)
    for name, pin in ee.items():
        assert pin == version(name), f"{name}: the EE pins {pin}, CI runs {version(name)}"
        if name in pyproject:
            assert pin == pyproject[name], f"{name}: pyproject.toml pins {pyproject[name]}"
    assert DEFINITION["options"]["tags"] == [f"pflow-ops-ee:{GALAXY['version']}"]


def test_the_collection_declares_its_requirements_for_ansible_builder() -> None:
    meta = yaml.safe_load((ROOT / "collection" / "meta" / "execution-environment.yml").read_text())
    deps = meta["dependencies"]
    assert (deps["python"], deps["system"]) == ("requirements.txt", "bindep.txt")
    declared = {r.name for r in _requirements(ROOT / "collection" / deps["python"])}
    assert declared >= COLLECTION_NEEDS
    # The artifact must carry them: nothing in build_ignore may drop them.
    for ignored in GALAXY["build_ignore"]:
        for path in (deps["python"], deps["system"], "meta/execution-environment.yml"):
            assert not Path(path).match(ignored), (path, ignored)


def test_collection_requirements_cover_the_plugins_third_party_imports() -> None:
    imported: set[str] = set()
    for path in (ROOT / "collection" / "plugins").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                imported.add(node.module.split(".")[0])
    third_party = imported - set(sys.stdlib_module_names) - {"ansible", "ansible_collections"}
    assert third_party <= set(DISTRIBUTIONS), f"unmapped: {third_party - set(DISTRIBUTIONS)}"
    declared = {r.name for r in _requirements(ROOT / "collection" / "requirements.txt")}
    assert {DISTRIBUTIONS[name] for name in third_party} <= declared


def test_collection_bounds_admit_what_ci_runs_and_the_ee_pins() -> None:
    ee = _pins(ROOT / "ee" / "requirements.txt")
    for req in _requirements(ROOT / "collection" / "requirements.txt"):
        assert req.specifier.contains(version(req.name)), (str(req), version(req.name))
        if req.name in ee:
            assert req.specifier.contains(ee[req.name]), (str(req), ee[req.name])


def test_builder_stage_adds_the_collections_requirements(stages: Path) -> None:
    lines = (stages / "requirements.txt").read_text().splitlines()
    from_collection = {
        Requirement(line.split("#")[0]).name
        for line in lines
        if line.endswith(f"# from collection {FQCN}")
    }
    assert from_collection >= COLLECTION_NEEDS
    user = {
        Requirement(line.split("#")[0]).name
        for line in lines
        if line.endswith("# from collection user")
    }
    assert user >= {"ansible", "psycopg2-binary", "etcd3gw"}


def test_builder_stage_system_packages_for_the_final_and_the_build_image(stages: Path) -> None:
    text = (stages / "bindep.txt").read_text()
    assert f"libpq [platform:rpm]  # from collection {FQCN}" in text
    deps = Depends(text)
    final = {rule[0] for rule in deps.active_rules([*RPM, "default"])}
    build = {rule[0] for rule in deps.active_rules([*RPM, "compile"])}
    assert final == {"libpq", "openssh-clients"}
    # A compiler only where pip must build psycopg2 (no wheel), and never in the final image.
    assert build - final == {"libpq-devel", "gcc", "python3-devel"}


def test_collection_installs_from_the_build_context(context: Path, stages: Path) -> None:
    assert (context / "_build" / "pflow_collection" / "galaxy.yml").is_file()
    installed = stages / "collections" / "ansible_collections" / "pivotal" / "flow_ops"
    assert f'"version": "{GALAXY["version"]}"' in (installed / "MANIFEST.json").read_text()
    assert (installed / "meta" / "execution-environment.yml").is_file()
