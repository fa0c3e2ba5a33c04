"""pflow-ops: runbook automation for the Pivotal Flow platform.

The Python layer is deliberately thin: it picks the playbook for a runbook from the catalogue,
launches it through ansible-runner, and turns the run into a report. Everything that touches a
service lives in the Ansible collection ``pivotal.flow_ops``.
"""

__version__ = "0.5.0"
