#!/usr/bin/python
# Copyright: (c) 2026, pflow-ops team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# ruff: noqa: E402  (ansible-test requires DOCUMENTATION/EXAMPLES/RETURN before any import)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: supervisor_program
short_description: Start, stop or restart one supervisord program over XML-RPC
version_added: 0.1.0
description:
  - Talks to supervisord's XML-RPC API directly (no C(supervisorctl) process), over its unix socket
    or its HTTP port, brings the program to I(state) and reports the program's process state before
    and after, and the tail of its stdout log.
  - To only read the program's state, use M(pivotal.flow_ops.supervisor_program_info).
  - State changes poll supervisord until the program settles, bounded by I(wait_timeout). A program
    that does not reach the requested state is reported with C(state_reached=false), not a failure;
    the task fails only on bad parameters, an unreachable supervisord or an unknown program.
seealso:
  - module: pivotal.flow_ops.supervisor_program_info
    description: Read a program's state and log tail without changing anything.
  - module: community.general.supervisorctl
    description: The same actions through the C(supervisorctl) command on the target.
author:
  - pflow-ops team (@pivotal-flow)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - pivotal.flow_ops.action_groups.supervisor_group
  - pivotal.flow_ops.supervisor
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  state:
    description:
      - C(restarted) always stops (when running) and starts the program.
        C(started) starts it unless it is C(RUNNING) or C(STARTING); a program in C(BACKOFF) is
        stopped first so that it gets a fresh set of start retries. C(stopped) stops it when it is
        C(RUNNING), C(STARTING) or C(BACKOFF).
      - Before 0.6.0 this option also took C(info), the default; reading is now
        M(pivotal.flow_ops.supervisor_program_info).
    type: str
    choices: [restarted, started, stopped]
    required: true
  wait_timeout:
    description:
      - Seconds to wait for the program to stop and, separately, to start. supervisord escalates to
        SIGKILL after the program's C(stopwaitsecs), so keep this above that value.
    type: float
    default: 30
  wait_running:
    description:
      - When starting, wait for supervisord to declare the program C(RUNNING) (after its
        C(startsecs)).
      - Set C(false) when the caller gates on the service's own health check instead; the module
        then returns as soon as the process is spawned (C(STARTING)).
    type: bool
    default: true
  gate_url:
    description:
      - After a start (I(state=restarted) or C(started)), probe this C(http://) URL until it
        answers 200 while watching the process supervisord started. The gate ends as soon as
        supervisord reports that process gone (another state than C(STARTING) or C(RUNNING), or
        another pid), so a crash loop or a spawn error is reported at once, not after I(gate_timeout).
      - Implies I(wait_running=false). Empty (the default) means no gate; the caller gates.
    type: str
    default: ""
  gate_timeout:
    description: Seconds the started process has to answer I(gate_url) with 200.
    type: float
    default: 30
  gate_interval:
    description: Seconds between gate probes (and supervisord checks).
    type: float
    default: 0.5
  gate_probe_timeout:
    description: Seconds per gate probe; a probe that connects and gets no answer in time counts as hung.
    type: float
    default: 2
  soak_seconds:
    description:
      - After a passed gate, keep probing I(gate_url) every I(soak_interval) for this long while
        watching the process; any failed probe, or the process gone, fails the soak. 0 disables.
    type: float
    default: 0
  soak_interval:
    description: Seconds between soak probes.
    type: float
    default: 2
"""

EXAMPLES = r"""
- name: Restart the backend
  pivotal.flow_ops.supervisor_program:
    name: backend
    server_url: http://127.0.0.1:9001
    username: ops
    password: "{{ supervisor_password }}"
    state: restarted
    log_lines: 0
  register: backend_restart

- name: Restart the backend and gate on its health while watching the new process
  pivotal.flow_ops.supervisor_program:
    name: backend
    server_url: unix:///run/supervisor/supervisor.sock
    state: restarted
    log_lines: 0
    gate_url: http://127.0.0.1:3000/health
    gate_timeout: 30
    soak_seconds: 10
  register: backend_restart
"""

RETURN = r"""
reachable:
  description: Whether supervisord answered.
  type: bool
  returned: always
program:
  description:
    - The program before any action, the same fields as
      RV(pivotal.flow_ops.supervisor_program_info#module:program).
  type: dict
  returned: always
  sample: {name: backend, group: backend, state: RUNNING, pid: 4242, exitstatus: 0, start: 1767225600,
           stop: 0, now: 1767225700, uptime_s: 100, spawnerr: "", description: "pid 4242, uptime 0:01:40",
           exit_reason: ""}
program_after:
  description:
    - The program after the action, same shape as RV(program). Equal to RV(program) when no action
      was needed; null in check mode.
  type: dict
  returned: success
state_reached:
  description: Whether the program ended in the requested state (always true in check mode).
  type: bool
  returned: success
actions:
  description:
    - The steps taken (or that would be taken in check mode), in order. C(wait_stop) waits for a
      stop that was already in progress and does not count as a change.
  type: list
  elements: str
  returned: success
  sample: [stop, start]
program_final:
  description:
    - The program at the end of the gate and the soak, same shape as RV(program). It is the service
      manager's confirmation that the started process (same pid) is still running.
  type: dict
  returned: when I(gate_url) is set and a start happened
gate:
  description:
    - The health gate. C(gone) is null, or why supervisord says the started process is gone
      (the gate stopped then). C(state), C(status) and C(reason) describe the last probe.
  type: dict
  returned: when I(gate_url) is set and a start happened
  sample: {passed: false, waited_s: 1.2, attempts: 3, gone: "supervisord reports FATAL (Exited too quickly)",
           state: refused, status: null, reason: "connection refused on 127.0.0.1:3000"}
soak:
  description: The soak after a passed gate (C(probes), C(failures), C(first_failure), C(gone)).
  type: dict
  returned: when I(gate_url) is set, I(soak_seconds) > 0 and a start happened
log_since_start:
  description: Lines the program wrote to its stdout log after this start (last 50), oldest first.
  type: list
  elements: str
  returned: when a start happened
log_tail:
  description: Last I(log_lines) lines of the program's stdout log, oldest first.
  type: list
  elements: str
  returned: always
msg:
  description: Why supervisord is unreachable, or why the requested state was not reached.
  type: str
  returned: when something went wrong
"""

import contextlib
import time
import xmlrpc.client

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.pivotal.flow_ops.plugins.module_utils.http_probe import (
    Prober,
    ProbeError,
    Target,
    run_gate,
    run_soak,
)
from ansible_collections.pivotal.flow_ops.plugins.module_utils.supervisor_rpc import (
    ModuleFailure,
    Unreachable,
    call,
    check_log_lines,
    connect,
    connection_argument_spec,
    described,
    get_info,
    observe,
    unreachable_msg,
)

POLL_S = 0.05
STOPPABLE = ("RUNNING", "STARTING", "BACKOFF")
DOWN = ("STOPPED", "EXITED", "FATAL", "UNKNOWN")
START_SETTLED = ("RUNNING", "STOPPED", "EXITED", "FATAL")
# With wait_running=false a start counts once supervisord has spawned the process.
SPAWNED = ("STARTING", "RUNNING", "BACKOFF", "FATAL")
# supervisord fault codes (supervisor.xmlrpc.Faults)
SPAWN_ERROR = 50
ALREADY_STARTED = 60
NOT_RUNNING = 70
# States in which the process supervisord started is alive.
ALIVE = ("STARTING", "RUNNING")
LOG_SINCE_MAX = 50


def log_size(proxy, server_url: str, name: str) -> int:  # type: ignore[no-untyped-def]
    """Current size of the program's stdout log: where the lines of the next start begin."""
    try:
        return int(call(server_url, proxy.supervisor.tailProcessStdoutLog, name, 0, 0)[1])
    except xmlrpc.client.Fault:
        return 0  # no log file yet: the next start writes from its beginning


def log_since(proxy, server_url: str, name: str, offset: int) -> list[str]:  # type: ignore[no-untyped-def]
    try:
        text = call(server_url, proxy.supervisor.readProcessStdoutLog, name, offset, 256 * 1024)
    except xmlrpc.client.Fault:
        return []  # no log file, or it was rotated away
    return text.splitlines()[-LOG_SINCE_MAX:]


def gone_words(info: dict, pid: int | None) -> str | None:
    """None while the process supervisord started (``pid``) lives, else what supervisord says."""
    if info["statename"] in ALIVE and (not pid or not info.get("pid") or info.get("pid") == pid):
        return None
    words = f"supervisord reports the started process (pid {pid or 'unknown'}) gone: now {info['statename']}"
    if info.get("pid") and info.get("pid") != pid:
        words += f", pid {info['pid']}"
    if info.get("spawnerr"):
        words += f" ({info['spawnerr']})"
    return words


def gate(proxy, server_url: str, name: str, started: dict, params: dict, target: Target) -> dict:  # type: ignore[no-untyped-def]
    """Gate (and soak) on the service's health while watching the process supervisord started."""
    pid = started.get("pid") or None
    last = {"info": started}

    def watch() -> str | None:
        last["info"] = call(server_url, proxy.supervisor.getProcessInfo, name)
        return gone_words(last["info"], pid)

    out: dict = {}
    prober = Prober(target, params["gate_probe_timeout"], [200])
    dead = gone_words(started, pid)
    if dead:
        out["gate"] = {"waited_s": 0.0, "attempts": 0, "passed": False, "gone": dead,
                       "state": None, "status": None, "reason": None}
    else:
        out["gate"] = run_gate(prober, params["gate_timeout"], params["gate_interval"], watch)
        decisive = prober.last or {}
        out["gate"].update(state=decisive.get("state"), status=decisive.get("status"),
                           reason=decisive.get("reason"))
    if params["soak_seconds"] > 0:
        if out["gate"]["passed"]:
            out["soak"] = run_soak(prober, params["soak_seconds"], params["soak_interval"], [], watch)
        else:
            out["soak"] = {"seconds": 0.0, "probes": 0, "failures": 0, "first_failure": None, "gone": None}
    # The confirmation: what supervisord says now, not what the last probe saw.
    final = call(server_url, proxy.supervisor.getProcessInfo, name)
    out["program_final"] = described(proxy, server_url, name, final)
    return out


def wait_for(proxy, server_url: str, name: str, settled: tuple, timeout: float) -> dict:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        info = call(server_url, proxy.supervisor.getProcessInfo, name)
        if info["statename"] in settled or time.monotonic() >= deadline:
            return info
        time.sleep(POLL_S)


def plan(state: str, current: str) -> list[str]:
    """RPC steps for `state` from `current`. "wait_stop" only waits for a stop someone else began."""
    down = ["stop"] if current in STOPPABLE else ["wait_stop"] if current == "STOPPING" else []
    if state == "restarted":
        return [*down, "start"]
    if state == "started":
        if current in ("RUNNING", "STARTING"):
            return []
        # BACKOFF is stopped first: supervisord refuses to start it, and a stop resets its retries
        return [*down, "start"]
    return down  # stopped


def act(proxy, server_url: str, name: str, actions: list[str], timeout: float,  # type: ignore[no-untyped-def]
        wait_running: bool = True) -> tuple[dict, str | None]:
    info: dict = {}
    if "stop" in actions:
        # A SIGSTOPped process would hold SIGTERM pending until stopwaitsecs ends in SIGKILL;
        # SIGCONT first lets it stop gracefully, and is a no-op for a process that is running.
        with contextlib.suppress(xmlrpc.client.Fault):
            call(server_url, proxy.supervisor.signalProcess, name, "CONT")
        try:
            call(server_url, proxy.supervisor.stopProcess, name, False)
        except xmlrpc.client.Fault as exc:
            if exc.faultCode != NOT_RUNNING:
                return get_info(proxy, server_url, name), f"stopProcess failed: {exc.faultString}"
    if "stop" in actions or "wait_stop" in actions:
        info = wait_for(proxy, server_url, name, DOWN, timeout)
        if info["statename"] not in DOWN:
            return info, f"{name} did not stop within {timeout:g} s (state {info['statename']})"
    if "start" in actions:
        try:
            call(server_url, proxy.supervisor.startProcess, name, False)
        except xmlrpc.client.Fault as exc:
            # SPAWN_ERROR: the process was spawned and already died (a fast exit); the wait
            # below reports it as any start that did not settle, with supervisord's state.
            if exc.faultCode not in (ALREADY_STARTED, SPAWN_ERROR):
                return get_info(proxy, server_url, name), f"startProcess failed: {exc.faultString}"
        info = wait_for(proxy, server_url, name, START_SETTLED if wait_running else SPAWNED, timeout)
        if info["statename"] not in (("RUNNING",) if wait_running else ("STARTING", "RUNNING")):
            detail = f": {info['spawnerr']}" if info.get("spawnerr") else ""
            return info, f"{name} did not reach RUNNING within {timeout:g} s (state {info['statename']}{detail})"
    return info, None


def run_module(params: dict, check_mode: bool) -> tuple[dict, list[str]]:
    """Return (result, warnings); raise ModuleFailure to fail the task."""
    server_url, name, state = params["server_url"], params["name"], params["state"]
    if params["wait_timeout"] <= 0:
        raise ModuleFailure("wait_timeout must be > 0")
    check_log_lines(params["log_lines"])
    target = None
    if params.get("gate_url"):
        if params["gate_timeout"] <= 0 or params["gate_interval"] < 0.01 or params["gate_probe_timeout"] <= 0:
            raise ModuleFailure("gate_timeout and gate_probe_timeout must be > 0, gate_interval >= 0.01")
        if params["soak_seconds"] < 0 or (params["soak_seconds"] > 0 and params["soak_interval"] < 0.01):
            raise ModuleFailure("soak_seconds must be >= 0 and soak_interval >= 0.01")
        try:
            target = Target(params["gate_url"], True)
        except ProbeError as exc:
            raise ModuleFailure(f"gate_url: {exc}") from exc
    proxy = connect(server_url, params.get("username"), params.get("password"))
    try:
        before, result, warnings = observe(proxy, server_url, name, params["log_lines"])
        actions = plan(state, before["statename"])
        result.update(changed="stop" in actions or "start" in actions, actions=actions, state_reached=True)
        if check_mode or not actions:
            result["program_after"] = None if check_mode else result["program"]
            return result, warnings
        # Every start keeps the log it writes: a restart that does not hold is explained by what
        # the new process printed, with or without an HTTP gate (RB-02 and RB-03 have none).
        offset = log_size(proxy, server_url, name) if "start" in actions else 0
        after, problem = act(proxy, server_url, name, actions, params["wait_timeout"],
                             params.get("wait_running", True) and target is None)
        result["program_after"] = described(proxy, server_url, name, after)
        if problem:
            result.update(state_reached=False, msg=problem)
        if target is not None and "start" in actions:
            result.update(gate(proxy, server_url, name, after, params, target))
        if "start" in actions:
            result["log_since_start"] = log_since(proxy, server_url, name, offset)
        return result, warnings
    except Unreachable as exc:
        raise ModuleFailure(unreachable_msg(server_url, exc), reachable=False) from exc
    finally:
        proxy("close")()


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            connection_argument_spec(),
            state=dict(type="str", required=True, choices=["restarted", "started", "stopped"]),
            wait_timeout=dict(type="float", default=30.0),
            wait_running=dict(type="bool", default=True),
            gate_url=dict(type="str", default=""),
            gate_timeout=dict(type="float", default=30.0),
            gate_interval=dict(type="float", default=0.5),
            gate_probe_timeout=dict(type="float", default=2.0),
            soak_seconds=dict(type="float", default=0.0),
            soak_interval=dict(type="float", default=2.0),
        ),
        required_together=[("username", "password")],
        supports_check_mode=True,
    )
    try:
        result, warnings = run_module(module.params, module.check_mode)
    except ModuleFailure as exc:
        module.fail_json(msg=exc.msg, changed=False, **exc.result)
    for warning in warnings:
        module.warn(warning)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
