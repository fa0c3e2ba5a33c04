# Copyright: (c) 2026, pflow-ops team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The Docker engine connection options of compose_service and compose_service_info (module_utils
compose.CONNECTION_SPEC is the matching argument spec). Names, defaults and environment variables
are community.docker's, so tasks written for it keep working; its own fragment is private since
community.docker 5.0, hence this one."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  docker_host:
    description:
      - The engine's API, C(unix://) socket or C(tcp://host:port) (C(https://) with O(tls)).
      - If not given, the E(DOCKER_HOST) environment variable, else the local socket.
    type: str
    default: unix:///var/run/docker.sock
    aliases: [docker_url]
  api_version:
    description:
      - Docker API version to speak, or C(auto) to ask the engine (one request when connecting).
      - If not given, the E(DOCKER_API_VERSION) environment variable.
    type: str
    default: auto
    aliases: [docker_api_version]
  timeout:
    description:
      - Seconds to wait for each answer of the engine.
      - If not given, the E(DOCKER_TIMEOUT) environment variable.
    type: int
    default: 60
  tls:
    description:
      - Connect with TLS without verifying the engine's certificate (see O(validate_certs)).
      - If not given, the E(DOCKER_TLS) environment variable.
    type: bool
    default: false
  validate_certs:
    description:
      - Connect with TLS and verify the engine's certificate (against O(ca_path) when given).
      - If not given, the E(DOCKER_TLS_VERIFY) environment variable.
    type: bool
    default: false
    aliases: [tls_verify]
  ca_path:
    description:
      - CA certificate that signed the engine's certificate.
      - If not given and E(DOCKER_CERT_PATH) is set, its C(ca.pem).
    type: path
    aliases: [ca_cert, tls_ca_cert, cacert_path]
  client_cert:
    description:
      - Client certificate presented to the engine (with O(client_key)).
      - If not given and E(DOCKER_CERT_PATH) is set, its C(cert.pem).
    type: path
    aliases: [tls_client_cert, cert_path]
  client_key:
    description:
      - Private key of O(client_cert).
      - If not given and E(DOCKER_CERT_PATH) is set, its C(key.pem).
    type: path
    aliases: [tls_client_key, key_path]
requirements:
  - Docker SDK for Python (C(docker)) >= 7.0 on the host the module runs on
  - Docker API >= 1.25
"""
