"""redis_resp.tls_settings: which TLS a Redis module sets up, one test per branch."""

from __future__ import annotations

import pytest
from ansible_collections.pivotal.flow_ops.plugins.module_utils import redis_resp


def test_no_tls_is_a_plain_connection() -> None:
    assert redis_resp.tls_settings({"tls": False, "validate_certs": True}) is None


def test_certificates_without_tls_are_refused_not_ignored() -> None:
    with pytest.raises(ValueError, match="ca_certs, client_cert_file given without tls=true"):
        redis_resp.tls_settings({"tls": False, "ca_certs": "/ca.pem", "client_cert_file": "/c.pem"})


def test_a_key_without_its_certificate_is_refused() -> None:
    with pytest.raises(ValueError, match="client_key_file given without client_cert_file"):
        redis_resp.tls_settings({"tls": True, "client_key_file": "/k.pem"})


def test_tls_verifies_by_default_against_the_given_ca() -> None:
    assert redis_resp.tls_settings({"tls": True, "ca_certs": "/ca.pem"}) == {
        "cafile": "/ca.pem",
        "certfile": None,
        "keyfile": None,
        "verify": True,
    }


def test_tls_with_a_client_certificate_and_verification_off() -> None:
    params = {
        "tls": True,
        "validate_certs": False,
        "client_cert_file": "/c.pem",
        "client_key_file": "/k.pem",
    }
    assert redis_resp.tls_settings(params) == {
        "cafile": None,
        "certfile": "/c.pem",
        "keyfile": "/k.pem",
        "verify": False,
    }
