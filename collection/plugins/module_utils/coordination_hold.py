# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pflow-ops team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The run_lock holder process: ``python coordination_hold.py``, started by the run_lock action
plugin, because a task's worker process ends with its task and a flock or a lease's keep-alive
thread would end with it. Its request (the validated settings, credentials included) comes on
stdin, never on argv. It holds the lock through coordination.py, loaded by path next to it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import importlib.util
import json
import os
import signal
import sys
import threading


def load_coordination():
    """coordination.py next to this file (run as a script, this file has no package)."""
    name = "pflow_ops_coordination_holder"
    if name not in sys.modules:
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "coordination.py")
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def gone(pid):
    """True when ``pid`` has exited (a zombie, exited but not reaped, counts as gone)."""
    try:
        with open("/proc/%d/stat" % pid) as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (OSError, IndexError):
        return True


def hold(co, stdin, stdout):
    """Read one JSON request on stdin, take the lock, answer one JSON line on stdout, then keep
    the lock while the playbook's process (``watch``) lives, until SIGTERM or SIGINT (release),
    or until the lease is lost."""
    request = json.loads(stdin.readline())
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_args: stop.set())
    try:
        settings = co.Settings(**request["settings"])  # validated by the plugin that started us
        store = co.open_store(settings, request["home"])
        record = dict(request["record"], pid=os.getpid())
        lock = store.acquire(request["env"], request["service"], record, ttl=settings.lock_ttl)
    except co.CoordinationError as exc:
        stdout.write(json.dumps({"ok": False, "msg": str(exc), "held": isinstance(exc, co.Held)}) + "\n")
        stdout.flush()
        return 3
    stdout.write(json.dumps({"ok": True, "record": record}) + "\n")
    stdout.flush()
    while not stop.wait(0.2) and not lock.lost and not gone(int(request["watch"])):
        pass
    lock.release()
    return 0


if __name__ == "__main__":
    raise SystemExit(hold(load_coordination(), sys.stdin, sys.stdout))
