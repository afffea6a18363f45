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
"""

from __future__ import annotations

import json
import threading
import time

import redis
import redis.lock
from joserfc.jwk import KeySet, RSAKey

#: Retired keys kept published; tokens live at most a day, rotations are rarer.
RETIRED_KEPT = 2

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


def release(lock: redis.lock.Lock) -> None:
    """Release ``lock`` if it is still ours; if it expired, leave the new owner's alone."""
    try:
        lock.release()
    except redis.exceptions.LockError:
        pass


class Keyring:
    """The issuer's keys, shared by every worker through one Redis value."""

    def __init__(self, client: redis.Redis):
        self.redis = client
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

    def _load(self) -> list[dict] | None:
        raw = self.redis.get(KEYS)
        return json.loads(raw)["keys"] if raw else None

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
                        now = int(time.time())
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
        """
        self.keys()
        lock = self._lock()
        if not lock.acquire(blocking=True, blocking_timeout=15):
            raise SigningKeysUnavailable("another rotation is still running")
        try:
            keys = self._load()
            now = int(time.time())
            retired = [k for k in keys if k["status"] == "retired"]
            current = next(k for k in keys if k["status"] == "current")
            upcoming = next(k for k in keys if k["status"] == "next")
            current["status"], upcoming["status"] = "retired", "current"
            retired = ([current] + retired)[:RETIRED_KEPT]
            fresh = {"status": "next", "created": now, "jwk": generate_key()}
            keys = [upcoming, fresh] + retired
            self.redis.set(KEYS, json.dumps({"keys": keys}))
        finally:
            release(lock)
        return self.summary()

    def summary(self) -> dict:
        keys = self.keys()
        return {
            "current": next(k["jwk"]["kid"] for k in keys if k["status"] == "current"),
            "next": next(k["jwk"]["kid"] for k in keys if k["status"] == "next"),
            "retired": [k["jwk"]["kid"] for k in keys if k["status"] == "retired"],
        }
