"""The ``pflow-ops serve`` arguments. Argparse only: ``pflow-ops --help`` imports this module, so
it must stay cheap (no Ansible, no HTTP server, no catalogue)."""

from __future__ import annotations

import argparse

DEFAULT_PORT = 9095
DEFAULT_MAX_BODY = 1024 * 1024
DEFAULT_HEADER_TIMEOUT = 10.0
DEFAULT_MAX_CONNECTIONS = 1024
TOKEN_ENV = "PFLOW_OPS_RECEIVER_TOKEN"
JOURNAL_MAX_BYTES = 16 * 1024 * 1024


def add_serve_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--env", default="local", help="environment (inventories/ENV); default: local")
    p.add_argument("--host", default="127.0.0.1", help="address to bind; default: 127.0.0.1")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port; default: {DEFAULT_PORT}")
    p.add_argument(
        "--token-file",
        metavar="PATH",
        help=f"file holding the bearer token Alertmanager sends (else ${TOKEN_ENV}); "
        "re-read on SIGHUP and when it changes; never taken from the command line",
    )
    p.add_argument(
        "--max-body",
        type=int,
        default=DEFAULT_MAX_BODY,
        metavar="BYTES",
        help="largest accepted request body (413 above); default: 1 MiB",
    )
    p.add_argument(
        "--header-timeout",
        type=float,
        default=DEFAULT_HEADER_TIMEOUT,
        metavar="SECONDS",
        help="close a connection that has not sent a complete request head (or, with TLS, "
        f"finished its handshake) within this; default: {DEFAULT_HEADER_TIMEOUT:g}",
    )
    p.add_argument(
        "--max-connections",
        type=int,
        default=DEFAULT_MAX_CONNECTIONS,
        metavar="N",
        help="open client connections at most; a new one beyond gets 503 and is closed, "
        f"established ones are kept; default: {DEFAULT_MAX_CONNECTIONS}",
    )
    p.add_argument(
        "--tls-cert",
        metavar="PATH",
        help="serve HTTPS (TLS 1.2 or later) with this PEM certificate chain; needs --tls-key",
    )
    p.add_argument("--tls-key", metavar="PATH", help="the PEM private key for --tls-cert")
    p.add_argument(
        "--throttle-window",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="at most one run start per (runbook, env) in this window; default: 600",
    )
    p.add_argument(
        "--dedupe-window",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="a fingerprint handled this recently is not run again; default: 600",
    )
    p.add_argument(
        "--run-timeout",
        type=float,
        default=1800.0,
        metavar="SECONDS",
        help="kill a run that takes longer than this; default: 1800",
    )
    p.add_argument(
        "--drain-timeout",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="on SIGTERM, wait this long for the running run to finish; default: 300",
    )
    p.add_argument(
        "--alertmanager-url",
        metavar="URL",
        help="Alertmanager asked before each run start (still active? silenced?); default: the "
        "inventory's pflow_alertmanager_url; an empty value turns the check off",
    )
    p.add_argument("--dry-run", action="store_true", help="every run is a check-mode run")
    p.add_argument(
        "--yes",
        action="store_true",
        help="allow auto-remediation on a protected environment",
    )
    # Tests only: replaces `python -m pflow_ops alert` in front of the fixed run arguments, so a
    # test can count launches without Ansible. Hidden from --help on purpose.
    p.add_argument("--launcher-cmd", help=argparse.SUPPRESS)
    p.add_argument(
        "--journal-max-bytes",
        type=int,
        default=JOURNAL_MAX_BYTES,
        metavar="BYTES",
        help="compact the journal (archiving the old one) when it grows past this, so a start "
        "replays little; default: 16 MiB",
    )
