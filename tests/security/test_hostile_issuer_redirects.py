"""Redirects from the issuer are not followed (RFC 9700 §2.6; README "Security checks").

Two real test issuers on loopback: ours, and an attacker's with keys of its
own.  Ours answers discovery or the JWKS with a redirect to the attacker.
Followed, the redirect would let the attacker supply the endpoints or the
keys (here over plain ``http``, which a network attacker can serve); refused,
it is a clear ``issuer_misconfigured`` error and the attacker is never asked.
"""

from __future__ import annotations

import pytest

from common.config import load_settings
from common.errors import FlowError
from common.http import http_session
from common.issuer import Issuer
from common.jwks import InvalidToken, KeySet, decode_jwt
from resource_server.validation import JWTValidator, validate_access_token
from tests.fake_issuer import FakeIssuer, Reply, cached_rsa_key


@pytest.fixture
def ours():
    """Our issuer, of this test alone."""
    server = FakeIssuer().start()
    yield server
    server.stop()


@pytest.fixture
def attacker(ours):
    """An issuer with a key of its own, whose discovery claims to be ``ours``."""
    server = FakeIssuer().start()
    server.key = server.signing_key = cached_rsa_key(7, "attacker-key")
    server.published = [server.key]
    server.discovery_overrides["issuer"] = ours.issuer
    yield server
    server.stop()


def _redirect_to(url: str, status: int = 302):
    return Reply(status, "", {"Location": url})


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_discovery_redirect_is_refused(ours, attacker, status):
    ours.script("discovery", _redirect_to(attacker.url("discovery"), status))
    oidc = Issuer(load_settings({"ISSUER": ours.issuer, "HTTP_TIMEOUT": "2"}))
    with pytest.raises(FlowError) as info:
        oidc.metadata()
    assert info.value.error == "issuer_misconfigured" and info.value.status == 502
    assert "redirect" in info.value.description and attacker.url("discovery") in info.value.description
    assert attacker.count("discovery") == 0


def test_jwks_redirect_is_refused_and_the_attackers_keys_never_verify(ours, attacker):
    ours.script("jwks", _redirect_to(attacker.url("jwks")))
    keyset = KeySet(ours.url("jwks"), http=http_session(timeout=2))
    forged = attacker.mint_id_token({"iss": ours.issuer})
    with pytest.raises(InvalidToken) as info:
        decode_jwt(forged, keyset)
    assert "redirect" in info.value.reason
    assert attacker.count("jwks") == 0


def test_resource_server_answers_a_jwks_redirect_with_503_not_the_attackers_keys(ours, attacker):
    """The API: the attacker's access token is never accepted; the answer is a clear 503."""
    from flask import Flask

    settings = load_settings(
        {"ISSUER": ours.issuer, "HTTP_TIMEOUT": "2", "API_AUDIENCE": "api://default"},
        component="resource_server",
    )
    app = Flask(__name__)
    app.extensions["token_validator"] = JWTValidator(settings)
    ours.script("jwks", _redirect_to(attacker.url("jwks")))
    with app.app_context(), pytest.raises(FlowError) as info:
        validate_access_token(attacker.mint_access_token({"iss": ours.issuer}))
    assert info.value.status == 503 and "redirect" in info.value.description
    assert attacker.count("jwks") == 0


@pytest.mark.browser
def test_spa_does_not_follow_a_jwks_redirect(spa_driver, issuer):
    """oidc.js fetches the JWKS with redirect "manual": a redirect is a clear error, even to the
    issuer's own origin (which the page's CSP would allow), and no token is kept."""
    issuer.script("jwks", _redirect_to(issuer.url("jwks") + "?moved=1"), times=1)
    outcome = spa_driver.sign_in()
    assert outcome.error == "issuer_misconfigured", outcome.text
    assert "redirect" in outcome.text and not outcome.stored
    assert issuer.count("jwks") == 1


def test_spa_does_not_follow_a_discovery_redirect(spa_driver, issuer):
    """oidc.js fetches discovery with redirect "manual" too: a clear error, nothing kept."""
    issuer.script("discovery", _redirect_to(issuer.url("discovery") + "?moved=1"), times=1)
    outcome = spa_driver.sign_in()
    assert outcome.error == "issuer_misconfigured", outcome.text
    assert "redirect" in outcome.text and not outcome.stored
    assert issuer.count("discovery") == 1


def test_spa_does_not_follow_a_token_endpoint_redirect(spa_driver, issuer):
    """A 307 from the token endpoint would re-send the code and verifier: never followed."""
    issuer.script("token", _redirect_to(issuer.url("token") + "?moved=1", 307), times=1)
    outcome = spa_driver.sign_in()
    assert outcome.error == "issuer_misconfigured", outcome.text
    assert "redirect" in outcome.text and not outcome.stored
    assert issuer.count("token") == 1
