"""One fetch at a time of something cached from the issuer, and a back-off after a failed one.

The discovery document (:class:`common.issuer.Issuer`) and the JWKS
(:class:`common.keyset.KeySet`) are fetched by whichever request first needs
them, in a process whose threads (gunicorn's ``--threads``) all check tokens
at once.  A hung issuer must not make those threads queue up behind each
other, each refetching in turn (README.md, "Security checks"):

* with a cached copy, a stale one is refreshed by one caller
  (:meth:`SingleFlight.try_run`); every other caller uses the cached copy
  at once instead of waiting (the stale-while-revalidate of RFC 5861 §3);
* with nothing cached, every caller needs the answer: one fetch runs and
  the others wait for *its* result (:meth:`SingleFlight.run_or_wait`), so N
  callers wait one delay, not N;
* after a failed fetch, :meth:`SingleFlight.backing_off` tells the callers
  not to fetch again for a while: an unreachable issuer costs one fetch per
  back-off, not one per request.
"""

from __future__ import annotations

import threading
from typing import Callable


class SingleFlight:
    """Runs a fetch in one thread at a time and remembers how the last one ended.

    :param clock: a monotonic clock (tests pass a fake one).
    """

    def __init__(self, clock: Callable[[], float]):
        self.clock = clock
        self._lock = threading.Lock()
        self._completed = 0  # fetches finished, successfully or not
        #: The last fetch's exception, ``None`` once one has succeeded.
        self.error: Exception | None = None
        self._failed_at = 0.0

    def backing_off(self, seconds: float) -> bool:
        """True while the last fetch failed less than ``seconds`` ago."""
        return self.error is not None and self.clock() - self._failed_at < seconds

    def try_run(self, fetch: Callable[[], None]) -> bool:
        """Run ``fetch`` unless another thread is fetching; never wait for that one.

        :return: whether this call ran ``fetch``.
        :raises Exception: what ``fetch`` raised.
        """
        if not self._lock.acquire(blocking=False):
            return False
        try:
            self._run(fetch)
        finally:
            self._lock.release()
        return True

    def run_or_wait(self, fetch: Callable[[], None]) -> bool:
        """Run ``fetch``; if another thread is fetching now, wait for that fetch and do not fetch again.

        :return: whether this call ran ``fetch`` itself.
        :raises Exception: what ``fetch`` raised, or what the fetch waited for raised.
        """
        seen = self._completed
        with self._lock:
            if self._completed != seen:
                # Another thread's fetch ended while we waited: its answer is ours.
                if self.error is not None:
                    raise self.error.with_traceback(None)
                return False
            self._run(fetch)
            return True

    def run(self, fetch: Callable[[], None]) -> None:
        """Run ``fetch`` now, after any fetch already running (an explicit refresh)."""
        with self._lock:
            self._run(fetch)

    def _run(self, fetch: Callable[[], None]) -> None:
        """Run ``fetch`` (the caller holds the lock) and record how it ended."""
        try:
            fetch()
        except Exception as exc:
            self.error, self._failed_at = exc, self.clock()
            raise
        else:
            self.error = None
        finally:
            self._completed += 1
