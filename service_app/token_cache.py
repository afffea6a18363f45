"""A thread-safe, single-flight cache for a client-credentials access token.

A service asks the issuer for a token once and uses it until shortly before
it expires (RFC 6749 §4.4.3, §5.1 ``expires_in``).  Asking for a new token
on every API call would load the issuer for nothing, and most issuers rate
limit their token endpoint (Okta does).

Three rules make the cache safe under load:

* **single flight**: when the token is missing or stale, exactly one caller
  (the *leader*) asks the issuer; every other caller waits for the leader's
  answer and shares it, error included.  Without this, a hundred threads
  that notice an expired token at the same moment make a hundred token
  requests (a "cache stampede").
* **bounded back-off**: a timeout or a 5xx from the issuer
  (:class:`common.http.IssuerUnreachable`) is retried a few times with
  exponentially growing, jittered pauses; any *answer* from the issuer
  (``invalid_client``, ``invalid_scope`` ...) is final and never retried,
  because asking again with the same credentials cannot change it.
* **compare-and-discard**: a ``401`` from the API discards the token only if
  it is still the cached one, so that many callers hit by the same ``401``
  cause one new token, not one each.

Where the token lives is a :class:`CachedTokenBackend`: :class:`MemoryStore` for a
single process (the command line), :class:`RedisStore` when several
processes (gunicorn workers) should share one token.

A DPoP-bound token (RFC 9449) is useless without the private key it is
bound to, so the key is part of the cached entry (``TokenSet.dpop_jwk``):
shared exactly as the token is, in memory or in Redis, and gone with it.
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
import time
from concurrent.futures import Future
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Callable, ContextManager, Iterator, Protocol

import redis

from common.http import IssuerUnreachable
from common.recorder import FlowRecorder
from common.tokens import TokenSet

#: Refresh this many seconds before the token expires, at most ...
MAX_REFRESH_MARGIN = 60.0
#: ... and never earlier than this fraction of its lifetime, so that a token
#: that lives 5 seconds is still used for 4.5 of them.
REFRESH_MARGIN_FRACTION = 0.1
#: Assumed lifetime when the issuer leaves out ``expires_in`` (it is only
#: RECOMMENDED, RFC 6749 §5.1); the 401-and-retry rule covers a shorter one.
DEFAULT_LIFETIME = 300.0


def token_fingerprint(access_token: str) -> str:
    """A short, non-reversible name for a token (for keys and logs, never the token)."""
    return hashlib.sha256(access_token.encode()).hexdigest()[:16]


@dataclass
class CachedToken:
    """A token with the moment it was obtained (to know its lifetime)."""

    token: TokenSet
    fetched_at: float

    @property
    def expires_at(self) -> float:
        if self.token.expires_at:
            return float(self.token.expires_at)
        return self.fetched_at + DEFAULT_LIFETIME

    def refresh_at(self) -> float:
        """When to stop using the token: shortly before it expires."""
        lifetime = max(0.0, self.expires_at - self.fetched_at)
        return self.expires_at - min(MAX_REFRESH_MARGIN, lifetime * REFRESH_MARGIN_FRACTION)

    def fresh(self, now: float) -> bool:
        return now < self.refresh_at()

    def to_json(self) -> str:
        return json.dumps({"token": self.token.to_dict(), "fetched_at": self.fetched_at})

    @classmethod
    def from_json(cls, text: str | bytes) -> "CachedToken":
        data = json.loads(text)
        return cls(TokenSet.from_dict(data["token"]), float(data["fetched_at"]))


class CachedTokenBackend(Protocol):
    """Where the cached token lives."""

    def load(self) -> CachedToken | None: ...

    def save(self, cached: CachedToken) -> None: ...

    def discard(self, access_token: str) -> bool: ...

    def lock(self) -> ContextManager: ...

    def count_call(self, access_token: str) -> int: ...

    def calls(self, access_token: str) -> int: ...


class MemoryStore:
    """The token in this process's memory (one process: the command line, tests)."""

    def __init__(self):
        self._cached: CachedToken | None = None
        self._calls: dict[str, int] = {}
        self._guard = threading.Lock()

    def load(self) -> CachedToken | None:
        return self._cached

    def save(self, cached: CachedToken) -> None:
        with self._guard:
            self._cached = cached
            # Only the current token's counter is worth keeping.
            self._calls = {token_fingerprint(cached.token.access_token): 0}

    def discard(self, access_token: str) -> bool:
        with self._guard:
            if self._cached and self._cached.token.access_token == access_token:
                self._cached = None
                return True
            return False

    def lock(self) -> ContextManager:
        # The cache's own thread lock already serialises this process.
        return nullcontext()

    def count_call(self, access_token: str) -> int:
        key = token_fingerprint(access_token)
        with self._guard:
            self._calls[key] = self._calls.get(key, 0) + 1
            return self._calls[key]

    def calls(self, access_token: str) -> int:
        return self._calls.get(token_fingerprint(access_token), 0)


class RedisStore:
    """The token in Redis, shared by every process of the app.

    The key expires with the token, and a Redis lock makes the single
    flight hold across gunicorn workers: the worker that takes the lock
    asks the issuer, the others find its token when they get the lock.
    """

    #: Deletes the key only if it still holds the token we were refused with.
    _DISCARD = """
    local value = redis.call('GET', KEYS[1])
    if value and string.find(value, ARGV[1], 1, true) then
        return redis.call('DEL', KEYS[1])
    end
    return 0
    """

    def __init__(self, client: redis.Redis, prefix: str = "service_app:token", *, lock_timeout: float = 60.0):
        self.client = client
        self.key = prefix
        self.lock_key = f"{prefix}:lock"
        self.lock_timeout = lock_timeout
        self._discard = client.register_script(self._DISCARD)

    def load(self) -> CachedToken | None:
        raw = self.client.get(self.key)
        return CachedToken.from_json(raw) if raw else None

    def save(self, cached: CachedToken) -> None:
        ttl = max(1, int(cached.expires_at - time.time()) + 1)
        self.client.set(self.key, cached.to_json(), ex=ttl)

    def discard(self, access_token: str) -> bool:
        return bool(self._discard(keys=[self.key], args=[json.dumps(access_token)]))

    @contextmanager
    def lock(self) -> Iterator[None]:
        # ``timeout`` frees the lock if its holder dies mid-request;
        # ``blocking_timeout`` bounds how long a worker waits for it.
        lock = self.client.lock(self.lock_key, timeout=self.lock_timeout, blocking_timeout=self.lock_timeout)
        acquired = lock.acquire()
        try:
            # Without the lock (its holder is stuck) we still serve the
            # caller: at worst one extra token request, never a hang.
            yield
        finally:
            if acquired:
                try:
                    lock.release()
                except redis.exceptions.LockError:
                    pass  # expired meanwhile: someone else may hold it now

    def _calls_key(self, access_token: str) -> str:
        return f"{self.key}:calls:{token_fingerprint(access_token)}"

    def count_call(self, access_token: str) -> int:
        key = self._calls_key(access_token)
        pipe = self.client.pipeline()
        pipe.incr(key)
        pipe.expire(key, 24 * 3600)
        return int(pipe.execute()[0])

    def calls(self, access_token: str) -> int:
        return int(self.client.get(self._calls_key(access_token)) or 0)


@dataclass
class Backoff:
    """Retry an issuer that is down or overloaded, a bounded number of times.

    Only :class:`~common.http.IssuerUnreachable` (connection error,
    timeout, 5xx, non-JSON answer) is retried: it says nothing about our
    request.  Pauses grow exponentially with "full jitter" (AWS
    Architecture Blog, *Exponential Backoff and Jitter*) so that many
    clients that failed together do not come back together.

    :param attempts: total tries, the first included.
    :param base_delay: the pause before the second try, in seconds.
    :param max_delay: the longest single pause.
    """

    attempts: int = 3
    base_delay: float = 0.5
    max_delay: float = 4.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)

    def delay(self, retry: int) -> float:
        """The pause before retry number ``retry`` (1 for the second try)."""
        ceiling = min(self.max_delay, self.base_delay * 2 ** (retry - 1))
        return random.uniform(ceiling / 2, ceiling)

    def run(
        self,
        attempt: Callable[[int], TokenSet],
        on_retry: Callable[[int, float, Exception], None] | None = None,
    ) -> TokenSet:
        """Call ``attempt(n)`` until it succeeds, fails for good, or tries run out."""
        for number in range(1, self.attempts + 1):
            try:
                return attempt(number)
            except IssuerUnreachable as error:
                if number == self.attempts:
                    raise
                pause = self.delay(number)
                if on_retry:
                    on_retry(number, pause, error)
                self.sleep(pause)
        raise AssertionError("unreachable")  # pragma: no cover


class TokenCache:
    """Hands out a valid access token, asking the issuer only when needed.

    :param fetch: obtains a new token; called as ``fetch(log)`` by the one
        leader of a single flight (``log`` is the caller's FlowLog or None).
    :param store: where the token lives (default: this process's memory).
    :param backoff: the retry policy for an unreachable issuer.
    :param clock: ``time.time``, replaceable in tests.
    """

    def __init__(
        self,
        fetch: Callable[[object], TokenSet],
        *,
        store: CachedTokenBackend | None = None,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.fetch = fetch
        self.store = store or MemoryStore()
        self.backoff = backoff or Backoff()
        self.clock = clock
        self._lock = threading.Lock()
        self._inflight: Future | None = None

    def peek(self) -> CachedToken | None:
        """The cached token, fresh or not, without asking the issuer."""
        return self.store.load()

    def get(self, log=None) -> tuple[CachedToken, bool]:
        """A fresh token, and whether this call obtained it from the issuer.

        :param log: a :class:`common.inspector.FlowLog` for the steps, or None.
        :raises FlowError: the issuer's refusal (never retried), or
            :class:`IssuerUnreachable` once the back-off is exhausted.
        """
        cached = self.store.load()
        if cached and cached.fresh(self.clock()):
            return cached, False
        with self._lock:
            # Re-check under the lock: the previous leader may have just
            # stored a token.
            cached = self.store.load()
            if cached and cached.fresh(self.clock()):
                return cached, False
            leader = self._inflight is None
            if leader:
                self._inflight = Future()
            flight = self._inflight
        if not leader:
            # Wait for the leader's answer (or its error) instead of asking too.
            return flight.result(), False
        try:
            cached, fetched = self._fetch_shared(log)
            flight.set_result(cached)
            return cached, fetched
        except BaseException as error:
            flight.set_exception(error)
            raise
        finally:
            with self._lock:
                self._inflight = None

    def _fetch_shared(self, log) -> tuple[CachedToken, bool]:
        """Fetch under the store's lock (the single flight across processes)."""
        with self.store.lock():
            cached = self.store.load()
            if cached and cached.fresh(self.clock()):
                return cached, False  # another process was quicker
            token = self.backoff.run(
                lambda number: self.fetch(log),
                on_retry=lambda n, pause, error: _log_retry(log, n, pause, error),
            )
            cached = CachedToken(token, self.clock())
            self.store.save(cached)
            return cached, True

    def invalidate(self, access_token: str) -> bool:
        """Forget ``access_token`` if it is still the cached one (after an API ``401``)."""
        return self.store.discard(access_token)

    def count_call(self, access_token: str) -> int:
        """Record one API call made with ``access_token``; return the count."""
        return self.store.count_call(access_token)


def _log_retry(log, number: int, pause: float, error: Exception) -> None:
    """Narrate one back-off pause (the texts are in common/narration.py)."""
    FlowRecorder(log).step(
        "service.issuer_retry", number=number, pause=pause, reason=getattr(error, "description", error)
    )
