# Copyright: (c) 2026, pflow-ops team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The supervisord connection options of supervisor_program and supervisor_program_info
(module_utils supervisor_rpc.connection_argument_spec() is the matching argument spec)."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  name:
    description:
      - Program name as supervisord knows it (C(backend)), or C(group:name) for grouped programs.
    type: str
    required: true
  server_url:
    description:
      - C(unix:///path/to/supervisor.sock) or C(http://host:port) (C(/RPC2) is appended when no path
        is given).
    type: str
    required: true
  username:
    description: User for supervisord's HTTP basic authentication; required together with O(password).
    type: str
  password:
    description: Password for supervisord's HTTP basic authentication; required together with O(username).
    type: str
  log_lines:
    description:
      - Number of lines of the program's stdout log to return (RV(log_tail)), read before any
        action so that it shows why the program needed one. V(0) disables.
    type: int
    default: 50
"""
