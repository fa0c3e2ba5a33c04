"""Load the collection's plugins as plain Python modules, straight from the checkout, so their
logic is tested without installing the collection."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

PLUGINS = Path(__file__).resolve().parents[1] / "collection" / "plugins"
# The modules import their module_utils as ansible_collections.pivotal.flow_ops...: the
# checkout's collections/ directory (a symlink to collection/) provides that path.
_COLLECTIONS = str(PLUGINS.parents[1] / "collections")
if _COLLECTIONS not in sys.path:
    sys.path.insert(0, _COLLECTIONS)


def load_plugin(name: str, kind: str = "modules") -> ModuleType:
    path = PLUGINS / kind / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"pflow_test_{kind}_{name}", path)
    assert spec and spec.loader, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
