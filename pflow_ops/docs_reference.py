"""Module and role reference pages (``docs/reference/``), generated from their own documentation:
each module's ``DOCUMENTATION`` block (what ``ansible-doc`` reads) and each role's
``meta/argument_specs.yml``. Part of ``pflow-ops docs build`` and its drift check."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import yaml

from pflow_ops.paths import project_root

OUT_DIR = Path("docs") / "reference"
COLLECTION = "pivotal.flow_ops"


def load_yaml(text: str) -> Any:
    """yaml.safe_load with libyaml's loader when PyYAML has it: the sources are ~40 files."""
    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def module_docs() -> list[dict[str, Any]]:
    """Every module's DOCUMENTATION, parsed without importing the module (no Ansible needed)."""
    out = []
    for path in sorted((project_root() / "collection/plugins/modules").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            target = node.targets[0] if isinstance(node, ast.Assign) else None
            if isinstance(target, ast.Name) and target.id == "DOCUMENTATION":
                assert isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
                doc = load_yaml(str(node.value.value)) or {}
                out.append({"name": path.stem, **doc})
    return out


def role_docs() -> list[dict[str, Any]]:
    """Every role's argument specs: {name, short_description, entry_points: [{name, ...}]},
    ``main`` first, then the other entry points by name."""
    out = []
    for spec in sorted((project_root() / "collection/roles").glob("*/meta/argument_specs.yml")):
        data = (load_yaml(spec.read_text(encoding="utf-8")) or {}).get("argument_specs") or {}
        names = sorted(data, key=lambda n: (n != "main", n))
        points = [{"name": n, **(data[n] or {})} for n in names]
        summary = next((p["short_description"] for p in points if p.get("short_description")), "")
        out.append(
            {"name": spec.parents[1].name, "short_description": summary, "entry_points": points}
        )
    return out


def options(raw: dict[str, Any] | None, prefix: str = "") -> list[dict[str, Any]]:
    """Options as rows, sorted by name; suboptions follow their parent as ``parent.child``."""
    rows: list[dict[str, Any]] = []
    for name in sorted(raw or {}):
        opt = raw[name] if raw else {}
        rows.append(
            {
                "name": prefix + name,
                "type": str(opt.get("type", "str")),
                "required": bool(opt.get("required", False)),
                "default": opt.get("default"),
                "description": opt.get("description") or "",
                "choices": opt.get("choices") or [],
            }
        )
        rows += options(opt.get("suboptions"), f"{prefix}{name}.")
    return rows
