#!/usr/bin/python
# Copyright: (c) 2026, pflow-ops team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# ruff: noqa: E402  (ansible-test requires DOCUMENTATION/EXAMPLES/RETURN before any import)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: redis_tune
short_description: Apply allow-listed Redis settings with CONFIG SET, persist them, report before and after
version_added: 0.2.0
description:
  - Reads the current value of each wanted setting with C(CONFIG GET) and runs C(CONFIG SET) only
    for those that differ, then C(CONFIG REWRITE) when the server started with a config file
    (C(INFO server) C(config_file)). When it cannot persist, C(persisted=false) and C(msg) say so.
  - Only allow-listed settings are accepted; C(maxmemory) is refused above I(maxmemory_ceiling).
  - Optionally runs C(MEMORY PURGE) and C(CLIENT KILL ID) for idle normal clients (never replicas,
    masters, pub/sub subscribers, blocked clients or this connection).
  - Never sends C(FLUSHALL), C(FLUSHDB), C(KEYS) or C(DEBUG).
  - In check mode only C(CONFIG GET) and C(CLIENT LIST) run; the result lists the would-be changes.
seealso:
  - module: pivotal.flow_ops.redis_diagnose
    description: Finds what to tune.
  - module: community.general.redis
    description: Sets one configuration value (C(command=config)) without a ceiling, persistence report or write probe.
author:
  - pflow-ops team (@pivotal-flow)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - pivotal.flow_ops.action_groups.redis_group
  - pivotal.flow_ops.redis
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: The settings changed (or, in check mode, that would change), as C(name value) lines.
  platform:
    platforms: posix
notes:
  - The I(user), when an ACL user, needs C(CONFIG) (C(CONFIG GET), C(CONFIG SET), C(CONFIG REWRITE)).
options:
  settings:
    description:
      - Wanted settings, name to value. Allowed names are C(maxmemory), C(maxmemory-policy),
        C(maxmemory-samples), C(maxclients), C(activedefrag), C(lazyfree-lazy-eviction),
        C(lazyfree-lazy-expire), C(lazyfree-lazy-server-del), C(latency-monitor-threshold) and
        C(slowlog-log-slower-than). Memory sizes may use redis.conf units (C(64mb)).
    type: dict
    default: {}
  maxmemory_ceiling:
    description: Largest C(maxmemory) in bytes this module will set; 0 means no ceiling.
    type: int
    default: 0
  persist:
    description: Run C(CONFIG REWRITE) after a change when the server has a config file.
    type: bool
    default: true
  purge:
    description: Run C(MEMORY PURGE) (releases allocator pages held since a memory peak).
    type: bool
    default: false
  kill_idle_clients_after:
    description: Kill normal clients idle longer than this many seconds; 0 kills none.
    type: int
    default: 0
  write_probe:
    description:
      - After any change, prove that writes succeed (C(SET) a dedicated key with a 10 s TTL, then
        C(DEL) it). Not a change (the key lives for one round trip); skipped in check mode.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Switch the cache to an evicting policy and persist it
  pivotal.flow_ops.redis_tune:
    port: 6379
    password: "{{ vault_redis_password }}"
    settings:
      maxmemory-policy: allkeys-lru
      maxmemory: 1gb
    maxmemory_ceiling: 4294967296
  register: tune
"""

RETURN = r"""
actions:
  description: One {action, target, result, before, after} per change (made, or that would be made in check mode).
  returned: always
  type: list
  elements: dict
  sample:
      - {action: config_set, target: maxmemory-policy, before: noeviction, after: allkeys-lru, result: set}
persisted:
  description: Every change is in the config file (true also when there was nothing to persist).
  returned: always
  type: bool
  sample: true
config_file:
  description: The server's config file; empty when it started without one.
  returned: when connected
  type: str
  sample: /etc/redis/redis.conf
before:
  description: Current values of the wanted settings, as CONFIG GET returned them.
  returned: when connected
  type: dict
  sample: {maxmemory-policy: noeviction, maxmemory: 256mb}
wanted:
  description: The wanted settings in the form CONFIG GET answers with (maxmemory in bytes), for read-back checks.
  returned: when connected
  type: dict
  sample: {maxmemory-policy: allkeys-lru, maxmemory: "268435456"}
write_probe:
  description: >-
    ok and detail of the write probe (an OOM error under noeviction shows here); ok is null when
    this ACL user may not run SET (NOPERM): nothing is known about writes then.
  returned: when I(write_probe=true) and not in check mode
  type: dict
  sample: {ok: true, detail: "SET and DEL of a probe key with a 10 s TTL succeeded"}
msg:
  description: One line saying what happened, including why a change could not be persisted.
  returned: always
  type: str
  sample: "maxmemory-policy noeviction -> allkeys-lru; persisted to /etc/redis/redis.conf with CONFIG REWRITE"
"""

import uuid

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.pivotal.flow_ops.plugins.module_utils.change_diff import settings_diff
from ansible_collections.pivotal.flow_ops.plugins.module_utils.redis_client import (
    CONNECTION_OPTIONS,
    RedisReplyError,
    config_pairs,
    connect,
    human_size,
    parse_info_all,
    parse_size,
)
from ansible_collections.pivotal.flow_ops.plugins.module_utils.redis_resp import acl_rule

ALLOWED = (
    "maxmemory",
    "maxmemory-policy",
    "maxmemory-samples",
    "maxclients",
    "activedefrag",
    "lazyfree-lazy-eviction",
    "lazyfree-lazy-expire",
    "lazyfree-lazy-server-del",
    "latency-monitor-threshold",
    "slowlog-log-slower-than",
)
POLICIES = (
    "noeviction",
    "allkeys-lru",
    "allkeys-lfu",
    "allkeys-random",
    "volatile-lru",
    "volatile-lfu",
    "volatile-random",
    "volatile-ttl",
)
YES_NO = ("activedefrag", "lazyfree-lazy-eviction", "lazyfree-lazy-expire", "lazyfree-lazy-server-del")


def normalise(name: str, value: object) -> str:
    """The form CONFIG GET answers with, so that equal settings compare equal."""
    if name == "maxmemory":
        return str(parse_size(value))
    text = str(value).strip().lower()
    if name in YES_NO:
        if text in ("true", "yes", "on", "1"):
            return "yes"
        if text in ("false", "no", "off", "0"):
            return "no"
        raise ValueError(f"{name} must be yes or no, got {value!r}")
    if name == "maxmemory-policy" and text not in POLICIES:
        raise ValueError(f"maxmemory-policy must be one of {', '.join(POLICIES)}, got {value!r}")
    if name not in ("maxmemory-policy",) and not text.lstrip("-").isdigit():
        raise ValueError(f"{name} must be an integer, got {value!r}")
    return text


def validate(settings: dict, ceiling: int) -> dict:
    unknown = sorted(set(settings) - set(ALLOWED))
    if unknown:
        raise ValueError(f"settings not on the allow-list: {', '.join(unknown)} (allowed: {', '.join(ALLOWED)})")
    wanted = {name: normalise(name, value) for name, value in settings.items()}
    if ceiling and "maxmemory" in wanted and (int(wanted["maxmemory"]) > ceiling or int(wanted["maxmemory"]) == 0):
        raise ValueError(f"maxmemory {human_size(wanted['maxmemory'])} is above the ceiling {human_size(ceiling)}")
    return wanted


def shown(name: str, value: str) -> str:
    return human_size(value) if name == "maxmemory" and value.isdigit() and int(value) else value


def apply_settings(conn, wanted: dict, before: dict, check: bool) -> tuple[list, list]:  # type: ignore[no-untyped-def]
    actions, errors = [], []
    for name, value in wanted.items():
        current = str(before.get(name, ""))
        if current == value:
            continue
        action = {"action": "config_set", "target": name, "before": shown(name, current), "after": shown(name, value)}
        if check:
            actions.append({**action, "result": "would set (check mode)"})
            continue
        reply = conn.try_call("CONFIG", "SET", name, value)
        if isinstance(reply, RedisReplyError):
            rule = acl_rule(reply)
            errors.append(f"CONFIG SET {name} failed: {reply}" + (f" (grant {rule})" if rule else ""))
            actions.append({**action, "after": shown(name, current), "result": f"failed: {reply}"})
        else:
            actions.append({**action, "result": "set"})
    return actions, errors


def kill_idle(conn, limit: int, check: bool) -> list:  # type: ignore[no-untyped-def]
    """CLIENT KILL ID for idle normal clients; TYPE normal already excludes replicas, masters, pubsub."""
    own = conn.call("CLIENT", "ID")
    actions = []
    for line in str(conn.call("CLIENT", "LIST", "TYPE", "normal")).splitlines():
        fields = dict(part.partition("=")[::2] for part in line.split(" ") if "=" in part)
        flags = fields.get("flags", "")
        if int(fields.get("id", own)) == own or int(fields.get("idle", 0)) <= limit or set(flags) & set("bMSPx"):
            continue
        target = f"client id {fields['id']} {fields.get('addr', '')} {fields.get('name', '')}".strip()
        before = f"idle {fields.get('idle')} s, last {fields.get('cmd', '?')}"
        if check:
            actions.append(
                {
                    "action": "client_kill",
                    "target": target,
                    "before": before,
                    "after": "disconnected",
                    "result": "would kill (check mode)",
                }
            )
            continue
        killed = conn.try_call("CLIENT", "KILL", "ID", fields["id"], "SKIPME", "yes")
        actions.append(
            {
                "action": "client_kill",
                "target": target,
                "before": before,
                "after": "disconnected",
                "result": "killed" if killed == 1 else f"not killed: {killed}",
            }
        )
    return actions


def persist(conn, config_file: str, wanted: bool) -> tuple[bool, str]:  # type: ignore[no-untyped-def]
    if not wanted:
        return False, "not persisted (persist=false): the change is lost at the next restart"
    if not config_file:
        return (
            False,
            "NOT persisted: Redis started without a config file, so CONFIG REWRITE is impossible; "
            "the change is lost at the next restart unless it is added to the deployment's config",
        )
    reply = conn.try_call("CONFIG", "REWRITE")
    if isinstance(reply, RedisReplyError):
        rule = acl_rule(reply)
        if rule:
            return False, (
                f"NOT persisted: this user may not run CONFIG REWRITE (grant {rule}); the change is runtime "
                f"only and is lost at the next restart unless it is added to {config_file}"
            )
        return False, f"NOT persisted: CONFIG REWRITE of {config_file} failed ({reply}); the change is runtime only"
    return True, f"persisted to {config_file} with CONFIG REWRITE"


def memory_purge(conn, check: bool) -> dict:  # type: ignore[no-untyped-def]
    """MEMORY PURGE, with the memory held before (RSS against allocated) and, after it, what is left."""

    def held() -> str:
        info = parse_info_all(conn.call("INFO", "memory"))
        return f"RSS {human_size(info.get('used_memory_rss', 0))} for {human_size(info.get('used_memory', 0))} used"

    action = {"action": "memory_purge", "target": "allocator", "before": held()}
    if check:
        return {**action, "after": "pages held since the peak released", "result": "would purge (check mode)"}
    reply = conn.try_call("MEMORY", "PURGE")
    if reply != "OK":
        rule = acl_rule(reply)
        return {**action, "after": action["before"], "result": f"failed: {reply}" + (f" (grant {rule})" if rule else "")}
    return {**action, "after": held(), "result": "purged"}


def write_probe(conn) -> dict:  # type: ignore[no-untyped-def]
    key = f"pflow-ops:write-probe:{uuid.uuid4().hex}"
    reply = conn.try_call("SET", key, "1", "PX", 10000)
    if isinstance(reply, RedisReplyError):
        rule = acl_rule(reply)
        if rule:
            # The ACL refused our SET before Redis looked at memory: this says nothing about
            # whether the application's writes fail.
            return {"ok": None, "detail": f"this user may not run SET (grant {rule} +del): writes not probed"}
        return {"ok": False, "detail": f"SET of a probe key failed: {reply}"}
    conn.try_call("DEL", key)
    return {"ok": True, "detail": "SET and DEL of a probe key with a 10 s TTL succeeded"}


def run_module(params: dict, check: bool) -> dict:
    wanted = validate(params["settings"] or {}, params["maxmemory_ceiling"])
    conn, connectivity = connect(params)
    if conn is None:
        return {"failed": True, "actions": [], "persisted": False, "msg": connectivity["msg"]}
    with conn:
        before = config_pairs(conn.call("CONFIG", "GET", *wanted)) if wanted else {}
        config_file = str(parse_info_all(conn.call("INFO", "server")).get("config_file", "") or "")
        actions, errors = apply_settings(conn, wanted, before, check)
        if params["purge"]:
            actions.append(memory_purge(conn, check))
        if params["kill_idle_clients_after"] > 0:
            actions += kill_idle(conn, params["kill_idle_clients_after"], check)
        probe = write_probe(conn) if params["write_probe"] and not check else None
        changed_settings = [a for a in actions if a["action"] == "config_set" and a["result"] == "set"]
        persisted, note = True, "nothing to persist"
        if check and any(a["action"] == "config_set" for a in actions):
            persisted, note = (
                bool(config_file),
                (
                    "would persist with CONFIG REWRITE"
                    if config_file
                    else "could NOT persist: Redis started without a config file"
                ),
            )
        elif changed_settings:
            persisted, note = persist(conn, config_file, params["persist"])
    changed = any(not a["result"].startswith("failed") and not a["result"].startswith("not ") for a in actions)
    shown_settings = [
        a for a in actions if a["action"] == "config_set" and a["result"] in ("set", "would set (check mode)")
    ]
    summary = ("would set " if check else "") + ", ".join(
        f"{a['target']} {a.get('before', '')} -> {a.get('after', '')}" for a in shown_settings
    )
    summary = summary if shown_settings else ""
    msg = ("; ".join(errors) + "; " if errors else "") + (f"{summary}; {note}" if summary else note)
    result = {
        "changed": changed,
        "failed": bool(errors),
        "actions": actions,
        "persisted": persisted,
        "config_file": config_file,
        "before": {k: shown(k, str(v)) for k, v in before.items()},
        "wanted": wanted,
        "msg": msg,
    }
    if probe is not None:
        result["write_probe"] = probe
    return result


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            CONNECTION_OPTIONS,
            settings=dict(type="dict", default={}),
            maxmemory_ceiling=dict(type="int", default=0),
            persist=dict(type="bool", default=True),
            purge=dict(type="bool", default=False),
            kill_idle_clients_after=dict(type="int", default=0),
            write_probe=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    try:
        result = run_module(module.params, module.check_mode)
    except ValueError as exc:
        module.fail_json(msg=str(exc), changed=False)
    except (OSError, RedisReplyError) as exc:
        module.fail_json(msg=f"Redis at {module.params['host']}:{module.params['port']}: {exc}", changed=False)
    if module._diff:
        diff = settings_diff(result["actions"], "config_set", ("set", "would set (check mode)"),
                             f"redis {module.params['host']}:{module.params['port']}")
        if diff:
            result["diff"] = diff
    if result.pop("failed"):
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
