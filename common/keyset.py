"""The issuer's JSON Web Key Set (RFC 7517 §5), fetched from ``jwks_uri`` and cached.

The keys :func:`common.jwks.decode_jwt` verifies signatures with, and the
policy for getting them (RFC 8725 §3.10, OpenID Connect Core 10.1.1):

* **keys come only from the issuer's JWKS**, chosen by ``kid`` (and fitting
  the token's ``alg``); only public RSA and EC signing keys are kept, never a
  symmetric one, so no HMAC key can ever be chosen;
* **the JWKS is cached with an expiry**, its keys imported once per fetch; an
  unknown ``kid`` (a key rotation) triggers at most one refetch per
  cool-down, and an unreachable JWKS endpoint leaves the cached keys working.

Public API: :class:`KeySet`, :class:`KeysUnavailable` and
:data:`ALGORITHM_KEY_TYPES`; :mod:`common.jwks` re-exports the first two, so
callers import them from there.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

import requests
from joserfc.errors import JoseError
from joserfc.jwk import Key, import_key

from .http import IssuerUnreachable, get_json, http_session
from .jwt_claims import InvalidToken

__all__ = ["KeySet", "KeysUnavailable", "ALGORITHM_KEY_TYPES"]

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


class KeysUnavailable(InvalidToken):
    """The JWKS could not be fetched and no cached key fits.

    A subclass of :class:`InvalidToken` so that a caller that only knows
    ``InvalidToken`` still refuses the token; callers that care (the OIDC
    client, the resource server) can answer "issuer unreachable" instead.
    """


class KeySet:
    """The issuer's JSON Web Key Set, fetched on demand and cached.

    Each usable key is imported (as a joserfc key) once per fetch, not per token.

    :param jwks_uri: the issuer's ``jwks_uri`` (from discovery).
    :param http: a session with a timeout (:func:`common.http.http_session`).
    :param ttl: seconds a fetched JWKS is fresh.  After that the next lookup
        refetches; if that fails, the old keys keep working.
    :param refetch_cooldown: minimum seconds between two refetches caused by
        an unknown ``kid``, so that tokens with random ``kid`` values cannot
        turn us into a flood against the issuer.
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
        self._lock = threading.Lock()
        self._keys: list[tuple[dict, Key]] = []  # (public JWK dict, the imported joserfc key)
        #: (kid, alg) -> key, for keys found in ``_keys``; emptied whenever
        #: ``_keys`` is replaced, so it never outlives a rotation.
        self._chosen: dict[tuple[str | None, str], Key] = {}
        self._fetched_at: float | None = None  # last successful fetch
        self._attempted_at: float | None = None  # last fetch, successful or not

    # -- fetching -------------------------------------------------------------

    def _unavailable(self, problem: str, reason: str) -> None:
        """A fetch failed: keep the cached keys, or raise :class:`KeysUnavailable` if there are none."""
        log.warning(
            "JWKS fetch from %s failed: %s; keeping %d cached key(s)", self.jwks_uri, problem, len(self._keys)
        )
        if not self._keys:
            raise KeysUnavailable(reason, check="signature")

    def _fetch(self) -> None:
        """Fetch the JWKS now; on failure keep what we have (caller holds the lock)."""
        self._attempted_at = self.clock()
        try:
            document = get_json(self.http, self.jwks_uri, "key set (jwks_uri)")
        except IssuerUnreachable as exc:
            self._unavailable(
                exc.description, f"The issuer's signing keys could not be fetched: {exc.description}"
            )
            return
        raw_keys = document.get("keys")
        if not isinstance(raw_keys, list):
            self._unavailable("no 'keys' list", "The issuer's key set has no 'keys' list.")
            return
        imported = (self._import(jwk) for jwk in raw_keys[: self.max_keys])
        self._keys = [key for key in imported if key is not None]
        self._chosen = {}
        self._fetched_at = self._attempted_at

    @staticmethod
    def _import(jwk: Any) -> tuple[dict, Key] | None:
        """Import one JWK if it is a public signing key we can use; else ``None``."""
        if not isinstance(jwk, dict) or jwk.get("kty") not in ("RSA", "EC"):
            return None  # symmetric ("oct") keys are never used: no HMAC, ever
        if jwk.get("use", "sig") != "sig":
            return None
        # Keep only public members, whatever the issuer published.
        public = {k: v for k, v in jwk.items() if k not in ("d", "p", "q", "dp", "dq", "qi", "oth")}
        try:
            key = import_key(public, public["kty"])
            # A key whose key_ops exclude "verify" is not for us (RFC 7517
            # §4.3); asking for the verify key now refuses it once, here.
            key.get_op_key("verify")
            return public, key
        except (JoseError, ValueError, TypeError) as exc:
            log.warning("ignoring unusable JWK kid=%r: %s", jwk.get("kid"), exc)
            return None

    def _ensure_fresh(self) -> None:
        """Fetch if never fetched or past the TTL, retrying a failing endpoint after a short back-off."""
        now = self.clock()
        backoff = min(self.refetch_cooldown, 5)
        if self._fetched_at is None:
            if self._attempted_at is None or now - self._attempted_at >= backoff:
                self._fetch()
            elif not self._keys:
                raise KeysUnavailable("The issuer's signing keys are not available yet.", check="signature")
        elif now - self._fetched_at >= self.ttl and now - (self._attempted_at or 0) >= backoff:
            self._fetch()

    def refresh(self) -> None:
        """Fetch the JWKS now (ignores expiry and cool-down)."""
        with self._lock:
            self._fetch()

    def keys(self) -> list[dict]:
        """The cached public JWKs (fetching them first if needed)."""
        with self._lock:
            self._ensure_fresh()
            return [jwk for jwk, _ in self._keys]

    # -- lookup ---------------------------------------------------------------

    def _find(self, kid: str | None, alg: str) -> Key | None:
        """The key named by ``kid`` whose ``kty``, ``crv`` and ``alg`` fit ``alg`` (RFC 7517 §4)."""
        kty, crv = ALGORITHM_KEY_TYPES[alg]
        candidates = [
            key
            for jwk, key in self._keys
            if (kid is None or jwk.get("kid") == kid)
            and jwk.get("kty") == kty
            and (crv is None or jwk.get("crv") == crv)
            and jwk.get("alg") in (None, alg)
        ]
        if kid is None:
            # Without a kid only an unambiguous key set will do.
            return candidates[0] if len(candidates) == 1 else None
        return candidates[0] if candidates else None

    def _lookup(self, kid: str | None, alg: str) -> Key:
        """:meth:`_find`, refetching once per cool-down on a miss (caller holds the lock)."""
        key = self._find(kid, alg)
        if key is not None:
            return key
        # An unknown kid is what a key rotation looks like from here
        # (OpenID Connect Core 10.1.1): refetch, but at most once per
        # cool-down so that made-up kids cannot flood the issuer.
        now = self.clock()
        if self._attempted_at is None or now - self._attempted_at >= self.refetch_cooldown:
            self._fetch()
            key = self._find(kid, alg)
            if key is not None:
                return key
        raise InvalidToken(
            f"No signing key with kid {kid!r} in the issuer's key set."
            if kid is not None
            else "The token has no kid and the issuer's key set does not have exactly one fitting key.",
            check="kid",
        )

    def verifier_for(self, kid: str | None, alg: str) -> Key:
        """The issuer's key (a joserfc public key) that verifies a token with this ``kid`` and ``alg``.

        Looked up by ``kid`` (``None``: only if the set has exactly one fitting
        key), refetching the set at most once per cool-down; the choice is
        kept until the key set next changes.

        :param alg: the token's ``alg``, already checked against the caller's allow-list.
        :raises InvalidToken: no such key, even after a refetch.
        :raises KeysUnavailable: the JWKS could not be fetched and nothing is cached.
        """
        with self._lock:
            self._ensure_fresh()
            key = self._chosen.get((kid, alg))
            if key is None:
                key = self._chosen[(kid, alg)] = self._lookup(kid, alg)
            return key
