"""The Node.js reference backend's dependencies, from a checkout and from a wheel.

A checkout has them in ``pflow_ops/sandbox/node_backend/node_modules`` (``scripts/setup.sh`` runs
``npm ci`` there). A wheel carries only ``server.js``, ``package.json`` and ``package-lock.json``
(package data: ``node_modules`` is 98 packages, some with platform code, and the lock is what
says which). So the first ``pflow-ops sandbox up`` from a wheel copies those three files into a
per-user directory named by their hash and runs ``npm ci --omit=dev`` there, from the packaged
lock, once. A stamp holding the hash marks a finished install: later runs start at once, and
another pflow-ops version (other files, another hash) gets its own directory. The install is
made in a temporary directory and renamed into place, so an interrupted or concurrent one never
leaves a half-filled directory that looks done.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

from pflow_ops.sandbox.errors import SandboxError

PACKAGED = Path(__file__).resolve().parent / "node_backend"
FILES = ("package.json", "package-lock.json", "server.js")
STAMP = ".pflow-ops-install.sha256"
NPM_CI = ("ci", "--omit=dev", "--no-audit", "--no-fund", "--loglevel=error")
NPM_TIMEOUT_S = 600
log = logging.getLogger(__name__)


def files_hash(src: Path) -> str:
    """sha256 over the three files' names and contents."""
    digest = hashlib.sha256()
    for name in FILES:
        digest.update(name.encode() + b"\0" + (src / name).read_bytes() + b"\0")
    return digest.hexdigest()


def user_dir(digest: str, environ: Mapping[str, str] = os.environ) -> Path:
    """``$XDG_CACHE_HOME/pflow-ops/node-backend/HASH/node_backend`` (``~/.cache`` without it).

    The last part stays ``node_backend``: the sandbox's reaper knows the backend by
    ``node_backend/server.js`` on its command line."""
    cache = Path(environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser()
    return cache / "pflow-ops" / "node-backend" / digest[:16] / "node_backend"


def installed(directory: Path, digest: str) -> bool:
    try:
        stamp = (directory / STAMP).read_text().strip()
    except OSError:
        return False
    return stamp == digest and (directory / "node_modules" / "express").is_dir()


def find_npm() -> Path:
    path = shutil.which("npm") or shutil.which("npm", path="/usr/bin:/usr/local/bin")
    if not path:
        raise SandboxError(
            "npm not found: the sandbox's Node.js backend installs its dependencies with it "
            "(once, from the packaged package-lock.json); install it with: apt-get install npm"
        )
    return Path(path)


def _npm_ci(npm: Path, work: Path) -> None:
    try:
        proc = subprocess.run(
            [str(npm), *NPM_CI],
            cwd=work,
            capture_output=True,
            text=True,
            timeout=NPM_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise SandboxError(f"npm ci for the Node.js backend took over {NPM_TIMEOUT_S} s") from None
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        why = f"exit {proc.returncode}: {last}"
        raise SandboxError(f"npm ci for the Node.js backend failed ({why})")


def install(src: Path, digest: str, target: Path, npm: Path) -> Path:
    """``npm ci`` of ``src``'s three files into ``target``; returns ``target``."""
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".install-", dir=target.parent))
    try:
        work = scratch / "node_backend"
        work.mkdir()
        for name in FILES:
            shutil.copy2(src / name, work / name)
        _npm_ci(npm, work)
        (work / STAMP).write_text(digest + "\n")
        if target.exists() and not installed(target, digest):
            shutil.rmtree(target)  # left by hand or by an older layout: never trusted
        try:
            work.rename(target)
        except OSError:
            # Another `sandbox up` finished the same install first: use it when it is complete.
            if not installed(target, digest):
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def backend_script() -> Path:
    """server.js next to its installed dependencies: the checkout's, else the per-user install
    (made now, once, when missing)."""
    if (PACKAGED / "node_modules" / "express").is_dir():
        return PACKAGED / "server.js"
    digest = files_hash(PACKAGED)
    target = user_dir(digest)
    if not installed(target, digest):
        npm = find_npm()
        # Shown without -v: the first `sandbox up` from a wheel takes the seconds npm needs.
        log.warning(f"installing the Node.js backend's dependencies (npm ci, once) in {target}")
        install(PACKAGED, digest, target, npm)
    return target / "server.js"
