"""PKCE (RFC 7636), state and nonce."""

import re

import pytest

from common.pkce import code_challenge_s256, generate_code_verifier, generate_nonce, generate_state


def test_rfc7636_appendix_b_vector():
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert code_challenge_s256(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


@pytest.mark.parametrize("length", [43, 64, 128])
def test_verifier_length_and_alphabet(length):
    verifier = generate_code_verifier(length)
    assert len(verifier) == length
    assert re.fullmatch(r"[A-Za-z0-9\-._~]+", verifier)


@pytest.mark.parametrize("length", [42, 129])
def test_verifier_length_out_of_range(length):
    with pytest.raises(ValueError):
        generate_code_verifier(length)


def test_values_are_fresh_and_long_enough():
    for make in (generate_state, generate_nonce, generate_code_verifier):
        values = {make() for _ in range(50)}
        assert len(values) == 50
        # >= 128 bits: at least 22 base64url characters
        assert all(len(v) >= 22 and re.fullmatch(r"[A-Za-z0-9_\-]+", v) for v in values)
