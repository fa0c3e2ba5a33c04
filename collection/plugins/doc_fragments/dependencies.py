# Copyright: (c) 2026, pflow-ops team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The dependency and host checks dependency_check and backend_diagnose share (module_utils
dependency_checks.argument_spec() and host_checks.host_checks_argument_spec() are the matching
argument specs)."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  postgres:
    description: PostgreSQL to check; omit to skip it.
    type: dict
    suboptions:
      login_host:
        description: Host name or address, or the directory of the Unix socket when it starts with C(/).
        type: str
        default: 127.0.0.1
        aliases: [host]
      login_port:
        description: Port.
        type: int
        default: 5432
        aliases: [port]
      login_db:
        description: Database to connect to; libpq's default (the user name) when omitted.
        type: str
        aliases: [database, db]
      login_user:
        description: Login role; libpq's default (the OS user running the module) when omitted.
        type: str
        aliases: [user]
      login_password:
        description: Password of I(login_user).
        type: str
        aliases: [password]
      ssl_mode:
        description:
          - libpq's C(sslmode). V(verify-full) checks the server's certificate against I(ca_cert)
            and that it names I(login_host). A certificate that fails the check is C(state=error).
        type: str
        default: prefer
        choices: [disable, allow, prefer, require, verify-ca, verify-full]
      ca_cert:
        description: CA certificate(s) (PEM) that signed the server's certificate (libpq's C(sslrootcert)).
        type: path
        aliases: [ssl_rootcert]
      ssl_cert:
        description: Client certificate (PEM) (libpq's C(sslcert)).
        type: path
      ssl_key:
        description: Private key of I(ssl_cert) (libpq's C(sslkey)).
        type: path
      connect_params:
        description: Further libpq keywords; not the ones the module sets itself (see M(pivotal.flow_ops.pg_diagnose)).
        type: dict
        default: {}
      connect_timeout:
        description:
          - Hard limit in seconds on the whole check (connect, authenticate, both queries).
          - Also sent as the session's C(statement_timeout), so the server gives up too.
        type: float
        default: 3
  redis:
    description: Redis to check; omit to skip it.
    type: dict
    suboptions:
      host:
        description: Host name or address.
        type: str
        default: 127.0.0.1
      port:
        description: Port.
        type: int
        default: 6379
      user:
        description: ACL user (Redis 6+); with I(password) sends C(AUTH user password).
        type: str
      password:
        description: Password; without I(user) sends C(AUTH password).
        type: str
      timeout:
        description: Hard limit in seconds on the whole check (connect, AUTH, PING, INFO).
        type: float
        default: 3
      tls:
        description: Connect with TLS.
        type: bool
        default: false
      validate_certs:
        description: Verify the server certificate and its host name when I(tls=true).
        type: bool
        default: true
        aliases: [validate_tls]
      ca_certs:
        description: CA certificate(s) (PEM) that signed the server's certificate; needs I(tls=true).
        type: path
      client_cert_file:
        description: Client certificate (PEM) for servers that ask for one; needs I(tls=true).
        type: path
      client_key_file:
        description: Private key of I(client_cert_file), when that file does not hold it.
        type: path
  resources:
    description:
      - Also read the host's infrastructure health in the same call, exactly as
        M(pivotal.flow_ops.host_resources) does (free disk on I(resources.paths), available memory,
        load per CPU). Omit to skip it.
    type: dict
    suboptions:
      paths:
        description: Paths whose filesystem's free space is checked.
        type: list
        elements: path
        default: []
      thresholds:
        description: Same as the thresholds of M(pivotal.flow_ops.host_resources).
        type: dict
        default: {}
        suboptions:
          disk_free_pct_min:
            description: Minimum free disk percentage (critical below half of it).
            type: float
            default: 10
          memory_available_pct_min:
            description: Minimum available memory percentage.
            type: float
            default: 10
          load_per_cpu_max:
            description: Maximum 1-minute load average per CPU.
            type: float
            default: 2
"""
