"""Signing keys against a real Redis: the lock releases only what it owns; rotation is bounded.

Rotations are rate-limited and never unpublish a key whose tokens may still
be live (``dev_issuer/keys.py``).
"""

import pytest
import redis

from common.config import load_settings
from dev_issuer import keys as keys_module
from dev_issuer.keys import (
    KEYS,
    LOCK,
    MAX_RETIRED,
    ROTATION_INTERVAL,
    Keyring,
    RotationRefused,
    retention_for,
)
from dev_issuer.tokens import ID_TOKEN_LIFETIME

#: A Redis database no other test uses (the suite uses 0, 1, 3 and 7).
KEYS_TEST_DB = 9


@pytest.fixture
def store(redis_server):
    client = redis.Redis.from_url(redis_server.url.rsplit("/", 1)[0] + f"/{KEYS_TEST_DB}")
    client.flushdb()
    yield client
    client.flushdb()


def expire_lock_and_let_another_worker_take_it(store, monkeypatch):
    """While this worker generates a key, its lock expires and another worker acquires it."""
    real = keys_module.generate_key

    def slow_generate_key():
        store.set(LOCK, b"other-worker-token", ex=30)
        return real()

    monkeypatch.setattr(keys_module, "generate_key", slow_generate_key)


def test_first_generation_leaves_another_workers_lock_alone(store, monkeypatch):
    expire_lock_and_let_another_worker_take_it(store, monkeypatch)
    assert len(Keyring(store).keys()) == 2
    assert store.get(LOCK) == b"other-worker-token"


def test_rotation_leaves_another_workers_lock_alone(store, monkeypatch):
    keyring = Keyring(store)
    before = keyring.summary()
    expire_lock_and_let_another_worker_take_it(store, monkeypatch)
    after = keyring.rotate()
    assert after["current"] == before["next"] and before["current"] in after["retired"]
    assert store.get(LOCK) == b"other-worker-token"
    assert store.exists(KEYS)


def test_lock_is_released_normally(store):
    Keyring(store).rotate()
    assert not store.exists(LOCK)


class Clock:
    """A wall clock the test moves by hand."""

    def __init__(self):
        self.now = 1_800_000_000.0

    def __call__(self):
        return self.now


def kids(keyring) -> set[str]:
    return {k["kid"] for k in keyring.public_jwks()["keys"]}


def test_rotations_are_rate_limited_across_keyrings(store):
    """Two workers (two keyrings, one Redis): the second rotation within the interval is refused."""
    clock = Clock()
    first, second = Keyring(store, clock=clock), Keyring(store, clock=clock)
    first.rotate()
    clock.now += 1
    with pytest.raises(RotationRefused) as refused:
        second.rotate()
    assert refused.value.retry_after == ROTATION_INTERVAL - 1
    clock.now += ROTATION_INTERVAL
    second.rotate()


def test_a_retired_key_stays_published_until_its_tokens_have_expired(store):
    """The report's attack: three rotations in a row no longer unpublish the key of live tokens."""
    clock = Clock()
    retention = 3600 + 60 + 60
    keyring = Keyring(store, retention=retention, clock=clock)
    signing, retired_at = keyring.summary()["current"], clock.now
    for _ in range(3):
        keyring.rotate()
        clock.now += ROTATION_INTERVAL
    assert signing in kids(keyring) and signing in keyring.summary()["retired"]
    # Once every token it signed has expired (and only then), a rotation drops it.
    clock.now = retired_at + retention - 1
    keyring.rotate()
    assert signing in kids(keyring)
    clock.now += ROTATION_INTERVAL
    keyring.rotate()
    assert signing not in kids(keyring)


def test_rotation_is_refused_rather_than_dropping_a_needed_key(store):
    """At most MAX_RETIRED retired keys are published (relying parties read 50); none is dropped early."""
    clock = Clock()
    keyring = Keyring(store, retention=86400, clock=clock)
    published = kids(keyring)
    for _ in range(MAX_RETIRED):
        keyring.rotate()
        published |= kids(keyring)
        clock.now += ROTATION_INTERVAL
    with pytest.raises(RotationRefused) as refused:
        keyring.rotate()
    assert "retired keys still verify live tokens" in str(refused.value)
    assert refused.value.retry_after == 86400 - MAX_RETIRED * ROTATION_INTERVAL
    assert len(kids(keyring)) == len(keyring.public_jwks()["keys"]) == MAX_RETIRED + 2 <= 50
    assert published == kids(keyring)


def test_retention_covers_the_longest_token_the_issuer_mints():
    settings = load_settings({"DEV_ISSUER_ACCESS_TOKEN_LIFETIME": "86400", "CLOCK_LEEWAY": "120"})
    assert retention_for(settings) >= 86400 + 120
    short = load_settings({"DEV_ISSUER_ACCESS_TOKEN_LIFETIME": "60", "CLOCK_LEEWAY": "0"})
    assert retention_for(short) >= ID_TOKEN_LIFETIME
