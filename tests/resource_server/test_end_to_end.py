"""End to end: real tokens from the development issuer, checked by the resource server.

Both run under gunicorn (the shared ``dev_issuer`` and ``resource_server``
fixtures); the tokens are obtained with the same client library the apps use.
"""

from __future__ import annotations

import pytest
import requests

from common.client import Client
from common.config import load_settings
from common.id_token import validate_id_token
from common.issuer import Issuer
from common.tokens import client_credentials, password_grant

from .test_token_matrix import assert_refused, get


@pytest.fixture(scope="module")
def settings(suite_env):
    return load_settings(suite_env)


def test_client_credentials_token_calls_the_custom_route(resource_server, settings):
    """The service app's flow (guide section f): client credentials with the custom scope."""
    client = Client(
        Issuer(settings), client_id=settings.service_client_id, client_secret=settings.service_client_secret
    )
    tokens = client_credentials(client, settings.service_scope)
    response = get(resource_server, tokens.access_token, "/api/custom")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["client_id"] == settings.service_client_id
    assert settings.service_scope in body["scopes"]
    # The same token is good for the general route too.
    assert get(resource_server, tokens.access_token).json()["client_id"] == settings.service_client_id


def test_user_token_works_but_its_id_token_does_not(resource_server, settings):
    """A user's access token may read messages but lacks the custom scope; the ID token is refused."""
    client = Client(
        Issuer(settings), client_id=settings.trusted_client_id, client_secret=settings.trusted_client_secret
    )
    tokens = password_grant(client, settings.demo_username, settings.demo_password, "openid profile")
    assert tokens.id_token
    tokens.id_claims = validate_id_token(
        client, tokens.id_token, nonce=None, access_token=tokens.access_token
    )

    response = get(resource_server, tokens.access_token)
    assert response.status_code == 200, response.text
    # The subject is the signed-in user: Okta puts the login in an access
    # token's sub and the user id in the ID token's; other issuers use one id.
    assert response.json()["sub"] in (tokens.id_claims["sub"], settings.demo_username)
    assert_refused(get(resource_server, tokens.access_token, "/api/custom"), 403, "insufficient_scope")
    assert_refused(get(resource_server, tokens.id_token), 401, "invalid_token")


def test_health(resource_server):
    assert requests.get(resource_server.url + "/healthz", timeout=5).json() == {"status": "ok"}
