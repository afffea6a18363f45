"""Unit tests of common/dpop.py: proofs made and checked (RFC 9449 §4), against a real Redis."""

import json
import time

import pytest
import redis
from joserfc import jws
from joserfc.jwk import OctKey

from common import dpop
from common.jwks import b64url_json

URL = "https://api.example.test/api/messages"


@pytest.fixture
def replay(redis_server):
    client = redis.Redis.from_url(redis_server.url)
    return dpop.RedisReplayCache(client, prefix=f"test_dpop:{time.time_ns()}:")


def verify(proof, replay, **kwargs):
    kwargs.setdefault("method", "GET")
    kwargs.setdefault("url", URL)
    return dpop.verify_proof(proof, replay=replay, leeway=60, **kwargs)


def test_a_proof_carries_what_rfc_9449_section_4_2_asks_for(replay):
    key = dpop.DPoPKey.generate()
    proof = key.proof("get", URL + "?page=2#top", access_token="abc", nonce="n-1")
    header = b64url_json(proof.split(".")[0])
    claims = b64url_json(proof.split(".")[1])
    assert header["typ"] == "dpop+jwt" and header["alg"] == "ES256"
    assert "d" not in header["jwk"]
    assert claims["htm"] == "GET" and claims["htu"] == URL
    assert claims["ath"] == dpop.access_token_hash("abc") and claims["nonce"] == "n-1"
    checked = verify(proof, replay, access_token="abc", expected_jkt=key.thumbprint)
    assert checked.jkt == key.thumbprint
    assert "ath" in checked.checks


def test_a_replayed_proof_is_refused(replay):
    proof = dpop.DPoPKey.generate().proof("GET", URL)
    verify(proof, replay)
    with pytest.raises(dpop.InvalidProof) as refused:
        verify(proof, replay)
    assert refused.value.check == "jti"


@pytest.mark.parametrize(
    ("kwargs", "check"),
    [
        ({"method": "POST"}, "htm"),
        ({"url": "https://api.example.test/api/custom"}, "htu"),
        ({"access_token": "another"}, "ath"),
        ({"expected_jkt": "someone-else"}, "jkt"),
        ({"now": time.time() + 3600}, "iat"),
    ],
)
def test_a_proof_for_another_request_is_refused(replay, kwargs, check):
    key = dpop.DPoPKey.generate()
    proof = key.proof("GET", URL, access_token="abc")
    with pytest.raises(dpop.InvalidProof) as refused:
        verify(proof, replay, **kwargs)
    assert refused.value.check == check


def test_rs256_keys_survive_storage_as_a_private_jwk(replay):
    key = dpop.DPoPKey.from_jwk(dpop.DPoPKey.generate("RS256").to_jwk())
    assert key.alg == "RS256"
    assert verify(key.proof("GET", URL), replay).jkt == key.thumbprint


def _forged(header, claims, key, alg):
    registry = jws.JWSRegistry(algorithms=[alg])
    return jws.serialize_compact(header, json.dumps(claims).encode(), key, registry=registry)


def _claims():
    return {"jti": "a-unique-jti-value", "htm": "GET", "htu": URL, "iat": int(time.time())}


def test_a_private_key_in_the_jwk_is_refused(replay):
    key = dpop.DPoPKey.generate()
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": key.key.as_dict(private=True)}
    with pytest.raises(dpop.InvalidProof) as refused:
        verify(_forged(header, _claims(), key.key, "ES256"), replay)
    assert refused.value.check == "jwk"


def test_hs256_and_a_missing_typ_are_refused(replay):
    secret = OctKey.generate_key(256)
    hs = _forged({"typ": "dpop+jwt", "alg": "HS256", "jwk": secret.as_dict()}, _claims(), secret, "HS256")
    with pytest.raises(dpop.InvalidProof) as refused:
        verify(hs, replay)
    assert refused.value.check == "alg"
    key = dpop.DPoPKey.generate()
    untyped = _forged({"alg": "ES256", "jwk": key.public_jwk}, _claims(), key.key, "ES256")
    with pytest.raises(dpop.InvalidProof) as refused:
        verify(untyped, replay)
    assert refused.value.check == "typ"


def test_a_proof_signed_by_another_key_than_its_jwk_is_refused(replay):
    signer, named = dpop.DPoPKey.generate(), dpop.DPoPKey.generate()
    forged = _forged(
        {"typ": "dpop+jwt", "alg": "ES256", "jwk": named.public_jwk}, _claims(), signer.key, "ES256"
    )
    with pytest.raises(dpop.InvalidProof) as refused:
        verify(forged, replay)
    assert refused.value.check == "signature"


def test_server_nonces_are_checked_and_asked_for(replay):
    nonces = dpop.ServerNonces(b"dev-only-nonce-secret", lifetime=60)
    key = dpop.DPoPKey.generate()
    with pytest.raises(dpop.InvalidProof) as refused:
        verify(key.proof("GET", URL), replay, nonces=nonces)
    assert refused.value.error == "use_dpop_nonce"
    assert verify(key.proof("GET", URL, nonce=nonces.current()), replay, nonces=nonces)
    assert not nonces.is_valid(nonces.current(now=time.time() - 600))


def test_the_nonce_book_keeps_the_latest_nonce_per_server():
    book = dpop.NonceBook()
    book.remember("https://issuer.example.test/oauth2/v1/token", {"DPoP-Nonce": "one"})
    book.remember("https://api.example.test/api", {"DPoP-Nonce": "two"})
    assert book.get("https://issuer.example.test/oauth2/v1/revoke") == "one"
    assert book.get("https://api.example.test/api/messages") == "two"
    assert dpop.asks_for_nonce(400, {"DPoP-Nonce": "x"}, {"error": "use_dpop_nonce"})
    assert dpop.asks_for_nonce(401, {"DPoP-Nonce": "x", "WWW-Authenticate": 'DPoP error="use_dpop_nonce"'})
    assert not dpop.asks_for_nonce(400, {}, {"error": "use_dpop_nonce"})


def test_choose_algorithm_prefers_es256_and_falls_back_to_rs256():
    assert dpop.choose_algorithm(["RS256", "ES256"]) == "ES256"
    assert dpop.choose_algorithm(["RS256"]) == "RS256"
    assert dpop.choose_algorithm(["EdDSA"]) is None


def test_a_zero_leeway_still_accepts_a_proof_made_a_second_ago(replay):
    """``iat`` has one-second resolution: CLOCK_LEEWAY=0 must not refuse every honest proof."""
    key = dpop.DPoPKey.generate()
    proof = key.proof("GET", URL, now=time.time() - 1.5)
    assert dpop.verify_proof(proof, method="GET", url=URL, replay=replay, leeway=0).jkt == key.thumbprint
    stale = key.proof("GET", URL, now=time.time() - dpop.MIN_PROOF_WINDOW - 2)
    with pytest.raises(dpop.InvalidProof) as refused:
        dpop.verify_proof(stale, method="GET", url=URL, replay=replay, leeway=0)
    assert refused.value.check == "iat"


def test_a_cached_key_still_meets_every_check(replay):
    """The imported-key cache (one parse per client key) never lets a bad jwk through on a second proof."""
    key = dpop.DPoPKey.generate()
    assert verify(key.proof("GET", URL), replay).jkt == key.thumbprint  # now cached
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": key.to_jwk()}  # the same key, private part included
    claims = {"jti": "j" * 16, "htm": "GET", "htu": URL, "iat": int(time.time())}
    header["jwk"].pop("alg")
    forged = jws.serialize_compact(header, json.dumps(claims).encode(), key.key, algorithms=["ES256"])
    with pytest.raises(dpop.InvalidProof) as refused:
        verify(forged, replay)
    assert refused.value.check == "jwk"
    odd = {**header, "jwk": {**key.public_jwk, "x": ["not", "a", "string"]}}
    with pytest.raises(dpop.InvalidProof):
        verify(jws.serialize_compact(odd, json.dumps(claims).encode(), key.key, algorithms=["ES256"]), replay)
