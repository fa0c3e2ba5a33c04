"""``pflow-ops serve``: start-up guards, the server and its workers, a clean SIGTERM.

Exit codes: 0 stopped cleanly (SIGTERM/SIGINT); 1 internal error, or the leadership was lost
(the store could not be reached for a whole lease TTL: it stops so that two receivers never run
the same alerts); 2 bad usage (no token, unknown environment, address in use); 3 refused by a
guard (protected environment without --yes, another receiver already serving this environment:
from this state directory, or anywhere the environment's coordination store reaches).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shlex
import signal
import socket
import ssl
import stat
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from pathlib import Path

from pflow_ops import catalogue, coordination, environments, inventory, routing
from pflow_ops.errors import INTERNAL, OK, REFUSED, USAGE, PflowError
from pflow_ops.paths import playbook_file, state_home
from pflow_ops.receiver import server as http
from pflow_ops.receiver import tokens, worker
from pflow_ops.receiver.core import Receiver, log_line
from pflow_ops.receiver.journal import Journal, JournalBusy
from pflow_ops.receiver.options import TOKEN_ENV, add_serve_args
from pflow_ops.receiver.policy import Policy

LEADERSHIP_POLL = 1.0  # seconds between two looks at the leader lease
LEADERSHIP_LOST = (
    "the coordination store's leader lease was lost (store unreachable past its TTL): "
    "stopped, so that a second receiver cannot run the same alerts; the service manager "
    "restarts it and it campaigns again"
)

# Open files beside the client connections: the listening socket, the journal and its lock,
# the runs' pipes, the state files, stdio.
FD_RESERVE = 64


class ServeError(PflowError):
    """A start-up problem the user can fix: one line, an exit code (2 unless said otherwise)."""

    exit_code_default = USAGE

    @property
    def code(self) -> int:
        return self.exit_code


def load_token(token_file: str | None, environ: dict[str, str] | None = None) -> bytes:
    """The bearer token, from ``--token-file`` or ``$PFLOW_OPS_RECEIVER_TOKEN``."""
    environ = dict(os.environ) if environ is None else environ
    if token_file:
        path = Path(token_file)
        try:
            token = path.read_text(encoding="utf-8").strip()
            mode = path.stat().st_mode
        except (OSError, UnicodeDecodeError) as exc:
            raise ServeError(f"cannot read the token file {token_file}: {exc}") from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            print(
                f"pflow-ops serve: warning: {token_file} is readable by others (chmod 600 it)",
                file=sys.stderr,
            )
    else:
        token = environ.get(TOKEN_ENV, "").strip()
    if not token:
        raise ServeError(f"no bearer token: pass --token-file PATH or set {TOKEN_ENV}")
    reason = tokens.problem(token)
    if reason:
        raise ServeError(reason)
    return token.encode("utf-8")


def _alert_aliases(env: str) -> dict[str, str]:
    """The environment's ``pflow_alert_aliases`` (inventory group_vars); a broken one refuses
    the start (exit 2)."""
    try:
        return inventory.alert_aliases(environments.get(env).inventory)
    except Exception as exc:  # hosts that disagree, not a mapping, an unreadable inventory
        raise ServeError(f"bad {inventory.ALIASES_VAR}: {exc}") from None


def _routing(env: str) -> routing.Table:
    """The routing table: the catalogue, its aliases and the environment's; a runbook whose
    playbook is missing is not automated. A bad alias refuses the start (exit 2)."""
    cat = catalogue.load()
    implemented = {
        rb.id: rb.implemented and playbook_file(rb.playbook).is_file() for rb in cat.runbooks
    }
    try:
        return routing.table(cat, _alert_aliases(env), implemented=implemented)
    except routing.AliasError as exc:
        raise ServeError(f"bad alert aliases: {exc}") from None


ALERTMANAGER_VAR = "pflow_alertmanager_url"


def _alertmanager_url(env: str, override: str | None) -> tuple[str, str]:
    """(URL, where it came from) for the pre-start check: ``--alertmanager-url``, else the
    inventory's ``pflow_alertmanager_url``. A templated inventory value (the sandbox's) is not
    evaluated: pass the option then. ("", why) when there is none: runs start unchecked."""
    if override is not None:
        if override and not override.startswith(("http://", "https://")):
            raise ServeError(f"--alertmanager-url must be an http(s) URL, not {override!r}")
        return override, "--alertmanager-url"
    value = _inventory_value(environments.get(env).inventory, ALERTMANAGER_VAR)
    if not isinstance(value, str) or not value.strip():
        return "", f"no {ALERTMANAGER_VAR} in the inventory"
    if "{{" in value or "{%" in value:
        return "", f"{ALERTMANAGER_VAR} is a template (not evaluated): pass --alertmanager-url"
    if not value.startswith(("http://", "https://")):
        return "", f"{ALERTMANAGER_VAR} is not an http(s) URL"
    return value.strip(), ALERTMANAGER_VAR


def _inventory_value(source: Path, name: str) -> object:
    """``name`` as the inventory's first host sees it (group_vars included), read with Ansible's
    own inventory code, never templated; None when unset or unreadable."""
    try:
        inv, variables = inventory._manager(source)
        hosts = inv.get_hosts("all")
        return (
            variables.get_vars(host=hosts[0], include_hostvars=False).get(name) if hosts else None
        )
    except Exception:  # an unreadable inventory: no URL (the start guard already judged it)
        return None


def _check_args(args: argparse.Namespace) -> None:
    if not 0 <= args.port <= 65535:
        raise ServeError(f"bad --port {args.port}")
    if args.max_body < 1:
        raise ServeError("--max-body must be positive")
    if args.journal_max_bytes < 1:
        raise ServeError("--journal-max-bytes must be positive")
    for name in ("throttle_window", "dedupe_window", "run_timeout", "drain_timeout"):
        if getattr(args, name) < 0:
            raise ServeError(f"--{name.replace('_', '-')} must not be negative")
    if args.header_timeout <= 0:
        raise ServeError("--header-timeout must be positive")
    if args.max_connections < 1:
        raise ServeError("--max-connections must be positive")
    if bool(args.tls_cert) != bool(args.tls_key):
        raise ServeError("--tls-cert and --tls-key go together: pass both or neither")


def _tls(args: argparse.Namespace) -> ssl.SSLContext | None:
    if not args.tls_cert:
        return None
    try:
        return http.tls_context(args.tls_cert, args.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise ServeError(f"cannot load --tls-cert/--tls-key: {exc}") from None


def _reserve_fds(max_connections: int) -> None:
    """Raise the soft open-files limit so ``--max-connections`` sockets, the journal, the
    runs' pipes and the listening socket fit (never above the hard limit; refuse to start
    rather than fail accepts, journal writes or run launches later)."""
    needed = max_connections + FD_RESERVE
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            raise ServeError(
                f"--max-connections {max_connections} needs {needed} open files, the hard "
                f"limit is {hard}: lower --max-connections or raise the limit (ulimit -n)"
            )
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def cmd_serve(args: argparse.Namespace) -> int:
    _check_args(args)
    token = load_token(args.token_file)
    tls = _tls(args)
    _reserve_fds(args.max_connections)
    env = environments.get(args.env)
    if env.protected and not args.yes:
        raise ServeError(
            f"environment '{env.name}' is protected: pass --yes to allow auto-remediation there",
            REFUSED,
        )
    return _serve(args, env.name, token, tls)


def _serve(
    args: argparse.Namespace, env: str, token: bytes, tls: ssl.SSLContext | None = None
) -> int:
    table = _routing(env)
    am_url, am_from = _alertmanager_url(env, args.alertmanager_url)
    journal = Journal(state_home() / "receiver" / env)
    try:
        journal.open()
    except JournalBusy as exc:
        raise ServeError(str(exc), REFUSED) from None
    try:
        leading = _lead(env)
    except ServeError:
        journal.close()
        raise
    policy = Policy(table, args.throttle_window, args.dedupe_window)
    launcher = worker.SubprocessLauncher()
    prefix = shlex.split(args.launcher_cmd) if args.launcher_cmd else worker.ALERT_COMMAND
    app = Receiver(
        env,
        policy,
        journal,
        launcher,
        prefix=prefix,
        dry_run=args.dry_run,
        run_timeout=args.run_timeout,
        alertmanager_url=am_url,
        journal_max_bytes=args.journal_max_bytes,
    )
    # Host and port only: a URL's user:password must not reach the log.
    where = urllib.parse.urlsplit(am_url).netloc.rpartition("@")[2] if am_url else "-"
    log_line("alertmanager_check", alertmanager=where, source=am_from)
    try:
        app.recover()
        try:
            sock = http.listen(args.host, args.port)
        except OSError as exc:
            raise ServeError(f"cannot listen on {args.host}:{args.port}: {exc.strerror}") from None
        source = tokens.TokenSource(
            token,
            Path(args.token_file) if args.token_file else None,
            log=app.log,
            count=lambda result: app.metrics.inc("token_reloads_total", result=result),
        )
        limits = http.Limits(args.max_body, args.header_timeout, args.max_connections)
        server = http.ReceiverServer(sock, app, source, limits, tls)
        app.metrics.gauge("connections", "Open client connections", lambda: server.open_connections)
        app.metrics.gauge(
            "journal_bytes", "Size of the live journal (replayed at start)", journal.size_bytes
        )
        workers = [
            threading.Thread(target=app.work, args=(svc,), name=f"worker-{svc}", daemon=True)
            # Services of the catalogue, plus any a replayed item names (the catalogue may have
            # changed since it was queued): every queued item has a worker.
            for svc in sorted({t.service for t in table.targets.values()} | app.services())
        ]
        for thread in workers:
            thread.start()
        log_line(
            "listening",
            url=server.url,
            env=env,
            dry_run=args.dry_run,
            journal=str(journal.path),
            token="file" if source.rotates else "environment",
        )
        lost = _run_until_signal(server, lambda: bool(leading.lost))
        if lost:
            log_line("leadership_lost", level="ERROR", env=env, detail=LEADERSHIP_LOST)
        log_line("stopping", queued=app.depth()[0], running=app.depth()[1])
        app.stop()
        _drain(workers, launcher, args.drain_timeout)
        log_line("stopped", queued=app.depth()[0])
        return INTERNAL if lost else OK
    finally:
        leading.release()
        journal.close()


def _run_until_signal(server: http.ReceiverServer, lost: Callable[[], bool]) -> bool:
    """Serve on this thread's event loop until SIGTERM/SIGINT, or until the leadership is lost
    (then True). SIGHUP re-reads the token file (a token from the environment cannot change:
    the reload says so and keeps it)."""
    was_lost = False

    async def watch(stop: asyncio.Event) -> None:
        nonlocal was_lost
        while not stop.is_set():
            if lost():
                was_lost = True
                stop.set()
                return
            await asyncio.sleep(LEADERSHIP_POLL)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        loop.add_signal_handler(signal.SIGHUP, server.tokens.reload)
        watcher = asyncio.create_task(watch(stop))
        try:
            await server.serve(stop)
        finally:
            watcher.cancel()
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)

    asyncio.run(main())
    return was_lost


def _lead(env: str) -> coordination.Lock:
    """One active receiver per environment, across machines: the ``receiver`` leader lock in
    the environment's coordination store (an flock beside the state directory on ``file``; a
    lease on ``etcd``, which two controllers or two receivers on two machines share). A second
    receiver is refused at start (exit 3) and says who leads; a store that cannot be asked
    refuses too (fail closed: two receivers would both run every alert)."""
    host = socket.gethostname()
    record = {"run_id": f"receiver-{host}-{os.getpid()}", "pid": os.getpid(), "host": host}
    try:
        store, ttl = coordination.for_env(env)
        lock: coordination.Lock = store.leader(env, "receiver", record, ttl)
    except coordination.Held as exc:
        raise ServeError(
            f"another receiver is active for environment '{env}' ({exc}): "
            "point Alertmanager at that one, or stop it first",
            REFUSED,
        ) from None
    except coordination.CoordinationError as exc:
        raise ServeError(f"cannot become the receiver for '{env}': {exc}", REFUSED) from None
    return lock


def _drain(workers: list[threading.Thread], launcher: worker.Launcher, timeout: float) -> None:
    """Let the running runs finish, up to ``timeout``; then stop them (they run again after
    the next start, since their finish was never journaled)."""
    deadline = time.monotonic() + timeout
    for thread in workers:
        thread.join(max(0.0, deadline - time.monotonic()))
    if any(t.is_alive() for t in workers):
        launcher.abort()
        for thread in workers:
            thread.join(10.0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pflow-ops serve",
        description="Alertmanager webhook receiver: each alert starts its runbook.",
    )
    add_serve_args(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m pflow_ops.receiver``: the same command without the main CLI."""
    args = build_parser().parse_args(argv)
    try:
        return cmd_serve(args)
    except PflowError as exc:  # ServeError, an unknown environment, a broken catalogue
        print(f"pflow-ops serve: {exc.label}: {exc}", file=sys.stderr)
        return exc.exit_code
