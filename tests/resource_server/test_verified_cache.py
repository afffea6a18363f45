"""The validator's cache of verified tokens (resource_server/validation.py ``JWTValidator``), in process.

A token is kept from its second request on; its first is remembered by
its hash alone, so a stream of tokens each sent once costs no memory beyond
the hashes.  Against the fake issuer over real loopback HTTP.
"""

from __future__ import annotations

import time

import pytest

from common.config import load_settings
from resource_server import validation
from resource_server.errors import BearerError
from resource_server.validation import JWTValidator


@pytest.fixture
def validator(fake_issuer):
    return JWTValidator(load_settings({"ISSUER": fake_issuer.issuer, "API_AUDIENCE": "api://default"}))


@pytest.fixture
def full_checks(monkeypatch):
    """How many tokens went through the full check (signature and claims)."""
    calls = []
    original = validation.decode_jwt

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(validation, "decode_jwt", counting)
    return calls


def test_a_token_seen_once_leaves_only_its_hash(fake_issuer, validator):
    for _ in range(10):
        validator.validate(fake_issuer.mint_access_token())
    assert len(validator._verified) == 10
    assert all(kept is None for _, kept in validator._verified.values())


def test_a_repeated_token_is_checked_twice_then_answered_from_the_cache(fake_issuer, validator, full_checks):
    token = fake_issuer.mint_access_token()
    answers = [validator.validate(token) for _ in range(5)]
    assert len(full_checks) == 2  # the first sighting, and the second that admits it
    assert all(answer is answers[1] for answer in answers[1:])
    assert answers[0].sub == answers[1].sub == fake_issuer.user["email"]


def test_a_token_remembered_once_is_checked_again_once_it_expired(fake_issuer, validator, monkeypatch):
    token = fake_issuer.mint_access_token(exp=int(time.time()) + 5)
    validator.validate(token)
    later = time.time() + 5 + validator.settings.clock_leeway + 1
    monkeypatch.setattr(validation.time, "time", lambda: later)
    with pytest.raises(BearerError):
        validator.validate(token)
    assert len(validator._verified) == 0  # the stale hash is gone, nothing new was kept


def test_the_cache_stays_bounded_and_forgets_the_oldest_first(fake_issuer, validator, monkeypatch):
    monkeypatch.setattr(JWTValidator, "CACHE_SIZE", 4)
    kept = fake_issuer.mint_access_token()
    validator.validate(kept)
    validator.validate(kept)  # admitted: kept in its first sighting's place, the oldest
    for _ in range(4):
        validator.validate(fake_issuer.mint_access_token())
    assert len(validator._verified) == 4
    assert all(value is None for _, value in validator._verified.values())  # the oldest went first
