"""Launching playbooks through ansible-runner.

One class owns every ansible-runner argument (private data dir, project dir, quiet mode, a
controlled environment, timeout, cancellation). Runner events are copied onto a queue by the
event handler and consumed here; the run's outcome is read from the runner status, rc and the
``playbook_on_stats`` event (its ``artifact_data`` carries the roles' ``set_stats``), never
scraped from text. ansible_runner is imported lazily so ``pflow-ops --help`` stays fast.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import yaml

from pflow_ops import watchdog
from pflow_ops.paths import project_file, project_root, state_home

log = logging.getLogger(__name__)

RESULT_EVENTS = {
    "runner_on_ok": "ok",
    "runner_on_failed": "failed",
    "runner_on_skipped": "skipped",
    "runner_on_unreachable": "unreachable",
}


@dataclass
class Step:
    """One task on one host, as the report's timeline shows it."""

    name: str
    phase: str
    host: str
    start: str
    duration_s: float
    status: str
    changed: bool
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "phase": self.phase,
            "host": self.host,
            "start": self.start,
            "duration_s": round(self.duration_s, 3),
            "status": self.status,
            "changed": self.changed,
            "message": self.message,
        }


@dataclass
class RunResult:
    status: str
    rc: int | None
    steps: list[Step] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    artifact_data: dict[str, Any] = field(default_factory=dict)
    artifacts_dir: str = ""
    stdout_tail: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # the tasks' warnings, in order, once each

    @property
    def changed(self) -> int:
        """Changed tasks: from the final stats, or from the timeline when the run never got
        there (canceled, interrupted)."""
        counted = sum(int(n) for n in (self.stats.get("changed") or {}).values())
        return counted or sum(1 for s in self.steps if s.changed)

    @property
    def unreachable_hosts(self) -> list[str]:
        return sorted((self.stats.get("dark") or {}).keys())


@dataclass(frozen=True)
class PlaybookRun:
    """Everything ansible-runner is told, in one place."""

    run_id: str
    run_dir: Path
    playbook: str  # a path, or the collection playbook's FQCN (an installed wheel)
    inventory: Path
    extravars: dict[str, Any]
    check: bool = False
    limit: str | None = None
    timeout: int = 3600
    hold_lock: Path | None = None  # the run lock's hold file: every playbook process keeps it

    @property
    def extravars_file(self) -> Path:
        """Where the extra vars wait for ansible-playbook (0600, removed when the run ends):
        ansible-runner passes it as ``-e @file``, so no value reaches argv or ``ps``."""
        return self.run_dir / "env" / "extravars"

    def runner_kwargs(self) -> dict[str, Any]:
        root = project_root()
        cmdline = "--check" if self.check else None
        return {
            "private_data_dir": str(self.run_dir),
            "project_dir": str(root),
            "playbook": str(self.playbook),
            "inventory": str(self.inventory),
            "limit": self.limit,
            "cmdline": cmdline,
            "ident": "runner",
            "quiet": True,
            "json_mode": False,
            # Nothing of ours in env/ but the extravars file this module writes and removes.
            "suppress_env_files": True,
            "timeout": self.timeout,
            "envvars": {
                "ANSIBLE_CONFIG": str(project_file("ansible.cfg")),
                "PFLOW_OPS_HOME": str(state_home()),
                "ANSIBLE_NOCOLOR": "1",
                "ANSIBLE_RETRY_FILES_ENABLED": "0",
                # ansible-runner turns host key checking off by default; we keep SSH honest.
                "ANSIBLE_HOST_KEY_CHECKING": "True",
                "PATH": search_path(),
            },
        }


def _loggable(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The runner's arguments for a debug log: extra vars by name only (they may hold secrets)."""
    shown = dict(kwargs)
    shown["extravars"] = sorted(kwargs.get("extravars") or {})
    return shown


# The caller's environment variables the playbook sees; anything else (tokens, cloud keys, the
# caller's whole shell) stays out of ansible-playbook and out of runner's `command` artifact.
_PASSED_ENV = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "TZ", "TMPDIR", "SSH_AUTH_SOCK", "TERM")
_PASSED_PREFIXES = ("LC_", "ANSIBLE_", "PFLOW_OPS_")


def passed_env(config_env: dict[str, str], caller: dict[str, str]) -> dict[str, str]:
    """runner's environment minus the caller's variables we do not pass on (variables runner
    or we set, or changed, stay)."""
    return {
        k: v
        for k, v in config_env.items()
        if k not in caller or caller[k] != v or k in _PASSED_ENV or k.startswith(_PASSED_PREFIXES)
    }


class _Unsafe(str):
    """A string Ansible must never template (YAML tag ``!unsafe``)."""


class _ExtravarsDumper(yaml.SafeDumper):
    pass


_ExtravarsDumper.add_representer(
    _Unsafe, lambda dumper, data: dumper.represent_scalar("!unsafe", str(data), style='"')
)


def _as_data(value: Any) -> Any:
    """Every string value (nested ones too) tagged ``!unsafe``: what the caller typed (an
    override reason, an -e value, an alert's fingerprint) is data, never a template, even when
    it holds ``{{ }}``; keys are variable names and stay plain."""
    if isinstance(value, str):
        # An empty string holds no template, and Ansible reads `!unsafe ""` as null.
        return _Unsafe(value) if value else value
    if isinstance(value, dict):
        return {str(k): _as_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_as_data(v) for v in value]
    return value


def extravars_text(extravars: dict[str, Any]) -> str:
    return yaml.dump(_as_data(extravars), Dumper=_ExtravarsDumper, default_flow_style=False)


def _write_extravars(run: PlaybookRun) -> None:
    env_dir = run.extravars_file.parent
    env_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(run.extravars_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(extravars_text(run.extravars))


def _watchdog_prefix(run: PlaybookRun) -> list[str]:
    """The wrapper that ties the playbook to this process (see :mod:`pflow_ops.watchdog`)."""
    script = Path(__file__).with_name("watchdog.py")
    hold = str(run.hold_lock) if run.hold_lock else ""
    return [
        sys.executable,
        "-I",  # stdlib only: no site, no script directory on sys.path
        str(script),
        "--parent",
        str(os.getpid()),
        "--hold",
        hold,
        "--run-id",
        run.run_id,
        "--remove",
        str(run.extravars_file),
        "--",
    ]


def _runner(run: PlaybookRun, **callbacks: Any) -> Any:
    """An ansible-runner Runner for this run: the command wrapped by the watchdog, the
    environment filtered, the extra vars in a file."""
    from ansible_runner.config.runner import RunnerConfig  # deferred: ~0.2 s
    from ansible_runner.runner import Runner

    kwargs = run.runner_kwargs()
    log.info("running %s; runner directory %s", run.playbook, run.run_dir)
    log.debug("ansible-runner arguments: %s", _loggable({**kwargs, "extravars": run.extravars}))
    config = RunnerConfig(**kwargs)
    config.prepare()
    config.env = passed_env(dict(config.env), dict(os.environ))
    config.command = [*_watchdog_prefix(run), *config.command]
    return Runner(config, **callbacks)


def _scrub(run: PlaybookRun) -> None:
    """Remove the extra vars file; keep only the command line in runner's `command` artifact."""
    run.extravars_file.unlink(missing_ok=True)
    command = run.run_dir / "artifacts" / "runner" / "command"
    try:
        data = json.loads(command.read_text(encoding="utf-8"))
        kept = {"command": data.get("command"), "cwd": data.get("cwd")}
        command.write_text(json.dumps(kept), encoding="utf-8")
    except (OSError, ValueError):
        pass


def search_path() -> str:
    """PATH with this interpreter's bin directory (the venv's) first, so the pinned
    ansible-playbook runs even when the venv is not activated."""
    here = str(Path(sys.executable).parent)
    rest = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p and p != here]
    return os.pathsep.join([here, *rest])


# A role's phase files are named after the runbook phase they implement. Tasks in shared files
# (the service_manager role, an argument_specs check) belong to the phase that called them.
PHASES = frozenset({"preflight", "investigate", "recover", "verify", "report", "maintain"})


def _phase(event_data: dict[str, Any], current: str) -> str:
    task_path = str(event_data.get("task_path") or "")
    name = Path(task_path.split(":", 1)[0]).stem
    if name in PHASES:
        return name
    if str(event_data.get("task", "")).startswith("Validating arguments against arg spec"):
        return current or "preflight"  # a role's argument_specs check, run at role entry
    # Before a role's first phase file: the playbook's own pre-tasks, which check the run's inputs.
    return current or "preflight"


class EventConsumer:
    """Turns the runner's event stream into timeline steps and the final stats."""

    def __init__(self, on_step: Callable[[Step], None] | None = None):
        self.on_step = on_step
        self.steps: list[Step] = []
        self.stats: dict[str, Any] = {}
        self.artifact_data: dict[str, Any] = {}
        self.stdout_tail: list[str] = []
        self.warnings: list[str] = []
        self._phase_by_host: dict[str, str] = {}

    def dispatch(self, event: dict[str, Any]) -> None:
        kind = str(event.get("event", ""))
        data = event.get("event_data") or {}
        stdout = str(event.get("stdout") or "")
        if stdout:
            self.stdout_tail = (self.stdout_tail + stdout.splitlines())[-40:]
        if kind in RESULT_EVENTS:
            self._result(kind, data)
        elif kind == "playbook_on_stats":
            self.stats = {
                k: data.get(k) or {}
                for k in ("ok", "changed", "failures", "dark", "skipped", "rescued", "ignored")
            }
            self.artifact_data = dict(data.get("artifact_data") or {})

    def _result(self, kind: str, data: dict[str, Any]) -> None:
        res = data.get("res") or {}
        changed = bool(res.get("changed")) if isinstance(res, dict) else False
        status = RESULT_EVENTS[kind]
        if status == "ok" and changed:
            status = "changed"
        if data.get("ignore_errors") and status == "failed":
            status = "ignored"
        message = str(res.get("msg", "")) if isinstance(res, dict) and status != "ok" else ""
        self._warnings(res)
        host = str(data.get("host") or "?")
        phase = self._phase_by_host[host] = _phase(data, self._phase_by_host.get(host, ""))
        step = Step(
            name=str(data.get("task") or "?"),
            phase=phase,
            host=host,
            start=str(data.get("start") or ""),
            duration_s=float(data.get("duration") or 0.0),
            status=status,
            changed=changed,
            message=message[:500],
        )
        self.steps.append(step)
        if self.on_step:
            self.on_step(step)

    def _warnings(self, res: object) -> None:
        raw = res.get("warnings") if isinstance(res, dict) else None
        for warning in raw if isinstance(raw, list) else []:
            if str(warning) not in self.warnings:
                self.warnings.append(str(warning))


def _enqueue(events: queue.Queue[dict[str, Any]]) -> Callable[[dict[str, Any]], bool]:
    """The runner's event handler only copies the event; the consumer does the work."""

    def handler(event: dict[str, Any]) -> bool:
        events.put(event)
        return True

    return handler


def execute(run: PlaybookRun, on_step: Callable[[Step], None] | None = None) -> RunResult:
    """Run the playbook; block until done; SIGINT/SIGTERM cancel it cleanly."""
    events: queue.Queue[dict[str, Any]] = queue.Queue()
    cancel = watchdog.Cancel()
    consumer = EventConsumer(on_step)

    def _cancel(signum: int, frame: FrameType | None) -> None:
        cancel.requested.set()

    previous = {s: signal.signal(s, _cancel) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        run.run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        _write_extravars(run)
        runner = _runner(
            run,
            event_handler=_enqueue(events),
            cancel_callback=cancel,
            # An empty event marks the end, so the last event is not followed by a poll delay.
            finished_callback=lambda _runner: events.put({}),
        )
        thread = threading.Thread(target=runner.run, name="ansible-runner", daemon=True)
        thread.start()
        while True:
            try:
                event = events.get(timeout=0.5)
            except queue.Empty:
                if thread.is_alive():
                    continue
                break  # the runner died before its finished callback: nothing more will come
            if not event:
                break
            consumer.dispatch(event)
        thread.join()
    finally:
        _scrub(run)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return _finished(runner, consumer, cancel.requested.is_set())


def _finished(runner: Any, consumer: EventConsumer, canceled: bool = False) -> RunResult:
    log.info(
        "playbook finished: status %s, rc %s; artifacts in %s",
        runner.status,
        runner.rc,
        runner.config.artifact_dir,
    )
    return RunResult(
        # A watchdog that stopped the run before runner's cancel leaves runner saying 'failed'.
        status="canceled" if canceled else str(runner.status),
        rc=runner.rc,
        steps=consumer.steps,
        stats=consumer.stats,
        artifact_data=consumer.artifact_data,
        artifacts_dir=str(runner.config.artifact_dir),
        stdout_tail=consumer.stdout_tail,
        warnings=consumer.warnings,
    )
