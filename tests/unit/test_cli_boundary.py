"""The CLI boundary: one error family and its exit codes, the typed run request, the outcome
vocabulary behind every exit code, the launcher's logging, a closed stdout, no import cycle."""

from __future__ import annotations

import ast
import dataclasses
import io
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from pflow_ops import cli, console, errors, outcome, runner
from pflow_ops.catalogue import CatalogueError, UnknownRunbook
from pflow_ops.environments import UnknownEnvironment
from pflow_ops.lock import LockHeld, RunLock
from pflow_ops.receiver import worker
from pflow_ops.receiver.service import ServeError
from pflow_ops.request import RunRequest
from pflow_ops.sandbox.errors import SandboxError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PFLOW_OPS_HOME", str(tmp_path / "home"))


@pytest.mark.parametrize(
    ("error", "code", "label"),
    [
        (errors.UsageError("bad -e"), 2, "error"),
        (UnknownRunbook("unknown runbook"), 2, "error"),
        (UnknownEnvironment("unknown environment"), 2, "error"),
        (CatalogueError("catalogue is malformed"), 2, "error"),
        (errors.RefusedError("not confirmed"), 3, "refused"),
        (LockHeld("another recovery is running"), 3, "refused"),
        (ServeError("no bearer token"), 2, "error"),
        (ServeError("journal busy", errors.REFUSED), 3, "error"),
        (SandboxError("unknown fault", errors.USAGE), 2, "sandbox"),
        (SandboxError("supervisord did not start"), 1, "sandbox"),
        (errors.PflowError("could not do it"), 1, "error"),
    ],
)
def test_every_user_error_is_one_family_carrying_its_exit_code(
    error: errors.PflowError, code: int, label: str
) -> None:
    assert isinstance(error, errors.PflowError)
    assert (error.exit_code, error.label) == (code, label)


def test_the_exit_codes_are_the_outcome_vocabulary_s() -> None:
    assert errors.REFUSED == outcome.exit_code(outcome.REFUSED) == 3
    assert errors.INTERNAL == outcome.exit_code(outcome.ERROR) == 1
    assert errors.USAGE == outcome.USAGE_EXIT_CODE == 2
    # The receiver reads a child's outcome back with the same vocabulary.
    for word in outcome.ORDER:
        rc = outcome.exit_code(word)
        assert worker.parse_result(rc, "", "", 0.1).outcome == outcome.from_exit_code(rc)
    assert worker.parse_result(2, "", "pflow-ops: error: bad -e", 0.1).outcome == "error"


def test_an_error_is_caught_once_in_main_as_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def refuse(_args: object) -> int:
        raise LockHeld("another recovery is running for local-backend\n(run x, pid 1)")

    monkeypatch.setattr(cli, "cmd_list", refuse)
    assert cli.main(["list"]) == 3
    err = capsys.readouterr().err
    assert err == (
        "pflow-ops: refused: another recovery is running for local-backend (run x, pid 1)\n"
    )

    def crash(_args: object) -> int:
        raise KeyError("bug")

    monkeypatch.setattr(cli, "cmd_list", crash)
    assert cli.main(["list"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("pflow-ops: internal error: KeyError") and "Traceback" not in err
    monkeypatch.setenv("PFLOW_OPS_DEBUG", "1")
    with pytest.raises(KeyError):
        cli.main(["list"])


def _request(argv: list[str]) -> RunRequest:
    return cli.run_request(cli.build_parser().parse_args(argv))


def test_run_commands_become_a_frozen_typed_request() -> None:
    argv = "recover rb-01 --env staging -e a=1 -e b=x --yes --limit web-1 --output json"
    req = _request([*argv.split(), "--override-budget", "vendor asked"])
    assert (req.command, req.target, req.env, req.mode) == (
        "recover",
        "rb-01",
        "staging",
        "recover",
    )
    assert (req.yes, req.check, req.limit, req.override_reason) == (
        True,
        False,
        "web-1",
        "vendor asked",
    )
    # -e text as typed: run.py types it by the roles' argument specs (pflow_ops.validate)
    assert dict(req.extra_vars) == {"a": "1", "b": "x"} and req.json_output
    assert req.changes_service and req.alert is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        req.env = "prod"  # type: ignore[misc]
    with pytest.raises(TypeError):
        req.extra_vars["a"] = 2  # type: ignore[index]

    diagnose = _request(["diagnose", "rb-02"])
    assert diagnose.check and diagnose.mode == "diagnose" and not diagnose.changes_service
    alert = _request(["alert", "HighErrorRate", "--fingerprint", "abc123", "--check"])
    assert alert.mode == "recover" and alert.check and alert.target == "HighErrorRate"
    assert alert.alert is not None and alert.alert.to_dict() == {
        "alertname": "HighErrorRate",
        "fingerprint": "abc123",
    }
    maintain = _request(["maintain", "cache"])
    assert (maintain.mode, maintain.target, maintain.changes_service) == ("maintain", "cache", True)
    with pytest.raises(errors.UsageError, match="hex"):
        _request(["alert", "HighErrorRate", "--fingerprint=$(id)"])


def test_v_logs_the_launcher_s_diagnostics_to_stderr_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    console.configure_logging(1)
    with RunLock("local", "backend", "run-7", directory=tmp_path):
        pass
    out = capsys.readouterr()
    assert out.out == ""
    assert "pflow-ops: INFO: run lock taken" in out.err and "run-7" in out.err
    assert "released" not in out.err  # a debug message: -vv only
    console.configure_logging(0)
    with RunLock("local", "backend", "run-8", directory=tmp_path):
        pass
    assert capsys.readouterr().err == ""
    console.configure_logging(2)
    assert logging.getLogger("pflow_ops.runner").isEnabledFor(logging.DEBUG)
    console.configure_logging(0)


def test_runner_arguments_are_logged_without_extra_var_values() -> None:
    shown = runner._loggable({"playbook": "p.yml", "extravars": {"db_password": "s3cret"}})
    assert shown == {"playbook": "p.yml", "extravars": ["db_password"]}


def test_v_on_a_refused_json_run_leaves_stdout_one_json_object() -> None:
    argv = ["recover", "rb-01", "--env", "prod", "--output", "json", "-v"]
    proc = subprocess.run(
        [sys.executable, "-m", "pflow_ops", *argv],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert proc.returncode == 3
    assert json.loads(proc.stdout)["outcome"] == "refused"
    assert "pflow-ops: INFO: recover RB-01 on env prod" in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("pflow-ops: refused: ")


def _reports(home: Path, count: int) -> None:
    for i in range(count):
        run_id = f"20261126T{i:06d}Z-rb-01-{i:04x}"
        run_dir = home / "runs" / run_id
        run_dir.mkdir(parents=True)
        row = {"run_id": run_id, "runbook": "RB-01", "env": "local", "check": False}
        row |= {"outcome": "healthy", "changed": 0, "duration_s": 1.0, "reason": "x" * 80}
        (run_dir / "report.json").write_text(json.dumps(row))


@pytest.mark.parametrize(
    ("argv", "read_lines"),
    [
        (["list"], 0),  # the reader is gone before the first line (`| head -0`)
        (["list", "--output", "json"], 0),
        (["history", "-n", "2000"], 1),  # more than a pipe holds: `| head -1`
    ],
)
def test_a_reader_that_goes_away_ends_the_output_quietly(
    tmp_path: Path, argv: list[str], read_lines: int
) -> None:
    home = tmp_path / "home"
    _reports(home, 1200 if argv[0] == "history" else 0)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pflow_ops", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        env={"PFLOW_OPS_HOME": str(home), "PATH": "/usr/bin:/bin"},
    )
    assert proc.stdout is not None and proc.stderr is not None
    for _ in range(read_lines):
        assert proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=30) == 0
    assert err == ""


def _imports(path: Path, name: str, modules: set[str]) -> set[str]:
    """The pflow_ops modules a module imports, at its top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pflow_ops"):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in modules else str(node.module))
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("pflow_ops")}
    return {m for m in found if m in modules and m != name}


def test_the_launcher_has_no_import_cycle() -> None:
    files = {}
    for path in (ROOT / "pflow_ops").rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {name: _imports(path, name, set(files)) for name, path in files.items()}
    done: set[str] = set()

    def visit(name: str, trail: tuple[str, ...]) -> None:
        assert name not in trail, f"import cycle: {' -> '.join((*trail, name))}"
        if name in done:
            return
        for dep in sorted(graph[name]):
            visit(dep, (*trail, name))
        done.add(name)

    for name in sorted(graph):
        visit(name, ())


def test_vv_logs_the_request_without_extra_var_values(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["diagnose", "rb-01", "--env", "moon", "-vv", "-e", "db_password=hunter2"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "pflow-ops: DEBUG: request: RunRequest(command='diagnose'" in err
    assert "db_password" in err and "hunter2" not in err
    console.configure_logging(0)


class _GonePipe(io.StringIO):
    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_a_closed_stdout_never_stops_a_run_s_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    from pflow_ops.catalogue import load
    from pflow_ops.progress import Progress
    from pflow_ops.runner import Step

    monkeypatch.setattr(sys, "stdout", _GonePipe())
    progress = Progress(load().get("rb-01"), "local", "recover", False, quiet=False)
    progress.start("run-1")  # the reader is gone: no exception, the live view stops
    progress.step(Step("Restart the backend", "recover", "localhost", "", 1.0, "changed", True))
    assert progress.stream is None


@pytest.mark.parametrize("reason", ["", "   ", "\t"])
def test_an_override_without_a_reason_is_a_usage_error(
    reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """0.3.0 took `--override-budget ""` as no override at all, silently."""
    argv = ["recover", "rb-01", "--env", "local", "--output", "json", "--override-budget", reason]
    assert cli.main(argv) == 2
    out, err = capsys.readouterr()
    assert json.loads(out)["outcome"] == "usage"
    assert "--override-budget needs a reason" in err
