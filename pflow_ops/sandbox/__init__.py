"""Local Pivotal Flow sandbox: PostgreSQL, Redis and a reference backend under supervisord.

The CLI (``pflow-ops sandbox ...``) calls this API; every user-caused failure is a
:class:`SandboxError` whose message is one line and whose ``exit_code`` is 2 (bad request) or
1 (operation failed).
"""

from pflow_ops.sandbox.errors import SandboxError
from pflow_ops.sandbox.faults import FAULTS, break_fault, heal
from pflow_ops.sandbox.layout import SandboxPorts, sandbox_dir
from pflow_ops.sandbox.lifecycle import down, status, up

__all__ = [
    "FAULTS",
    "SandboxError",
    "SandboxPorts",
    "break_fault",
    "down",
    "heal",
    "sandbox_dir",
    "status",
    "up",
]
