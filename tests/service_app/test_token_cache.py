"""Unit tests of the single-flight token cache and its retry policy."""

from __future__ import annotations

import threading
import time

import pytest
import redis

from common.errors import FlowError
from common.http import IssuerUnreachable
from common.tokens import TokenSet
from service_app.token_cache import Backoff, CachedToken, MemoryStore, RedisStore, TokenCache


def make_token(name: str, lifetime: float, now: float | None = None) -> TokenSet:
    now = time.time() if now is None else now
    return TokenSet(access_token=name, token_type="Bearer", expires_at=now + lifetime, scope="customScope")


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


class Fetcher:
    """Counts token requests; each answer is a new token."""

    def __init__(self, lifetime=3600.0, clock=time.time, delay=0.0, errors=()):
        self.count = 0
        self.lifetime = lifetime
        self.clock = clock
        self.delay = delay
        self.errors = list(errors)
        self.guard = threading.Lock()

    def __call__(self, log=None):
        with self.guard:
            self.count += 1
            number = self.count
        if self.delay:
            time.sleep(self.delay)
        if self.errors:
            raise self.errors.pop(0)
        return make_token(f"token-{number}", self.lifetime, self.clock())


def no_sleep_backoff(attempts=3, record=None):
    return Backoff(
        attempts=attempts,
        base_delay=0.5,
        max_delay=4.0,
        sleep=(record.append if record is not None else lambda s: None),
    )


def run_threads(count: int, target) -> list:
    results, errors = [], []
    barrier = threading.Barrier(count)

    def worker():
        barrier.wait()
        try:
            results.append(target())
        except Exception as error:  # noqa: BLE001 - collected and asserted on
            errors.append(error)

    threads = [threading.Thread(target=worker) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    return results + errors


def test_cache_reuses_the_token_until_shortly_before_expiry():
    clock = Clock()
    fetch = Fetcher(lifetime=3600, clock=clock)
    cache = TokenCache(fetch, clock=clock)
    first, fetched = cache.get()
    assert fetched and fetch.count == 1
    clock.now += 3600 - 61  # more than the 60 s margin left
    again, fetched = cache.get()
    assert again.token.access_token == first.token.access_token and not fetched
    clock.now += 2  # now within 60 s of expiry: refresh early
    renewed, fetched = cache.get()
    assert fetched and renewed.token.access_token == "token-2" and fetch.count == 2


def test_margin_is_a_fraction_of_a_short_lifetime():
    """A 10 s token is used for 9 s, not thrown away at once by a 60 s margin."""
    clock = Clock()
    fetch = Fetcher(lifetime=10, clock=clock)
    cache = TokenCache(fetch, clock=clock)
    cache.get()
    clock.now += 8.9
    assert cache.get()[1] is False
    clock.now += 0.2
    assert cache.get()[1] is True
    assert fetch.count == 2


def test_single_flight_under_concurrency():
    fetch = Fetcher(delay=0.2)
    cache = TokenCache(fetch)
    results = run_threads(32, lambda: cache.get()[0].token.access_token)
    assert results == ["token-1"] * 32
    assert fetch.count == 1


def test_waiters_share_the_leaders_error_and_a_refusal_is_never_retried():
    refusal = FlowError("invalid_client", "Client authentication failed.")
    fetch = Fetcher(delay=0.2, errors=[refusal])
    cache = TokenCache(fetch, backoff=no_sleep_backoff())
    results = run_threads(16, cache.get)
    assert len(results) == 16 and all(
        isinstance(r, FlowError) and r.error == "invalid_client" for r in results
    )
    assert fetch.count == 1  # no retry, and no second flight by the waiters


def test_unreachable_issuer_is_retried_with_bounded_backoff():
    pauses: list[float] = []
    fetch = Fetcher(errors=[IssuerUnreachable("down"), IssuerUnreachable("still down")])
    cache = TokenCache(fetch, backoff=no_sleep_backoff(attempts=3, record=pauses))
    cached, fetched = cache.get()
    assert fetched and cached.token.access_token == "token-3"
    assert fetch.count == 3
    assert len(pauses) == 2 and 0.25 <= pauses[0] <= 0.5 and 0.5 <= pauses[1] <= 1.0


def test_backoff_gives_up_after_its_attempts():
    pauses: list[float] = []
    fetch = Fetcher(errors=[IssuerUnreachable(f"down {n}") for n in range(10)])
    cache = TokenCache(fetch, backoff=no_sleep_backoff(attempts=4, record=pauses))
    with pytest.raises(IssuerUnreachable):
        cache.get()
    assert fetch.count == 4
    assert len(pauses) == 3 and all(p <= 4.0 for p in pauses)


def test_backoff_pauses_never_exceed_the_maximum():
    backoff = Backoff(attempts=20, base_delay=0.5, max_delay=4.0)
    assert all(backoff.delay(n) <= 4.0 for n in range(1, 20))
    assert backoff.delay(10) >= 2.0  # grows to the cap (full jitter in [cap/2, cap])


def test_invalidate_discards_only_the_refused_token():
    fetch = Fetcher()
    cache = TokenCache(fetch)
    old = cache.get()[0].token.access_token
    assert cache.invalidate(old) is True
    new = cache.get()[0].token.access_token
    assert new != old
    # A second caller refused with the *old* token must not drop the new one.
    assert cache.invalidate(old) is False
    assert cache.get()[0].token.access_token == new and fetch.count == 2


def test_memory_store_counts_calls_per_token():
    store = MemoryStore()
    store.save(CachedToken(make_token("a", 60), time.time()))
    assert [store.count_call("a") for _ in range(3)] == [1, 2, 3]
    store.save(CachedToken(make_token("b", 60), time.time()))
    assert store.calls("a") == 0 and store.calls("b") == 0


@pytest.fixture
def redis_client(redis_server):
    client = redis.Redis.from_url(redis_server.url)
    yield client
    client.close()


def test_redis_store_round_trip_and_compare_and_discard(redis_client):
    store = RedisStore(redis_client, prefix="test:token:roundtrip")
    redis_client.delete(store.key)
    assert store.load() is None
    cached = CachedToken(make_token("abc.def.ghi", 30), time.time())
    store.save(cached)
    loaded = store.load()
    assert loaded.token.access_token == "abc.def.ghi" and loaded.fetched_at == pytest.approx(
        cached.fetched_at
    )
    assert 0 < redis_client.ttl(store.key) <= 31  # the key expires with the token
    assert store.discard("another-token") is False and store.load() is not None
    assert store.discard("abc.def.ghi") is True and store.load() is None
    assert [store.count_call("abc.def.ghi") for _ in range(2)] == [1, 2]
    assert store.calls("abc.def.ghi") == 2


def test_redis_store_single_flight_across_processes(redis_client):
    """Two caches sharing one Redis key behave like two gunicorn workers: one fetch."""
    prefix = "test:token:shared"
    redis_client.delete(prefix)
    fetch = Fetcher(delay=0.2)
    caches = [TokenCache(fetch, store=RedisStore(redis_client, prefix=prefix)) for _ in range(2)]
    counter = iter(range(1000))
    results = run_threads(20, lambda: caches[next(counter) % 2].get()[0].token.access_token)
    assert results == ["token-1"] * 20
    assert fetch.count == 1
