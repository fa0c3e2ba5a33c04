"""The core CLI never imports the sandbox: its dependencies (the `sandbox` extra) stay out of a
production install, and the `sandbox` command comes from an entry point."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from pflow_ops import cli, commands, errors, sandbox_cli

ROOT = Path(__file__).resolve().parents[2]
SANDBOX_ONLY = ("supervisor", "docker", "redis", "psycopg2")

# Runs the CLI in a fresh interpreter and prints the modules it imported.
_PROBE = """
import contextlib, io, json, sys
from pflow_ops import cli
out = io.StringIO()
with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
    try:
        code = cli.main(sys.argv[1:])
    except SystemExit as exc:
        code = exc.code
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def _imported(argv: list[str], home: Path) -> tuple[int, list[str]]:
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, *argv],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "PFLOW_OPS_HOME": str(home)},
    )
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    return int(data["code"]), list(data["modules"])


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (["list"], 0),
        (["list", "--output", "json"], 0),
        (["--help"], 0),
        (["diagnose", "--help"], 0),
        (["recover", "rb-01", "--env", "nowhere"], 2),  # parsed and checked, then refused
        (["history"], 0),
    ],
)
def test_core_commands_import_no_sandbox_module(tmp_path: Path, argv: list[str], code: int) -> None:
    rc, modules = _imported(argv, tmp_path)
    assert rc == code
    sandbox = [m for m in modules if m == "pflow_ops.sandbox" or m.startswith("pflow_ops.sandbox.")]
    assert sandbox == []
    assert [m for m in modules if m.split(".")[0] in SANDBOX_ONLY] == []


def test_the_sandbox_command_is_the_entry_point_s() -> None:
    found = commands.discover()
    assert found["sandbox"] is sandbox_cli.COMMAND
    assert "sandbox" in cli.build_parser().format_help()


def test_an_entry_point_seen_twice_registers_once() -> None:
    ep = metadata.EntryPoint("sandbox", "pflow_ops.sandbox_cli:COMMAND", commands.GROUP)
    assert commands.commands([ep, ep]) == {"sandbox": sandbox_cli.COMMAND}


def test_an_entry_point_that_is_not_a_command_is_ignored() -> None:
    ep = metadata.EntryPoint("odd", "pflow_ops.sandbox_cli:EXTRA_MODULES", commands.GROUP)
    assert commands.commands([ep]) == {}


def test_missing_modules_names_only_the_absent_ones() -> None:
    assert commands.missing_modules(["json", "no_such_module_pflow"]) == ["no_such_module_pflow"]


def test_the_sandbox_without_its_extra_is_one_usage_line_naming_it() -> None:
    with pytest.raises(errors.UsageError) as caught:
        sandbox_cli.require_extra(["supervisor", "docker"])
    assert caught.value.exit_code == errors.USAGE == 2
    assert str(caught.value) == (
        "the sandbox needs supervisor, docker: pip install 'pflow-ops[sandbox]'"
    )


def test_the_sandbox_with_its_extra_goes_on() -> None:
    sandbox_cli.require_extra([])


def test_the_cli_says_so_when_the_extra_is_missing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("PFLOW_OPS_HOME", str(tmp_path))
    monkeypatch.setattr(sandbox_cli, "EXTRA_MODULES", ("supervisor", "no_such_module_pflow"))
    assert cli.main(["sandbox", "status"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "pflow-ops: error: the sandbox needs no_such_module_pflow: pip install 'pflow-ops[sandbox]'"
    ]


def test_a_project_that_is_not_a_directory_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert cli.main(["--project", str(tmp_path / "none"), "history"]) == 2
    assert "--project" in capsys.readouterr().err
