"""DPoP (RFC 9449) against an independent OpenID Provider, by environment variables alone.

oidc-provider (``server.js``) advertises DPoP and demands a nonce on every
token request, as Okta does.  The web app and the BFF, with the default
``DPOP=auto`` and nothing else configured for it, obtain DPoP-bound
tokens (``token_type: DPoP``, ``cnf.jkt`` = the thumbprint of the key
their session keeps) after the issuer's ``use_dpop_nonce`` round trip,
and the resource server accepts them with their proofs.
"""

from __future__ import annotations

import json
import re

import redis
import requests

from common.dpop import DPoPKey
from common.inspector import decode_unverified
from common.session import load_stored_session
from common.tokens import TokenSet
from tests.second_issuer.conftest import sign_in_at_provider
from tests.second_issuer.test_bff_second_issuer import CSRF, bff_sign_in, stored_tokens
from tests.second_issuer.test_web_app_second_issuer import _csrf, _element_text

NONCE_STEP = "The issuer asked for a DPoP nonce"


def _bound_to_the_sessions_key(tokens) -> str:
    """The key's thumbprint, after checking that the access token names it (RFC 9449 §6.1)."""
    assert tokens.token_type == "DPoP"
    thumbprint = DPoPKey.from_jwk(tokens.dpop_jwk).thumbprint
    assert decode_unverified(tokens.access_token)[1]["cnf"] == {"jkt": thumbprint}
    return thumbprint


def test_web_app_gets_dpop_bound_tokens_from_the_second_issuer(second_stack):
    base = second_stack["WEB_BASE_URL"]
    http = requests.Session()
    login = http.get(base + "/login", allow_redirects=False, timeout=10)
    profile = http.get(sign_in_at_provider(http, login.headers["Location"], "dora"), timeout=10)
    assert profile.status_code == 200, profile.text[:2000]
    raw = redis.Redis.from_url(second_stack["REDIS_URL"]).get(
        f"web_app:session:{http.cookies.get('web_app_session')}"
    )
    thumbprint = _bound_to_the_sessions_key(TokenSet.from_dict(load_stored_session(raw)["tokens"]))

    answer = http.post(base + "/call-api", data={"csrf_token": _csrf(profile.text)}, timeout=10)
    result = json.loads(_element_text(answer.text, "api-result"))
    assert result["dpop"]["jkt"] == thumbprint and "ath" in result["dpop"]["checks"]
    inspector = http.get(base + "/inspector", timeout=10).text
    assert NONCE_STEP in inspector  # oidc-provider's use_dpop_nonce, answered once


def test_bff_gets_dpop_bound_tokens_from_the_second_issuer(second_stack):
    http = requests.Session()
    bff_sign_in(http, second_stack, "erin")
    thumbprint = _bound_to_the_sessions_key(stored_tokens(second_stack, http))
    answer = http.get(second_stack["SPA_BASE_URL"] + "/bff/api/messages", headers=CSRF, timeout=10)
    assert answer.status_code == 200, answer.text[:2000]
    assert answer.json()["dpop"]["jkt"] == thumbprint and "ath" in answer.json()["dpop"]["checks"]
    steps = http.get(second_stack["SPA_BASE_URL"] + "/bff/inspector", headers=CSRF, timeout=10).json()[
        "steps"
    ]
    assert NONCE_STEP in [step["title"] for step in steps]
    assert not re.search(r'"d"\s*:', json.dumps(steps))  # the private key is never shown
