# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pflow-ops team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A service's process in the words an SRE uses, for every service manager, and the one result
of the shared restart entry point (service_manager tasks/restart_gated.yml).

Pure Python with no Ansible import; reached through the ``pivotal.flow_ops`` service filters.
supervisord says "EXITED, exit status -1" for a process killed by a signal and Docker gives
container ids: the sentences here say "killed by SIGKILL" and "container 3f2a1b".
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import re

SUPERVISORD = "supervisord"
COMPOSE = "compose"


def exit_words(program):
    """How a supervisord program's last process ended: "killed by SIGKILL", "exit status 1",
    "spawn error: can't find command 'x'"; empty when nothing is known (or it runs)."""
    program = program or {}
    if program.get("state") in ("RUNNING", "STARTING", "STOPPING", None):
        return ""
    reason = str(program.get("exit_reason") or "")
    signal = re.search(r"terminated by (SIG[A-Z0-9]+)", reason)
    if signal:
        return "killed by %s" % signal.group(1)
    status = re.search(r"exit status (-?\d+)", reason)
    if status:
        return "exit status %s" % status.group(1)
    spawnerr = str(program.get("spawnerr") or "")
    if spawnerr and not spawnerr.startswith("Bad exit code"):  # supervisord's "Bad exit code N" is the exit status
        return "spawn error: %s" % spawnerr
    code = program.get("exitstatus")
    if code is None or program.get("state") == "STOPPED":
        return ""
    if int(code) < 0:
        return "killed by a signal"
    return "exit status %d" % int(code)


def _short(container_id):
    return str(container_id or "")[:12] or "?"


def _clock(started_at):
    """'2026-12-04T12:01:02.123Z' -> '12:01:02' (what a human compares between two runs)."""
    text = str(started_at or "")
    match = re.search(r"T(\d\d:\d\d:\d\d)", text)
    return match.group(1) if match else text[:19]


def process_words(manager, instance):
    """One process (supervisord) or container (compose) in words:
    "running, pid 4388", "not running (EXITED, killed by SIGKILL)",
    "container 3f2a1b (started 12:01:02)", "container 3f2a1b exited (exit code 1)"."""
    if not instance:
        return "not known to the service manager"
    if manager == COMPOSE:
        name = "container %s" % _short(instance.get("id"))
        if instance.get("running"):
            return "%s (started %s)" % (name, _clock(instance.get("started_at")))
        detail = str(instance.get("state") or "not running")
        if instance.get("oom_killed"):
            detail += ", killed by the OOM killer"
        elif instance.get("exit_code") not in (None, 0):
            detail += " (exit code %s)" % instance.get("exit_code")
        return "%s %s" % (name, detail)
    state = instance.get("state") or "UNKNOWN"
    if state == "RUNNING":
        return "running, pid %s" % instance.get("pid") if instance.get("pid") else "running"
    if state == "STARTING":
        return "starting, pid %s" % instance.get("pid") if instance.get("pid") else "starting"
    ended = exit_words(instance)
    return "not running (%s%s)" % (state, ", " + ended if ended else "")


def process_id(manager, instance):
    """What identifies one run of the service: the pid, or the container id and its start time
    (a restarted container keeps its id)."""
    if not instance:
        return None
    if manager == COMPOSE:
        if not instance.get("id"):
            return None
        return "%s@%s" % (_short(instance.get("id")), str(instance.get("started_at") or "")[:19])
    return instance.get("pid") or None


def supervisor_status(result, name):
    """service_manager_status from a supervisor_program_info result (the manager-neutral
    shape of tasks/status.yml)."""
    result = result or {}
    program = result.get("program") or {}
    reachable = bool(result.get("reachable"))
    running = program.get("state") == "RUNNING"
    if not reachable:
        detail = "supervisord program '%s': unknown (%s)" % (name, result.get("msg") or "unreachable")
    else:
        detail = "supervisord program '%s': %s" % (name, process_words(SUPERVISORD, program))
    return {
        "manager": SUPERVISORD,
        "name": name,
        "reachable": reachable,
        "found": bool(program),
        "running": running,
        "state": program.get("state") or "UNKNOWN",
        "pid": program.get("pid") or None,
        "detail": detail,
        "msg": result.get("msg") or "",
        "logs": result.get("log_tail") or [],
        "instances": [program] if program else [],
    }


def compose_status(result, name):
    """service_manager_status from a compose_service_info result (the shape tasks/compose/
    status.yml sets): the engine's own words, with the manager named."""
    result = result or {}
    return {
        "manager": COMPOSE,
        "name": name,
        "reachable": bool(result.get("reachable")),
        "found": bool(result.get("found")),
        "running": bool(result.get("running")),
        "state": result.get("state") or "unknown",
        "pid": result.get("pid") or None,
        "detail": result.get("detail") or "",
        "msg": result.get("msg") or "",
        "logs": result.get("logs") or [],
        "instances": result.get("instances") or [],
    }


def _budget_words(budget, check_mode):
    if not budget:
        return ""
    used, top = budget.get("used", 0), budget.get("max_restarts", 0)
    if check_mode and budget.get("allowed"):
        return "would take one restart: %s -> %s of %s used in the window" % (
            max(int(used) - 1, 0), used, top)
    return str(budget.get("summary") or "")


def restart_result(manager, budget, restart, gate=None, status_after=None, check_mode=False,
                   gate_timeout_setting="", gate_timeout=None):
    """The one result of tasks/restart_gated.yml (service_manager_restart_result).

    ``budget``: the restart_budget result ({} when not asked); ``restart``: the manager's
    restart result (supervisor_program with its gate, or compose_service); ``gate``: an
    http_health gate result when the manager did not gate itself; ``status_after``: a
    service_manager_status read after the gate (compose), else None.
    """
    budget = {} if not budget or budget.get("skipped") else budget
    restart = restart or {}
    gate = None if not gate or gate.get("skipped") else gate
    status_after = None if not status_after or status_after.get("skipped") else status_after
    allowed = bool(budget.get("allowed"))
    ran = bool(restart) and not restart.get("skipped")
    out = {
        "manager": manager,
        "check_mode": bool(check_mode),
        "budget": budget,
        "allowed": allowed,
        "budget_words": _budget_words(budget, check_mode),
        "restarted": False,
        "would_restart": False,
        "before": "",
        "after": "",
        "pid_before": None,
        "pid_after": None,
        "state_after": "",
        "exit": "",
        "gate": {},
        "soak": {},
        "confirmed": False,
        "logs_after": [],
        "problem": "",
        "detail": "",
    }
    if not ran:
        out["detail"] = ("not restarted: " + out["budget_words"]) if budget else "not restarted"
        return out
    if manager == COMPOSE:
        before_list = restart.get("instances_before") or restart.get("instances") or []
        after_list = restart.get("instances_after") or []
        before = before_list[0] if before_list else {}
        after = (status_after or {}).get("instances", after_list)
        after = after[0] if after else {}
        first_after = after_list[0] if after_list else {}
        out["pid_before"] = process_id(manager, before)
        out["pid_after"] = process_id(manager, first_after)
        out["before"] = process_words(manager, before) if before else "no container"
        final = after
        gate = gate or {}
        out["gate"] = {
            "ran": bool(gate), "passed": bool(gate.get("healthy")) if gate else bool(restart.get("ok", True)),
            "waited_s": (gate.get("gate") or {}).get("waited_s", 0), "attempts": (gate.get("gate") or {}).get("attempts", 0),
            "gone": None, "state": gate.get("state"), "status": gate.get("status"), "reason": gate.get("reason"),
        }
        out["soak"] = gate.get("soak") or {}
        out["confirmed"] = bool(final.get("running")) and process_id(manager, final) == out["pid_after"]
        out["state_after"] = final.get("state") or ""
        out["logs_after"] = (status_after or {}).get("logs") or []
        if check_mode:
            out.update(would_restart=bool(restart.get("changed")), after="running (a new container start)",
                       detail="would restart (check mode): %s -> running" % out["before"])
            return out
        out["restarted"] = bool(restart.get("changed"))
        out["after"] = process_words(manager, first_after) if first_after else "no container"
    else:
        before = restart.get("program") or {}
        first_after = restart.get("program_after") or {}
        final = restart.get("program_final") or first_after
        out["pid_before"] = before.get("pid") or None
        out["before"] = process_words(manager, before)
        if check_mode:
            out.update(would_restart=bool(restart.get("changed")), after="running (a new pid)",
                       detail="would restart (check mode): %s -> running (a new pid)" % out["before"])
            return out
        out["restarted"] = bool(restart.get("changed"))
        out["pid_after"] = first_after.get("pid") or None
        out["after"] = process_words(manager, first_after)
        out["state_after"] = final.get("state") or ""
        out["exit"] = exit_words(final)
        gate_src = restart.get("gate") or {}
        out["gate"] = {
            "ran": bool(gate_src), "passed": bool(gate_src.get("passed")),
            "waited_s": gate_src.get("waited_s", 0), "attempts": gate_src.get("attempts", 0),
            "gone": gate_src.get("gone"), "state": gate_src.get("state"), "status": gate_src.get("status"),
            "reason": gate_src.get("reason"),
        }
        out["soak"] = restart.get("soak") or {}
        out["logs_after"] = restart.get("log_since_start") or []
        # STARTING counts: the same process, alive, not yet past supervisord's startsecs.
        out["confirmed"] = (final.get("state") in ("RUNNING", "STARTING") and bool(out["pid_after"])
                            and final.get("pid") == out["pid_after"])
        if out["confirmed"]:
            # A process that answered the health gate serves: supervisord may still say STARTING
            # until its next tick past startsecs, which is no news to the on-call engineer.
            serving = out["gate"]["passed"] and not (out["soak"] or {}).get("failures")
            out["after"] = process_words(manager, dict(final, state="RUNNING") if serving else final)
        elif final:
            out["after_final"] = process_words(manager, final)
    out["problem"] = restart_problem(out, gate_timeout_setting, gate_timeout, restart.get("msg"))
    out["detail"] = "restarted: %s -> %s" % (out["before"], out["after"])
    return out


def restart_problem(result, gate_timeout_setting="", gate_timeout=None, manager_msg=None):
    """Why a restart did not hold, one sentence; empty when it held (gate passed, soak clean,
    the same process confirmed running by the service manager)."""
    gate, soak = result.get("gate") or {}, result.get("soak") or {}
    logs = result.get("logs_after") or []
    tail = ("; its log after the restart: " + " | ".join(logs[-5:])) if logs else "; it wrote no log line after the restart"
    ended = result.get("exit")
    if gate.get("gone") or (gate.get("ran") and not gate.get("passed") and result.get("state_after") not in ("RUNNING", "STARTING", "running", "")):
        return "the restarted process died before it answered the health check (%s%s)%s" % (
            result.get("after_final") or result.get("state_after") or "gone",
            "" if not ended or ended in str(result.get("after_final")) else ", " + ended, tail)
    if gate.get("ran") and not gate.get("passed"):
        last = gate.get("reason") or gate.get("state") or "no healthy answer"
        setting = (" (raise %s if the service needs longer to start)" % gate_timeout_setting) if gate_timeout_setting else ""
        return "the restarted process (%s) did not pass the health gate within %s s: %s%s" % (
            result.get("after"), gate_timeout if gate_timeout is not None else "the gate timeout", last, setting)
    if soak.get("gone"):
        return "the restarted process died during the soak: %s" % soak["gone"] + tail
    if soak.get("failures"):
        return "failed %s of %s probes during the soak window" % (soak["failures"], soak.get("probes", "?"))
    if not result.get("confirmed"):
        if manager_msg:
            return "the service manager did not bring the service up: %s%s" % (manager_msg, tail)
        return "the service manager does not show the restarted process (%s) running any more: now %s%s" % (
            result.get("pid_after") or "none", result.get("after_final") or result.get("state_after") or "unknown", tail)
    return ""
