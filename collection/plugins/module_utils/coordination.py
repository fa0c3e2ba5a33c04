# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pflow-ops team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The coordination store: one interface for the restart budget and the run locks, two backends.

``file`` (the default) is today's per-machine state under $PFLOW_OPS_HOME: the budget file with
its flock, and the run lock's flock files (coordination_file.py). ``etcd`` (coordination_etcd.py)
is shared by every controller, AWX job pod and receiver that names it in the inventory
(``pflow_coordination_url``): a budget entry is a key with a lease (TTL = its retention), a
run lock is a key bound to a lease kept alive by a thread, so a dead holder frees it within the
TTL; every read-decide-write is one etcd transaction.

Used on the controller by the collection's action plugins (also inside AWX execution
environments, where pflow_ops is not installed) and by pflow_ops, which loads this file by path.
So its siblings are loaded by path too (``sibling``): the same code whichever way it was reached.
Never shipped to a target.

This file holds what is pure: the settings (URL, TLS, credentials) and their validation, the
key names, the TTLs, the holder line of a refusal, and the store factory. Fail closed: a setting
that is not literally valid, or an etcd that cannot be reached, refuses with one line naming the
store; there is no fallback from etcd to file.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import importlib.util
import json
import math
import os
import re
import sys
import types

from urllib.parse import quote, urlsplit

URL_VAR = "pflow_coordination_url"
CA_CERT_VAR = "pflow_coordination_ca_cert"
CLIENT_CERT_VAR = "pflow_coordination_client_cert"
CLIENT_KEY_VAR = "pflow_coordination_client_key"
USER_VAR = "pflow_coordination_user"
PASSWORD_VAR = "pflow_coordination_password"
LOCK_TTL_VAR = "pflow_coordination_lock_ttl"
SETTING_VARS = (URL_VAR, CA_CERT_VAR, CLIENT_CERT_VAR, CLIENT_KEY_VAR, USER_VAR, PASSWORD_VAR, LOCK_TTL_VAR)
# Credentials may also come from the environment of the process (an AWX credential, a systemd
# unit): never from argv, never written to disk by us.
USER_ENV = "PFLOW_COORDINATION_USER"
PASSWORD_ENV = "PFLOW_COORDINATION_PASSWORD"

FILE = "file"
ETCD_SCHEMES = ("etcd", "etcds")
DEFAULT_PORT = 2379
PREFIX = "/pflow-ops/"
DEFAULT_LOCK_TTL = 15
MIN_TTL, MAX_LOCK_TTL = 2, 3600
REQUEST_TIMEOUT = 5.0
OVERRIDE_HINT = ("bring the store back, or act by hand; {0}: file in the inventory is for an "
                 "environment run from one controller only").format(URL_VAR)
# Ansible's vault-encrypted values (2.19's EncryptedString is not a str): str() decrypts them.
_VAULT_TYPES = ("EncryptedString", "AnsibleVaultEncryptedUnicode")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def _errors():
    """The exception classes, one set per process however this file was loaded (the collection's
    import path, pflow_ops by path): a store opened through one copy is understood by the other."""
    shared = sys.modules.get(_ERRORS)
    if shared is None:
        shared = types.ModuleType(_ERRORS)

        class CoordinationError(Exception):
            """A setting or a request the user can fix: one line, refused."""

        class Unavailable(CoordinationError):
            """The store cannot be reached or answered wrongly: refused, never a silent fallback."""

        class Held(CoordinationError):
            """The lock is held by someone else; ``holder`` is its record (a dict, maybe empty)."""

            def __init__(self, message, holder):
                super(Held, self).__init__(message)
                self.holder = holder

        shared.CoordinationError, shared.Unavailable, shared.Held = CoordinationError, Unavailable, Held
        sys.modules[_ERRORS] = shared
    return shared


_ERRORS = "pflow_ops_coordination_errors"
CoordinationError, Unavailable, Held = _errors().CoordinationError, _errors().Unavailable, _errors().Held


class Settings(object):
    """The validated coordination settings of one environment. The password is kept out of
    repr() and of name(): both end up in logs and refusals."""

    __slots__ = ("scheme", "host", "port", "ca_cert", "client_cert", "client_key", "user", "password",
                 "lock_ttl")

    def __init__(self, scheme, host="", port=0, ca_cert=None, client_cert=None, client_key=None,
                 user=None, password=None, lock_ttl=DEFAULT_LOCK_TTL):
        self.scheme, self.host, self.port = scheme, host, port
        self.ca_cert, self.client_cert, self.client_key = ca_cert, client_cert, client_key
        self.user, self.password, self.lock_ttl = user, password, lock_ttl

    @property
    def is_file(self):
        return self.scheme == FILE

    def name(self):
        """How refusals name the store (no credentials)."""
        if self.is_file:
            return FILE
        host = "[%s]" % self.host if ":" in self.host else self.host
        return "%s://%s:%d" % (self.scheme, host, self.port)

    def fields(self):
        """Every field (the password too): for the run_lock holder's stdin only, never logged."""
        return dict((name, getattr(self, name)) for name in self.__slots__)

    def __repr__(self):
        return "Settings(%s%s)" % (self.name(), ", user=%s" % self.user if self.user else "")


def _is_template(value):
    return isinstance(value, str) and ("{{" in value or "{%" in value or "{#" in value)


def _literal(name, value, secret=False):
    """A setting's value as a plain string, None when unset; a template or a non-string refuses:
    the settings are configuration read raw, never templated (nothing from an event reaches them).
    A vault value is the secret itself once decrypted, whatever it looks like; a secret is not
    stripped."""
    if type(value).__name__ in _VAULT_TYPES:
        value = str(value)  # decrypts; never templated
        return value if secret else value.strip()
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise CoordinationError("%s must be a string, not %s" % (name, type(value).__name__))
    if _is_template(value):
        raise CoordinationError("%s is a template; coordination settings are read literally: put the value "
                                "itself (an inline !vault string for a secret) in the inventory" % name)
    return str(value) if secret else str(value).strip()


def lock_ttl(value):
    """The run lock's lease TTL in whole seconds (default 15): how long a dead holder keeps the lock."""
    if value is None or value == "":
        return DEFAULT_LOCK_TTL
    try:
        ttl = int(value)
    except (TypeError, ValueError):
        raise CoordinationError("%s must be a whole number of seconds, not %r" % (LOCK_TTL_VAR, value))
    if isinstance(value, bool) or not MIN_TTL <= ttl <= MAX_LOCK_TTL:
        raise CoordinationError("%s must be between %d and %d seconds, not %r"
                                % (LOCK_TTL_VAR, MIN_TTL, MAX_LOCK_TTL, value))
    return ttl


def parse(values, environ=None):
    """Settings from the environment's variables (``values``: name -> raw value, as the inventory
    holds them) and, for the credentials only, the process environment.

    Raises CoordinationError with one line for anything not literally valid: an unknown scheme,
    credentials in the URL, a path or a query, TLS options on a plain etcd:// URL, half a client
    certificate, a user without a password."""
    environ = os.environ if environ is None else environ
    url = _literal(URL_VAR, values.get(URL_VAR)) or FILE
    ttl = lock_ttl(values.get(LOCK_TTL_VAR))
    if url == FILE:
        return Settings(FILE, lock_ttl=ttl)
    parts = urlsplit(url)
    if parts.scheme not in ETCD_SCHEMES:
        raise CoordinationError("%s %r: use file, etcd://HOST:PORT or etcds://HOST:PORT" % (URL_VAR, url))
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise CoordinationError("%s carries credentials: set %s and %s (vault) or $%s/$%s instead"
                                % (URL_VAR, USER_VAR, PASSWORD_VAR, USER_ENV, PASSWORD_ENV))
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise CoordinationError("%s %r: only scheme, host and port are allowed" % (URL_VAR, url))
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError:
        raise CoordinationError("%s %r: the port is not a number between 1 and 65535" % (URL_VAR, url))
    if not parts.hostname:
        raise CoordinationError("%s %r names no host" % (URL_VAR, url))
    tls = dict((name, _literal(name, values.get(name))) for name in (CA_CERT_VAR, CLIENT_CERT_VAR, CLIENT_KEY_VAR))
    if parts.scheme == "etcd" and any(tls.values()):
        raise CoordinationError("%s is set but %s is plain etcd://: use etcds:// for TLS"
                                % (", ".join(n for n in sorted(tls) if tls[n]), URL_VAR))
    if bool(tls[CLIENT_CERT_VAR]) != bool(tls[CLIENT_KEY_VAR]):
        raise CoordinationError("%s and %s go together" % (CLIENT_CERT_VAR, CLIENT_KEY_VAR))
    user = _literal(USER_VAR, values.get(USER_VAR)) or environ.get(USER_ENV) or None
    password = _literal(PASSWORD_VAR, values.get(PASSWORD_VAR), secret=True) or environ.get(PASSWORD_ENV) or None
    if bool(user) != bool(password):
        raise CoordinationError("etcd credentials need both a user and a password (%s/%s or $%s/$%s)"
                                % (USER_VAR, PASSWORD_VAR, USER_ENV, PASSWORD_ENV))
    return Settings(parts.scheme, parts.hostname, port, tls[CA_CERT_VAR], tls[CLIENT_CERT_VAR],
                    tls[CLIENT_KEY_VAR], user, password, ttl)


# How long a new run waits for the processes of a run whose CLI died to be stopped (the
# watchdog's grace period is 3 s) before it refuses: bounded, and the run lock is held meanwhile.
HOLD_WAIT_S = 10.0


def checked_name(what, value):
    """An environment or service name as a key component: letters, digits, ``_.-`` only."""
    if not isinstance(value, str) or not _NAME.match(value):
        raise CoordinationError("%s %r: use letters, digits, '_', '.' and '-' only" % (what, value))
    return value


def lock_key(env, service):
    return "%slocks/%s/%s" % (PREFIX, checked_name("env", env), checked_name("service", service))


def leader_key(env, name):
    """One active instance per environment and name (the receiver): the same lease lock."""
    return "%sleaders/%s/%s" % (PREFIX, checked_name("env", env), checked_name("name", name))


def budget_prefix(key):
    """Where a budget key's entries live; the key is quoted, so no key can reach another's prefix."""
    if not key:
        raise CoordinationError("a budget key must not be empty")
    return "%sbudget/%s/" % (PREFIX, quote(key, safe=""))


ENV_VARS = ("pflow_env", "backend_env", "database_env", "cache_env")


def per_run_env_refusal(extra_var_names):
    """The line refusing a run lock whose environment an extra var could set (``-e pflow_env=x``
    would lock another environment's key and overlap this one's runs); empty when none does."""
    names = sorted(name for name in extra_var_names or () if name in ENV_VARS)
    if not names:
        return ""
    return ("run lock environment cannot be set per run (-e %s): it comes from the inventory; "
            "drop the -e" % ", ".join(names))


def lease_ttl(seconds):
    """A lease TTL (whole seconds, etcd's unit) that never ends before ``seconds``."""
    return max(int(math.ceil(seconds)), MIN_TTL)


def keepalive_interval(ttl):
    """How often a holder refreshes its lease: three chances before it expires."""
    return max(ttl / 3.0, 0.5)


def holder_line(record):
    """Who holds a lock, for a refusal: ``run R, pid P`` (and the host when known)."""
    if not isinstance(record, dict) or not record:
        return "holder unknown"
    line = "run %s, pid %s" % (record.get("run_id", "?"), record.get("pid", "?"))
    return line + (" on %s" % record["host"] if record.get("host") else "")


def held_line(what, record):
    """The refusal when another run holds the lock of ``what`` (``env-service``)."""
    return ("another recovery is running for %s (%s); wait for it to finish or check `pflow-ops history`"
            % (what, holder_line(record)))


def hold_line(what, record):
    """The refusal when processes of an earlier run (its CLI gone) still hold the hold lock."""
    return ("processes of an earlier run still act on %s (%s); wait for them to end or check "
            "`pflow-ops history`" % (what, holder_line(record)))


def short_reason(text):
    """The part of a client's error a human needs: etcd's own message, the TLS verdict or
    ``[Errno 111] Connection refused`` out of urllib3's retry chatter, ``timed out``, or the
    first 200 characters."""
    text = " ".join(str(text).split())
    try:
        answer = json.loads(text)
    except ValueError:
        answer = None
    if isinstance(answer, dict) and answer.get("message"):  # etcd's own error (auth, permission)
        return str(answer["message"])[:200]
    for marker in ("[SSL", "[Errno"):  # the TLS verdict first: it also comes with an errno
        if marker in text:
            return re.split("['\"]", text[text.index(marker):], maxsplit=1)[0].rstrip(") ")
    if "timed out" in text.lower():
        return "timed out"
    caused = re.findall(r"(\w+)\((?:\d+, )?'([^']+)'", text)  # urllib3's innermost cause
    if caused:
        return ("%s: %s" % caused[-1])[:200]
    return text[:200]


def unavailable_line(settings, why, reached=False):
    """The one line a store that cannot serve us refuses with: unreachable, or reached but
    answering with an error (credentials, permissions)."""
    state = "answered with an error" if reached else "unreachable"
    return "coordination store %s %s (%s): refused, nothing was changed; %s" % (
        settings.name(), state, why, OVERRIDE_HINT)


class BudgetView(object):
    """One budget key as a transaction read it: its entries, or why they could not be read
    (``unreadable``: the refusal line, entries then []), where they live, and the time."""

    __slots__ = ("entries", "unreadable", "why", "where", "now")

    def __init__(self, entries, unreadable, why, where, now):
        self.entries, self.unreadable, self.why, self.where, self.now = entries, unreadable, why, where, now


def sibling(name):
    """A module next to this file, loaded by path (cached): reached through the collection's
    import path or by pflow_ops, the backends are the same files. Named after this module, so
    a backend finds the very coordination module (and exception classes) that loaded it."""
    qualified = "%s._%s" % (__name__, name)
    module = sys.modules.get(qualified)
    if module is None:
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), name + ".py")
        spec = importlib.util.spec_from_file_location(qualified, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[qualified] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[qualified]
            raise
    return module


def open_store(settings, home):
    """The store for ``settings``; ``home`` is $PFLOW_OPS_HOME (the file backend's directory)."""
    if settings.is_file:
        return sibling("coordination_file").FileStore(
            os.path.join(home, "budget", "restarts.json"), os.path.join(home, "locks"))
    return sibling("coordination_etcd").EtcdStore(settings)


def state_home(environ=None):
    """$PFLOW_OPS_HOME resolved as pflow_ops.paths.state_home() resolves it."""
    environ = os.environ if environ is None else environ
    return os.path.realpath(os.path.expanduser(environ.get("PFLOW_OPS_HOME") or "~/.pflow-ops"))


def settings_values(variables):
    """The coordination variables of ``variables`` (task vars, host vars), raw: never templated."""
    return dict((name, variables.get(name)) for name in SETTING_VARS if variables.get(name) is not None)
