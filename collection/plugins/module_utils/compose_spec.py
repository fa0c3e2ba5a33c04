# Copyright: (c) 2026, pflow-ops team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The Docker engine connection options, apart from compose.py so that a module which only
declares them (backend_diagnose, whose service manager is most often supervisord) does not
import the Docker SDK: ``import docker`` costs ~70 ms of CPU per host and module run."""

from __future__ import annotations

from typing import Any

from ansible.module_utils.basic import env_fallback

# The engine connection: community.docker's option names, defaults and environment variables,
# so a play written for it keeps working (doc fragment pivotal.flow_ops.docker).
CONNECTION_SPEC: dict[str, Any] = {
    "docker_host": {"type": "str", "default": "unix:///var/run/docker.sock",
                    "aliases": ["docker_url"], "fallback": (env_fallback, ["DOCKER_HOST"])},
    "api_version": {"type": "str", "default": "auto", "aliases": ["docker_api_version"],
                    "fallback": (env_fallback, ["DOCKER_API_VERSION"])},
    "timeout": {"type": "int", "default": 60, "fallback": (env_fallback, ["DOCKER_TIMEOUT"])},
    "tls": {"type": "bool", "default": False, "fallback": (env_fallback, ["DOCKER_TLS"])},
    "validate_certs": {"type": "bool", "default": False, "aliases": ["tls_verify"],
                       "fallback": (env_fallback, ["DOCKER_TLS_VERIFY"])},
    "ca_path": {"type": "path", "aliases": ["ca_cert", "tls_ca_cert", "cacert_path"]},
    "client_cert": {"type": "path", "aliases": ["tls_client_cert", "cert_path"]},
    "client_key": {"type": "path", "aliases": ["tls_client_key", "key_path"]},
}
