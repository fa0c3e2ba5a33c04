"""Detached Redis load helpers that keep a cache fault alive after `sandbox break` returns.

``python -m pflow_ops.sandbox.cache_load MODE PORT [ARG]``, started by faults_cache through
:mod:`pflow_ops.sandbox.loaders` (own session, pid file under the sandbox), stopped by `heal` and
`down`:

- ``evictions PORT KEYS``: SETs over a fixed working set of KEYS keys of 2 KB each, in a loop, so
  a too-small maxmemory evicts all the time while a big enough one stops the evictions.
- ``misses PORT``: GETs of keys that are never cached (a low hit rate with no evictions).
- ``clients PORT``: opens connections until Redis answers "max number of clients reached", then
  holds them open.
"""

from __future__ import annotations

import socket
import sys
import time

import redis

VALUE = b"x" * 2000
PREFIX = "sandbox:"


def evictions(port: int, keys: int) -> None:
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=5)
    i = 0
    while True:
        pipe = client.pipeline(transaction=False)
        for _ in range(200):
            pipe.set(f"{PREFIX}evict:{i % keys}", VALUE)
            i += 1
        pipe.execute(raise_on_error=False)
        time.sleep(0.05)  # about 4,000 writes/s: steady pressure, little CPU


def misses(port: int) -> None:
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=5)
    i = 0
    while True:
        pipe = client.pipeline(transaction=False)
        for _ in range(100):
            pipe.get(f"{PREFIX}never-cached:{i}")
            i += 1
        pipe.execute()
        time.sleep(0.05)


def clients(port: int) -> None:
    held: list[socket.socket] = []
    while True:
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(b"*1\r\n$4\r\nPING\r\n")
        reply = sock.recv(256)
        if not reply.startswith(b"+PONG"):
            sock.close()  # "-ERR max number of clients reached": every slot is ours or taken
            break
        held.append(sock)
    print(f"holding {len(held)} connections", flush=True)
    while True:
        time.sleep(3600)


def main(argv: list[str]) -> int:
    mode, port = argv[0], int(argv[1])
    try:
        if mode == "evictions":
            evictions(port, int(argv[2]))
        elif mode == "misses":
            misses(port)
        elif mode == "clients":
            clients(port)
        else:
            print(f"unknown mode {mode}", file=sys.stderr)
            return 2
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
