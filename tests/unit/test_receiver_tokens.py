"""Token rotation (pflow_ops.receiver.tokens): a new token replaces the old one only if usable,
the file is looked at at most once a second, the token never reaches a log line."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from pflow_ops.receiver import tokens

OLD = "old-token-0123456789"
NEW = "new-token-0123456789abc"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Recorder:
    def __init__(self) -> None:
        self.lines: list[tuple[str, dict[str, Any]]] = []
        self.counts: list[str] = []

    def log(self, event: str, **fields: Any) -> None:
        self.lines.append((event, fields))

    def count(self, result: str) -> None:
        self.counts.append(result)

    def text(self) -> str:
        return repr(self.lines)


def source(path: Path | None, rec: Recorder, clock: Clock) -> tokens.TokenSource:
    return tokens.TokenSource(OLD.encode(), path, log=rec.log, count=rec.count, clock=clock)


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text(OLD + "\n")
    return path


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        ("", "the token is empty"),
        ("short", "at least 16 characters"),
        ("sixteen chars but spaced", "without spaces"),
        ("tab\tseparated-0123456789", "without spaces"),
        (OLD, None),
    ],
)
def test_problem(token: str, expected: str | None) -> None:
    reason = tokens.problem(token)
    assert reason == expected or (expected is not None and reason and expected in reason)


def test_read_strips_and_refuses_without_naming_the_token(tmp_path: Path) -> None:
    path = tmp_path / "t"
    path.write_text(f"  {NEW}\n")
    assert tokens.read(path) == NEW.encode()
    path.write_bytes(b"\xff\xfe not utf-8 at all")
    with pytest.raises(ValueError, match="cannot read the token file: UnicodeDecodeError"):
        tokens.read(path)
    with pytest.raises(ValueError, match="FileNotFoundError"):
        tokens.read(tmp_path / "missing")
    path.write_text("tiny")
    with pytest.raises(ValueError, match="at least 16") as info:
        tokens.read(path)
    assert "tiny" not in str(info.value)


def test_a_changed_file_is_picked_up_at_most_once_a_second(token_file: Path) -> None:
    rec, clock = Recorder(), Clock()
    src = source(token_file, rec, clock)
    token_file.write_text(NEW + "\n")  # another size: the signature changes
    assert src.current() == OLD.encode()  # not looked at before a second has passed
    clock.now += tokens.CHECK_INTERVAL
    assert src.current() == NEW.encode()
    assert rec.counts == ["ok"]
    assert rec.lines[-1] == ("token_reloaded", {"trigger": "file_changed", "changed": True})
    clock.now += tokens.CHECK_INTERVAL
    assert src.current() == NEW.encode()
    assert rec.counts == ["ok"]  # unchanged file: no second reload
    assert NEW not in rec.text() and OLD not in rec.text()


def test_a_replaced_file_is_noticed_by_its_inode(token_file: Path) -> None:
    rec, clock = Recorder(), Clock()
    src = source(token_file, rec, clock)
    aside = token_file.with_name("aside")
    same_size = "OLD-token-0123456789"  # the same length as OLD
    aside.write_text(same_size + "\n")
    stat = token_file.stat()
    os.utime(aside, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # even the same mtime
    aside.replace(token_file)
    clock.now += tokens.CHECK_INTERVAL
    assert src.current() == same_size.encode()


@pytest.mark.parametrize("content", ["short\n", "", "has spaces in it, long enough\n"])
def test_a_bad_new_token_keeps_the_old_one(token_file: Path, content: str) -> None:
    rec, clock = Recorder(), Clock()
    src = source(token_file, rec, clock)
    token_file.write_text(content)
    assert src.reload() is False
    assert src.current() == OLD.encode()
    assert rec.counts == ["error"]
    event, fields = rec.lines[-1]
    assert (event, fields["trigger"], fields["kept"]) == ("token_reload_failed", "sighup", "old")
    assert OLD not in rec.text()
    # The failure is not retried on every request; the next change is.
    clock.now += tokens.CHECK_INTERVAL
    src.current()
    assert rec.counts == ["error"]
    token_file.write_text(NEW)
    clock.now += tokens.CHECK_INTERVAL
    assert src.current() == NEW.encode()
    assert rec.counts == ["error", "ok"]


def test_an_unreadable_file_keeps_the_old_one(token_file: Path) -> None:
    rec, clock = Recorder(), Clock()
    src = source(token_file, rec, clock)
    token_file.unlink()
    clock.now += tokens.CHECK_INTERVAL
    assert src.current() == OLD.encode()
    assert rec.counts == ["error"]
    assert "FileNotFoundError" in rec.lines[-1][1]["error"]


def test_sighup_reloads_the_same_token_as_ok_unchanged(token_file: Path) -> None:
    rec, clock = Recorder(), Clock()
    src = source(token_file, rec, clock)
    assert src.reload() is True
    assert rec.lines[-1] == ("token_reloaded", {"trigger": "sighup", "changed": False})


def test_a_token_from_the_environment_is_never_reloaded() -> None:
    rec, clock = Recorder(), Clock()
    src = source(None, rec, clock)
    assert not src.rotates
    clock.now += 10 * tokens.CHECK_INTERVAL
    assert src.current() == OLD.encode()
    assert src.reload() is False
    assert rec.counts == []
    assert rec.lines == [
        ("token_reload_skipped", {"trigger": "sighup", "reason": "token_from_environment"})
    ]
