# Copyright: (c) 2026, pflow-ops team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The connection options the PostgreSQL modules of the collection share."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  host:
    description: Host name or address, or a Unix socket directory.
    type: str
    default: 127.0.0.1
  port:
    description: Port.
    type: int
    default: 5432
  database:
    description: Database to connect to.
    type: str
    required: true
  password:
    description: Password of I(user). Keep it in a vault.
    type: str
"""
