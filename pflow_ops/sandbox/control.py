"""Helpers shared by the lifecycle and fault commands: the running-sandbox context, program
start/stop with useful errors, pid bookkeeping, and the health wait."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pflow_ops.sandbox import procs
from pflow_ops.sandbox.errors import SandboxError
from pflow_ops.sandbox.layout import Layout, SandboxState, load_state, save_state
from pflow_ops.sandbox.net import HttpResult, http_get
from pflow_ops.sandbox.render import PROGRAMS
from pflow_ops.sandbox.rpc import Supervisor

NOT_UP = "the sandbox is not up; run `pflow-ops sandbox up` first"


@dataclass
class Context:
    layout: Layout
    state: SandboxState
    sv: Supervisor

    def info(self, program: str) -> dict[str, Any]:
        return self.sv.info(program)

    def running_pid(self, program: str, settle_s: float = 3.0) -> int:
        info = self.info(program)
        # A program just (re)started is STARTING until its startsecs pass: let it settle.
        deadline = time.monotonic() + settle_s
        while info["statename"] == "STARTING" and time.monotonic() < deadline:
            time.sleep(0.05)
            info = self.info(program)
        if info["statename"] != "RUNNING":
            raise SandboxError(
                f"{program} is not running (supervisord state {info['statename']}); "
                "run `pflow-ops sandbox heal` first"
            )
        return int(info["pid"])

    def save(self) -> None:
        save_state(self.layout, self.state)


def running_context(home: Path | None) -> Context:
    """The context of a running sandbox, or the one-line error telling the user to start it."""
    layout = Layout.for_home(home)
    state = load_state(layout)
    sv = Supervisor(layout.supervisor_socket)
    if state is None or not sv.is_up():
        raise SandboxError(NOT_UP)
    return Context(layout, state, sv)


def log_tail(layout: Layout, program: str) -> str:
    """The last non-empty line of a program's log, for error messages."""
    try:
        with layout.log(program).open("rb") as fh:
            fh.seek(0, 2)
            fh.seek(max(fh.tell() - 4096, 0))
            lines = fh.read().decode(errors="replace").splitlines()
    except OSError:
        return "no log output"
    last = next((line.strip() for line in reversed(lines) if line.strip()), "no log output")
    return f"last line of {layout.log(program)}: {last}"


def start_program(ctx: Context, program: str) -> bool:
    """Start ``program`` (waiting for startsecs); False when it was already running."""
    try:
        return ctx.sv.start(program)
    except SandboxError as exc:
        raise SandboxError(f"{exc} ({log_tail(ctx.layout, program)})") from None


def record_pids(ctx: Context) -> None:
    """Remember [pid, start time] of supervisord and its programs, for `down` to verify."""
    pids: dict[str, list[int]] = {}
    ident = procs.identity(ctx.sv.pid())
    if ident:
        pids["supervisord"] = ident
    for info in ctx.sv.all_info():
        if info["name"] in PROGRAMS and info["pid"]:
            ident = procs.identity(int(info["pid"]))
            if ident:
                pids[info["name"]] = ident
    ctx.state.pids = pids
    ctx.save()


def health(port: int, timeout: float = 2.0) -> HttpResult:
    return http_get(port, "/health", timeout=timeout)


def describe_health(result: HttpResult) -> str:
    if result.status is None:
        return f"/health did not answer ({result.error})"
    body = result.json() or {}
    failing = [
        f"{name}: {check.get('error')}"
        for name, check in (body.get("checks") or {}).items()
        if isinstance(check, dict) and not check.get("ok")
    ]
    detail = "; ".join(failing) if failing else result.body[:200]
    return f"/health answered {result.status} ({detail})"


def wait_healthy(ctx: Context, timeout: float) -> None:
    """Poll /health until it answers 200; fail with what it said last."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        result = health(ctx.state.ports.backend, timeout=max(min(2.0, remaining), 0.2))
        if result.status == 200:
            return
        if time.monotonic() >= deadline:
            raise SandboxError(
                f"the sandbox did not become healthy within {timeout:g}s: {describe_health(result)}"
            )
        time.sleep(0.1)
