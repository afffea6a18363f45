"""Hostile access tokens signed by the issuer, against the resource server under gunicorn.

The issuer itself (here the scriptable test issuer on loopback) signs tokens
that are wrong in a way a signature cannot catch: a time claim that is not a
JSON number (``exp: NaN`` compared false with every time, so it never
expired), or a signing key too short to trust (RFC 7518 §3.3).  Each is a
401 ``invalid_token`` from the API, never a 200 and never a 500.
"""

from __future__ import annotations

import json

import pytest
import requests

from common.jwks import b64url_json
from tests.fake_issuer import FakeIssuer, weak_rsa_key
from tests.support import free_port, gunicorn


@pytest.fixture(scope="module")
def issuer():
    server = FakeIssuer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def api(issuer):
    env = {
        "ISSUER": issuer.issuer,
        "API_AUDIENCE": "api://default",
        "SERVICE_SCOPE": "customScope",
        "SPA_BASE_URL": "http://localhost:5902",
        "WEB_CLIENT_ID": issuer.client_id,
        "SERVICE_CLIENT_ID": "service-client",
        "HTTP_TIMEOUT": "3",
    }
    service = gunicorn(
        "resource_server-hostile-tokens",
        "resource_server:create_app()",
        env,
        free_port(),
        workers=1,
        health_path="/healthz",
    ).start()
    yield service
    service.stop()


@pytest.fixture(autouse=True)
def compliant(issuer):
    issuer.restore()


def _call(api, token: str) -> requests.Response:
    return requests.get(f"{api.url}/api/messages", headers={"Authorization": f"Bearer {token}"}, timeout=10)


def _access_token_text(issuer, exp: str) -> str:
    """An access token whose ``exp`` is the JSON text ``exp`` (json.dumps cannot write 1e400)."""
    claims = b64url_json(issuer.mint_access_token().split(".")[1])
    text = json.dumps(claims).replace('"exp": ', f'"exp": {exp}, "exp_was": ')
    return issuer.mint_text(text, {"typ": "JWT"})


def test_a_compliant_access_token_is_accepted(api, issuer):
    """The control: the same API accepts the issuer's ordinary token."""
    assert _call(api, issuer.mint_access_token()).status_code == 200


@pytest.mark.parametrize("exp", ["NaN", "Infinity", "1e400"])
def test_non_finite_exp_is_invalid_token(api, issuer, exp):
    """``exp: NaN`` never expired on this path (NaN compares false); RFC 8259 §6 refuses it."""
    response = _call(api, _access_token_text(issuer, exp))
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "invalid_token"
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_token_signed_with_a_1024_bit_key_is_invalid_token(api, issuer):
    weak = weak_rsa_key()
    issuer.publish(issuer.key, weak)
    response = _call(api, issuer.mint_access_token(key=weak))
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "invalid_token"
    assert "weak-1024" in response.json()["error_description"]
