"""The collection's unit tests import its plugins as ansible_collections.pivotal.flow_ops...:
the checkout's collections/ directory (a symlink to collection/) provides that path."""

from __future__ import annotations

import sys
from pathlib import Path

_COLLECTIONS = str(Path(__file__).resolve().parents[3] / "collections")
if _COLLECTIONS not in sys.path:
    sys.path.insert(0, _COLLECTIONS)
