"""Light, steady API traffic for `sandbox up --monitoring`.

Run as ``python -m pflow_ops.sandbox.traffic --port N``. Request-rate, error-rate, latency and
cache-hit-rate alerts need requests to look at; this sends a few per second (one at a time, so a
hung backend slows it down instead of piling connections up) to ``/api/items`` and
``/api/items/:id``.

Item ids come from a small hot set, and a short burst warms it first: the backend's hit-rate
gauge covers the last minute, so a cold start (or a wide set whose keys all expire together)
would read as a low hit rate, and on the sandbox's compressed clock CacheLowHitRate would fire
without any fault.
"""

from __future__ import annotations

import argparse
import random
import signal
import sys
import time
from types import FrameType

from pflow_ops.sandbox.net import http_get

HOT_ITEMS = 5
WARM_UP_LOOKUPS = 6 * HOT_ITEMS
TIMEOUT_S = 2.0


def next_path(rng: random.Random) -> str:
    """The next request: one list call for every four item lookups."""
    if rng.random() < 0.2:
        return f"/api/items?limit=10&offset={rng.randrange(0, 200, 10)}"
    return f"/api/items/{rng.randint(1, HOT_ITEMS)}"


def warm_up(port: int) -> None:
    """Each hot item once (misses that fill the cache), then hits: the gauge starts high."""
    for i in range(WARM_UP_LOOKUPS):
        http_get(port, f"/api/items/{i % HOT_ITEMS + 1}", timeout=TIMEOUT_S)


def run(port: int, rate: float, stop: list[bool], rng: random.Random) -> int:
    """Send ``rate`` requests per second until ``stop[0]``; return how many were sent."""
    interval, sent = 1.0 / rate, 0
    next_at = time.monotonic()
    while not stop[0]:
        http_get(port, next_path(rng), timeout=TIMEOUT_S)  # every outcome is fine: it is load
        sent += 1
        next_at = max(next_at + interval, time.monotonic())
        time.sleep(max(next_at - time.monotonic(), 0.0))
    return sent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pflow_ops.sandbox.traffic")
    parser.add_argument("--port", type=int, required=True, help="the backend's port")
    parser.add_argument("--rate", type=float, default=5.0, help="requests per second")
    args = parser.parse_args(argv)
    if not 0 < args.rate <= 100:
        parser.error("--rate must be in (0, 100]")
    stop = [False]

    def on_term(signum: int, frame: FrameType | None) -> None:
        stop[0] = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    print(f"sending {args.rate:g} requests/s to 127.0.0.1:{args.port}", flush=True)
    warm_up(args.port)
    sent = run(args.port, args.rate, stop, random.Random())
    print(f"stopped after {sent} requests", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
