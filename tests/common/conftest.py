"""Fixtures for the tests of ``common/``: settings and a client aimed at the fake issuer."""

from __future__ import annotations

import pytest

from common.authorization import build_authorization_request
from common.client import Client
from common.config import load_settings
from common.issuer import Issuer

REDIRECT_URI = "http://localhost:5001/authorization-code/callback"


@pytest.fixture
def settings(fake_issuer):
    """Settings pointing at the fake issuer, with a short HTTP timeout so hang tests are fast."""
    return load_settings(
        {"ISSUER": fake_issuer.issuer, "HTTP_TIMEOUT": "0.5", "CLOCK_LEEWAY": "60", "LOGIN_TIMEOUT": "600"}
    )


@pytest.fixture
def client(settings, fake_issuer):
    """A confidential client (client_secret_basic) registered at the fake issuer."""
    return Client(
        Issuer(settings),
        client_id=fake_issuer.client_id,
        client_secret=fake_issuer.client_secret,
        redirect_uri=REDIRECT_URI,
    )


@pytest.fixture
def sign_in(client, fake_issuer):
    """Run the browser half of a sign-in: returns ``(callback_params, pending)``."""

    def run(scope="openid profile email offline_access", **kwargs):
        url, pending = build_authorization_request(client, scope, **kwargs)
        return fake_issuer.authorize(url), pending

    return run
