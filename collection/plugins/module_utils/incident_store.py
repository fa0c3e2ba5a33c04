# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Pivotal Flow SRE <sre@pivotal-flow.example>
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where incident records live: ``$PFLOW_OPS_HOME/incidents/<sha256(key)>.json``.

The file I/O of the incident record, shared by the ``incident_record`` action plugin and the
``pflow-ops incident`` command: one ``flock`` per record (two runs of one incident update it in
turn), atomic writes (a killed writer leaves the old record, never half a new one), mode 0600.
A record that cannot be read is moved aside and reported, never fatal: documenting an incident
must not block a recovery.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import contextlib
import fcntl
import json
import os
import re
import tempfile
import time

SHA_PATTERN = re.compile(r"^[0-9a-f]{64}$")
MAX_BYTES = 1024 * 1024  # a record is a few kB; anything larger is not one of ours


def incidents_dir(home):
    return os.path.join(home, "incidents")


def record_path(home, sha):
    if not SHA_PATTERN.match(sha or ""):
        raise ValueError("not an incident record name: %r" % (sha,))
    return os.path.join(incidents_dir(home), sha + ".json")


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
    try:
        if len(raw) > MAX_BYTES:
            raise ValueError("larger than %d bytes" % MAX_BYTES)
        record = json.loads(raw.decode("utf-8"))
        if not isinstance(record, dict) or not isinstance(record.get("handles"), dict):
            raise ValueError("not an incident record")
        return record, ""
    except ValueError as exc:
        aside = "%s.corrupt-%d" % (path, int(time.time() * 1000))
        os.replace(path, aside)
        return None, "incident record %s could not be read (%s): kept as %s, a fresh record was started" % (
            os.path.basename(path), str(exc)[:120], os.path.basename(aside))


def read_only(path):
    """(record or None, problem) without moving anything: for readers that do not own the
    record's life (``pflow-ops incident show``)."""
    try:
        with open(path, "rb") as handle:
            record = json.loads(handle.read(MAX_BYTES + 1).decode("utf-8"))
    except FileNotFoundError:
        return None, ""
    except (OSError, ValueError) as exc:
        return None, str(exc)[:120]
    if not isinstance(record, dict) or not isinstance(record.get("handles"), dict):
        return None, "not an incident record"
    return record, ""


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
        try:
            with open(os.path.join(folder, name), "rb") as handle:
                record = json.loads(handle.read(MAX_BYTES + 1).decode("utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(record, dict):
            out.append(record)
    return sorted(out, key=lambda r: str(r.get("updated", "")), reverse=True)
