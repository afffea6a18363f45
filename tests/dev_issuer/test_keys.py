"""The key-generation lock releases only what it owns (against a real Redis)."""

import pytest
import redis

from dev_issuer import keys as keys_module
from dev_issuer.keys import KEYS, LOCK, Keyring

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
