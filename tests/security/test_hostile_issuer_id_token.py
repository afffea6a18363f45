"""Hostile ID tokens (OpenID Connect Core 3.1.3.7) against web_app, native_sim and the SPA.

The test issuer signs the user in, then its token endpoint hands out an ID
token that is wrong in exactly one way.  Every app must refuse the sign-in
with a clear ``invalid_id_token``-style error, keep no token anywhere, and
make no further call: no UserInfo, no API, and at most one JWKS refetch.
"""

from __future__ import annotations

import json
import time

import pytest
from cryptography.hazmat.primitives import serialization

from tests.fake_issuer import cached_rsa_key, hs256_token, unsigned_token, weak_rsa_key

EVIL_ISSUER = "http://evil.test/oauth2/default"


def _public_pem(issuer) -> bytes:
    """The issuer's RSA public key as PEM: the "secret" of the HS256 confusion attack."""
    return issuer.key.get_op_key("verify").public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _bad_signature(issuer, client_id):
    # Same kid as the published key, signed by a different private key.
    issuer.id_token_key = cached_rsa_key(5, issuer.key.kid)


def _alg_none(issuer, client_id):
    issuer.id_token_transform = lambda claims: unsigned_token(
        {"alg": "none", "typ": "JWT", "kid": issuer.key.kid}, claims
    )


def _hs256_with_public_key(issuer, client_id):
    pem = _public_pem(issuer)
    issuer.id_token_transform = lambda claims: hs256_token(claims, pem, {"kid": issuer.key.kid})


def _claims(**claims):
    def setup(issuer, client_id):
        issuer.id_token_claims = {k: (v(client_id) if callable(v) else v) for k, v in claims.items()}

    return setup


def _now():
    return int(time.time())


def _expired(issuer, client_id):
    # Default CLOCK_LEEWAY is 60 s: ten minutes is well beyond it.
    issuer.id_token_claims = {"exp": _now() - 600, "iat": _now() - 900, "auth_time": _now() - 900}


def _iat_in_future(issuer, client_id):
    issuer.id_token_claims = {"iat": _now() + 600, "exp": _now() + 900}


def _unknown_kid(issuer, client_id):
    # Signed with a key the JWKS never shows, not even after a refetch.
    issuer.id_token_key = cached_rsa_key(6, "never-published")


def _typed_as_access_token(issuer, client_id):
    # RFC 9068 §2.1: an access token says typ at+jwt; signed by the same key, aud ours.
    issuer.id_token_header = {"typ": "at+jwt"}


def _exp_not_finite(value: str):
    """``exp`` written as ``value`` (NaN, 1e400): not a JSON number (RFC 8259 §6)."""

    def setup(issuer, client_id):
        def transform(claims):
            text = json.dumps(claims).replace('"exp": ', f'"exp": {value}, "exp_was": ')
            return issuer.mint_text(text)

        issuer.id_token_transform = transform

    return setup


def _weak_key(issuer, client_id):
    # RFC 7518 §3.3: a 1024-bit RSA key, published and signing; it must never verify.
    key = weak_rsa_key()
    issuer.publish(issuer.key, key)
    issuer.id_token_key = key


CASES = {
    "bad_rs256_signature": _bad_signature,
    "alg_none": _alg_none,
    "hs256_keyed_with_rsa_public_key": _hs256_with_public_key,
    "wrong_iss": _claims(iss=EVIL_ISSUER),
    "aud_without_our_client": _claims(aud="someone-else"),
    "aud_without_our_client_azp_ours": _claims(aud="someone-else", azp=lambda cid: cid),
    "several_audiences_wrong_azp": _claims(aud=lambda cid: [cid, "someone-else"], azp="someone-else"),
    "expired_beyond_leeway": _expired,
    "iat_in_the_future": _iat_in_future,
    "nonce_wrong": _claims(nonce="not-the-nonce-we-sent"),
    "nonce_missing": _claims(nonce=None),
    "kid_unknown_after_one_refetch": _unknown_kid,
    "typed_as_access_token": _typed_as_access_token,
    "exp_nan": _exp_not_finite("NaN"),
    "exp_1e400": _exp_not_finite("1e400"),
    "signed_with_1024_bit_rsa_key": _weak_key,
}

#: The SPA runs in Chromium, which is slow: the cases that prove its
#: JavaScript checks (signature in WebCrypto, alg pinning, iss, nonce, aud).
SPA_CASES = [
    "bad_rs256_signature",
    "alg_none",
    "wrong_iss",
    "nonce_wrong",
    "several_audiences_wrong_azp",
    "typed_as_access_token",
    "exp_1e400",
    "signed_with_1024_bit_rsa_key",
]

#: Error codes an app may use for a refused ID token.
ID_TOKEN_ERRORS = {"invalid_id_token", "invalid_signature", "nonce_mismatch"}


def _assert_refused_cleanly(outcome, issuer):
    assert not outcome.ok, outcome.text
    assert outcome.error in ID_TOKEN_ERRORS, (outcome.error, outcome.text)
    assert outcome.text.strip(), "the user must be told why"
    assert not outcome.stored, "no session and no stored tokens after a refused ID token"
    # Exactly one code exchange; no UserInfo, no API, at most one JWKS refetch.
    assert issuer.count("token") == 1
    assert issuer.count("userinfo") == 0
    assert issuer.count("api") == 0
    assert issuer.count("jwks") <= 2


@pytest.mark.parametrize("driver", ["web", "bff", "native"], indirect=True)
def test_compliant_issuer_signs_in(driver, issuer):
    """The control: with a compliant issuer the same driver signs in (so refusals mean something)."""
    outcome = driver.sign_in()
    assert outcome.ok, outcome.text
    assert outcome.stored


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("driver", ["web", "bff", "native"], indirect=True)
def test_hostile_id_token_is_refused(driver, issuer, case):
    CASES[case](issuer, driver.client_id)
    outcome = driver.sign_in()
    _assert_refused_cleanly(outcome, issuer)
    if case == "kid_unknown_after_one_refetch":
        # A fresh process fetches the keys once, just now: a second fetch would
        # show nothing new.  (With keys cached from before, an unknown kid causes
        # exactly one refetch: test_hostile_issuer_keys.py.)
        assert issuer.count("jwks") == 1
    if driver.name in ("web_app", "spa_bff"):
        assert "Error" in outcome.raw and "Traceback" not in outcome.raw


@pytest.mark.browser
def test_spa_compliant_issuer_signs_in(spa_driver, issuer):
    outcome = spa_driver.sign_in()
    assert outcome.ok, outcome.text
    assert issuer.count("token") == 1


@pytest.mark.browser
@pytest.mark.parametrize("case", SPA_CASES)
def test_spa_refuses_hostile_id_token(spa_driver, issuer, case):
    CASES[case](issuer, spa_driver.client_id)
    outcome = spa_driver.sign_in()
    _assert_refused_cleanly(outcome, issuer)


@pytest.mark.browser
def test_spa_implicit_compliant_issuer_signs_in(spa_driver, issuer):
    outcome = spa_driver.sign_in(mode="implicit")
    assert outcome.ok, outcome.text
    assert issuer.count("token") == 0  # Implicit: the tokens came in the fragment


@pytest.mark.browser
@pytest.mark.parametrize("case", ["bad_rs256_signature", "alg_none", "nonce_wrong"])
def test_spa_implicit_mode_refuses_hostile_id_token(spa_driver, issuer, case):
    """Implicit: the ID token comes through the browser, so the JS must verify the signature itself."""
    CASES[case](issuer, spa_driver.client_id)
    outcome = spa_driver.sign_in(mode="implicit")
    assert not outcome.ok and outcome.error in ID_TOKEN_ERRORS, (outcome.error, outcome.text)
    assert not outcome.stored
    assert issuer.count("token") == 0 and issuer.count("api") == 0 and issuer.count("jwks") <= 2
