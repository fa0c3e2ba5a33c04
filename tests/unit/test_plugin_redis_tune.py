"""redis_tune and the shared Redis client: the allow-list, the ceiling, value normalisation,
the RESP array reader, and the commands the modules must never send."""

from __future__ import annotations

import io
import re
import sys
from pathlib import Path

import pytest

from tests.plugins import PLUGINS, load_plugin

# The modules import module_utils as ansible_collections.pivotal.flow_ops...: the checkout's
# collections/ directory (a symlink tree) makes that package importable without installing.
sys.path.insert(0, str(PLUGINS.parents[1] / "collections"))

tune = load_plugin("redis_tune")
client = load_plugin("redis_client", "module_utils")
resp = load_plugin("redis_resp", "module_utils")


def test_sizes_follow_redis_conf_units() -> None:
    assert client.parse_size("64mb") == 64 * 1024**2
    assert client.parse_size("1gb") == 1024**3
    assert client.parse_size("1k") == 1000
    assert client.parse_size(12345) == 12345
    with pytest.raises(ValueError):
        client.parse_size("lots")
    assert client.human_size(20 * 1024**2) == "20mb"
    assert client.human_size(1536) == "1.5kb"


def test_only_allow_listed_settings_are_accepted() -> None:
    with pytest.raises(ValueError, match="not on the allow-list: requirepass"):
        tune.validate({"requirepass": "x"}, 0)
    with pytest.raises(ValueError, match="maxmemory-policy must be one of"):
        tune.validate({"maxmemory-policy": "evict-everything"}, 0)
    wanted = tune.validate(
        {"maxmemory": "20mb", "activedefrag": True, "maxmemory-policy": "ALLKEYS-LRU"}, 0
    )
    assert wanted == {
        "maxmemory": str(20 * 1024**2),
        "activedefrag": "yes",
        "maxmemory-policy": "allkeys-lru",
    }


def test_maxmemory_is_never_set_above_the_ceiling_nor_to_unlimited() -> None:
    with pytest.raises(ValueError, match="above the ceiling 16mb"):
        tune.validate({"maxmemory": "32mb"}, 16 * 1024**2)
    with pytest.raises(ValueError, match="above the ceiling"):
        tune.validate({"maxmemory": 0}, 16 * 1024**2)
    assert tune.validate({"maxmemory": "16mb"}, 16 * 1024**2) == {"maxmemory": str(16 * 1024**2)}


def test_read_reply_reads_nested_arrays() -> None:
    stream = io.BytesIO(b"*2\r\n$1\r\n0\r\n*2\r\n$3\r\nfoo\r\n:12\r\n")
    assert resp.read_reply(stream) == ["0", ["foo", 12]]
    assert resp.read_reply(io.BytesIO(b"*-1\r\n")) is None


def test_info_parser_reads_numbers_keyspace_and_errorstats() -> None:
    info = client.parse_info_all(
        "# Memory\r\nused_memory:1024\r\nmem_fragmentation_ratio:1.5\r\n"
        "maxmemory_policy:allkeys-lru\r\n"
        "# Keyspace\r\ndb0:keys=10,expires=2,avg_ttl=0\r\n# Errorstats\r\nerrorstat_OOM:count=3\r\n"
    )
    assert info["used_memory"] == 1024 and info["mem_fragmentation_ratio"] == 1.5
    assert info["db0"] == {"keys": 10, "expires": 2, "avg_ttl": 0}
    assert info["errorstat_OOM"] == {"count": 3}


@pytest.mark.parametrize("command", ["FLUSHALL", "flushdb", "KEYS", "DEBUG"])
def test_the_client_refuses_destructive_commands(command: str) -> None:
    conn = client.RedisConnection.__new__(client.RedisConnection)
    with pytest.raises(client.ForbiddenCommand):
        conn.call(command, "*")
    with pytest.raises(client.ForbiddenCommand):
        conn.pipeline([("GET", "k"), (command, "*")])


def test_no_redis_module_sends_a_forbidden_command() -> None:
    sources = [*PLUGINS.glob("modules/redis_*.py"), *PLUGINS.glob("module_utils/redis_*.py")]
    assert len(sources) >= 5
    sent = re.compile(
        r"""(call|try_call|pipeline|encode)\(\s*\[?\(?\s*["'](FLUSHALL|FLUSHDB|KEYS|DEBUG)["']""",
        re.I,
    )
    for path in sources:
        text = Path(path).read_text()
        assert not sent.search(text), f"{path.name} sends a forbidden command"


class Refusing:
    """A connection whose ACL refuses some commands, answering the rest from a table."""

    def __init__(self, refused: set[str], replies: dict[str, object]) -> None:
        self.refused, self.replies, self.sent = refused, replies, []

    def try_call(self, *parts: object) -> object:
        self.sent.append(parts)
        name = (
            " ".join(str(p) for p in parts[:2]).lower() if len(parts) > 1 else str(parts[0]).lower()
        )
        word = str(parts[0]).lower()
        for refused in self.refused:
            if refused in (name.replace(" ", "|"), word):
                return tune.RedisReplyError(
                    f"NOPERM this user has no permissions to run the '{refused}' command"
                )
        return self.replies.get(word, "OK")

    call = try_call


def test_a_write_probe_refused_by_the_acl_says_nothing_about_writes() -> None:
    probe = tune.write_probe(Refusing({"set"}, {}))
    assert probe["ok"] is None and "grant +set +del" in probe["detail"]
    assert tune.write_probe(Refusing(set(), {"del": 1}))["ok"] is True
    oom = Refusing(set(), {})
    oom.replies["set"] = tune.RedisReplyError(
        "OOM command not allowed when used memory > 'maxmemory'."
    )
    assert tune.write_probe(oom)["ok"] is False


def test_config_rewrite_refused_by_the_acl_names_the_rule() -> None:
    persisted, msg = tune.persist(Refusing({"config|rewrite"}, {}), "/etc/redis.conf", True)
    assert not persisted and msg.startswith("NOT persisted") and "grant +config|rewrite" in msg


def test_memory_purge_shows_before_and_after_also_in_check_mode() -> None:
    info = "used_memory:1048576\r\nused_memory_rss:8388608\r\n"
    check = tune.memory_purge(Refusing(set(), {"info": info}), check=True)
    assert (
        check["before"] == "RSS 8mb for 1mb used" and check["result"] == "would purge (check mode)"
    )
    assert check["after"]
    done = tune.memory_purge(Refusing(set(), {"info": info}), check=False)
    assert (done["result"], done["after"]) == ("purged", "RSS 8mb for 1mb used")
    denied = tune.memory_purge(Refusing({"memory|purge"}, {"info": info}), check=False)
    assert denied["result"].startswith("failed") and "grant +memory|purge" in denied["result"]
