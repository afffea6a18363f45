"""The issuer's JSON Web Key Set (RFC 7517 §5), fetched from ``jwks_uri`` and cached.

The keys :func:`common.jwks.decode_jwt` verifies signatures with, and the
policy for getting them (RFC 8725 §3.10, OpenID Connect Core 10.1.1):

* **keys come only from the issuer's JWKS**, chosen by ``kid`` (and fitting
  the token's ``alg``); only public RSA (of at least 2048 bits, RFC 7518
  §3.3) and EC signing keys are kept, never a symmetric one, so no HMAC key
  can ever be chosen;
* **the JWKS is cached with an expiry**, its keys imported once per fetch; an
  unknown ``kid`` (a key rotation) refetches at once when it is the first
  since a regular fetch, and after that at most once per cool-down; an
  unreachable JWKS endpoint leaves the cached keys working;
* **a hung issuer queues nobody up**: one fetch at a time, cached keys
  answer while it runs, failures back off (:mod:`common.single_flight`).

Public API: :class:`KeySet`, :class:`KeysUnavailable`, :data:`MIN_RSA_BITS` and
:data:`ALGORITHM_KEY_TYPES`; :mod:`common.jwks` re-exports the first two, so
callers import them from there.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

import requests
from joserfc.errors import JoseError
from joserfc.jwk import Key, import_key
from joserfc.util import urlsafe_b64decode

from .http import IssuerUnreachable, get_json, http_session
from .jwt_claims import InvalidToken
from .single_flight import SingleFlight

__all__ = ["KeySet", "KeysUnavailable", "ALGORITHM_KEY_TYPES", "MIN_RSA_BITS"]

log = logging.getLogger(__name__)

#: The key type (and curve) each algorithm :func:`common.jwks.decode_jwt` can accept needs
#: (RFC 7518 §3.1): the algorithms a token may name at all, and which JWKs can verify each.
ALGORITHM_KEY_TYPES = {
    "RS256": ("RSA", None),
    "RS384": ("RSA", None),
    "RS512": ("RSA", None),
    "PS256": ("RSA", None),
    "PS384": ("RSA", None),
    "PS512": ("RSA", None),
    "ES256": ("EC", "P-256"),
    "ES384": ("EC", "P-384"),
    "ES512": ("EC", "P-521"),
}


#: The shortest RSA modulus accepted for a signing key (RFC 7518 §3.3).
MIN_RSA_BITS = 2048


class KeysUnavailable(InvalidToken):
    """The JWKS could not be fetched and no cached key fits.

    A subclass of :class:`InvalidToken` so that a caller that only knows
    ``InvalidToken`` still refuses the token; callers that care (ID-token
    validation, the resource server) can answer "issuer unreachable" instead.
    """


def _rsa_modulus_bits(jwk: dict) -> int:
    """The bit length of an RSA JWK's modulus ``n`` (RFC 7518 §6.3.1.1).

    0 when ``n`` is missing or not base64url: importing the key then fails, with its own log line.
    """
    try:
        return int.from_bytes(urlsafe_b64decode(jwk["n"].encode("ascii")), "big").bit_length()
    except (KeyError, AttributeError, ValueError):
        return 0


class _Cached:
    """One fetched key set: the keys, and the key chosen per ``(kid, alg)`` (never outlives the keys)."""

    def __init__(self, keys: list[tuple[dict, Key]]):
        self.keys = keys  # (public JWK dict, the imported joserfc key)
        self.chosen: dict[tuple[str | None, str], Key] = {}


class KeySet:
    """The issuer's JSON Web Key Set, fetched on demand and cached.

    Each usable key is imported (as a joserfc key) once per fetch, not per token.
    One fetch runs at a time (:class:`common.single_flight.SingleFlight`): past the
    TTL, one caller refreshes while the others verify with the cached keys at
    once; with no keys yet, one fetch serves every caller waiting for it; a
    failed fetch is retried only after a short back-off.

    :param jwks_uri: the issuer's ``jwks_uri`` (from discovery).
    :param http: a session with a timeout (:func:`common.http.http_session`).
    :param ttl: seconds a fetched JWKS is fresh.  After that the next lookup
        refetches; if that fails, the old keys keep working.
    :param refetch_cooldown: minimum seconds between two refetches caused by
        unknown ``kid`` values, so that tokens with random ``kid`` values
        cannot turn us into a flood against the issuer.  The first unknown
        ``kid`` after any other fetch refetches at once: an issuer that
        signs with a new key right after publishing it is not refused.
    :param clock: a monotonic clock (tests pass a fake one).
    :param max_keys: keys beyond this many are ignored.
    """

    def __init__(
        self,
        jwks_uri: str,
        *,
        http: requests.Session | None = None,
        ttl: float = 300,
        refetch_cooldown: float = 30,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 50,
    ):
        self.jwks_uri = jwks_uri
        self.http = http or http_session()
        self.ttl = ttl
        self.refetch_cooldown = refetch_cooldown
        self.clock = clock
        self.max_keys = max_keys
        self._flight = SingleFlight(clock)
        #: Replaced whole by each successful fetch, so a reader holding it sees one consistent set.
        self._cached = _Cached([])
        self._fetched_at: float | None = None  # last successful fetch
        self._attempted_at = 0.0  # start of the last fetch, of any kind
        self._regular_fetches = 0  # fetches not caused by an unknown kid (first, past the TTL, refresh())
        self._missed_after = -1  # the value of _regular_fetches at the last unknown kid

    @property
    def _backoff(self) -> float:
        """Seconds a failed fetch is not retried while cached keys serve (or for an unknown kid)."""
        return min(self.refetch_cooldown, 5)

    @property
    def _first_backoff(self) -> float:
        """Seconds a failed fetch is not retried while there are no keys (short: sign-ins wait on it)."""
        return min(self.refetch_cooldown, 1)

    # -- fetching -------------------------------------------------------------

    def _failed(self, problem: str, reason: str) -> KeysUnavailable:
        """A fetch failed: log it; the caller keeps the cached keys, or raises when there are none."""
        log.warning(
            "JWKS fetch from %s failed: %s; keeping %d cached key(s)",
            self.jwks_uri,
            problem,
            len(self._cached.keys),
        )
        return KeysUnavailable(reason, check="signature")

    def _fetch(self, *, miss: bool = False) -> None:
        """Fetch the JWKS now (the caller is the only one fetching).

        :param miss: the fetch is for an unknown ``kid`` (counted against the cool-down).
        :raises KeysUnavailable: the fetch failed; the cached keys are unchanged.
        """
        started = self._attempted_at = self.clock()
        if not miss:
            self._regular_fetches += 1
        try:
            document = get_json(self.http, self.jwks_uri, "key set (jwks_uri)")
        except IssuerUnreachable as exc:
            raise self._failed(
                exc.description, f"The issuer's signing keys could not be fetched: {exc.description}"
            ) from None
        raw_keys = document.get("keys")
        if not isinstance(raw_keys, list):
            raise self._failed("no 'keys' list", "The issuer's key set has no 'keys' list.")
        imported = (self._import(jwk) for jwk in raw_keys[: self.max_keys])
        self._cached = _Cached([key for key in imported if key is not None])
        self._fetched_at = started

    @staticmethod
    def _import(jwk: Any) -> tuple[dict, Key] | None:
        """Import one JWK if it is a public signing key we can use; else ``None``."""
        if not isinstance(jwk, dict) or jwk.get("kty") not in ("RSA", "EC"):
            return None  # symmetric ("oct") keys are never used: no HMAC, ever
        if jwk.get("use", "sig") != "sig":
            return None
        # Keep only public members, whatever the issuer published.
        public = {k: v for k, v in jwk.items() if k not in ("d", "p", "q", "dp", "dq", "qi", "oth")}
        bits = _rsa_modulus_bits(public) if public["kty"] == "RSA" else MIN_RSA_BITS
        if 0 < bits < MIN_RSA_BITS:
            # RFC 7518 §3.3: "A key of size 2048 bits or larger MUST be used";
            # a shorter modulus can be factored, and its signatures forged.
            # Measured before importing, so the key is never even parsed.
            log.warning(
                "ignoring JWK kid=%r: an RSA key of %d bits (at least %d are required, RFC 7518 §3.3)",
                jwk.get("kid"),
                bits,
                MIN_RSA_BITS,
            )
            return None
        try:
            key = import_key(public, public["kty"])
            # A key whose key_ops exclude "verify" is not for us (RFC 7517
            # §4.3); asking for the verify key now refuses it once, here.
            key.get_op_key("verify")
        except (JoseError, ValueError, TypeError) as exc:
            log.warning("ignoring unusable JWK kid=%r: %s", jwk.get("kid"), exc)
            return None
        return public, key

    def _ensure_fresh(self) -> _Cached:
        """The keys to look in: fetched first if there are none, refreshed by one caller past the TTL.

        :raises KeysUnavailable: no keys, and the fetch (or the back-off after one) says why.
        """
        if self._fetched_at is None:
            # Every caller needs keys: one fetch serves all of them, and its
            # failure is everyone's answer until the back-off is over.
            error = self._flight.error
            if error is not None and self._flight.backing_off(self._first_backoff):
                raise error.with_traceback(None)
            self._flight.run_or_wait(self._fetch)
        elif self.clock() - self._fetched_at >= self.ttl and not self._flight.backing_off(self._backoff):
            # Stale: one caller refreshes, every other one verifies with the cached keys meanwhile.
            try:
                self._flight.try_run(self._fetch)
            except KeysUnavailable:
                pass  # logged; the cached keys keep working
        return self._cached

    def refresh(self) -> None:
        """Fetch the JWKS now (ignores expiry and cool-down).

        :raises KeysUnavailable: the fetch failed and no keys are cached.
        """
        try:
            self._flight.run(self._fetch)
        except KeysUnavailable:
            if not self._cached.keys:
                raise

    def keys(self) -> list[dict]:
        """The cached public JWKs (fetching them first if needed)."""
        return [jwk for jwk, _ in self._ensure_fresh().keys]

    # -- lookup ---------------------------------------------------------------

    @staticmethod
    def _find(cached: _Cached, kid: str | None, alg: str) -> Key | None:
        """The key named by ``kid`` whose ``kty``, ``crv`` and ``alg`` fit ``alg`` (RFC 7517 §4)."""
        kty, crv = ALGORITHM_KEY_TYPES[alg]
        candidates = [
            key
            for jwk, key in cached.keys
            if (kid is None or jwk.get("kid") == kid)
            and jwk.get("kty") == kty
            and (crv is None or jwk.get("crv") == crv)
            and jwk.get("alg") in (None, alg)
        ]
        if kid is None:
            # Without a kid only an unambiguous key set will do.
            return candidates[0] if len(candidates) == 1 else None
        return candidates[0] if candidates else None

    def _may_refetch_for_miss(self, generation: int) -> bool:
        """An unknown ``kid`` may refetch: the first after a regular fetch at once, then once per cool-down.

        A key rotation looks like an unknown kid from here (OpenID Connect
        Core 10.1.1), and an issuer may sign with its new key as soon as it
        publishes it, seconds after our last fetch: so the first miss after a
        regular fetch refetches at once, unless that fetch was made during
        this very lookup (the keys are then as new as they get).  The
        cool-down bounds only repeated misses, which is what made-up kids
        look like; a failing endpoint is left alone during the back-off.

        :param generation: ``_regular_fetches`` when this lookup began.
        """
        if self._flight.backing_off(self._backoff):
            return False
        first = self._missed_after != self._regular_fetches
        self._missed_after = self._regular_fetches
        if first:
            return generation == self._regular_fetches
        return self.clock() - self._attempted_at >= self.refetch_cooldown

    def _lookup(self, cached: _Cached, kid: str | None, alg: str, generation: int) -> Key:
        """:meth:`_find`, refetching on a miss as :meth:`_may_refetch_for_miss` allows.

        The key found is remembered in the set it was found in.
        """
        key = self._find(cached, kid, alg)
        if key is None and self._may_refetch_for_miss(generation):
            try:
                # A fetch already running (another caller's) is waited for, not repeated.
                self._flight.run_or_wait(lambda: self._fetch(miss=True))
            except KeysUnavailable:
                if not self._cached.keys:
                    raise
            cached = self._cached
            key = self._find(cached, kid, alg)
        if key is not None:
            cached.chosen[(kid, alg)] = key
            return key
        raise InvalidToken(
            f"No signing key with kid {kid!r} in the issuer's key set."
            if kid is not None
            else "The token has no kid and the issuer's key set does not have exactly one fitting key.",
            check="kid",
        )

    def key_for(self, kid: str | None, alg: str) -> Key:
        """The issuer's key (a joserfc public key) that verifies a token with this ``kid`` and ``alg``.

        Looked up by ``kid`` (``None``: only if the set has exactly one fitting
        key), refetching the set on an unknown ``kid`` as
        :meth:`_may_refetch_for_miss` allows; the choice is kept until the
        key set next changes.  Cached keys never wait for a fetch another
        caller is running.

        :param alg: the token's ``alg``, already checked against the caller's allow-list.
        :raises InvalidToken: no such key, even after a refetch.
        :raises KeysUnavailable: the JWKS could not be fetched and nothing is cached.
        """
        generation = self._regular_fetches
        cached = self._ensure_fresh()
        return cached.chosen.get((kid, alg)) or self._lookup(cached, kid, alg, generation)
