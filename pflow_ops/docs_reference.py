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


def _string_assignments(body: list[ast.stmt]) -> dict[str, str]:
    """``NAME = "..."`` assignments of a module or class body, by name."""
    out = {}
    for node in body:
        target = node.targets[0] if isinstance(node, ast.Assign) else None
        value = node.value if isinstance(node, ast.Assign) else None
        if (
            isinstance(target, ast.Name)
            and isinstance(value, ast.Constant)
            and isinstance(value.value, str)
        ):
            out[target.id] = value.value
    return out


def fragment_doc(name: str) -> dict[str, Any]:
    """The collection's doc fragment ``pivotal.flow_ops.NAME[.VARIABLE]`` (what ansible-doc
    merges into a module's documentation); {} for another collection's fragment."""
    prefix = COLLECTION + "."
    if not name.startswith(prefix):
        return {}
    file, _, var = name[len(prefix) :].partition(".")
    path = project_root() / "collection/plugins/doc_fragments" / f"{file}.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == "ModuleDocFragment":
            wanted = var.upper() or "DOCUMENTATION"
            text = _string_assignments(node.body).get(wanted)
            if text is None:
                raise ValueError(f"{path}: no {wanted} in ModuleDocFragment")
            return load_yaml(text) or {}
    raise ValueError(f"{path}: no ModuleDocFragment class")


def with_fragments(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` with the options of its own collection's fragments merged in, as ansible-doc
    shows them: the module's own definition of an option wins over a fragment's."""
    merged: dict[str, Any] = {}
    for name in doc.get("extends_documentation_fragment") or []:
        merged.update(fragment_doc(str(name)).get("options") or {})
    merged.update(doc.get("options") or {})
    return {**doc, "options": merged} if merged else doc


def module_docs() -> list[dict[str, Any]]:
    """Every module's DOCUMENTATION with its fragments' options, parsed without importing the
    module (no Ansible needed)."""
    out = []
    for path in sorted((project_root() / "collection/plugins/modules").glob("*.py")):
        text = _string_assignments(ast.parse(path.read_text(encoding="utf-8")).body).get(
            "DOCUMENTATION"
        )
        if text is not None:
            out.append({"name": path.stem, **with_fragments(load_yaml(text) or {})})
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
