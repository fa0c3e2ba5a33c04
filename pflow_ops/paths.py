"""Where things live: the project (inventories/, and in a checkout playbooks/, catalogue.yml,
ansible.cfg and collection/), the collection ``pivotal.flow_ops``, and the state directory
``$PFLOW_OPS_HOME`` (runs, reports, locks, restart budget, sandbox).

The CLI works from a checkout and from an installed wheel plus the installed collection. The
project is ``--project DIR`` / ``$PFLOW_OPS_PROJECT``, else the checkout this package sits in,
else the current directory (``cd /opt/pflow-ops && pflow-ops ...``). A file the project lacks
(catalogue.yml, ansible.cfg) comes from the copy the wheel carries; a playbook it lacks is run by
its FQCN from the installed collection. Standard library only: the CLI imports this first.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

HOME_ENV = "PFLOW_OPS_HOME"
PROJECT_ENV = "PFLOW_OPS_PROJECT"
COLLECTION = "pivotal.flow_ops"
PACKAGE_DIR = Path(__file__).resolve().parent
# The wheel's copies of the project files a wheel install has no checkout for (symlinks to the
# checkout's files in the source tree; the wheel build copies their contents).
PACKAGED = PACKAGE_DIR / "project"
# Ansible's default collection roots after $ANSIBLE_COLLECTIONS_PATH and the project's own.
DEFAULT_COLLECTION_ROOTS = ("~/.ansible/collections", "/usr/share/ansible/collections")


class CollectionNotFound(Exception):
    """No ``pivotal.flow_ops`` where Ansible would look: the launcher cannot start."""


def state_home() -> Path:
    """The state directory; tests and users isolate a run by setting ``PFLOW_OPS_HOME``."""
    return Path(os.environ.get(HOME_ENV) or "~/.pflow-ops").expanduser().resolve()


def find_project(override: str | None, package_dir: Path, cwd: Path) -> Path:
    """``--project`` / ``$PFLOW_OPS_PROJECT``; else the checkout holding the package (an
    editable install); else the current directory (a wheel install run from its project)."""
    if override:
        return Path(override).expanduser().resolve()
    checkout = package_dir.parent
    if (checkout / "catalogue.yml").is_file() and (checkout / "collection").is_dir():
        return checkout
    return cwd


def project_root() -> Path:
    """The project holding inventories/ (and, in a checkout, everything else)."""
    return find_project(os.environ.get(PROJECT_ENV), PACKAGE_DIR, Path.cwd())


def pick_file(project: Path, packaged: Path, name: str) -> Path:
    """The project's own ``name`` when it has one, else the wheel's copy."""
    own = project / name
    return own if own.is_file() else packaged / name


def project_file(name: str) -> Path:
    """catalogue.yml or ansible.cfg: the project's, else the one the wheel carries."""
    return pick_file(project_root(), PACKAGED, name)


def collection_roots(project: Path, env: Mapping[str, str], sys_path: Sequence[str]) -> list[Path]:
    """Where Ansible finds collections, in its order: ``$ANSIBLE_COLLECTIONS_PATH`` (else the
    project's ``collections/`` and the defaults), then ``ansible_collections`` on sys.path."""
    configured = env.get("ANSIBLE_COLLECTIONS_PATH") or env.get("ANSIBLE_COLLECTIONS_PATHS")
    if configured:
        roots = [p for p in configured.split(os.pathsep) if p]
    else:
        roots = [str(project / "collections"), *DEFAULT_COLLECTION_ROOTS]
    return [Path(p).expanduser() for p in [*roots, *sys_path] if p]


def find_collection(project: Path, roots: Sequence[Path]) -> Path | None:
    """The checkout's ``collection/`` (its source, first as ansible.cfg puts it), else the first
    installed ``pivotal.flow_ops`` under ``roots``; None when there is none."""
    source = project / "collection"
    if (source / "galaxy.yml").is_file():
        return source
    for root in roots:
        installed = root / "ansible_collections" / "pivotal" / "flow_ops"
        if (installed / "plugins").is_dir():
            return installed
    return None


def collection_root() -> Path:
    """The collection the launcher reads (its module_utils, role specs and playbooks)."""
    project = project_root()
    found = find_collection(project, collection_roots(project, os.environ, sys.path))
    if found is None:
        raise CollectionNotFound(
            f"collection {COLLECTION} not found (project {project}): install it with "
            "`ansible-galaxy collection install`, or point --project at a checkout"
        )
    return found


def collection_file(*parts: str) -> Path:
    return collection_root().joinpath(*parts)


def playbook_name(relpath: str) -> str:
    """A catalogue playbook (playbooks/rb-01-backend-down.yml) as the collection's playbook
    name (rb_01_backend_down): the entry point imports exactly that one."""
    return Path(relpath).stem.replace("-", "_")


def playbook_ref(project: Path, relpath: str) -> str:
    """What ansible-playbook runs: the project's entry point when it has it, else the FQCN."""
    own = project / relpath
    return str(own) if own.is_file() else f"{COLLECTION}.{playbook_name(relpath)}"


def playbook(relpath: str) -> str:
    return playbook_ref(project_root(), relpath)


def playbook_file(relpath: str) -> Path:
    """The file holding a catalogue playbook's plays: the project's, else the collection's."""
    own = project_root() / relpath
    if own.is_file():
        return own
    return collection_file("playbooks", f"{playbook_name(relpath)}.yml")


def runs_dir() -> Path:
    return state_home() / "runs"


def locks_dir() -> Path:
    return state_home() / "locks"
