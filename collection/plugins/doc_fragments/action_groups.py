# Copyright: (c) 2026, pflow-ops team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The action group of each module, as meta/runtime.yml ``action_groups`` declares it, so that
``module_defaults: {group/pivotal.flow_ops.<group>: {...}}`` is documented where it applies.
Modules extend ``pivotal.flow_ops.action_groups.<group>_group``: a plain ``.redis`` suffix would
load the ``redis`` connection fragment instead (the plugin loader resolves the dotted name as a
fragment first). String literals: ansible-test's yamllint reads fragments without running them."""

from __future__ import annotations


class ModuleDocFragment:
    POSTGRESQL_GROUP = r"""
attributes:
  action_group:
    description: Use C(group/pivotal.flow_ops.postgresql) in C(module_defaults) to set defaults for this module.
    support: full
    membership:
      - pivotal.flow_ops.postgresql
"""

    REDIS_GROUP = r"""
attributes:
  action_group:
    description: Use C(group/pivotal.flow_ops.redis) in C(module_defaults) to set defaults for this module.
    support: full
    membership:
      - pivotal.flow_ops.redis
"""

    SUPERVISOR_GROUP = r"""
attributes:
  action_group:
    description: Use C(group/pivotal.flow_ops.supervisor) in C(module_defaults) to set defaults for this module.
    support: full
    membership:
      - pivotal.flow_ops.supervisor
"""

    DOCKER_GROUP = r"""
attributes:
  action_group:
    description: Use C(group/pivotal.flow_ops.docker) in C(module_defaults) to set defaults for this module.
    support: full
    membership:
      - pivotal.flow_ops.docker
"""
