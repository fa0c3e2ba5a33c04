# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pflow-ops team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The restart budget's decisions, as pure functions (no file, no clock, no Ansible import).

The action plugin restart_budget reads and writes the budget file under its lock; what a budget
file may contain, which per-run variables are refused, when an override counts, which entries
are in the window and which are kept, and the one line a refusal reads as are decided here,
each unit-tested per branch.

Fail closed everywhere: an unreadable file refuses (it is never read as empty), a restart
recorded "in the future" (the clock went backwards) still counts, and the file keeps every
entry for a fixed retention, so no caller's window can erase another caller's history.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import json
import math
import re

FORMAT_VERSION = 1
# Entries are kept this long whatever window the caller uses (a larger window extends it): the
# file is shared by every entry point and every policy, so pruning follows no caller's window.
RETENTION_SECONDS = 86400
OVERRIDE_FLAG = "--override-budget"

# Extra vars that would set the budget's policy (max, window), the one dict that carries it to
# service_manager restart_gated, or the environment part of the budget's key (a run with
# -e pflow_env=x would count against a fresh, empty key): all come from the inventory, never
# from one run's -e. <role>_confirm_env is not among them (AWX sends it to check the inventory).
_POLICY_VAR = re.compile(r"(^|_)restart_budget_(max|window)$")
_POLICY_NAMES = ("service_manager_budget", "pflow_env", "backend_env", "database_env", "cache_env")


def parse_state(raw):
    """(data, "") for the text of a valid budget file, (None, why) for anything else."""
    try:
        data = json.loads(raw)
    except ValueError as exc:
        return None, "not JSON (%s)" % exc
    if not isinstance(data, dict) or not isinstance(data.get("keys"), dict):
        return None, "no 'keys' object"
    for key, entries in data["keys"].items():
        if not isinstance(entries, list):
            return None, "the entries of %r are not a list" % key
        for entry in entries:
            ts = entry.get("ts") if isinstance(entry, dict) else None
            if isinstance(ts, bool) or not isinstance(ts, (int, float)) or not math.isfinite(ts):
                return None, "an entry of %r has no numeric 'ts'" % key
    return data, ""


def per_run_policy_vars(extra_vars):
    """Names among this run's extra vars that would set the budget policy or key, sorted."""
    return sorted(name for name in (extra_vars or {})
                  if isinstance(name, str) and (_POLICY_VAR.search(name) or name in _POLICY_NAMES))


def per_run_refusal(names):
    """The one line refusing a per-run policy; empty when there is none."""
    if not names:
        return ""
    return ("restart budget policy cannot be set per run (-e %s): it comes from the inventory "
            "(group_vars/host_vars); drop the -e, or overrule a spent budget with %s REASON"
            % (", ".join(names), OVERRIDE_FLAG))


def override_reason_of(override, override_reason):
    """The override's reason, stripped; None when no override was asked."""
    if not override:
        return None
    return (override_reason or "").strip()


def override_refusal(override, override_reason):
    """An override exists only with a reason: the line refusing a blank one, else empty."""
    if override and not (override_reason or "").strip():
        return "%s needs a reason (who and why: an incident or ticket)" % OVERRIDE_FLAG
    return ""


def unreadable_refusal(path, kept_as, why=""):
    """The line refusing a restart because the state cannot be read (never read as empty)."""
    where = "kept as %s" % kept_as if kept_as else (why or "not read")
    return "restart budget state unreadable at %s (%s); a human may %s" % (path, where, OVERRIDE_FLAG)


def retention(window_seconds):
    """How long the file keeps an entry: the fixed retention, or a longer window."""
    return max(RETENTION_SECONDS, int(window_seconds))


def in_window(entries, now, window_seconds):
    """The entries that count against the window, oldest first. One recorded in the future
    (the clock went backwards) counts: an unknown age is not an expired one."""
    return sorted((e for e in entries if now - e["ts"] < window_seconds), key=lambda e: e["ts"])


def pruned(keys, now, keep_seconds):
    """Every key's entries younger than keep_seconds (future ones too), keys left empty dropped."""
    out = {}
    for key, entries in keys.items():
        kept = sorted((e for e in entries if now - e["ts"] < keep_seconds), key=lambda e: e["ts"])
        if kept:
            out[key] = kept
    return out


def clock_warning(entries, now, path):
    """A warning when an entry lies in the future: the clock went backwards since it was written."""
    ahead = [e["ts"] - now for e in entries if e["ts"] > now]
    if not ahead:
        return ""
    return ("clock jumped backwards: %d restart(s) in %s are recorded up to %.0f s in the future; "
            "they still count against the budget" % (len(ahead), path, max(ahead)))


def assess(entries, now, max_restarts, window_seconds, override, override_reason, unreadable=""):
    """Whether one more restart of a key is allowed, from its recorded entries.

    unreadable: the refusal line when the state could not be read (entries are then []): only
    an override with a reason gets past it. Returns allowed, overridden, refusal (one line,
    empty when allowed) and the window's entries.
    """
    window = in_window(entries, now, window_seconds)
    refusal = override_refusal(override, override_reason)
    if refusal:
        allowed = overridden = False
    elif unreadable:
        allowed = overridden = bool(override)
        refusal = "" if override else unreadable
    else:
        within = len(window) < max_restarts
        allowed = within or bool(override)
        overridden = allowed and not within
        refusal = "" if allowed else spent_refusal(len(window), max_restarts, window_seconds,
                                                   counts(window, now, window_seconds, max_restarts)["resets_in_s"])
    return {"allowed": allowed, "overridden": overridden, "refusal": refusal, "entries": window}


def counts(window, now, window_seconds, max_restarts):
    """used, remaining, oldest_ts and resets_in_s (when the oldest entry frees its slot)."""
    oldest = window[0]["ts"] if window else None
    return {
        "used": len(window),
        "remaining": max(max_restarts - len(window), 0),
        "oldest_ts": oldest,
        "resets_in_s": round(max(oldest + window_seconds - now, 0.0), 1) if oldest is not None else None,
    }


def spent_refusal(used, max_restarts, window_seconds, resets_in_s):
    """The line for a spent (or disabled) budget."""
    if max_restarts == 0:
        return "automatic restarts are disabled (restart budget 0); a human may %s" % OVERRIDE_FLAG
    return ("restart budget spent: %s of %s restarts used in the last %s min (next slot in %s s); "
            "a human may %s" % (used, max_restarts, int(window_seconds) // 60, int(resets_in_s or 0),
                                OVERRIDE_FLAG))


def new_entry(now, reason, override, override_reason, run_id):
    """The entry one restart leaves in the file."""
    entry = {"ts": round(now, 3), "reason": reason, "override": bool(override)}
    if override:
        entry["override_reason"] = override_reason
    if run_id:
        entry["run_id"] = run_id
    return entry


def is_guard_refusal(refusal):
    """True for a refusal other than the budget itself (unreadable state, a per-run policy, an
    override without a reason): something a human must look at, so it is also a warning."""
    return bool(refusal) and not refusal.startswith(("restart budget spent", "automatic restarts"))


def summary(allowed, used, max_restarts, refusal):
    """One line for the run report; a guard's refusal reads as itself."""
    if not allowed and is_guard_refusal(refusal):
        return "refused: " + refusal
    return "%s: %s of %s restarts used in the window" % ("allowed" if allowed else "refused", used, max_restarts)
