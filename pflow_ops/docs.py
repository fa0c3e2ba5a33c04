"""The written runbooks (``docs/runbooks/``), generated from the automation, never retyped.

Sources, each the one place that says it: the catalogue (titles, severities, alerts, steps and
their task files, escalation), the roles' ``defaults/main.yml`` (every variable with its default,
grouped by the file's ``# --- Section ---`` headings) and ``meta/argument_specs.yml`` (its
description), the decision tables (``module_utils/decision_tables.py``: what the decision engine
answers per signal), the alert rules (``monitoring/rules/*.yml``) and the diagnosis queries
(``module_utils/pg_queries.py``). The output is deterministic (sorted, no timestamps), so
``pflow-ops docs build --check`` can compare it with the committed pages (drift check).
"""

from __future__ import annotations

import html
import importlib
import importlib.util
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import yaml

from pflow_ops import docs_reference as ref
from pflow_ops.catalogue import Catalogue, Runbook
from pflow_ops.docs_reference import load_yaml
from pflow_ops.paths import project_root

OUT_DIR = Path("docs") / "runbooks"
INDEX = "README.md"
# The index's file names are the playbooks' (rb-01-backend-down.md), with these words shortened.
ABBREVIATIONS = {"database": "db"}
SECTION = re.compile(r"^# --- (?P<title>.+?) ---\s*$")
VARIABLE = re.compile(r"^(?P<name>[a-z][a-z0-9_]*):")
PARAM = re.compile(r"%\((?P<name>\w+)\)s")
# The diagnosis queries an engineer runs by hand in psql, in runbook order.
MANUAL_QUERIES = (
    "server",
    "connections",
    "long_queries",
    "idle_in_tx",
    "blocking",
    "cache",
    "wraparound",
)
MODULE_UTILS = "ansible_collections.pivotal.flow_ops.plugins.module_utils"
CREDENTIAL = re.compile(r"_(user|username|password)$")
SKIPPED_SECTIONS = ("Context",)  # the run's own context (env, run id, mode): no threshold
ANSIBLE_CODE = re.compile(r"C\(([^()]*)\)")
ANSIBLE_PLAIN = re.compile(r"[IBMO]\(([^()]*)\)")


@dataclass(frozen=True)
class Page:
    """One generated file: its path under the project and its text."""

    path: Path
    text: str


def page_name(rb: Runbook) -> str:
    """``rb-01-backend-down.md``: the runbook's file name, from its playbook's."""
    words = Path(rb.playbook).stem.split("-")
    return "-".join(ABBREVIATIONS.get(w, w) for w in words) + ".md"


def _description(spec: dict[str, Any]) -> str:
    text = spec.get("description") or ""
    if isinstance(text, list):
        text = " ".join(str(t) for t in text)
    # Ansible doc markup: C(code) as code, I(option) and B(bold) as the plain word.
    text = ANSIBLE_CODE.sub(r"`\1`", " ".join(str(text).split()))
    return ANSIBLE_PLAIN.sub(r"\1", text)


def _default(value: Any) -> str:
    if isinstance(value, str):
        return value or "''"
    return (
        str(yaml.safe_dump(value, default_flow_style=True, width=10_000))
        .strip()
        .removesuffix("...")
        .strip()
    )


def role_variables(role: str) -> list[dict[str, Any]]:
    """The role's variables by section: [{title, variables: [{name, default, description}]}]."""
    root = project_root() / "collection" / "roles" / role
    text = (root / "defaults" / "main.yml").read_text(encoding="utf-8")
    defaults = load_yaml(text) or {}
    specs = load_yaml((root / "meta" / "argument_specs.yml").read_text(encoding="utf-8"))
    options = specs["argument_specs"]["main"].get("options") or {}
    sections: list[dict[str, Any]] = []
    title = "General"
    for line in text.splitlines():
        if m := SECTION.match(line):
            title = m["title"]
        elif (m := VARIABLE.match(line)) and m["name"] in defaults:
            if not sections or sections[-1]["title"] != title:
                sections.append({"title": title, "variables": []})
            name = m["name"]
            sections[-1]["variables"].append(
                {
                    "name": name,
                    "default": _default(defaults[name]),
                    "description": _description(options.get(name) or {}),
                }
            )
    return sections


def alert_rules() -> dict[str, dict[str, str]]:
    """Every alert rule of monitoring/rules/*.yml by name: expr, for, severity, summary."""
    rules: dict[str, dict[str, str]] = {}
    for path in sorted((project_root() / "monitoring" / "rules").glob("*.yml")):
        data = load_yaml(path.read_text(encoding="utf-8")) or {}
        for group in data.get("groups") or []:
            for rule in group.get("rules") or []:
                if "alert" in rule:
                    rules[str(rule["alert"])] = {
                        "expr": " ".join(str(rule.get("expr", "")).split()),
                        "for": str(rule.get("for", "0s")),
                        "severity": str((rule.get("labels") or {}).get("severity", "")),
                        "summary": str((rule.get("annotations") or {}).get("summary", "")),
                        "file": path.relative_to(project_root()).as_posix(),
                    }
    return rules


def _module_utils(name: str) -> Any:
    """A collection module_utils module, imported as the collection (ansible_collections...)."""
    collections = str(project_root() / "collections")
    if collections not in sys.path:
        sys.path.insert(0, collections)
    return importlib.import_module(
        f"ansible_collections.pivotal.flow_ops.plugins.module_utils.{name}"
    )


def decision_table(runbook_id: str) -> list[dict[str, str]]:
    table: Callable[[str], list[dict[str, str]]] = _module_utils("decision_tables").decision_table
    return table(runbook_id)


def _psql_value(name: str, defaults: dict[str, Any]) -> str:
    """The psql \\set line for one query parameter, from the database role's defaults."""
    if name == "own":
        return "\\set own 'pflow-ops%'"
    if name == "protected":
        apps = ",".join(f"''{a}''" for a in defaults["database_protected_applications"])
        return f"\\set protected 'ARRAY[{apps}]::text[]'"
    source = {"top": "database_top_n", "long_s": "database_long_query_s"}
    source["idle_tx_s"] = "database_idle_in_transaction_max_s"
    return f"\\set {name} {defaults[source[name]]}"


def _strip(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.splitlines())


def diagnosis_queries() -> list[dict[str, str]]:
    """pg_diagnose's own SQL for the manual path, its parameters as psql variables set from
    the database role's defaults: [{name, sql}] plus the \\set lines."""
    spec = importlib.util.spec_from_file_location(
        "pflow_pg_queries", project_root() / "collection/plugins/module_utils/pg_queries.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    defaults = load_yaml(
        (project_root() / "collection/roles/database/defaults/main.yml").read_text(encoding="utf-8")
    )
    out = []
    for name in MANUAL_QUERIES:
        sql = str(module.SQL[name]).strip()
        params = sorted(set(PARAM.findall(sql)))
        sql = PARAM.sub(lambda m: ":'own'" if m["name"] == "own" else f":{m['name']}", sql)
        out.append(
            {
                "name": name,
                "sets": "\n".join(_psql_value(p, defaults) for p in params),
                "sql": "\n".join(line.rstrip() for line in sql.replace("%%", "%").splitlines())
                + ";",
            }
        )
    return out


def repository() -> str:
    """Where a page links a file: the collection's repository (galaxy.yml), on main."""
    galaxy = load_yaml((project_root() / "collection" / "galaxy.yml").read_text(encoding="utf-8"))
    return f"{str(galaxy['repository']).rstrip('/')}/blob/main"


def _context(cat: Catalogue, rb: Runbook, rules: dict[str, dict[str, str]]) -> dict[str, Any]:
    role = rb.role.rsplit(".", 1)[-1]
    sections = role_variables(role)
    variables = [v for s in sections for v in s["variables"]]
    defaults = {v["name"]: v["default"] for v in variables}
    aliases = sorted(a for a, t in cat.aliases.items() if t in rb.alerts or t.upper() == rb.id)
    return {
        "rb": rb,
        "role": role,
        "repo": repository(),
        "defaults": defaults,
        "page": page_name(rb),
        "alerts": [{"name": a, **rules.get(a, {})} for a in rb.alerts],
        "aliases": [{"name": a, "target": cat.aliases[a]} for a in aliases],
        "sections": [s for s in sections if not s["title"].startswith(SKIPPED_SECTIONS)],
        "credentials": [v for v in variables if CREDENTIAL.search(v["name"])],
        "service_name": next(
            (v["default"] for v in variables if v["name"] == f"{role}_service_name"), role
        ),
        "table": decision_table(rb.id),
        "queries": diagnosis_queries() if role == "database" else [],
        "phases": sorted({s.phase for s in rb.steps}, key=[s.phase for s in rb.steps].index),
    }


def code_cell(value: object) -> str:
    """Code in a table cell. A pipe cannot be escaped inside backticks in every renderer (MkDocs
    would show the backslash): such a value becomes an HTML <code> with the pipe as an entity."""
    text = " ".join(str(value).split())
    if "|" not in text and "`" not in text:
        return f"`{text}`"
    return "<code>" + html.escape(text).replace("|", "&#124;") + "</code>"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(Path(__file__).parent / "templates" / "docs")),
        autoescape=False,  # Markdown, not HTML; table cells are escaped by the `cell` filter
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["cell"] = lambda v: str(v).replace("|", "\\|").replace("\n", " ")
    env.filters["code"] = code_cell
    env.filters["prose"] = lambda v: _description({"description": v})
    env.filters["shown"] = _default
    return env


def build(cat: Catalogue) -> list[Page]:
    """Every page of docs/runbooks/, in a fixed order: the index, then one page per runbook."""
    env = _environment()
    rules = alert_rules()
    contexts = [_context(cat, rb, rules) for rb in cat.runbooks]
    index = env.get_template("index.md.j2").render(cat=cat, runbooks=contexts, rules=rules)
    pages = [Page(OUT_DIR / INDEX, index)]
    runbook = env.get_template("runbook.md.j2")
    pages += [Page(OUT_DIR / c["page"], runbook.render(cat=cat, **c)) for c in contexts]
    return pages + reference_pages(env)


def reference_pages(env: jinja2.Environment) -> list[Page]:
    """docs/reference/: an index, a page per module and per role, from their documentation."""
    modules, roles = ref.module_docs(), ref.role_docs()
    common = {"collection": ref.COLLECTION}
    index = env.get_template("reference_index.md.j2")
    pages = [Page(ref.OUT_DIR / "README.md", index.render(modules=modules, roles=roles, **common))]
    for kind, docs_ in (("module", modules), ("role", roles)):
        template = env.get_template(f"reference_{kind}.md.j2")
        for doc in docs_:
            text = template.render(doc=doc, options=ref.options, **common)
            pages.append(Page(ref.OUT_DIR / f"{kind}s" / f"{doc['name']}.md", text))
    return pages


def stale(pages: list[Page], root: Path) -> list[str]:
    """The pages whose committed file is missing or differs from the generated text."""
    out = []
    for page in pages:
        path = root / page.path
        current = path.read_text(encoding="utf-8") if path.is_file() else None
        if current != page.text:
            out.append(page.path.as_posix())
    return out
