"""Signing keys: generated once, kept in Redis, rotated without breaking anyone.

The issuer always holds three kinds of key:

- ``current``: signs every new ID token and access token;
- ``next``: already published in the JWKS but not used yet;
- ``retired``: no longer signs, still published so that tokens it signed
  keep verifying until they expire.

Rotation promotes ``next`` to ``current`` and makes a new ``next``.  So a
key is in the JWKS for a whole rotation period *before* the first token
signed with it appears: a relying party that cached the JWKS already knows
it (OpenID Connect Core 10.1.1, RFC 7517 §5).

A retired key stays published until every token it signed has expired: its
retirement time plus the longest lifetime of a JWT this issuer mints (the
keyring's ``retention``).  Rotations are at most one per
:data:`ROTATION_INTERVAL` seconds, and refused while :data:`MAX_RETIRED`
retired keys are all still needed, so a burst of rotations can neither drop
the key of a live token nor grow the JWKS without bound.
"""

from __future__ import annotations

import json
import threading
import time

import redis
import redis.lock
from joserfc.jwk import KeySet, RSAKey

from .tokens import ID_TOKEN_LIFETIME

#: Retired keys published at most (relying parties read at most 50 keys, see
#: ``common/keyset.py``); a rotation that would need more is refused.
MAX_RETIRED = 10

#: Seconds between two rotations, across every worker and the CLI.
ROTATION_INTERVAL = 60

#: Seconds a retired key stays published when the keyring is not told the
#: issuer's token lifetimes: the longest access-token lifetime allowed, plus
#: the largest clock leeway (``common/variables.py``).
DEFAULT_RETENTION = 86400 + 300

#: Seconds a request that read the signing key just before a rotation may
#: still take to sign with it.
IN_FLIGHT_MARGIN = 60

KEYS = "dev_issuer:keys"
LOCK = "dev_issuer:keys:lock"


class SigningKeysUnavailable(RuntimeError):
    """The signing keys are not ready: another worker is generating or rotating them.

    Named apart from the relying parties' error for an issuer's JWKS that
    cannot be fetched (in ``common/``): this one is the issuer's own.
    """


def generate_key() -> dict:
    """A fresh RS256 key as a private JWK whose ``kid`` is its RFC 7638 thumbprint."""
    key = RSAKey.generate_key(2048, private=True)
    data = key.as_dict(private=True)
    data.update(kid=key.thumbprint(), use="sig", alg="RS256")
    return data


class RotationRefused(Exception):
    """A rotation now would come too soon, or would unpublish a key that live tokens need.

    :param retry_after: seconds until a rotation can succeed.
    """

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = max(1, int(retry_after))


def retention_for(settings) -> int:
    """Seconds a retired key must stay published for ``settings``' issuer.

    A key's last token is signed at its retirement (or a request later) and
    lives as long as the longest-lived JWT minted here, access token or ID
    token; relying parties accept it ``CLOCK_LEEWAY`` beyond its ``exp``
    (RFC 7519 §4.1.4).  Refresh tokens are opaque and need no key.
    """
    longest = max(settings.dev_issuer_access_token_lifetime, ID_TOKEN_LIFETIME)
    return longest + settings.clock_leeway + IN_FLIGHT_MARGIN


def release(lock: redis.lock.Lock) -> None:
    """Release ``lock`` if it is still ours; if it expired, leave the new owner's alone."""
    try:
        lock.release()
    except redis.exceptions.LockError:
        pass


class Keyring:
    """The issuer's keys, shared by every worker through one Redis value."""

    def __init__(self, client: redis.Redis, retention: int = DEFAULT_RETENTION, clock=time.time):
        """:param retention: seconds a retired key stays published (the longest JWT lifetime, with leeway).

        :param clock: the wall clock rotations are timed by (tests pass their own).
        """
        self.redis = client
        self.retention = retention
        self.clock = clock
        self._parsed: dict[str, RSAKey] = {}
        self._guard = threading.Lock()

    def _lock(self) -> redis.lock.Lock:
        """The key-generation lock, held at most 30 s.

        redis-py's ``Lock`` stores a random token and releases with a
        compare-and-delete script: a worker whose lock expired (a slow key
        generation) must not delete the lock another worker now holds, which
        a plain ``DEL`` would do (pinned by ``tests/dev_issuer/test_keys.py``).
        """
        return self.redis.lock(LOCK, timeout=30, sleep=0.05)

    def _document(self) -> dict | None:
        raw = self.redis.get(KEYS)
        return json.loads(raw) if raw else None

    def _load(self) -> list[dict] | None:
        document = self._document()
        return document["keys"] if document else None

    def keys(self) -> list[dict]:
        """All keys, generating the first pair if there are none yet.

        Two workers start at once; a Redis lock makes sure only one of them
        generates, the other waits for its result.
        """
        keys = self._load()
        if keys is not None:
            return keys
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            lock = self._lock()
            if lock.acquire(blocking=False):
                try:
                    keys = self._load()
                    if keys is None:
                        now = int(self.clock())
                        keys = [
                            {"status": "current", "created": now, "jwk": generate_key()},
                            {"status": "next", "created": now, "jwk": generate_key()},
                        ]
                        self.redis.set(KEYS, json.dumps({"keys": keys}))
                    return keys
                finally:
                    release(lock)
            time.sleep(0.05)
            keys = self._load()
            if keys is not None:
                return keys
        raise SigningKeysUnavailable("the signing keys were not generated in time")

    def signing_key(self) -> RSAKey:
        """The ``current`` private key (with its ``kid``)."""
        entry = next(k for k in self.keys() if k["status"] == "current")
        kid = entry["jwk"]["kid"]
        with self._guard:
            if kid not in self._parsed:
                self._parsed[kid] = RSAKey.import_key(entry["jwk"])
            return self._parsed[kid]

    def public_jwks(self) -> dict:
        """The JWKS document: every current, next and retired public key."""
        public = []
        for entry in self.keys():
            jwk = RSAKey.import_key(entry["jwk"]).as_dict(private=False)
            jwk.update(kid=entry["jwk"]["kid"], use="sig", alg="RS256")
            public.append(jwk)
        return {"keys": public}

    def public_key_set(self) -> KeySet:
        return KeySet.import_key_set(self.public_jwks())

    def rotate(self) -> dict:
        """Promote ``next`` to ``current``, retire ``current``, publish a new ``next``.

        :return: ``{"current": kid, "next": kid, "retired": [kid, ...]}``
        :raises RotationRefused: within :data:`ROTATION_INTERVAL` of the last
            rotation, or while :data:`MAX_RETIRED` retired keys are all still needed.
        """
        self.keys()
        lock = self._lock()
        if not lock.acquire(blocking=True, blocking_timeout=15):
            raise SigningKeysUnavailable("another rotation is still running")
        try:
            document = self._document()
            now = int(self.clock())
            self._check_rotation_allowed(document, now)
            keys = document["keys"]
            current = next(k for k in keys if k["status"] == "current")
            upcoming = next(k for k in keys if k["status"] == "next")
            # Keys retired before retirement times were recorded count as retired now.
            retired = [{"retired": now, **k} for k in keys if k["status"] == "retired"]
            current["status"], current["retired"], upcoming["status"] = "retired", now, "current"
            retired.insert(0, current)
            fresh = {"status": "next", "created": now, "jwk": generate_key()}
            keys = [upcoming, fresh] + [k for k in retired if self._still_needed(k, now)]
            self.redis.set(KEYS, json.dumps({"keys": keys, "rotated": now}))
        finally:
            release(lock)
        return self.summary()

    def _still_needed(self, entry: dict, now: int) -> bool:
        """Whether a retired key may still verify a token it signed before it retired."""
        return entry.get("retired", now) + self.retention > now

    def _check_rotation_allowed(self, document: dict, now: int) -> None:
        """Refuse a rotation that comes too soon or would drop a key live tokens need."""
        wait = document.get("rotated", 0) + ROTATION_INTERVAL - now
        if wait > 0:
            raise RotationRefused(
                f"The keys were rotated less than {ROTATION_INTERVAL} s ago; try again in {wait} s.", wait
            )
        needed = [k for k in document["keys"] if k["status"] == "retired" and self._still_needed(k, now)]
        if len(needed) >= MAX_RETIRED:
            wait = min(k.get("retired", now) for k in needed) + self.retention - now
            raise RotationRefused(
                f"{len(needed)} retired keys still verify live tokens, and at most {MAX_RETIRED} are "
                f"published; try again in {wait} s, when the oldest one's tokens have expired.",
                wait,
            )

    def summary(self) -> dict:
        """The ``kid`` of the current and next key and of the retired keys still published."""
        keys = self.keys()
        return {
            "current": next(k["jwk"]["kid"] for k in keys if k["status"] == "current"),
            "next": next(k["jwk"]["kid"] for k in keys if k["status"] == "next"),
            "retired": [k["jwk"]["kid"] for k in keys if k["status"] == "retired"],
        }
