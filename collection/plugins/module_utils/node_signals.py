# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pflow-ops team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A Node.js service's own signals, read the way a Node.js engineer reads them: the prom-client
values of its /metrics, the tell-tale lines of its log tail, and whether its process is burning
CPU (a blocked event loop) or stopped.

The parsers are pure (text in, dict out) and tested branch by branch; ``fetch_metrics`` (the
metrics URL) and ``read_cpu`` (``/proc``) are the only functions that touch anything. Shared by
the node_signals module and backend_diagnose (one of its concurrent checks): ``fetch_metrics``
then ``signals`` is the whole reading, so the two cannot drift. The prom-client text format is parsed here rather
than with prometheus_client because the module must run on any target Python (2.7 excluded) with
no extra package, and only a few unlabelled samples are needed.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import os
import re
import time

from urllib.request import HTTPRedirectHandler, build_opener

from ansible.module_utils.common.text.converters import to_text

# prom-client's default metric names (and the reference backend's heap limit gauge).
METRICS = {
    "nodejs_eventloop_lag_seconds": "eventloop_lag_s",
    "nodejs_eventloop_lag_p99_seconds": "eventloop_lag_p99_s",
    "nodejs_heap_size_used_bytes": "heap_used_bytes",
    "nodejs_heap_size_total_bytes": "heap_total_bytes",
    "pivotal_nodejs_heap_size_limit_bytes": "heap_limit_bytes",
    "process_resident_memory_bytes": "rss_bytes",
    "nodejs_active_handles_total": "active_handles",
}
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")
_VERSION = re.compile(r'^nodejs_version_info\{[^}]*version="([^"]+)"')

# The log lines that name a Node.js failure. A process start is the reference backend's
# "listening on" line: what follows the last one belongs to the current (or last) process.
START = re.compile(r"listening on ")
HEAP_LIMIT = re.compile(r"FATAL ERROR: .*heap limit|JavaScript heap out of memory")
REPORT_FILE = re.compile(r"Writing Node\.js report to file: (\S+)")
UNHANDLED = re.compile(r"UnhandledPromiseRejection|unhandled (promise )?rejection", re.IGNORECASE)
ADDR_IN_USE = re.compile(r"EADDRINUSE")


def parse_metrics(text):
    """prom-client exposition text -> {eventloop_lag_s, heap_used_bytes, ..., version}: only the
    values found, as floats; unparseable values are left out."""
    out = {}
    for line in (text or "").splitlines():
        version = _VERSION.match(line)
        if version:
            out["version"] = version.group(1)
            continue
        match = _SAMPLE.match(line)
        if not match or match.group(1) not in METRICS or match.group(2):
            continue
        try:
            out[METRICS[match.group(1)]] = float(match.group(3))
        except ValueError:
            continue
    return out


def _first(pattern, lines):
    for line in lines:
        if pattern.search(line):
            return line.strip()
    return ""


def log_signals(lines):
    """The log tail -> {heap_limit, unhandled_rejection, addr_in_use, report_file} for the lines
    after the last process start (each the first matching line, or ""), the rejection's stack
    (up to 5 lines), and heap_limit_crashes: how many processes in a row, up to the last one,
    ended on a heap-limit abort (a leak recurs after restarts; a clean stop in between resets it)."""
    lines = [str(line) for line in (lines or [])]
    starts = [i for i, line in enumerate(lines) if START.search(line)]
    last_start = max(starts or [-1])
    current = lines[last_start + 1:]
    bounds = [0] + [i + 1 for i in starts] + [len(lines) + 1]
    lives = [lines[a:b] for a, b in zip(bounds, bounds[1:])]
    in_a_row = 0
    for life in reversed(lives):
        if not any(HEAP_LIMIT.search(line) for line in life):
            break
        in_a_row += 1
    rejection = _first(UNHANDLED, current)
    stack = []
    if rejection:
        at = current.index(next(line for line in current if line.strip() == rejection))
        stack = [line.strip() for line in current[at + 1:at + 6] if line.strip().startswith("at ")]
    report = ""
    for line in current:
        match = REPORT_FILE.search(line)
        if match:
            report = match.group(1)
    return {
        "heap_limit": _first(HEAP_LIMIT, current),
        "heap_limit_crashes": in_a_row,
        "unhandled_rejection": rejection,
        "rejection_stack": stack,
        "addr_in_use": _first(ADDR_IN_USE, current),
        "report_file": report,
    }


def proc_state(stat_text):
    """/proc/PID/stat -> (state letter, utime + stime in clock ticks), or (None, None)."""
    try:
        fields = stat_text.rsplit(")", 1)[1].split()
        return fields[0], int(fields[11]) + int(fields[12])
    except (IndexError, ValueError, AttributeError):
        return None, None


def cpu_share(ticks_before, ticks_after, seconds, hertz=100):
    """Share of one CPU used between two samples (1.0 = one core busy all the time)."""
    if ticks_before is None or ticks_after is None or seconds <= 0:
        return None
    return round(max(ticks_after - ticks_before, 0) / float(hertz) / seconds, 2)


def read_cpu(pid, seconds):
    """{state, cpu_share} of ``pid`` sampled over ``seconds``, or {error} when /proc has no such
    process (or it cannot be read)."""
    path = "/proc/%d/stat" % int(pid)
    try:
        with open(path) as handle:
            state, before = proc_state(handle.read())
        if seconds <= 0:
            return {"state": state, "cpu_share": None}
        start = time.time()
        time.sleep(seconds)
        with open(path) as handle:
            state, after = proc_state(handle.read())
        elapsed = time.time() - start
    except (IOError, OSError) as exc:
        return {"error": "cannot read %s: %s" % (path, exc)}
    hertz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    return {"state": state, "cpu_share": cpu_share(before, after, elapsed, hertz)}


class _NoRedirect(HTTPRedirectHandler):
    """A redirect is an answer, not the metrics: it fails the read."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # pylint: disable=too-many-arguments
        return None


def fetch_metrics(url, timeout):
    """(prom-client values, "") from ``url``, or ({}, why it could not be read).

    The standard library's urllib (environment proxies, verified HTTPS, no redirects) rather
    than ansible.module_utils.urls' open_url, which reads the same way: importing it costs
    ~30 ms of CPU per host and run, a tenth of what a fleet diagnosis may spend on a host."""
    if not url:
        return {}, "no metrics URL"
    try:
        with build_opener(_NoRedirect).open(url, timeout=timeout) as response:
            text = to_text(response.read(), errors="surrogate_or_strict")
    except Exception as exc:  # pylint: disable=broad-except  # any failure is "did not answer"
        return {}, "%s did not answer: %s" % (url, " ".join(to_text(exc).split()))
    return parse_metrics(text), ""


def pid_number(pid):
    """The service manager's pid as a number, or None: empty, zero, or not a number (a
    container id) means there is no process on this host to sample."""
    text = to_text(pid if pid is not None else "").strip()
    return int(text) if text.isdigit() and int(text) > 0 else None


def signals(metrics, metrics_error, pid, log_lines, cpu_sample_seconds):
    """node_signals' result from the metrics already read, the pid and the log tail:
    {metrics, metrics_error, process, logs}. A process whose /metrics answered has a running
    event loop, so its state is read once and a healthy run does not wait for the CPU sample."""
    number = pid_number(pid)
    seconds = cpu_sample_seconds if metrics_error else 0.0
    process = read_cpu(number, seconds) if number is not None else {}
    return {"metrics": metrics, "metrics_error": metrics_error, "process": process,
            "logs": log_signals(log_lines)}
