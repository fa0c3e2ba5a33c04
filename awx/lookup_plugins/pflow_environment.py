# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What awx/configure.yml needs to know of each environment, read the way the run reads it.

An environment's inventory (inventories/<env>/hosts.yml) is loaded with Ansible's own
InventoryManager and VariableManager: the inventory plugin that parses hosts.yml, its vars,
group_vars/ and host_vars/ beside it in every layout Ansible accepts (all.yml, all/ directory,
a vault-encrypted file), opened with this playbook's own vault secrets (--vault-password-file,
--vault-id, --ask-vault-pass). Reading group_vars files by hand would miss a hosts.yml var or a
vault file. Values are read, never templated: nothing here evaluates inventory content.

Two decisions per environment, each a pure function below with a unit test per branch
(tests/unit/test_awx_environment.py):
- protected (it gets the approval workflows): any host whose pflow_protected is not a clear
  false, by the CLI's own rule (pflow_ops.inventory.protected_value), so AWX and
  `pflow-ops recover --env` agree; an inventory that cannot be read is protected.
- shared coordination: every host names one etcd store (pflow_coordination_url etcd:// or
  etcds://). AWX runs each job in a fresh execution-environment container, so the file store
  would give every job an empty restart budget and a lock nobody else sees.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from ansible.errors import AnsibleError
from ansible.inventory.manager import InventoryManager
from ansible.plugins.lookup import LookupBase
from ansible.vars.manager import VariableManager

try:
    from pflow_ops.inventory import PROTECTED_VAR, protected_value
except ImportError as exc:  # configure.yml runs with the pflow-ops venv's ansible-playbook
    raise AnsibleError(
        "awx/configure.yml needs the pflow_ops package: run it with the pflow-ops venv "
        f"(.venv/bin/ansible-playbook) ({exc})"
    ) from exc

DOCUMENTATION = r"""
name: pflow_environment
short_description: Protection and coordination store of pflow-ops environments
description:
  - For each environment name, loads I(root)/<name>/hosts.yml with Ansible's inventory and
    variable managers (group_vars, host_vars, vault files included) and returns whether it is
    protected and whether its hosts share one etcd coordination store.
options:
  _terms:
    description: Environment names (directories under I(root)).
    required: true
  root:
    description: The inventories directory.
    type: str
    required: true
"""

RETURN = r"""
_list:
  description: One mapping per environment.
  type: list
  elements: dict
  contains:
    environment: {description: The name., type: str}
    protected: {description: Whether it gets the approval workflows., type: bool}
    protected_why: {description: What made it protected (empty when it is not)., type: str}
    coordination_shared: {description: Whether every host names one etcd store., type: bool}
    coordination_why: {description: The store, or why it is not a shared one., type: str}
"""

COORDINATION_VAR = "pflow_coordination_url"
SHARED_SCHEMES = ("etcd", "etcds")
DEFAULT_ETCD_PORT = 2379
# Ansible's vault-encrypted values are not str (2.19: EncryptedString); str() decrypts them.
_VAULT_TYPES = ("EncryptedString", "AnsibleVaultEncryptedUnicode")


def protection(values):
    """(protected, why) from {host: pflow_protected}: protected when any host is."""
    reasons = []
    for host, value in values.items():
        is_protected, why = protected_value(value)
        if is_protected:
            reasons.append(f"{why} on {host}")
    if not reasons:
        return False, ""
    more = f" and {len(reasons) - 1} more host(s)" if len(reasons) > 1 else ""
    return True, reasons[0] + more


def _text(value):
    if type(value).__name__ in _VAULT_TYPES:
        return str(value)
    return value if isinstance(value, str) else None


def coordination(values):
    """(shared, why) from {host: pflow_coordination_url}: shared only when every host names
    the same etcd store; anything else says which host and why, in one line."""
    if not values:
        return False, "the inventory has no hosts"
    urls = set()
    for host, value in values.items():
        text = _text(value)
        if value is None or text == "":
            return (
                False,
                f"{COORDINATION_VAR} is not set on {host}: the file store, one machine only",
            )
        if text == "file":
            return False, f"{COORDINATION_VAR} is file on {host}: one machine only"
        if text is None:
            return False, f"{COORDINATION_VAR} on {host} is a {type(value).__name__}, not a URL"
        if "{{" in text or "{%" in text:
            why = "is a template: configure reads values, never templates"
            return False, f"{COORDINATION_VAR} on {host} {why}"
        if urlsplit(text).scheme not in SHARED_SCHEMES:
            return False, f"{COORDINATION_VAR} on {host} is not an etcd:// URL"
        urls.add(text)
    if len(urls) > 1:
        return False, f"hosts name {len(urls)} different stores: one lock must be one store"
    # Host and port only: a URL with user:password@ must not reach the logs or the export.
    parts = urlsplit(urls.pop())
    return True, f"etcd at {parts.hostname}:{parts.port or DEFAULT_ETCD_PORT}"


def unreadable(name, error):
    """An inventory that cannot be read: protected, and no shared store can be shown."""
    why = "its inventory cannot be read ({})".format(" ".join(str(error).split())[:300])
    return {
        "environment": name,
        "protected": True,
        "protected_why": why + ": treated as protected",
        "coordination_shared": False,
        "coordination_why": why,
    }


class LookupModule(LookupBase):
    def _hostvars(self, source):
        inventory = InventoryManager(self._loader, sources=[source], parse=False)
        if not inventory.parse_source(source):
            raise AnsibleError(f"no inventory plugin could parse {source}")
        inventory.reconcile_inventory()
        variables = VariableManager(loader=self._loader, inventory=inventory)
        return {
            host.name: variables.get_vars(host=host, include_hostvars=False)
            for host in inventory.get_hosts("all")
        }

    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        root = self.get_option("root")
        results = []
        for name in terms:
            try:
                hostvars = self._hostvars(f"{root}/{name}/hosts.yml")
            except Exception as error:  # any failure to read fails closed: protected
                results.append(unreadable(name, error))
                continue
            protected, protected_why = protection(
                {host: hv.get(PROTECTED_VAR) for host, hv in hostvars.items()}
            )
            shared, shared_why = coordination(
                {host: hv.get(COORDINATION_VAR) for host, hv in hostvars.items()}
            )
            results.append(
                {
                    "environment": name,
                    "protected": protected,
                    "protected_why": protected_why,
                    "coordination_shared": shared,
                    "coordination_why": shared_why,
                }
            )
        return results
