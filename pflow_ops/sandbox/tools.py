"""Locating the programs the sandbox runs and the account PostgreSQL runs as."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import sys
from pathlib import Path

from pflow_ops.sandbox.errors import SandboxError

PG_ROOT = Path("/usr/lib/postgresql")
PREFERRED_PG = "15"
FALLBACK_SERVICE_USER = "pflow-sandbox"
DEBIAN_PG_USER = "postgres"


def _major(path: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", path.name)) or (0,)


def find_pg_bin(pg_root: Path = PG_ROOT) -> Path:
    """PostgreSQL 15 if installed, else the highest version found under ``pg_root``."""
    preferred = pg_root / PREFERRED_PG / "bin"
    if (preferred / "postgres").is_file():
        return preferred
    found = [p / "bin" for p in pg_root.glob("*") if (p / "bin" / "postgres").is_file()]
    if not found:
        raise SandboxError(
            f"PostgreSQL server binaries not found under {pg_root}; "
            "install them with: apt-get install postgresql-15"
        )
    return max(found, key=lambda b: _major(b.parent))


def pg_version(bin_dir: Path) -> str:
    """e.g. "15.14", from ``postgres --version``."""
    out = _run_version([str(bin_dir / "postgres"), "--version"])
    match = re.search(r"\(PostgreSQL\)\s+(\d+(?:\.\d+)*)", out)
    if not match:
        raise SandboxError(f"cannot tell the PostgreSQL version from {out.strip()!r}")
    return match.group(1)


def find_redis_server() -> Path:
    path = shutil.which("redis-server") or shutil.which("redis-server", path="/usr/bin:/usr/sbin")
    if not path:
        raise SandboxError("redis-server not found; install it with: apt-get install redis-server")
    return Path(path)


def find_node() -> Path:
    path = shutil.which("node") or shutil.which("node", path="/usr/bin:/usr/local/bin")
    if not path:
        raise SandboxError("node not found; install Node.js >= 18 with: apt-get install nodejs npm")
    return Path(path)


def venv_bin() -> Path:
    # sys.executable itself, unresolved: a venv's bin/ holds the console scripts, not the target.
    return Path(sys.executable).parent


def find_supervisor() -> tuple[Path, Path]:
    """(supervisord, supervisorctl) installed next to this interpreter."""
    bin_dir = venv_bin()
    daemon, ctl = bin_dir / "supervisord", bin_dir / "supervisorctl"
    if not daemon.is_file():
        raise SandboxError(
            f"supervisord not found in {bin_dir}; install it with: pip install supervisor"
        )
    return daemon, ctl


def _run_version(argv: list[str]) -> str:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except OSError as exc:
        raise SandboxError(f"cannot run {argv[0]}: {exc.strerror}") from None
    return proc.stdout + proc.stderr


def ensure_service_user() -> str | None:
    """The unprivileged account PostgreSQL runs as when we are root; None when we are not."""
    if os.geteuid() != 0:
        return None
    for name in (DEBIAN_PG_USER, FALLBACK_SERVICE_USER):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    argv = ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin"]
    proc = subprocess.run([*argv, FALLBACK_SERVICE_USER], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SandboxError(f"cannot create system user {FALLBACK_SERVICE_USER}: {proc.stderr}")
    return FALLBACK_SERVICE_USER


def uid_gid(user: str | None) -> tuple[int, int]:
    if user is None:
        return os.getuid(), os.getgid()
    entry = pwd.getpwnam(user)
    return entry.pw_uid, entry.pw_gid
