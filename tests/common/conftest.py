"""Fixtures for the tests of ``common/``: settings and a client aimed at the fake issuer."""

from __future__ import annotations

import pytest

from common.authorization import build_authorization_request, check_authorization_response
from common.client import Client
from common.config import load_settings
from common.id_token import validate_id_token
from common.inspector import FlowLog
from common.issuer import Issuer
from common.recorder import FlowRecorder
from common.tokens import TokenSet, exchange_code

REDIRECT_URI = "http://localhost:5001/authorization-code/callback"


@pytest.fixture
def settings(fake_issuer):
    """Settings pointing at the fake issuer, with a short HTTP timeout so hang tests are fast."""
    return load_settings({"ISSUER": fake_issuer.issuer, "HTTP_TIMEOUT": "0.5", "CLOCK_LEEWAY": "60",
                          "LOGIN_TIMEOUT": "600"})


@pytest.fixture
def client(settings, fake_issuer):
    """A confidential client (client_secret_basic) registered at the fake issuer."""
    return Client(Issuer(settings), client_id=fake_issuer.client_id, client_secret=fake_issuer.client_secret,
                  redirect_uri=REDIRECT_URI)


@pytest.fixture
def sign_in(client, fake_issuer):
    """Run the browser half of a sign-in: returns ``(callback_params, pending)``."""

    def run(scope="openid profile email offline_access", **kwargs):
        url, pending = build_authorization_request(client, scope, **kwargs)
        return fake_issuer.authorize(url), pending

    return run


def narrating(client: Client, log: FlowLog | None) -> Client:
    """``client``, recording its steps in ``log``."""
    return client.with_recorder(FlowRecorder(log))


def complete_sign_in(client: Client, params, pending, *, log: FlowLog | None = None) -> TokenSet:
    """The callback's steps in the order web_app/auth.py runs them: check, exchange, validate."""
    client = narrating(client, log)
    code = check_authorization_response(client, params, pending)
    tokens = exchange_code(client, code, pending)
    if tokens.id_token:
        tokens.id_claims = validate_id_token(client, tokens.id_token, nonce=pending.get("nonce"),
                                             access_token=tokens.access_token)
    return tokens
