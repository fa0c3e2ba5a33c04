# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pflow-ops team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``etcd`` coordination backend (etcd v3.4+), through etcd3gw: the maintained, pure-Python
client of etcd's HTTP gateway (the grpc ``etcd3`` package is unmaintained). Nothing of the
protocol is written here: every call is etcd3gw's (its ``transaction`` takes etcd's own Txn body).

Budget: each entry is its own key under /pflow-ops/budget/<quoted key>/, bound to a lease whose
TTL is the entry's retention, so etcd forgets it when the file backend would prune it. A guard
key (/pflow-ops/budget-rev/<quoted key>) is rewritten by every write: the decision reads the
guard and the entries in one read transaction, and the write is a transaction that succeeds only
if the guard is unchanged (optimistic concurrency). A lost race is retried with a fresh read, so
two controllers can never both take the last slot. A value that is not an entry is copied aside
under /pflow-ops/budget-corrupt/ and refuses, like a corrupt budget file, until an override.

Locks: a key created only if absent (create_revision == 0) bound to a lease; a daemon thread
refreshes the lease every TTL/3. A holder that dies stops refreshing: the key goes within the TTL.

Every failure to reach etcd is Unavailable (one line naming the store): refused, never a
fallback to the file backend.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import base64
import json
import random
import sys
import threading
import time
import uuid

# The coordination module that loaded this file (coordination.sibling names us after it),
# or, imported on its own, the collection's.
if __name__.rsplit("._", 1)[0] in sys.modules and "._" in __name__:
    co = sys.modules[__name__.rsplit("._", 1)[0]]
else:
    from ansible_collections.pivotal.flow_ops.plugins.module_utils import coordination as co
policy = co.sibling("budget_policy")

_IMPORT_ERROR = ""
try:
    import etcd3gw
    import requests
    from etcd3gw import exceptions as etcd_exceptions
    from etcd3gw.lease import Lease
except ImportError as _exc:  # the EE or the controller lacks the client: said when etcd is chosen
    etcd3gw = None
    _IMPORT_ERROR = str(_exc)

API_PATH = "/v3/"  # etcd >= 3.4; saves the client's discovery round trip
TXN_ATTEMPTS = 200
CORRUPT = co.PREFIX + "budget-corrupt/"
GUARD = co.PREFIX + "budget-rev/"


def _b64(text):
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def _text(b64):
    return base64.b64decode(b64 or "").decode("utf-8", errors="replace")


def _range_end(prefix):
    """The end of a prefix's range (etcd's convention: the prefix with its last byte + 1)."""
    raw = prefix.encode("utf-8")
    return base64.b64encode(raw[:-1] + bytes([raw[-1] + 1])).decode("ascii")


def txn_kvs(response, index):
    """The key-values of the index-th range request of a transaction's response (the gateway
    leaves out empty lists)."""
    responses = response.get("responses") or []
    if index >= len(responses):
        return []
    return (responses[index].get("response_range") or {}).get("kvs") or []


def mod_revision(kvs):
    """The mod revision of a single-key range (0 when the key is absent, as etcd compares it)."""
    return int(kvs[0].get("mod_revision", 0)) if kvs else 0


def parse_entries(kvs):
    """(entries, bad) from a budget prefix's key-values: the entries in key order, and the keys
    whose value is not an entry (a JSON object with a numeric ts) with their raw value."""
    entries, bad = [], []
    for kv in kvs:
        raw = _text(kv.get("value"))
        try:
            entry = json.loads(raw)
        except ValueError:
            entry = None
        data, _why = policy.parse_state(json.dumps({"keys": {"k": [entry]}}))
        if data is None:
            bad.append((_text(kv.get("key")), raw))
        else:
            entries.append(entry)
    return entries, bad


class EtcdLock(object):
    """A lease lock: the key lives while the lease is refreshed by a daemon thread."""

    def __init__(self, store, key, value, lease, ttl):
        self._store, self.key, self._value, self._lease = store, key, value, lease
        self._stop = threading.Event()
        self.lost = False  # the lease could not be kept: another holder may have the lock now
        self._thread = threading.Thread(target=self._keepalive, args=(co.keepalive_interval(ttl), ttl),
                                        name="pflow-lock-keepalive", daemon=True)
        self._thread.start()

    def _keepalive(self, every, ttl):
        """Refresh every TTL/3. A refresh etcd answers with no TTL means the lease is gone; no
        answer for a whole TTL means it may be gone (another holder may have the lock): lost."""
        last_ok = time.monotonic()
        while not self._stop.wait(every):
            try:
                if self._lease.refresh() <= 0:
                    self.lost = True
                    return
                last_ok = time.monotonic()
            except Exception:  # pylint: disable=broad-exception-caught
                if time.monotonic() - last_ok >= ttl:
                    self.lost = True
                    return

    def release(self):
        """Delete the key if it is still ours and revoke the lease; if etcd cannot be reached the
        lease expires on its own within the TTL."""
        if self._stop.is_set():
            return
        self._stop.set()
        try:
            self._store.delete_if(self.key, self._value)
        except co.CoordinationError:
            pass
        self._store.revoke(self._lease.id)


class EtcdStore(object):
    def __init__(self, settings):
        if etcd3gw is None:
            raise co.CoordinationError("coordination store %s: the etcd3gw Python package is missing (%s); "
                                       "install it on the controller or in the execution environment"
                                       % (settings.name(), _IMPORT_ERROR))
        self.settings = settings
        session = requests.Session()
        # The inventory alone configures the connection: environment variables (REQUESTS_CA_BUNDLE,
        # proxies) differ between the CLI, an AWX pod and a receiver, and requests would let
        # them override the CA set here.
        session.trust_env = False
        if settings.ca_cert:
            session.verify = settings.ca_cert
        if settings.client_cert:
            session.cert = (settings.client_cert, settings.client_key)
        self.client = etcd3gw.Etcd3Client(host=settings.host, port=settings.port,
                                          protocol="https" if settings.scheme == "etcds" else "http",
                                          timeout=co.REQUEST_TIMEOUT, api_path=API_PATH, session=session)
        if settings.user:
            token = self._call(self.client.post, self.client.get_url("/auth/authenticate"),
                               json={"name": settings.user, "password": settings.password})
            if not isinstance(token, dict) or not token.get("token"):
                raise co.Unavailable(co.unavailable_line(settings, "authentication returned no token"))
            session.headers["Authorization"] = token["token"]

    def name(self):
        return self.settings.name()

    def _call(self, fn, *args, **kwargs):
        """One client call; any failure to reach or to be served by etcd is Unavailable."""
        try:
            return fn(*args, **kwargs)
        except (etcd_exceptions.Etcd3Exception, requests.RequestException, ValueError, KeyError) as exc:
            detail = getattr(exc, "detail_text", None) or str(exc) or type(exc).__name__
            reached = not isinstance(exc, (etcd_exceptions.ConnectionFailedError, etcd_exceptions.ConnectionTimeoutError,
                                           requests.ConnectionError, requests.Timeout))
            raise co.Unavailable(co.unavailable_line(self.settings, co.short_reason(detail), reached))

    def _txn(self, body):
        return self._call(self.client.transaction, body)

    # -- budget ---------------------------------------------------------------------------
    def budget(self, key, decide, now=None, dry_run=False, consume=False, keep_seconds=policy.RETENTION_SECONDS):
        """Read ``key``'s entries and guard in one transaction, call decide(BudgetView) -> entry
        or None, and write the entry in a transaction conditional on the guard; retried on a
        lost race. Returns the view of the attempt that decided."""
        del consume  # etcd needs no directory created before a read
        prefix = co.budget_prefix(key)
        guard = GUARD + prefix[len(co.PREFIX + "budget/"):-1]
        where = self.name() + prefix
        lease = None
        try:
            for _attempt in range(TXN_ATTEMPTS):
                read = self._txn({"compare": [], "success": [
                    {"request_range": {"key": _b64(guard)}},
                    {"request_range": {"key": _b64(prefix), "range_end": _range_end(prefix)}}]})
                kvs = txn_kvs(read, 1)
                entries, bad = parse_entries(kvs)
                stamp = time.time() if now is None else now
                view = self._view(key, entries, bad, where, stamp, dry_run)
                entry = decide(view)
                if entry is None or dry_run:
                    return view
                if lease is None:
                    lease = self._call(self.client.lease, co.lease_ttl(keep_seconds))
                ops = [{"request_put": {"key": _b64(guard), "value": _b64(repr(stamp))}},
                       {"request_put": {"key": _b64("%s%.3f-%s" % (prefix, stamp, uuid.uuid4().hex)),
                                        "value": _b64(json.dumps(entry, sort_keys=True)), "lease": lease.id}}]
                if view.unreadable:  # the override starts afresh (the bad values were kept aside),
                    # key by key: etcd refuses a put inside a range the same transaction deletes
                    ops += [{"request_delete_range": {"key": kv["key"]}} for kv in kvs]
                written = self._txn({"compare": [{"key": _b64(guard), "target": "MOD", "result": "EQUAL",
                                                  "mod_revision": mod_revision(txn_kvs(read, 0))}],
                                     "success": ops, "failure": []})
                if written.get("succeeded"):
                    lease = None
                    return view
                time.sleep(random.uniform(0, 0.02))  # another controller wrote first: read again
            raise co.Unavailable(co.unavailable_line(
                self.settings, "restart budget %s still contended after %d attempts" % (key, TXN_ATTEMPTS)))
        finally:
            if lease is not None:  # granted for an entry that was never written
                try:
                    self._call(lease.revoke)
                except co.Unavailable:
                    pass

    def _view(self, key, entries, bad, where, now, dry_run):
        if not bad:
            return co.BudgetView(entries, "", "", where, now)
        why = "%d value(s) are not budget entries" % len(bad)
        if dry_run:
            kept = "left in place in check mode; a real run keeps a copy under %s%s" % (self.name(), CORRUPT)
            return co.BudgetView([], policy.unreadable_refusal(where, "", kept), why, where, now)
        for name, raw in bad:  # kept aside once per key; the original stays and refuses
            self._call(self.client.create, (CORRUPT + name[len(co.PREFIX):]).encode("utf-8"), raw.encode("utf-8"))
        kept = "%s%s%s" % (self.name(), CORRUPT, co.budget_prefix(key)[len(co.PREFIX):])
        return co.BudgetView([], policy.unreadable_refusal(where, kept), why, where, now)

    # -- locks ----------------------------------------------------------------------------
    def acquire(self, env, service, record, ttl=co.DEFAULT_LOCK_TTL):
        return self._acquire(co.lock_key(env, service), "%s-%s" % (env, service), record, ttl)

    def leader(self, env, name, record, ttl=co.DEFAULT_LOCK_TTL):
        return self._acquire(co.leader_key(env, name), "leader %s/%s" % (env, name), record, ttl)

    def _acquire(self, key, what, record, ttl):
        lease = self._call(self.client.lease, co.lease_ttl(ttl))
        value = json.dumps(dict(record, since=time.time(), lease=lease.id), sort_keys=True)
        try:
            result = self._txn({
                "compare": [{"key": _b64(key), "target": "CREATE", "result": "EQUAL", "create_revision": 0}],
                "success": [{"request_put": {"key": _b64(key), "value": _b64(value), "lease": lease.id}}],
                "failure": [{"request_range": {"key": _b64(key)}}]})
        except co.Unavailable:
            self.revoke(lease.id)
            raise
        if result.get("succeeded"):
            return EtcdLock(self, key, value, lease, ttl)
        self.revoke(lease.id)
        holder = _record(txn_kvs(result, 0))
        raise co.Held(co.held_line(what, holder), holder)

    def revoke(self, lease_id):
        """Revoke a lease (its keys go with it); one that cannot be revoked expires on its own."""
        try:
            self._call(Lease(int(lease_id), self.client).revoke)
        except (co.Unavailable, TypeError, ValueError):
            pass

    def delete_if(self, key, value):
        """Delete ``key`` only while it still holds ``value`` (never another holder's lock)."""
        return self._txn({"compare": [{"key": _b64(key), "target": "VALUE", "result": "EQUAL",
                                       "value": _b64(value)}],
                          "success": [{"request_delete_range": {"key": _b64(key)}}], "failure": []})

    def holder(self, env, service):
        kvs = self._txn({"compare": [], "success": [{"request_range": {"key": _b64(co.lock_key(env, service))}}]})
        kvs = txn_kvs(kvs, 0)
        return _record(kvs) if kvs else None

    def release_for(self, env, service, record, timeout=10.0):
        """Release a lock another process holds (the run_lock holder of this playbook): delete
        its key if it still holds that record and revoke its lease; the holder process stops at
        its next refresh."""
        del timeout
        key = co.lock_key(env, service)
        kvs = txn_kvs(self._txn({"compare": [], "success": [{"request_range": {"key": _b64(key)}}]}), 0)
        if not kvs or _record(kvs) != record:
            return False
        self.delete_if(key, _text(kvs[0].get("value")))
        self.revoke(record.get("lease"))
        return True

    # -- plain keys (the incident records, module_utils/incident_store.py) ---------------------
    def kv_get(self, key):
        """(value or None, mod_revision) of one key, in one request (mod_revision 0: absent)."""
        kvs = txn_kvs(self._txn({"compare": [], "success": [{"request_range": {"key": _b64(key)}}]}), 0)
        return (_text(kvs[0].get("value")) if kvs else None), mod_revision(kvs)

    def kv_put_if(self, key, value, revision, also=()):
        """Write ``key`` (and each (key, value) of ``also``) in one transaction that succeeds
        only if ``key``'s mod_revision is still ``revision`` (0: still absent). False when
        another writer came first: the caller reads again."""
        puts = ((key, value),) + tuple(also)
        ops = [{"request_put": {"key": _b64(name), "value": _b64(text)}} for name, text in puts]
        written = self._txn({"compare": [{"key": _b64(key), "target": "MOD", "result": "EQUAL",
                                          "mod_revision": int(revision)}],
                             "success": ops, "failure": []})
        return bool(written.get("succeeded"))

    def kv_list(self, prefix):
        """[(key, value)] of every key under ``prefix``, in key order."""
        kvs = txn_kvs(self._txn({"compare": [], "success": [
            {"request_range": {"key": _b64(prefix), "range_end": _range_end(prefix)}}]}), 0)
        return [(_text(kv.get("key")), _text(kv.get("value"))) for kv in kvs]


def _record(kvs):
    if not kvs:
        return {}
    try:
        data = json.loads(_text(kvs[0].get("value")))
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
