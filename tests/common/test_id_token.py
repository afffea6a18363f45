"""ID token validation (common/id_token.py, OIDC Core 3.1.3.7), keys and algorithms included."""

from __future__ import annotations

import time

import pytest

from common.authorization import build_authorization_request
from common.client import Client
from common.errors import FlowError
from common.id_token import validate_id_token
from common.inspector import FlowLog
from common.issuer import Issuer
from tests.fake_issuer import cached_rsa_key, new_ec_key
from tests.relying_party import complete_sign_in, error_of, narrating

from .conftest import REDIRECT_URI


def validate(client, fake_issuer, claims=None, header=None, key=None, nonce="n-1", access_token=None):
    token = fake_issuer.mint_id_token({"nonce": "n-1", **(claims or {})}, header=header, key=key)
    return validate_id_token(client, token, nonce=nonce, access_token=access_token)


def test_valid_id_token(client, fake_issuer):
    assert validate(client, fake_issuer)["sub"] == fake_issuer.user["sub"]


@pytest.mark.parametrize(
    "claims,check",
    [
        ({"iss": "https://evil.test/oauth2/default"}, "iss"),
        ({"aud": "someone-else"}, "aud"),
        ({"aud": "someone-else", "azp": "test-client"}, "aud"),
        ({"aud": ["test-client", "other"]}, "azp"),
        ({"aud": ["test-client", "other"], "azp": "other"}, "azp"),
        ({"azp": "other"}, "azp"),
        ({"exp": ("now", -61)}, "exp"),
        ({"iat": ("now", +120)}, "iat"),
        ({"nonce": "wrong"}, "nonce"),
        ({"nonce": None}, "nonce"),
        ({"sub": None}, "sub"),
    ],
)
def test_id_token_rejections(client, fake_issuer, claims, check):
    # Times are relative to when the test runs, not to when it was collected.
    now = int(time.time())
    claims = {k: now + v[1] if isinstance(v, tuple) else v for k, v in claims.items()}
    log = FlowLog()
    token = fake_issuer.mint_id_token({"nonce": "n-1", **claims})
    with pytest.raises(FlowError) as info:
        validate_id_token(narrating(client, log), token, nonce="n-1")
    assert error_of(info) == "invalid_id_token"
    failed = [c for c in log.steps[-1]["jwt"]["checks"] if not c["ok"]]
    assert [c["check"] for c in failed] == [check]
    assert log.steps[-1]["error"]["error"] == "invalid_id_token"


@pytest.mark.parametrize("claim", ["exp", "iat"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_times_are_a_refused_id_token_not_a_500(client, fake_issuer, claim, value):
    """``exp: NaN`` raised ValueError (a 500) from the ID-token path; now it is refused (RFC 8259 §6)."""
    token = fake_issuer.mint_id_token({"nonce": "n-1", claim: value})
    with pytest.raises(FlowError) as info:
        validate_id_token(client, token, nonce="n-1")
    assert error_of(info) == "invalid_id_token"
    assert "JSON" in info.value.description


@pytest.mark.parametrize("typ", ["at+jwt", "AT+JWT", "application/at+jwt"])
def test_access_token_typed_at_jwt_is_not_an_id_token(client, fake_issuer, typ):
    """RFC 9068 §2.1 / RFC 8725 §3.11: an access token, signed by the same issuer and naming us in
    aud, must never pass as an ID token."""
    log = FlowLog()
    token = fake_issuer.mint_id_token({"nonce": "n-1"}, header={"typ": typ})
    with pytest.raises(FlowError) as info:
        validate_id_token(narrating(client, log), token, nonce="n-1")
    assert error_of(info) == "invalid_id_token"
    failed = [c for c in log.steps[-1]["jwt"]["checks"] if not c["ok"]]
    assert [c["check"] for c in failed] == ["typ"]


@pytest.mark.parametrize("typ", ["JWT", "jwt", None])
def test_id_token_typed_jwt_or_untyped_passes(client, fake_issuer, typ):
    token = fake_issuer.mint_id_token({"nonce": "n-1"}, header={"typ": typ})
    assert validate_id_token(client, token, nonce="n-1")["sub"] == fake_issuer.user["sub"]


def test_several_audiences_with_right_azp(client, fake_issuer):
    assert validate(client, fake_issuer, {"aud": ["test-client", "other"], "azp": "test-client"})


def test_expiry_within_leeway_accepted(client, fake_issuer):
    validate(client, fake_issuer, {"exp": int(time.time()) - 30})


def test_bad_signature(client, fake_issuer):
    token = fake_issuer.mint_id_token({"nonce": "n-1"}, key=cached_rsa_key(6, fake_issuer.key.kid))
    with pytest.raises(FlowError) as info:
        validate_id_token(client, token, nonce="n-1")
    assert "signature" in info.value.description


def test_at_hash_mismatch(client, fake_issuer, sign_in):
    fake_issuer.id_token_claims["at_hash"] = "AAAAAAAAAAAAAAAAAAAAAA"
    with pytest.raises(FlowError) as info:
        complete_sign_in(client, *sign_in())
    assert error_of(info) == "invalid_id_token" and "at_hash" in info.value.description


@pytest.mark.parametrize("at_hash", ["ü" * 22, "\u202e" + "A" * 21, 42])
def test_hostile_at_hash_is_rejected_not_crashed(client, fake_issuer, at_hash):
    """A non-ASCII at_hash is compared as bytes (hmac.compare_digest refuses non-ASCII str)."""
    with pytest.raises(FlowError) as info:
        validate(client, fake_issuer, claims={"at_hash": at_hash}, access_token="an-access-token")
    assert error_of(info) == "invalid_id_token" and "at_hash" in info.value.description


def test_at_hash_uses_the_algorithms_hash(settings, fake_issuer, sign_in):
    ec = new_ec_key("ec-1")
    fake_issuer.publish(fake_issuer.key, ec)
    fake_issuer.id_token_key = ec
    fake_issuer.discovery_overrides["id_token_signing_alg_values_supported"] = ["RS256", "ES256"]
    client = Client(
        Issuer(settings),
        client_id=fake_issuer.client_id,
        client_secret=fake_issuer.client_secret,
        redirect_uri=REDIRECT_URI,
    )
    url, pending = build_authorization_request(client, "openid")
    assert complete_sign_in(client, fake_issuer.authorize(url), pending).id_claims["sub"]


def test_es256_refused_unless_advertised(client, fake_issuer, sign_in):
    ec = new_ec_key("ec-1")
    fake_issuer.publish(fake_issuer.key, ec)
    fake_issuer.id_token_key = ec
    with pytest.raises(FlowError) as info:
        complete_sign_in(client, *sign_in())
    assert "algorithm" in info.value.description


def test_unknown_kid_even_after_refetch(client, fake_issuer):
    validate(client, fake_issuer)
    client.issuer.keyset.refetch_cooldown = 0
    with pytest.raises(FlowError) as info:
        validate(client, fake_issuer, key=cached_rsa_key(5, "never-published"))
    assert "kid" in info.value.description
    assert fake_issuer.count("jwks") == 2


def test_rotated_kid_accepted_after_refetch(client, fake_issuer):
    validate(client, fake_issuer)
    client.issuer.keyset.refetch_cooldown = 0
    fake_issuer.rotate()
    assert validate(client, fake_issuer)["sub"]
    assert fake_issuer.count("jwks") == 2


def test_jwks_unreachable_is_issuer_unreachable(client, fake_issuer):
    fake_issuer.fail("jwks", 502)
    with pytest.raises(FlowError) as info:
        validate(client, fake_issuer)
    assert error_of(info) == "issuer_unreachable"
