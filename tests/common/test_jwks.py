"""The JWKS cache and JWT signature checks (common/jwks.py), against the fake issuer over HTTP."""

from __future__ import annotations

import base64
import json
import time

import pytest

from common.http import http_session
from common.jwks import (
    InvalidToken,
    KeySet,
    KeysUnavailable,
    check_registered_claims,
    decode_jwt,
    negotiate_algorithms,
)
from tests.fake_issuer import cached_rsa_key, hs256_token, new_ec_key, unsigned_token, weak_rsa_key


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def keyset(fake_issuer, clock):
    return KeySet(
        fake_issuer.url("jwks"), http=http_session(timeout=0.5), ttl=300, refetch_cooldown=30, clock=clock
    )


def test_valid_token_decodes(fake_issuer, keyset):
    header, claims = decode_jwt(fake_issuer.mint_id_token({"nonce": "n"}), keyset)
    assert header["kid"] == fake_issuer.key.kid
    assert claims["nonce"] == "n"


def test_keys_are_cached_until_ttl(fake_issuer, keyset, clock):
    token = fake_issuer.mint_id_token()
    for _ in range(5):
        decode_jwt(token, keyset)
    assert fake_issuer.count("jwks") == 1
    clock.now += 301
    decode_jwt(token, keyset)
    assert fake_issuer.count("jwks") == 2


def test_unknown_kid_refetches_once_per_cooldown(fake_issuer, keyset, clock):
    decode_jwt(fake_issuer.mint_id_token(), keyset)
    assert fake_issuer.count("jwks") == 1
    clock.now += 31  # past the cool-down since the first fetch
    stranger = cached_rsa_key(5, "made-up-kid")
    for _ in range(10):
        with pytest.raises(InvalidToken) as info:
            decode_jwt(fake_issuer.mint_id_token(key=stranger), keyset)
        assert info.value.check == "kid"
    # ten tokens with an unknown kid caused exactly one refetch
    assert fake_issuer.count("jwks") == 2
    clock.now += 31
    with pytest.raises(InvalidToken):
        decode_jwt(fake_issuer.mint_id_token(key=stranger), keyset)
    assert fake_issuer.count("jwks") == 3


def test_rotated_key_is_accepted_after_refetch(fake_issuer, keyset, clock):
    decode_jwt(fake_issuer.mint_id_token(), keyset)
    clock.now += 31
    fake_issuer.rotate()
    _, claims = decode_jwt(fake_issuer.mint_id_token(), keyset)
    assert claims["sub"] == fake_issuer.user["sub"]
    assert fake_issuer.count("jwks") == 2


def test_key_rotated_right_after_a_fetch_is_accepted_at_once(fake_issuer, keyset, clock):
    """The issuer publishes a new key and signs with it at once, seconds after our fetch: the first
    unknown kid after a regular fetch refetches now; the cool-down only bounds repeated misses."""
    decode_jwt(fake_issuer.mint_id_token(), keyset)
    clock.now += 2  # well within the 30 s cool-down
    fake_issuer.rotate()
    _, claims = decode_jwt(fake_issuer.mint_id_token(), keyset)
    assert claims["sub"] == fake_issuer.user["sub"]
    assert fake_issuer.count("jwks") == 2
    stranger = cached_rsa_key(5, "made-up-kid")
    for _ in range(5):  # a miss right after the miss-refetch: the cool-down applies
        with pytest.raises(InvalidToken):
            decode_jwt(fake_issuer.mint_id_token(key=stranger), keyset)
    assert fake_issuer.count("jwks") == 2
    clock.now += 301  # a regular refresh (past the TTL) lets the next miss refetch at once again
    decode_jwt(fake_issuer.mint_id_token(), keyset)
    assert fake_issuer.count("jwks") == 3
    with pytest.raises(InvalidToken):
        decode_jwt(fake_issuer.mint_id_token(key=stranger), keyset)
    assert fake_issuer.count("jwks") == 4


def test_unknown_kid_on_a_cold_key_set_fetches_once(fake_issuer, keyset):
    """The first fetch is made for the token itself: no second fetch at once for the same miss."""
    stranger = cached_rsa_key(5, "made-up-kid")
    for _ in range(3):
        with pytest.raises(InvalidToken) as info:
            decode_jwt(fake_issuer.mint_id_token(key=stranger), keyset)
        assert info.value.check == "kid"
    assert fake_issuer.count("jwks") == 1


def test_jwks_down_keeps_cached_keys(fake_issuer, keyset, clock):
    token = fake_issuer.mint_id_token()
    decode_jwt(token, keyset)
    fake_issuer.fail("jwks", 503)
    clock.now += 400  # cache expired: the refetch fails, the old keys keep working
    decode_jwt(token, keyset)
    assert fake_issuer.count("jwks") == 2
    fake_issuer.reset("jwks")
    fake_issuer.html("jwks")
    clock.now += 400
    decode_jwt(token, keyset)


def test_jwks_down_without_cache_is_keys_unavailable(fake_issuer, keyset):
    fake_issuer.fail("jwks", 500)
    with pytest.raises(KeysUnavailable):
        decode_jwt(fake_issuer.mint_id_token(), keyset)


def test_jwks_hang_is_bounded_by_timeout(fake_issuer, keyset):
    fake_issuer.hang("jwks", 3)
    started = time.monotonic()
    with pytest.raises(KeysUnavailable):
        decode_jwt(fake_issuer.mint_id_token(), keyset)
    assert time.monotonic() - started < 2


def test_oversized_token_refused_before_fetching_keys(fake_issuer, keyset):
    token = fake_issuer.mint_id_token({"padding": "x" * 9000})
    with pytest.raises(InvalidToken) as info:
        decode_jwt(token, keyset)
    assert info.value.check == "size"
    assert fake_issuer.count("jwks") == 0


def test_alg_none_refused(fake_issuer, keyset):
    token = unsigned_token({"alg": "none", "kid": fake_issuer.key.kid}, fake_issuer.id_token_defaults())
    with pytest.raises(InvalidToken) as info:
        decode_jwt(token, keyset, algorithms=("RS256", "none"))
    assert info.value.check == "alg"


def test_hs256_with_public_key_as_secret_refused(fake_issuer, keyset):
    public_pem = fake_issuer.key.as_pem(private=False)
    token = hs256_token(fake_issuer.id_token_defaults(), public_pem, {"kid": fake_issuer.key.kid})
    with pytest.raises(InvalidToken) as info:
        decode_jwt(token, keyset, algorithms=("RS256", "HS256"))
    assert info.value.check == "alg"


def test_bad_signature_refused(fake_issuer, keyset):
    token = fake_issuer.mint_id_token()
    head, payload, signature = token.split(".")
    forged_payload = fake_issuer.mint_id_token({"sub": "admin"}).split(".")[1]
    with pytest.raises(InvalidToken) as info:
        decode_jwt(f"{head}.{forged_payload}.{signature}", keyset)
    assert info.value.check == "signature"


def test_signed_by_other_key_with_published_kid_refused(fake_issuer, keyset):
    impostor = cached_rsa_key(6, fake_issuer.key.kid)  # same kid, different key
    with pytest.raises(InvalidToken) as info:
        decode_jwt(fake_issuer.mint_id_token(key=impostor), keyset)
    assert info.value.check == "signature"


@pytest.mark.parametrize("header_name", ["jwk", "jku", "x5u"])
def test_embedded_key_headers_are_ignored(fake_issuer, keyset, header_name):
    attacker = cached_rsa_key(7, "attacker")
    value = attacker.as_dict(private=False) if header_name == "jwk" else "http://attacker.test/keys"
    # signed by the attacker, naming the attacker's key in the header, with a kid we publish
    token = fake_issuer.mint_id_token(key=attacker, header={"kid": fake_issuer.key.kid, header_name: value})
    with pytest.raises(InvalidToken):
        decode_jwt(token, keyset)


def test_algorithm_pinning_refuses_es256_unless_allowed(fake_issuer, keyset):
    ec = new_ec_key("ec-1")
    fake_issuer.publish(fake_issuer.key, ec)
    token = fake_issuer.mint_id_token(key=ec)
    with pytest.raises(InvalidToken) as info:
        decode_jwt(token, keyset)
    assert info.value.check == "alg"
    _, claims = decode_jwt(token, keyset, algorithms=("RS256", "ES256"))
    assert claims["iss"] == fake_issuer.issuer


def test_negotiate_algorithms():
    assert negotiate_algorithms(None) == ("RS256",)
    assert negotiate_algorithms(["ES256"], ("RS256", "ES256", "PS256")) == ("RS256", "ES256")
    assert negotiate_algorithms(["HS256", "none", "ES512"], ("RS256", "HS256", "none")) == ("RS256",)


@pytest.mark.parametrize("garbage", ["", "abc", "a.b", "a.b.c.d.e", "!!!.e30.sig"])
def test_garbage_refused_with_reason(keyset, garbage):
    with pytest.raises(InvalidToken) as info:
        decode_jwt(garbage, keyset)
    assert info.value.reason


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e400", "-1e400"])
def test_non_finite_numbers_in_the_payload_are_refused(fake_issuer, keyset, value):
    """RFC 8259 §6: NaN and Infinity are not JSON; Python's parser takes them (and 1e400 as infinity)."""
    claims = json.dumps(fake_issuer.id_token_defaults()).replace('"exp": ', f'"exp": {value}, "was": ')
    with pytest.raises(InvalidToken) as info:
        decode_jwt(fake_issuer.mint_text(claims), keyset)
    assert info.value.check == "format" and "not JSON" in info.value.reason


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_numbers_in_the_header_are_refused(fake_issuer, keyset, value):
    token = fake_issuer.mint_text(json.dumps(fake_issuer.id_token_defaults()), {"x-rate": value})
    with pytest.raises(InvalidToken) as info:
        decode_jwt(token, keyset)
    assert info.value.check == "format"


def test_b64url_json_refuses_non_finite_numbers():
    from common.jwks import b64url_json

    for text in (b'{"a": NaN}', b"[Infinity]", b'{"a": -Infinity}', b'{"a": 1e999}'):
        with pytest.raises(ValueError):
            b64url_json(base64.urlsafe_b64encode(text).rstrip(b"=").decode())
    assert b64url_json(base64.urlsafe_b64encode(b'{"a": 1.5e300}').rstrip(b"=").decode()) == {"a": 1.5e300}


def test_rsa_key_under_2048_bits_is_ignored(fake_issuer, keyset, caplog):
    """RFC 7518 §3.3: a 1024-bit modulus can be factored; its key is skipped with a log line."""
    weak = weak_rsa_key()
    fake_issuer.publish(fake_issuer.key, weak)
    with pytest.raises(InvalidToken) as info:
        decode_jwt(fake_issuer.mint_id_token(key=weak), keyset)
    assert info.value.check == "kid" and "weak-1024" in info.value.reason
    assert "an RSA key of 1024 bits" in caplog.text and "weak-1024" in caplog.text
    assert [jwk["kid"] for jwk in keyset.keys()] == [fake_issuer.key.kid]
    decode_jwt(fake_issuer.mint_id_token(), keyset)  # the 2048-bit key next to it still verifies


class TestRegisteredClaims:
    ISS = "https://issuer.test/oauth2/default"
    NOW = 1_700_000_000

    def claims(self, **kw):
        return {"iss": self.ISS, "aud": "client", "exp": self.NOW + 300, "iat": self.NOW, **kw}

    def check(self, claims, **kw):
        return check_registered_claims(
            claims, issuer=self.ISS, audience="client", leeway=60, now=self.NOW, **kw
        )

    def test_accepts(self):
        assert {c["check"] for c in self.check(self.claims())} == {"iss", "aud", "exp", "iat"}

    @pytest.mark.parametrize(
        "changes,failed",
        [
            ({"iss": ISS + "/"}, "iss"),
            ({"aud": "other"}, "aud"),
            ({"aud": ["other", "another"]}, "aud"),
            ({"aud": 5}, "aud"),
            ({"exp": NOW - 61}, "exp"),
            ({"exp": "soon"}, "exp"),
            ({"iat": NOW + 61}, "iat"),
            ({"nbf": NOW + 61}, "nbf"),
            ({"exp": None}, "exp"),
            ({"exp": float("nan")}, "exp"),
            ({"exp": float("inf")}, "exp"),
            ({"exp": 10**400}, "exp"),
            ({"nbf": float("nan")}, "nbf"),
            ({"nbf": float("-inf")}, "nbf"),
            ({"iat": float("nan")}, "iat"),
            ({"iat": float("-inf")}, "iat"),
        ],
    )
    def test_rejects(self, changes, failed):
        claims = {k: v for k, v in self.claims(**changes).items() if v is not None}
        with pytest.raises(InvalidToken) as info:
            self.check(claims)
        assert info.value.check == failed
        assert info.value.checks[-1] == {"check": failed, "ok": False, "detail": info.value.reason}

    def test_leeway_accepts_small_skew(self):
        self.check(self.claims(exp=self.NOW - 59, iat=self.NOW + 59, nbf=self.NOW + 59))

    def test_audience_list(self):
        self.check(self.claims(aud=["other", "client"]))
        check_registered_claims(
            self.claims(aud="api://x"),
            issuer=self.ISS,
            audience={"api://x", "api://y"},
            leeway=0,
            now=self.NOW,
        )


def _b64(data: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def test_deeply_nested_header_is_invalid_token_not_recursion_error(keyset, fake_issuer):
    """``[[[…]]]`` 3000 deep fits the 8 KiB token cap; json.loads would raise RecursionError (a 500)."""
    nested = _b64(b"[" * 3000 + b"]" * 3000)
    with pytest.raises(InvalidToken) as info:
        decode_jwt(f"{nested}.e30.c2ln", keyset)
    assert info.value.check == "format"
    assert fake_issuer.count("jwks") == 0  # refused before any key lookup


def test_header_segment_is_capped_before_parsing(keyset):
    """A header over MAX_HEADER_SEGMENT is refused unparsed, even when it is valid JSON."""
    from common.jwks import MAX_HEADER_SEGMENT

    header = _b64(json.dumps({"alg": "RS256", "pad": "x" * MAX_HEADER_SEGMENT}).encode())
    with pytest.raises(InvalidToken) as info:
        decode_jwt(f"{header}.e30.c2ln", keyset)
    assert info.value.check == "format" and str(MAX_HEADER_SEGMENT) in info.value.reason


def test_b64url_json_turns_deep_nesting_into_value_error():
    from common.jwks import b64url_json

    with pytest.raises(ValueError):
        b64url_json(_b64(b"[" * 5000 + b"]" * 5000))
    with pytest.raises(ValueError):
        b64url_json(_b64(b'{"a": 1}'), max_length=4)
    assert b64url_json(_b64(b'{"a": 1}')) == {"a": 1}


def test_signed_but_deeply_nested_payload_is_invalid_token(fake_issuer, keyset):
    """Even a correctly signed payload must not turn into a RecursionError."""
    from joserfc import jws

    payload = b"[" * 2500 + b"]" * 2500  # still within the 8 KiB token cap
    token = jws.serialize_compact({"alg": "RS256", "kid": fake_issuer.key.kid}, payload, fake_issuer.key)
    with pytest.raises(InvalidToken) as info:
        decode_jwt(token, keyset)
    assert info.value.check == "format"


def test_token_hash_of_non_ascii_token_is_invalid_token():
    """at_hash over a token with non-ASCII characters: a refused token, not UnicodeEncodeError."""
    from common.jwks import token_hash

    assert token_hash("ascii-token", "RS256")  # unchanged for real tokens
    with pytest.raises(InvalidToken) as info:
        token_hash("tökén", "RS256")
    assert info.value.check == "at_hash"


# -- strict base64url, and the signature check built once per key and alg ------------------


def _resign(token: str, signature: bytes) -> str:
    head, payload, _ = token.split(".")
    return f"{head}.{payload}.{_b64(signature)}"


def test_b64url_decode_accepts_only_canonical_base64url():
    from common.jwks import b64url_decode

    assert b64url_decode("") == b""
    assert b64url_decode("e30") == b"{}"
    assert b64url_decode("_-8") == b"\xff\xef"  # the URL-safe characters decode as 63 and 62
    for bad in (
        "e30=",
        "e3+0",
        "e3/0",
        "e3 0",
        "e30\n",
        "e3!0",
        "e3é0",
        "e31",  # stray low bits in the last character: a second spelling of "{}"
        "e30AA",  # 4n+1 characters cannot be base64
    ):
        with pytest.raises(ValueError):
            b64url_decode(bad)


@pytest.mark.parametrize("part", [0, 1, 2])
@pytest.mark.parametrize("mangle", ["pad", "stray-bits", "standard-alphabet", "space", "extra-char"])
def test_non_canonical_segments_are_refused(fake_issuer, keyset, part, mangle):
    """Each segment has exactly one spelling: lenient decoders would accept all of these."""
    token = fake_issuer.mint_id_token()
    decode_jwt(token, keyset)  # the unmangled token is fine
    segments = token.split(".")
    segment = segments[part]
    if mangle == "pad":
        segment += "=" * (-len(segment) % 4 or 4)
    elif mangle == "stray-bits":
        if len(segment) % 4 == 0:
            segment += "AA"  # make room for a last character with stray bits
        segment = segment[:-1] + chr(ord(segment[-1]) + 1)  # same bytes to a lenient decoder
    elif mangle == "standard-alphabet":
        segment = segment[:1] + "+" + segment[2:]
    elif mangle == "space":
        segment = segment[:4] + " " + segment[4:]
    else:
        segment += "A" if len(segment) % 4 == 0 else "A" * (5 - len(segment) % 4)  # 4n+1 characters
    segments[part] = segment
    with pytest.raises(InvalidToken) as info:
        decode_jwt(".".join(segments), keyset)
    assert info.value.check in ("format", "signature")


def test_padded_signature_is_refused(fake_issuer, keyset):
    token = fake_issuer.mint_id_token()
    assert len(token.split(".")[2]) % 4  # a 2048-bit RSA signature is 342 characters unpadded
    with pytest.raises(InvalidToken) as info:
        decode_jwt(token + "==", keyset)
    assert info.value.check == "signature"


def _rsa_jwks(*keys, alg=None):
    from tests.fake_issuer import Reply

    return Reply(
        200,
        {"keys": [{**k.as_dict(private=False), "use": "sig", **({"alg": alg} if alg else {})} for k in keys]},
    )


def _ps256_token(fake_issuer, key, salt_length):
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    head = _b64(json.dumps({"alg": "PS256", "kid": key.kid}).encode())
    body = _b64(json.dumps(fake_issuer.id_token_defaults()).encode())
    signature = key.private_key.sign(
        f"{head}.{body}".encode(), padding.PSS(padding.MGF1(hashes.SHA256()), salt_length), hashes.SHA256()
    )
    return f"{head}.{body}.{_b64(signature)}"


def test_ps256_needs_a_salt_as_long_as_the_hash(fake_issuer, keyset):
    """RFC 7518 §3.5: PS256's salt MUST be 32 bytes; another length is a different signature scheme."""
    key = cached_rsa_key(0, "ps-key")
    fake_issuer.script("jwks", _rsa_jwks(key, alg="PS256"))
    _, claims = decode_jwt(_ps256_token(fake_issuer, key, 32), keyset, algorithms=("PS256",))
    assert claims["iss"] == fake_issuer.issuer
    with pytest.raises(InvalidToken) as info:
        decode_jwt(_ps256_token(fake_issuer, key, 20), keyset, algorithms=("PS256",))
    assert info.value.check == "signature"
    with pytest.raises(InvalidToken) as info:  # pinned: PS256 only when the caller allows it
        decode_jwt(_ps256_token(fake_issuer, key, 32), keyset)
    assert info.value.check == "alg"


def test_rs256_signature_does_not_pass_as_ps256(fake_issuer, keyset):
    """The verifier is chosen by (kid, alg): an RS256 signature under a PS256 header fails."""
    key = cached_rsa_key(0, "both-key")
    fake_issuer.script("jwks", _rsa_jwks(key))  # no "alg" in the JWK: usable for either
    rs256 = fake_issuer.mint_id_token(key=key)
    decode_jwt(rs256, keyset, algorithms=("RS256", "PS256"))
    head = _b64(json.dumps({"alg": "PS256", "kid": key.kid}).encode())
    _, payload, signature = rs256.split(".")
    with pytest.raises(InvalidToken) as info:
        decode_jwt(f"{head}.{payload}.{signature}", keyset, algorithms=("RS256", "PS256"))
    assert info.value.check == "signature"


def test_es256_signature_must_be_raw_r_and_s(fake_issuer, keyset):
    """RFC 7518 §3.4: R || S, 64 bytes for P-256; DER or a shorter R || S is refused."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    key = new_ec_key("ec-raw")
    fake_issuer.publish(fake_issuer.key, key)
    token = fake_issuer.mint_id_token(key=key)
    decode_jwt(token, keyset, algorithms=("ES256",))
    signing_input = token.rpartition(".")[0].encode()
    der = key.private_key.sign(signing_input, ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    for signature in (der, raw[:-1], b"\0" + raw):
        with pytest.raises(InvalidToken) as info:
            decode_jwt(_resign(token, signature), keyset, algorithms=("ES256",))
        assert info.value.check == "signature"
    assert decode_jwt(_resign(token, raw), keyset, algorithms=("ES256",))


def test_key_whose_key_ops_exclude_verify_is_not_used(fake_issuer, keyset):
    """RFC 7517 §4.3: a published key limited to other operations never verifies a token."""
    from tests.fake_issuer import Reply

    key = fake_issuer.key
    fake_issuer.script("jwks", Reply(200, {"keys": [{**key.as_dict(private=False), "key_ops": ["encrypt"]}]}))
    with pytest.raises(InvalidToken):
        decode_jwt(fake_issuer.mint_id_token(), keyset)


def test_cached_verifier_is_dropped_when_the_key_behind_a_kid_changes(fake_issuer, keyset, clock):
    """A new key under the same kid: after the refetch, old signatures fail and new ones verify."""
    old_token = fake_issuer.mint_id_token()
    decode_jwt(old_token, keyset)
    replacement = cached_rsa_key(8, fake_issuer.key.kid)
    fake_issuer.publish(replacement)
    decode_jwt(old_token, keyset)  # still within the JWKS ttl: the cached key answers
    clock.now += 301
    new_token = fake_issuer.mint_id_token(key=replacement)
    _, claims = decode_jwt(new_token, keyset)
    assert claims["iss"] == fake_issuer.issuer
    with pytest.raises(InvalidToken) as info:
        decode_jwt(old_token, keyset)
    assert info.value.check == "signature"
    assert fake_issuer.count("jwks") == 2


def test_key_for_keeps_the_refetch_policy_for_unknown_kids(fake_issuer, keyset, clock):
    decode_jwt(fake_issuer.mint_id_token(), keyset)
    clock.now += 31
    for _ in range(3):
        with pytest.raises(InvalidToken) as info:
            keyset.key_for("no-such-kid", "RS256")
        assert info.value.check == "kid"
    assert fake_issuer.count("jwks") == 2


def test_header_cache_hands_out_copies_and_still_checks_every_token(fake_issuer, keyset):
    """Tokens sharing a header decode it once; a caller's edits never reach the next token."""
    first, second = fake_issuer.mint_id_token({"nonce": "1"}), fake_issuer.mint_id_token({"nonce": "2"})
    assert first.split(".")[0] == second.split(".")[0]
    header, claims = decode_jwt(first, keyset)
    header["alg"] = "none"
    header2, claims2 = decode_jwt(second, keyset)
    assert header2["alg"] == "RS256" and (claims["nonce"], claims2["nonce"]) == ("1", "2")
    with pytest.raises(InvalidToken) as info:  # same cached header, but the caller now allows only ES256
        decode_jwt(second, keyset, algorithms=("ES256",))
    assert info.value.check == "alg"


@pytest.mark.parametrize("advertised", [5, True, [["RS256"]], {"RS256": 1}, "RS256"])
def test_a_malformed_advertised_algorithm_list_counts_as_nothing_advertised(advertised):
    assert negotiate_algorithms(advertised, ("RS256", "ES256")) == ("RS256",)
