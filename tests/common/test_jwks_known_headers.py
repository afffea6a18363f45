"""A header segment decoded once (common/jwks.py ``_known_headers``), and every token still checked in full.

Every token an issuer signs with one key starts with the same header
segment, so :func:`common.jwks.decode_jwt` decodes each distinct segment
once; what a new token brings (payload, signature) is checked every time.
"""

from __future__ import annotations

import pytest

from common import jwks
from common.http import http_session
from common.jwks import InvalidToken, KeySet, decode_jwt
from tests.fake_issuer import cached_rsa_key


@pytest.fixture
def keyset(fake_issuer):
    return KeySet(fake_issuer.url("jwks"), http=http_session(timeout=0.5))


@pytest.fixture
def known(monkeypatch):
    """An empty table of known headers for this test, so earlier tests cannot fill it."""
    table: dict[str, dict] = {}
    monkeypatch.setattr(jwks, "_known_headers", table)
    return table


@pytest.fixture
def extract_calls(monkeypatch):
    """How many times joserfc's compact parser ran."""
    calls = []
    original = jwks.jws.extract_compact

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(jwks.jws, "extract_compact", counting)
    return calls


def test_tokens_sharing_a_header_segment_parse_it_once(fake_issuer, keyset, known, extract_calls):
    tokens = [fake_issuer.mint_access_token() for _ in range(5)]
    assert len({token.split(".")[0] for token in tokens}) == 1
    subjects = [decode_jwt(token, keyset)[1]["jti"] for token in tokens]
    assert len(set(subjects)) == 5  # each token's own payload
    assert len(extract_calls) == 1  # the header was parsed for the first token only
    assert list(known) == [tokens[0].split(".")[0]]


@pytest.mark.parametrize(
    "mangle, check",
    [
        (lambda h, p, s: f"{h}.{p}!.{s}", "format"),  # payload not base64url
        (lambda h, p, s: f"{h}.{p}=.{s}", "format"),  # payload padded
        (lambda h, p, s: f"{h}.{p}.{'A' * 2800}", "format"),  # signature over joserfc's size limit
        (lambda h, p, s: f"{h}.{p[:-4]}AAAA.{s}", "signature"),  # payload changed after signing
        (lambda h, p, s: f"{h}.{p}.{s[:-4]}AAAA", "signature"),  # signature changed
        (lambda h, p, s: f"{h}.{p}.", "signature"),  # no signature
    ],
)
def test_a_known_header_still_checks_each_tokens_payload_and_signature(
    fake_issuer, keyset, known, mangle, check
):
    decode_jwt(fake_issuer.mint_access_token(), keyset)  # the header is known now
    header, payload, signature = fake_issuer.mint_access_token().split(".")
    assert header in known
    with pytest.raises(InvalidToken) as info:
        decode_jwt(mangle(header, payload, signature), keyset)
    assert info.value.check == check


def test_a_token_signed_by_another_key_under_a_known_header_is_refused(fake_issuer, keyset, known):
    decode_jwt(fake_issuer.mint_access_token(), keyset)
    attacker = cached_rsa_key(7, fake_issuer.key.kid)  # same kid, so the same header segment
    forged = fake_issuer.mint_access_token(key=attacker)
    assert forged.split(".")[0] in known
    with pytest.raises(InvalidToken) as info:
        decode_jwt(forged, keyset)
    assert info.value.check == "signature"


def test_made_up_headers_never_grow_the_table_past_its_size(fake_issuer, keyset, known):
    for number in range(jwks._KNOWN_HEADERS_SIZE * 3):
        token = fake_issuer.mint_access_token(header={"kid": f"made-up-{number}"})
        with pytest.raises(InvalidToken):
            decode_jwt(token, keyset)
    assert 0 < len(known) <= jwks._KNOWN_HEADERS_SIZE


@pytest.mark.parametrize("extra", [{"jwk": {"kty": "RSA"}}, {"x5c": ["MII..."]}, {"b64": True}])
def test_headers_with_structured_values_or_b64_are_never_remembered(fake_issuer, keyset, known, extra):
    token = fake_issuer.mint_access_token(header={"kid": fake_issuer.key.kid, **extra})
    header, _ = decode_jwt(token, keyset)
    assert header[next(iter(extra))] == next(iter(extra.values()))
    assert not known  # shared copies of nested values could be edited by one caller for the next
