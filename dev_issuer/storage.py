"""The issuer's memory, in Redis: codes, tokens, grant families, single-use markers.

Everything that changes while the issuer runs (authorization codes, access
and refresh tokens, refresh-token families, used client assertions and
nonces, the sign-in session) is in Redis, so that any gunicorn worker can
answer any request.  Secrets are stored only as a SHA-256 digest
(:func:`storage_digest`), so Redis never holds a usable refresh token or
code.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time

import redis
from authlib.oauth2.rfc6749 import TokenMixin
from authlib.oidc import core as oidc

from common.config import Settings

from .clients import Client
from .users import User


class StoredToken(TokenMixin):
    """An access or refresh token as the issuer remembers it.

    Access tokens are JWTs; the record is keyed by their ``jti``.  Refresh
    tokens are opaque; the record is keyed by a hash of the token.
    """

    def __init__(self, store: "Store", kind: str, key: str, data: dict):
        self.store = store
        self.kind = kind  # "access_token" or "refresh_token"
        self.key = key
        self.data = data

    @property
    def client_id(self) -> str:
        return self.data["client_id"]

    @property
    def scope(self) -> str:
        return self.data.get("scope", "")

    @property
    def family(self) -> str:
        return self.data["family"]

    def check_client(self, client):
        return self.client_id == client.get_client_id()

    def get_scope(self):
        return self.scope

    def get_expires_in(self):
        return max(0, int(self.data["exp"] - time.time()))

    def is_expired(self):
        return self.data["exp"] <= time.time()

    def is_revoked(self):
        if self.data.get("revoked") or self.store.family_revoked(self.family):
            return True
        # A rotated refresh token is spent even though its grant lives on.
        return self.kind == "refresh_token" and self.store.refresh_token_used(self)

    def get_user(self):
        return self.store.users.get((self.data.get("username") or "").lower())

    def get_client(self):
        return self.store.clients.get(self.client_id)


class AuthorizationCode(oidc.AuthorizationCodeMixin):
    """A code's record: client, redirect URI, scope, PKCE and nonce it was bound to."""

    def __init__(self, data: dict):
        self.data = data
        self.code_challenge = data.get("code_challenge")
        self.code_challenge_method = data.get("code_challenge_method")

    def get_redirect_uri(self):
        return self.data["redirect_uri"]

    def get_scope(self):
        return self.data["scope"]

    def get_nonce(self):
        return self.data.get("nonce")

    def get_auth_time(self):
        return self.data.get("auth_time")

    def get_acr(self):
        return None

    def get_amr(self):
        return ["pwd"]


def storage_digest(value: str) -> str:
    """The key a secret is stored under: its SHA-256, so Redis never holds a usable one.

    Named apart from the OpenID Connect ``at_hash`` / ``c_hash`` computation
    (Core 3.1.3.6) of the relying parties in ``common/``: this is only a
    storage key.
    """
    return hashlib.sha256(value.encode()).hexdigest()


class Store:
    """All mutable issuer state, in Redis under ``dev_issuer:``.

    Every operation that must happen once (redeeming a code, rotating a
    refresh token, accepting a client assertion) is a single atomic Redis
    command, so two workers racing on the same value cannot both win.

    On Redis Cluster one command may only touch keys of one hash slot: the
    keys read or changed together carry the same ``{…}`` hash tag
    (:meth:`_tagged`), and every key a script touches is passed in ``KEYS``
    (the cluster routes a script by those), never built inside it.
    """

    PREFIX = "dev_issuer:"

    def __init__(
        self, client: redis.Redis, settings: Settings, clients: dict[str, Client], users: dict[str, User]
    ):
        self.redis = client
        self.settings = settings
        self.clients = clients
        self.users = users

    def _key(self, *parts: str) -> str:
        return self.PREFIX + ":".join(parts)

    def _tagged(self, kind: str, record: str) -> str:
        """The key of ``kind`` for ``record``, with ``record`` as its Redis Cluster hash tag.

        Only the part between ``{`` and ``}`` picks a key's hash slot (Redis
        Cluster specification, "Hash tags"), so a record and its markers
        (``code`` and ``code_used``, ``rt`` and ``rt_used``) share one slot
        and may be read or changed together in one ``MGET`` or script;
        without the tag a cluster refuses that with ``CROSSSLOT``.
        """
        return f"{self.PREFIX}{kind}:{{{record}}}"

    # authorization codes (RFC 6749 §4.1.2) ------------------------------

    def save_code(self, code: str, data: dict) -> None:
        lifetime = self.settings.dev_issuer_code_lifetime
        data = {**data, "exp": time.time() + lifetime}
        self.redis.set(self._tagged("code", storage_digest(code)), json.dumps(data), ex=lifetime)

    #: Marks a code redeemed, atomically: the "used" marker is created (with
    #: the family id of the tokens about to be issued) in the same step that
    #: finds it missing, so of two concurrent redemptions exactly one wins
    #: and the other is seen as a replay (RFC 6749 §4.1.2).  The code's own
    #: record is kept as long as the marker, so a later replay can still be
    #: checked against the client, redirect URI and PKCE challenge it was
    #: bound to before it revokes anything.
    #: KEYS: code record, used marker; ARGV: new family id, TTL in seconds.
    #: Returns ``{1, family}`` for the winner, ``{0, family}`` for a replay,
    #: ``false`` when the code is gone (expired).
    _REDEEM_CODE = """
    local family = redis.call('GET', KEYS[2])
    if family then return {0, family} end
    if redis.call('EXISTS', KEYS[1]) == 0 then return false end
    redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2])
    redis.call('EXPIRE', KEYS[1], ARGV[2])
    return {1, ARGV[1]}
    """

    def peek_code(self, code: str) -> tuple[dict | None, str | None]:
        """A code's record, without using it up.

        The code is consumed only by :meth:`redeem_code`, once the token
        request has passed every check (client, redirect URI, PKCE): a
        request that fails them is not a use of the code (RFC 6749 §4.1.3).

        :return: ``(data, None)`` for a fresh code; ``(data, family)`` for a
            code already redeemed, whose tokens belong to ``family``;
            ``(None, None)`` for an unknown or expired code.
        """
        digest = storage_digest(code)
        raw, family = self.redis.mget(self._tagged("code", digest), self._tagged("code_used", digest))
        if raw is None:
            return None, None
        data = json.loads(raw)
        if family is None and data["exp"] <= time.time():
            return None, None
        return data, family.decode() if family else None

    def redeem_code(self, code: str) -> tuple[bool, str | None]:
        """Use a code up, atomically (see ``_REDEEM_CODE``).

        :return: ``(True, family)`` the first time, where ``family`` names
            the grant the tokens issued now will belong to;
            ``(False, family)`` for a replay (that family must be revoked);
            ``(False, None)`` if the code expired meanwhile.
        """
        digest = storage_digest(code)
        # The marker (and the code's record) live as long as the tokens can,
        # so that a replay can still find and revoke them.
        result = self.redis.eval(
            self._REDEEM_CODE,
            2,
            self._tagged("code", digest),
            self._tagged("code_used", digest),
            new_id(),
            self.settings.dev_issuer_refresh_token_lifetime,
        )
        if not result:
            return False, None
        won, family = result
        return bool(won), family.decode() if isinstance(family, bytes) else family

    # token families: everything issued from one authorization grant ----

    def family_revoked(self, family: str) -> bool:
        return self.redis.exists(self._key("family_revoked", family)) > 0

    def revoke_family(self, family: str) -> None:
        """Revoke every token of one grant (RFC 6749 §4.1.2, RFC 9700 §4.14.2)."""
        lifetime = self.settings.dev_issuer_refresh_token_lifetime
        self.redis.set(self._key("family_revoked", family), "1", ex=lifetime)

    # tokens ----------------------------------------------------------------

    def save_access_token(self, jti: str, data: dict) -> None:
        ttl = max(1, int(data["exp"] - time.time()) + 60)
        self.redis.set(self._key("at", jti), json.dumps(data), ex=ttl)

    def save_refresh_token(self, token: str, data: dict) -> None:
        ttl = max(1, int(data["exp"] - time.time()))
        self.redis.set(self._tagged("rt", storage_digest(token)), json.dumps(data), ex=ttl)

    def access_token(self, jti: str) -> StoredToken | None:
        raw = self.redis.get(self._key("at", jti))
        return StoredToken(self, "access_token", jti, json.loads(raw)) if raw else None

    def refresh_token(self, token: str) -> StoredToken | None:
        digest = storage_digest(token)
        raw = self.redis.get(self._tagged("rt", digest))
        return StoredToken(self, "refresh_token", digest, json.loads(raw)) if raw else None

    def claim_refresh_token(self, token: StoredToken) -> bool:
        """Mark a refresh token as used; False if it already was (a reuse)."""
        ttl = max(1, token.get_expires_in() + 60)
        return bool(self.redis.set(self._tagged("rt_used", token.key), "1", nx=True, ex=ttl))

    def refresh_token_used(self, token: StoredToken) -> bool:
        return self.redis.exists(self._tagged("rt_used", token.key)) > 0

    def revoke(self, token: StoredToken) -> None:
        """Mark one token revoked (kept, not deleted: RFC 7009 §2.2's advice)."""
        token.data["revoked"] = True
        key = self._key("at", token.key) if token.kind == "access_token" else self._tagged("rt", token.key)
        ttl = self.redis.ttl(key)
        self.redis.set(key, json.dumps(token.data), ex=ttl if ttl and ttl > 0 else 60)

    # replay caches -----------------------------------------------------------

    def first_use(self, kind: str, value: str, ttl: int) -> bool:
        """True the first time ``value`` is seen within ``ttl`` seconds.

        Used for client-assertion ``jti`` values (RFC 7523 §3 item 7) and
        ID-token ``nonce`` values (OpenID Connect Core 15.5.2).
        """
        return bool(self.redis.set(self._key(kind, storage_digest(value)), "1", nx=True, ex=max(1, ttl)))

    def seen(self, kind: str, value: str) -> bool:
        return self.redis.exists(self._key(kind, storage_digest(value))) > 0

    # secrets every worker shares ----------------------------------------------

    def shared_secret(self, name: str) -> bytes:
        """A random secret under one key, the same for every worker: the first to ask creates it.

        ``SET NX`` makes the creation atomic: of two workers starting at
        once, both read the winner's value.  Used for the DPoP nonces
        (RFC 9449 §8, ``dpop.py``).
        """
        key = self._key(name)
        secret = self.redis.get(key)
        if secret is None:
            self.redis.set(key, secrets.token_bytes(32), nx=True)
            secret = self.redis.get(key)
        return secret


def new_id() -> str:
    """A fresh random identifier (128 bits): token ``jti`` values, grant families."""
    return secrets.token_urlsafe(16)
