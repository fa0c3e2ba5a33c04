# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pflow-ops team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which process listens on a TCP port, read from /proc the way ``ss -ltnp`` does it:
the LISTEN socket's inode in /proc/net/tcp{,6}, then the process whose /proc/PID/fd links to
``socket:[inode]``, then its command line. Linux only; without /proc (or without the right to
read another user's fds) the answer says so instead of guessing."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import os

TCP_LISTEN = "0A"
CMDLINE_MAX = 200


def listen_inodes(port, proc="/proc"):
    """Inodes of the LISTEN sockets on ``port`` (any address, IPv4 and IPv6)."""
    inodes = []
    for table in ("tcp", "tcp6"):
        try:
            with open(os.path.join(proc, "net", table)) as fh:
                lines = fh.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[3] != TCP_LISTEN:
                continue
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[9] != "0":
                inodes.append(fields[9])
    return inodes


def _cmdline(proc, pid):
    try:
        with open(os.path.join(proc, str(pid), "cmdline"), "rb") as fh:
            raw = fh.read()
    except OSError:
        return ""
    text = raw.rstrip(b"\0").replace(b"\0", b" ").decode("utf-8", errors="replace")
    return text if len(text) <= CMDLINE_MAX else text[:CMDLINE_MAX - 3] + "..."


def owner(port, proc="/proc"):
    """{port, pid, cmdline, detail} of the process listening on ``port``.

    ``pid`` is None when nobody listens, or when the socket belongs to a process whose fds this
    user may not read (``detail`` says which); never raises.
    """
    found = {"port": port, "pid": None, "cmdline": "", "detail": ""}
    inodes = listen_inodes(port, proc)
    if not inodes:
        found["detail"] = "no process listens on port %d (as far as %s/net shows)" % (port, proc)
        return found
    wanted = set("socket:[%s]" % inode for inode in inodes)
    try:
        pids = [name for name in os.listdir(proc) if name.isdigit()]
    except OSError:
        pids = []
    denied = 0
    for pid in pids:
        fd_dir = os.path.join(proc, pid, "fd")
        try:
            fds = os.listdir(fd_dir)
        except PermissionError:
            denied += 1
            continue
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink(os.path.join(fd_dir, fd))
            except OSError:
                continue
            if link in wanted:
                found.update(pid=int(pid), cmdline=_cmdline(proc, pid))
                found["detail"] = "port %d is held by pid %s (%s)" % (port, pid, found["cmdline"] or "command unknown")
                return found
    found["detail"] = "port %d is listened on, but its process is not visible%s" % (
        port, " (no permission to read %d processes' fds: run with become)" % denied if denied else "")
    return found
