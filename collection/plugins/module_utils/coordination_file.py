# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pflow-ops team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``file`` coordination backend: one machine's state under $PFLOW_OPS_HOME, the default.

Budget: $PFLOW_OPS_HOME/budget/restarts.json, read-decide-write under an exclusive flock on
restarts.json.lock; an unreadable file is copied aside (never read as empty) and refuses until
an override starts a fresh one; entries are kept for the retention the caller passes.

Run locks: an exclusive flock on $PFLOW_OPS_HOME/locks/<env>-<service>.lock; the kernel releases
it when the holder exits however it exits (SIGKILL included), so there is no stale lock. A new
holder also needs <env>-<service>.lock.hold free: pflow_ops.watchdog holds it for every process
of a playbook, so a run whose CLI was killed keeps the service locked until its last process is
gone. Both files record who holds them, for the refusal line only.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import contextlib
import fcntl
import glob
import json
import os
import signal
import sys
import tempfile
import time

# The coordination module that loaded this file (coordination.sibling names us after it),
# or, imported on its own, the collection's.
if __name__.rsplit("._", 1)[0] in sys.modules and "._" in __name__:
    co = sys.modules[__name__.rsplit("._", 1)[0]]
else:
    from ansible_collections.pivotal.flow_ops.plugins.module_utils import coordination as co
policy = co.sibling("budget_policy")


def is_holder_command(cmdline):
    """True for the command line (/proc/PID/cmdline) of a run_lock holder process: exactly
    ``PYTHON .../coordination_hold.py``. Anything else (a reused pid, a test run whose arguments
    merely mention the file) is never signalled."""
    args = cmdline.split(b"\0")
    if args and args[-1] == b"":
        args = args[:-1]
    return len(args) == 2 and os.path.basename(args[1]) == b"coordination_hold.py"


def keep_aside(path, raw, now):
    """Copy an unreadable budget file to PATH.corrupt-<epoch> (once per content) and return the
    copy's name. The original stays in place, so every later run refuses too until a human
    overrides (which starts a fresh file)."""
    for existing in sorted(glob.glob(glob.escape(path) + ".corrupt-*")):
        with contextlib.suppress(OSError), open(existing, "rb") as fh:
            if fh.read() == raw:
                return existing
    backup, n = "%s.corrupt-%d" % (path, int(now)), 1
    while os.path.exists(backup):
        backup, n = "%s.corrupt-%d-%d" % (path, int(now), n), n + 1
    _write_atomic(backup, raw)
    return backup


def load(path, now, dry_run):
    """(data, "", "") for a readable budget file (a missing one is empty); (None, refusal, why)
    when it cannot be read: a corrupt one is kept aside first (not in dry_run)."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        return {"version": policy.FORMAT_VERSION, "keys": {}}, "", ""
    except OSError as exc:
        why = exc.strerror or str(exc)
        return None, policy.unreadable_refusal(path, "", why), why
    data, why = policy.parse_state(raw.decode("utf-8", errors="replace"))
    if data is not None:
        return data, "", ""
    if dry_run:
        kept = "left in place in check mode; a real run keeps a copy as %s.corrupt-%d" % (path, int(now))
        return None, policy.unreadable_refusal(path, "", kept), why
    return None, policy.unreadable_refusal(path, keep_aside(path, raw, now)), why


def _write_atomic(path, content):
    """A reader sees the old file or the new one, never half of one."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".restarts.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def locked(path, create):
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        if not create:
            yield  # nothing to read and nothing will be written
            return
        os.makedirs(directory, mode=0o700, exist_ok=True)
    fd = os.open(path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the flock


def _record(fd):
    try:
        data = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _try_flock(path, create=True):
    """An fd holding the exclusive flock of ``path``, or None (with the holder's record) when
    another process holds it."""
    fd = os.open(path, os.O_RDWR | (os.O_CREAT if create else 0), 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        record = _record(fd)
        os.close(fd)
        return None, record
    return fd, {}


def check_hold(hold_path, what, wait=None):
    """Refused (Held) while any process of an earlier run (its CLI dead or not) holds the hold
    lock; closing our fd drops our flock, so the watchdog can take it for the new run.

    A run whose CLI was just killed is still being stopped (the watchdog's SIGTERM, then SIGKILL
    after its grace period), so the hold is waited for up to ``wait`` seconds (co.HOLD_WAIT_S)
    first: the caller already holds the run lock, so no other run can start meanwhile."""
    deadline = time.monotonic() + (co.HOLD_WAIT_S if wait is None else wait)
    while True:
        try:
            os.makedirs(os.path.dirname(hold_path), mode=0o700, exist_ok=True)
            fd, record = _try_flock(hold_path)
        except OSError as exc:
            raise co.CoordinationError("run lock %s: %s" % (hold_path, exc.strerror or exc))
        if fd is not None:
            os.close(fd)
            return
        if time.monotonic() >= deadline:
            raise co.Held(co.hold_line(what, record), record)
        time.sleep(0.1)


class FileLock(object):
    """A held flock; released by release() or by the kernel when the process ends."""

    lost = False

    def __init__(self, fd, path):
        self._fd, self.path = fd, path

    def release(self):
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


class FileStore(object):
    """Budget and locks under one $PFLOW_OPS_HOME (one machine)."""

    def __init__(self, budget_path, locks_dir):
        self.budget_path, self.locks_dir = budget_path, locks_dir

    def name(self):
        return co.FILE

    def budget(self, key, decide, now=None, dry_run=False, consume=False, keep_seconds=policy.RETENTION_SECONDS):
        """Read ``key``'s entries, call decide(BudgetView) -> entry or None, and write the entry,
        all under the file's flock (none in dry_run: nothing is written). Returns the view."""
        path = self.budget_path
        lock = contextlib.nullcontext() if dry_run else locked(path, create=consume)
        try:
            with lock:
                now = time.time() if now is None else now  # taken once the lock is ours
                data, unreadable, why = load(path, now, dry_run)
                view = co.BudgetView(data["keys"].get(key, []) if data else [], unreadable, why, path, now)
                entry = decide(view)
                if entry is not None and not dry_run:
                    # an unreadable file was kept aside: the override starts a fresh one
                    keys = dict(data["keys"] if data else {})
                    keys[key] = view.entries + [entry]
                    save(path, {"version": policy.FORMAT_VERSION,
                                "keys": policy.pruned(keys, now, keep_seconds)})
        except OSError as exc:
            raise co.CoordinationError("restart budget %s: %s" % (path, exc.strerror or exc))
        return view

    def _path(self, env, service):
        name = "%s-%s.lock" % (co.checked_name("env", env), co.checked_name("service", service))
        return os.path.join(self.locks_dir, name)

    def acquire(self, env, service, record, ttl=None):
        """The run lock of env and service, or Held naming its holder. ``ttl`` is etcd's: a
        flock ends with its process."""
        del ttl
        path = self._path(env, service)
        return self._acquire(path, "%s-%s" % (env, service), record, hold=True)

    def leader(self, env, name, record, ttl=None):
        """One active instance (a receiver) per env and name on this machine."""
        del ttl
        path = os.path.join(self.locks_dir, "leader-%s-%s.lock" % (co.checked_name("env", env),
                                                                   co.checked_name("name", name)))
        return self._acquire(path, "leader %s/%s" % (env, name), record, hold=False)

    def _acquire(self, path, what, record, hold):
        try:
            os.makedirs(self.locks_dir, mode=0o700, exist_ok=True)
            fd, holder = _try_flock(path)
        except OSError as exc:
            raise co.CoordinationError("run lock %s: %s" % (path, exc.strerror or exc))
        if fd is None:
            raise co.Held(co.held_line(what, holder), holder)
        try:
            if hold:
                check_hold(path + ".hold", what)
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(dict(record, since=time.time())).encode("utf-8"), 0)
        except BaseException:
            os.close(fd)
            raise
        return FileLock(fd, path)

    def holder(self, env, service):
        """The record of whoever holds the lock now; None when it is free."""
        try:
            fd, record = _try_flock(self._path(env, service), create=False)
        except FileNotFoundError:
            return None  # never taken here: free, and a read creates nothing
        except OSError as exc:
            raise co.CoordinationError("run lock %s: %s" % (self._path(env, service), exc.strerror or exc))
        if fd is None:
            return record
        os.close(fd)
        return None

    def release_for(self, env, service, record, timeout=10.0):
        """Release a lock held by another process of this machine: the run_lock holder process
        named by ``record`` (checked by its command line, so a reused pid is never signalled)
        is asked to stop, and we wait until the lock is free. False when it is not ours to end."""
        try:
            pid = int(record.get("pid"))
            with open("/proc/%d/cmdline" % pid, "rb") as fh:
                if not is_holder_command(fh.read()):
                    return False
        except (TypeError, ValueError):
            return False
        except OSError:
            pass  # the holder is gone already: its flock went with it
        else:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            except OSError as exc:
                raise co.CoordinationError("run lock: cannot stop its holder pid %s: %s" % (pid, exc))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.holder(env, service) is None:
                return True
            time.sleep(0.05)
        raise co.CoordinationError("run lock %s: its holder pid %s did not let go within %.0f s"
                                   % (self._path(env, service), pid, timeout))


def save(path, data):
    _write_atomic(path, (json.dumps(data, indent=1, sort_keys=True) + "\n").encode("utf-8"))
