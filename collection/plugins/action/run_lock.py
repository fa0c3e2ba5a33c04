# Copyright: (c) 2026, pflow-ops team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""run_lock: the pflow-ops run lock (one recovery or maintenance per env and service at a time),
for a playbook started without the pflow-ops CLI (an AWX job, plain ansible-playbook).

The lock lives in the environment's coordination store (module_utils/coordination.py), the one
the CLI uses: the file backend's flock under $PFLOW_OPS_HOME/locks, or etcd's lease lock. A task
runs in a worker process that ends with the task, and a flock or a lease's keep-alive thread
would end with it; so the lock is held by a small holder process
(module_utils/coordination_hold.py run as a script) that keeps it while the playbook's main
process lives and lets go when it ends, is released by state=released, or is killed (then the
kernel frees the flock, or the lease expires within pflow_coordination_lock_ttl). Its validated
settings, credentials included, reach it on stdin, never on argv. A run started by the CLI
already holds the lock under its run id (pflow_run_id): the task sees that and leaves it to
the CLI. It reports changed=false: the lock is the run's own bookkeeping, gone when the run ends,
so a second run on a healthy system still reports changed=0 (``taken``/``released`` say what the
task did).
"""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys

from ansible.plugins.action import ActionBase
from ansible.utils.vars import load_extra_vars
from ansible_collections.pivotal.flow_ops.plugins.module_utils import coordination

ARGUMENT_SPEC = {
    "state": {"type": "str", "required": True, "choices": ["acquired", "released"]},
    "env": {"type": "str", "required": True},
    "service": {"type": "str", "required": True},
    "holder": {"type": "str"},
}
ANSWER_TIMEOUT_S = 30.0  # the holder's first answer: a few etcd requests, each bounded by 5 s


def holder_name(args: dict, task_vars: dict, playbook_pid: int) -> str:
    """Who takes the lock: the holder argument, the CLI's run id, the AWX job, or this
    ansible-playbook process. The same name in every task of one run, so release finds it."""
    if args.get("holder"):
        return str(args["holder"])
    for var, prefix in (("pflow_run_id", ""), ("awx_job_id", "awx-job-"), ("tower_job_id", "awx-job-")):
        value = task_vars.get(var)
        if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value):
            return prefix + str(value)
    return "ansible-playbook-%d@%s" % (playbook_pid, socket.gethostname())


def start_holder(request: dict) -> dict:
    """Start the holder process and return its first answer ({"ok": ...})."""
    script = os.path.join(os.path.dirname(os.path.abspath(coordination.__file__)), "coordination_hold.py")
    proc = subprocess.Popen([sys.executable, script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, close_fds=True)
    if proc.stdin is None or proc.stdout is None:  # pragma: no cover - Popen with PIPE gives both
        raise RuntimeError("run lock: no pipe to its holder process")
    proc.stdin.write((json.dumps(request) + "\n").encode("utf-8"))
    proc.stdin.close()
    ready, _w, _x = select.select([proc.stdout], [], [], ANSWER_TIMEOUT_S)
    line = proc.stdout.readline() if ready else b""
    proc.stdout.close()
    try:
        answer = json.loads(line)
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        proc.kill()
        proc.wait()
        return {"ok": False, "msg": "run lock: its holder process gave no answer within %.0f s" % ANSWER_TIMEOUT_S}
    if not answer.get("ok"):
        proc.wait()
    return answer


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False  # the lock is the controller's; the target is never contacted
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):  # type: ignore[no-untyped-def]
        result = super().run(tmp, task_vars)
        del tmp
        task_vars = task_vars or {}
        _validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        playbook_pid = os.getppid()  # a task's worker is forked by ansible-playbook's main process
        holder = holder_name(args, task_vars, playbook_pid)
        try:
            refusal = coordination.per_run_env_refusal(self._extra_var_names())
            if refusal:
                raise coordination.CoordinationError(refusal)
            settings = coordination.parse(coordination.settings_values(task_vars))
            store = coordination.open_store(settings, coordination.state_home())
            current = store.holder(args["env"], args["service"])
            if args["state"] == "acquired":
                outcome = self._acquire(args, store, current, holder, settings, playbook_pid)
            else:
                outcome = self._release(args, store, current, holder)
        except coordination.CoordinationError as exc:
            outcome = {"failed": True, "changed": False, "msg": str(exc)}
        result.update(outcome, holder=holder, env=args["env"], service=args["service"])
        return result

    def _extra_var_names(self) -> list:
        """This play's extra vars (-e, -e @file, AWX survey answers), read as restart_budget reads
        them; one that cannot be read refuses (a lock key that cannot be checked is not trusted)."""
        try:
            return list(load_extra_vars(self._loader))
        except Exception as exc:  # pylint: disable=broad-exception-caught
            raise coordination.CoordinationError("cannot read this run's extra vars to check the run lock: %s" % exc)

    def _acquire(self, args, store, current, holder, settings, playbook_pid):  # type: ignore[no-untyped-def]
        what = "%s-%s" % (args["env"], args["service"])
        if current is not None and current.get("run_id") == holder:
            return {"changed": False, "acquired": True, "taken": False, "store": store.name(),
                    "holder_record": current,
                    "msg": "run lock %s already held by this run (%s)" % (what, coordination.holder_line(current))}
        if current is not None:
            return {"failed": True, "changed": False, "acquired": False, "store": store.name(),
                    "holder_record": current, "msg": coordination.held_line(what, current)}
        if self._task.check_mode:
            return {"changed": False, "acquired": False, "store": store.name(),
                    "msg": "run lock %s is free: a real run takes it" % what}
        answer = start_holder({
            "settings": settings.fields(), "home": coordination.state_home(), "env": args["env"],
            "service": args["service"], "watch": playbook_pid,
            "record": {"run_id": holder, "host": socket.gethostname(), "by": "run_lock"}})
        if not answer.get("ok"):
            return {"failed": True, "changed": False, "acquired": False, "store": store.name(),
                    "msg": answer.get("msg") or "run lock %s refused" % what}
        return {"changed": False, "acquired": True, "taken": True, "store": store.name(),
                "holder_record": answer["record"],
                "msg": "run lock %s taken in %s by %s" % (what, store.name(), holder)}

    def _release(self, args, store, current, holder):  # type: ignore[no-untyped-def]
        what = "%s-%s" % (args["env"], args["service"])
        base = {"changed": False, "acquired": False, "released": False, "store": store.name(),
                "holder_record": current}
        if current is None:
            return dict(base, msg="run lock %s is not held" % what)
        if current.get("run_id") != holder:
            return dict(base, acquired=True, warnings=["run lock %s is held by another run (%s): left alone"
                                                       % (what, coordination.holder_line(current))])
        if current.get("by") != "run_lock":
            return dict(base, acquired=True, msg="run lock %s is held by the pflow-ops CLI for this run: "
                                                 "it lets go when the run ends" % what)
        if self._task.check_mode:
            return dict(base, acquired=True, msg="run lock %s is held by this run: a real run releases it" % what)
        if not store.release_for(args["env"], args["service"], current):
            return dict(base, acquired=True, warnings=["run lock %s: its holder changed meanwhile: left alone" % what])
        return dict(base, released=True, msg="run lock %s released" % what)
