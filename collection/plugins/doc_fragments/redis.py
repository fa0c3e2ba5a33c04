# Copyright: (c) 2026, pflow-ops team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The connection options every Redis module of the collection shares (module_utils
redis_client.CONNECTION_OPTIONS is the matching argument spec)."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  host:
    description: Redis host.
    type: str
    default: 127.0.0.1
  port:
    description: Redis port.
    type: int
    default: 6379
  user:
    description: ACL user (Redis 6+); with I(password) sends C(AUTH user password).
    type: str
  password:
    description: Password; without I(user) sends C(AUTH password). Keep it in a vault.
    type: str
  timeout:
    description: Seconds for the connection and for each reply.
    type: float
    default: 3
  tls:
    description: Connect with TLS.
    type: bool
    default: false
  validate_certs:
    description:
      - Verify the server certificate (against I(ca_certs) when given, else the system's CAs) and
        that it names I(host), when I(tls=true). A certificate that fails either check fails the
        connection.
    type: bool
    default: true
    aliases: [validate_tls]
  ca_certs:
    description: CA certificate(s) (PEM) that signed the server's certificate; needs I(tls=true).
    type: path
  client_cert_file:
    description: Client certificate (PEM) for servers that ask for one (C(tls-auth-clients)); needs I(tls=true).
    type: path
  client_key_file:
    description: Private key of I(client_cert_file), when that file does not hold it.
    type: path
"""
