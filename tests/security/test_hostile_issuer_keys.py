"""The issuer's keys change or go away while an app has them cached (OIDC Core 10.1.1).

Run against the web app, the long-lived process that caches the JWKS (the
CLIs and the SPA's page fetch the keys afresh each sign-in).  The app signs
in once (keys cached), then the issuer rotates its key, serves an unknown
``kid``, or its JWKS endpoint goes down.
"""

from __future__ import annotations

from tests.fake_issuer import cached_rsa_key


def _keyset(web_driver):
    return web_driver.app.extensions["oidc_client"].issuer.keyset


def test_rotated_kid_is_accepted_after_one_refetch(web_driver, issuer):
    assert web_driver.sign_in().ok
    assert issuer.count("jwks") == 1
    # Time passes (beyond the refetch cool-down); the issuer rotates its signing key.
    _keyset(web_driver).refetch_cooldown = 0
    issuer.rotate()
    web_driver.client = web_driver.make_client()
    outcome = web_driver.sign_in()
    assert outcome.ok, outcome.text
    assert issuer.count("jwks") == 2  # one refetch for the new kid


def test_key_rotated_at_once_is_accepted_within_the_cool_down(web_driver, issuer):
    """An issuer that signs with its new key as soon as it publishes it, seconds after the app
    fetched the keys: the first unknown kid refetches at once (the cool-down is not reset)."""
    assert web_driver.sign_in().ok
    assert _keyset(web_driver).refetch_cooldown == 30
    issuer.rotate()
    web_driver.client = web_driver.make_client()
    outcome = web_driver.sign_in()
    assert outcome.ok, outcome.text
    assert issuer.count("jwks") == 2


def test_unknown_kid_is_refused_after_exactly_one_refetch(web_driver, issuer):
    assert web_driver.sign_in().ok
    _keyset(web_driver).refetch_cooldown = 0
    issuer.id_token_key = cached_rsa_key(6, "never-published")
    web_driver.client = web_driver.make_client()
    web_driver.redis.flushdb()  # forget the first sign-in's session: "no tokens" is about this one
    outcome = web_driver.sign_in()
    assert outcome.error == "invalid_id_token" and "kid" in outcome.text, outcome.text
    assert not outcome.stored
    assert issuer.count("jwks") == 2  # the first fetch and one refetch, no more
    assert issuer.count("userinfo") == 0 and issuer.count("api") == 0

    # More made-up kids within the cool-down cannot make the app hammer the issuer.
    _keyset(web_driver).refetch_cooldown = 30
    web_driver.client = web_driver.make_client()
    again = web_driver.sign_in()
    assert again.error == "invalid_id_token"
    assert issuer.count("jwks") == 2


def test_jwks_endpoint_down_keeps_cached_keys_working(web_driver, issuer):
    assert web_driver.sign_in().ok
    # The cached JWKS has expired and the endpoint is down: the old keys keep working.
    keyset = _keyset(web_driver)
    keyset.ttl = 0
    keyset.refetch_cooldown = 0
    issuer.fail("jwks", 503)
    web_driver.client = web_driver.make_client()
    outcome = web_driver.sign_in()
    assert outcome.ok, outcome.text
    assert issuer.count("jwks") >= 2  # it did try to refresh the keys
    # Down *and* an unknown kid: still refused, never accepted unverified.
    issuer.id_token_key = cached_rsa_key(6, "never-published")
    web_driver.client = web_driver.make_client()
    refused = web_driver.sign_in()
    assert refused.error == "invalid_id_token", refused.text
    assert not web_driver.tokens_stored(web_driver.client)
