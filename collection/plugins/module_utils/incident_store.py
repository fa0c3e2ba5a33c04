# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Pivotal Flow SRE <sre@pivotal-flow.example>
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where incident records live: ``$PFLOW_OPS_HOME/incidents/<sha256(key)>.json``.

The file I/O of the incident record, shared by the ``incident_record`` action plugin and the
``pflow-ops incident`` command: one ``flock`` per record (two runs of one incident update it in
turn), atomic writes (a killed writer leaves the old record, never half a new one), mode 0600.
A record that cannot be read is moved aside and reported, never fatal: documenting an incident
must not block a recovery.

Where the environment names an etcd coordination store (``pflow_coordination_url``), the record
lives there instead, at ``/pflow-ops/incidents/<env>/<sha256(key)>``, so every controller (the
CLI, an AWX job pod, the receiver) updates one record and the same ticket, message and pager
handles. An update there is read, change, then a write conditional on the key's mod_revision
(etcd's compare-and-swap), retried a bounded number of times when another controller wrote
first. An etcd that cannot be reached fails the update with one line naming the store; there is
no fallback to the local file: two diverging records would post duplicate tickets.
``open_records`` hands the action plugin and ``pflow-ops incident`` one interface over both
(get, update(fn), list, show). This file imports nothing of the collection: it is loaded by
path by pflow_ops too; the etcd store is opened by the caller's coordination module.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import contextlib
import fcntl
import json
import os
import random
import re
import tempfile
import time

SHA_PATTERN = re.compile(r"^[0-9a-f]{64}$")
MAX_BYTES = 1024 * 1024  # a record is a few kB; anything larger is not one of ours


def incidents_dir(home):
    return os.path.join(home, "incidents")


def record_path(home, sha):
    return os.path.join(incidents_dir(home), _checked_sha(sha) + ".json")


@contextlib.contextmanager
def locked(home, sha):
    """Hold the record's lock (a sibling ``.lock`` file, so the atomic rename never swaps it)."""
    folder = incidents_dir(home)
    os.makedirs(folder, mode=0o700, exist_ok=True)
    fd = os.open(record_path(home, sha)[:-5] + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def read(path):
    """(record or None, warning): a missing record is None; a corrupt one is moved aside."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
    except FileNotFoundError:
        return None, ""
    record, problem = parse_record(raw)
    if record is not None:
        return record, ""
    aside = "%s.corrupt-%d" % (path, int(time.time() * 1000))
    os.replace(path, aside)
    return None, "incident record %s could not be read (%s): kept as %s, a fresh record was started" % (
        os.path.basename(path), problem, os.path.basename(aside))


def read_only(path):
    """(record or None, problem) without moving anything: for readers that do not own the
    record's life (``pflow-ops incident show``)."""
    try:
        with open(path, "rb") as handle:
            return parse_record(handle.read(MAX_BYTES + 1))
    except FileNotFoundError:
        return None, ""
    except OSError as exc:
        return None, str(exc)[:120]


def write(path, record):
    """Replace the record atomically, 0600."""
    folder = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix=".incident-", dir=folder)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(record, handle, indent=1, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def list_records(home):
    """Every readable record, newest update first (corrupt ones are skipped here, not moved)."""
    out = []
    folder = incidents_dir(home)
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return out
    for name in names:
        if not name.endswith(".json") or not SHA_PATTERN.match(name[:-5]):
            continue
        record, _problem = read_only(os.path.join(folder, name))
        if record is not None:
            out.append(record)
    return newest_first(out)


def newest_first(records):
    return sorted(records, key=lambda r: str(r.get("updated", "")), reverse=True)


# -- one interface over both stores ----------------------------------------------------------
FILE, ETCD = "file", "etcd"
PREFIX = "/pflow-ops/"  # coordination.PREFIX: the etcd keys of pflow-ops
TXN_ATTEMPTS = 50  # compare-and-swap tries before an update gives up (contention, not failure)
_ENV = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
WRITTEN, RETRY, CONTENDED = "written", "retry", "contended"


class StoreError(ValueError):
    """The record could not be read or written where it lives: one line, a failed task."""


def backend(settings):
    """Where an environment's incident records live: ``etcd`` when its coordination settings
    name an etcd store, else ``file`` (the default: $PFLOW_OPS_HOME/incidents)."""
    return FILE if settings is None or getattr(settings, "is_file", True) else ETCD


def record_key(env, sha):
    """The etcd key of a record: /pflow-ops/incidents/<env>/<sha>; both parts checked, so no
    environment or key can reach another's prefix."""
    return "%s%s" % (records_prefix(env), _checked_sha(sha))


def records_prefix(env):
    if not isinstance(env, str) or not _ENV.match(env):
        raise StoreError("incident records: environment %r: use letters, digits, '_', '.' and '-' only" % (env,))
    return "%sincidents/%s/" % (PREFIX, env)


def corrupt_key(env, sha, stamp_ms):
    """Where an unreadable etcd value is kept aside (as a corrupt file is, next to it)."""
    records_prefix(env)  # checks env
    return "%sincidents-corrupt/%s/%s-%d" % (PREFIX, env, _checked_sha(sha), int(stamp_ms))


def _checked_sha(sha):
    if not SHA_PATTERN.match(sha or ""):
        raise ValueError("not an incident record name: %r" % (sha,))
    return sha


def parse_record(raw):
    """(record or None, problem) from a stored value (bytes or text): the same test for a file
    and an etcd value. A problem means the value is not one of our records."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8")
    if len(raw) > MAX_BYTES:
        return None, "larger than %d bytes" % MAX_BYTES
    try:
        record = json.loads(raw.decode("utf-8"))
    except ValueError as exc:
        return None, str(exc)[:120]
    if not isinstance(record, dict) or not isinstance(record.get("handles"), dict):
        return None, "not an incident record"
    return record, ""


def after_write(succeeded, attempt, attempts=TXN_ATTEMPTS):
    """The compare-and-swap decision after write attempt ``attempt`` (1-based): written, retry
    (another controller wrote between our read and our write: read again), or contended (still
    losing after ``attempts``: fail with one line rather than loop forever)."""
    if succeeded:
        return WRITTEN
    return RETRY if attempt < attempts else CONTENDED


def _got(record, existed, warnings, where):
    return {"record": record, "exists": existed, "warnings": warnings, "path": where}


class FileRecords(object):
    """The records of one machine: $PFLOW_OPS_HOME/incidents/, one flock per record."""

    name = FILE

    def __init__(self, home):
        self.home = home

    def where(self, sha):
        return record_path(self.home, sha)

    def update(self, sha, change):
        """Under the record's lock: read it (a corrupt one kept aside, with a warning), call
        ``change(record or None)`` -> the record to write, or None to write nothing."""
        path = self.where(sha)
        with locked(self.home, sha):
            record, warning = read(path)
            new = change(record)
            if new is not None:
                write(path, new)
        return _got(record if new is None else new, record is not None, [warning] if warning else [], path)

    def show(self, sha):
        return read_only(self.where(sha))

    def list(self):
        return list_records(self.home)


class EtcdRecords(object):
    """The records of an environment in its etcd coordination store (``store``: the
    coordination EtcdStore, opened by the caller), shared by every controller."""

    name = ETCD

    def __init__(self, store, env):
        self.store, self.env = store, env
        records_prefix(env)  # checked before any request

    def where(self, sha):
        return self.store.name() + record_key(self.env, sha)

    def update(self, sha, change):
        """Read, ``change(record or None)``, write if the key is unchanged since the read;
        retried with a fresh read when another controller wrote first. An unreadable value is
        copied aside in the same transaction that starts the fresh record."""
        key = record_key(self.env, sha)
        for attempt in range(1, TXN_ATTEMPTS + 1):
            raw, revision = self.store.kv_get(key)
            record, problem = (None, "") if raw is None else parse_record(raw)
            warnings, aside = [], ()
            if problem:
                kept = corrupt_key(self.env, sha, time.time() * 1000)
                aside = ((kept, raw),)
                warnings.append("incident record %s could not be read (%s): kept as %s%s, a fresh record was "
                                "started" % (self.where(sha), problem, self.store.name(), kept))
            new = change(record)
            if new is None:
                return _got(record, record is not None, warnings, self.where(sha))
            value = json.dumps(new, indent=1, sort_keys=True)
            verdict = after_write(self.store.kv_put_if(key, value, revision, aside), attempt)
            if verdict == WRITTEN:
                return _got(new, record is not None, warnings, self.where(sha))
            if verdict == CONTENDED:
                break
            time.sleep(random.uniform(0, 0.02))  # another controller wrote first: read again
        raise StoreError("incident record %s still contended after %d attempts: not updated"
                         % (self.where(sha), TXN_ATTEMPTS))

    def show(self, sha):
        raw, _revision = self.store.kv_get(record_key(self.env, sha))
        return (None, "") if raw is None else parse_record(raw)

    def list(self):
        out = [parse_record(raw)[0] for _key, raw in self.store.kv_list(records_prefix(self.env))]
        return newest_first(r for r in out if r is not None)


def open_records(settings, home, env, open_store):
    """The records of environment ``env``: in its etcd store when ``settings`` (coordination
    settings) name one (``open_store(settings, home)`` opens it: the caller's coordination
    module), else under ``home``. Never a fallback from one to the other."""
    if backend(settings) == ETCD:
        return EtcdRecords(open_store(settings, home), env)
    return FileRecords(home)
