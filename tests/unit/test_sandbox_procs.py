"""Process bookkeeping (psutil): identity, trees and termination (with throwaway `sleep`s)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

from pflow_ops.sandbox import procs


@pytest.fixture
def tree() -> Iterator[subprocess.Popen[bytes]]:
    # A shell with a sleeping child: the shape of supervisord and one program.
    proc = subprocess.Popen(["/bin/sh", "-c", "sleep 30 & wait"])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def _children(pid: int) -> set[int]:
    return procs.descendants([pid]) - {pid}


def test_identity_detects_pid_reuse() -> None:
    me = procs.identity(os.getpid())
    assert me is not None and procs.same_process(me)
    assert not procs.same_process([me[0], me[1] + 1])
    assert procs.identity(2**22 + 12345) is None


def test_descendants_and_terminate(tree: subprocess.Popen[bytes]) -> None:
    procs.wait_gone([], 0)
    for _ in range(100):
        if _children(tree.pid):
            break
        procs.wait_gone([tree.pid], 0.02)
    (child,) = _children(tree.pid)
    assert "sleep 30" in procs.cmdline(child)
    assert procs.terminate({tree.pid, child}, grace=2) == set()
    tree.wait(timeout=5)
    assert not procs.is_alive(child)


def test_stopped_process_is_seen_and_still_terminated() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        os.kill(proc.pid, signal.SIGSTOP)
        procs.wait_gone([], 0)
        for _ in range(100):
            if procs.is_stopped(proc.pid):
                break
            procs.wait_gone([proc.pid], 0.02)
        assert procs.is_stopped(proc.pid)
        procs.terminate([proc.pid], grace=2)
        assert proc.wait(timeout=5) == -signal.SIGTERM
    finally:
        proc.kill()
        proc.wait()


def test_mentioning_finds_by_command_line(tree: subprocess.Popen[bytes]) -> None:
    assert tree.pid in procs.mentioning(["sleep 30 & wait"])
    assert os.getpid() not in procs.mentioning([sys.executable])
