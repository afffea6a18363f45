"""The dev issuer's data: registered clients, seeded users, and the Redis store.

Clients and users come from the same settings the apps read (one ``.env``
configures both sides of every flow), so they live in memory and are the
same in every gunicorn worker.  Everything that changes while the issuer
runs (authorization codes, tokens, refresh-token families, used client
assertions, signing keys, the sign-in session) is in Redis, so that any
worker can answer any request.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import redis
from authlib.oauth2.rfc6749 import ClientMixin, TokenMixin, scope_to_list
from werkzeug.security import check_password_hash, generate_password_hash

from common.config import Settings

#: Scopes a user-facing client may ask for (OpenID Connect Core 5.4 plus
#: ``offline_access`` for refresh tokens, §11).
OIDC_SCOPES = ("openid", "profile", "email", "offline_access")

#: RFC 8252 §7.3: loopback redirect URIs use an IP literal; any port is
#: accepted for these at request time because the native app picks a free
#: port when it starts listening.
LOOPBACK_HOSTS = {"127.0.0.1", "[::1]"}


# -- clients ------------------------------------------------------------------


@dataclass
class Client(ClientMixin):
    """A registered application, shaped like an Okta app integration.

    :param kind: the suite's name for it (``web``, ``spa``, ``native`` ...),
        used for the ``app-{kind}`` ids on the Applications page.
    :param auth_methods: the client authentication methods it may use at
        the token, revocation and introspection endpoints (RFC 7591 §2).
    """

    client_id: str
    kind: str
    name: str
    client_type: str  # "confidential" or "public" (RFC 6749 §2.1)
    auth_methods: tuple[str, ...]
    grant_types: tuple[str, ...]
    response_types: tuple[str, ...] = ()
    redirect_uris: tuple[str, ...] = ()
    post_logout_redirect_uris: tuple[str, ...] = ()
    scopes: tuple[str, ...] = OIDC_SCOPES
    client_secret: str = ""
    public_jwk: dict | None = None
    introspect_any: bool = False
    client_metadata: dict = field(default_factory=dict)

    def __post_init__(self):
        # Authlib's RP-initiated logout and userinfo endpoints read RFC 7591
        # style metadata from here.
        self.client_metadata = {
            "client_name": self.name,
            "redirect_uris": list(self.redirect_uris),
            "post_logout_redirect_uris": list(self.post_logout_redirect_uris),
            "grant_types": list(self.grant_types),
            "response_types": list(self.response_types),
            "token_endpoint_auth_method": self.auth_methods[0] if self.auth_methods else "none",
        }

    @property
    def is_public(self) -> bool:
        return self.client_type == "public"

    def get_client_id(self):
        return self.client_id

    def get_default_redirect_uri(self):
        # OpenID Connect Core 3.1.2.1 makes redirect_uri REQUIRED, and with
        # a loopback client there is no single default: never guess.
        return None

    def get_allowed_scope(self, scope):
        """All of the requested scopes if this client may have each, else ``None``.

        Okta refuses a request for a scope the app may not have rather than
        quietly dropping it; so do we (RFC 6749 §3.3 allows either).
        """
        requested = scope_to_list(scope) or []
        if not requested:
            return None
        if not set(requested) <= set(self.scopes):
            return None
        return " ".join(dict.fromkeys(requested))

    def check_redirect_uri(self, redirect_uri):
        """Exact string match, except the port of a loopback IP redirect.

        RFC 9700 §4.1.3 asks for exact matching; RFC 8252 §7.3 lets a
        native app's loopback redirect (``http://127.0.0.1:{port}/...``)
        use any port, so for those the port alone may differ.
        """
        if not isinstance(redirect_uri, str):
            return False
        if redirect_uri in self.redirect_uris:
            return True
        return any(loopback_match(registered, redirect_uri) for registered in self.redirect_uris)

    def check_client_secret(self, client_secret):
        if self.is_public or not self.client_secret or not isinstance(client_secret, str):
            return False
        return secrets.compare_digest(self.client_secret.encode(), client_secret.encode())

    def check_endpoint_auth_method(self, method, endpoint):
        return method in self.auth_methods

    def check_response_type(self, response_type):
        return response_type in self.response_types

    def check_grant_type(self, grant_type):
        return grant_type in self.grant_types


_LOOPBACK = re.compile(r"^http://(127\.0\.0\.1|\[::1\])(?::(\d{1,5}))?(/[^?#]*)?(\?[^#]*)?$")


def loopback_match(registered: str, requested: str) -> bool:
    """True when both are the same http loopback IP redirect but for the port.

    Only ``127.0.0.1`` and ``[::1]`` qualify: ``localhost`` can be
    resolved to another interface, so RFC 8252 §8.3 says not to rely on it.
    """
    a, b = _LOOPBACK.match(registered), _LOOPBACK.match(requested)
    if not a or not b:
        return False
    if b.group(2) is not None and not 0 < int(b.group(2)) < 65536:
        return False
    return (a.group(1), a.group(3) or "", a.group(4) or "") == (b.group(1), b.group(3) or "", b.group(4) or "")


def load_public_jwk(path: str) -> dict:
    """The public JWK of the service's key file (PEM or JWK, private or public).

    The issuer keeps only the public half: that is all ``private_key_jwt``
    needs (RFC 7523 §3), which is why it is the stronger option.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from joserfc.jwk import import_key

    raw = open(path, "rb").read().strip()
    if raw.startswith(b"{"):
        key = import_key(json.loads(raw))
    else:
        try:
            loaded = serialization.load_pem_private_key(raw, password=None)
        except ValueError:
            loaded = serialization.load_pem_public_key(raw)
        if isinstance(loaded, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
            key_type = "RSA"
        elif isinstance(loaded, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
            key_type = "EC"
        else:
            key_type = "OKP"
        key = import_key(raw, key_type)
    public = key.as_dict(private=False)
    public.setdefault("kid", key.thumbprint())
    return public


def register_clients(settings: Settings) -> dict[str, Client]:
    """The clients of the suite, from the settings the apps themselves read.

    This is the guide's "Add Application" step done once, in code, for
    every application type.
    """
    custom = tuple(settings.service_scope.split())
    # The custom scope (SERVICE_SCOPE) guards the API's service-only route;
    # only the service client may be granted it.  User-facing clients get
    # the OpenID scopes alone, so a user's token cannot call that route:
    # least privilege, RFC 9700 §2.3 ("privileges of access tokens SHOULD
    # be restricted to the minimum required").
    user_scopes = OIDC_SCOPES
    clients = [
        Client(
            client_id=settings.web_client_id,
            kind="web",
            name="Web app (server-side)",
            client_type="confidential",
            client_secret=settings.web_client_secret,
            auth_methods=("client_secret_basic", "client_secret_post"),
            grant_types=("authorization_code", "refresh_token"),
            response_types=("code",),
            redirect_uris=(settings.web_redirect_uri,),
            post_logout_redirect_uris=(settings.web_post_logout_redirect_uri,),
            scopes=user_scopes,
        ),
        Client(
            client_id=settings.spa_client_id,
            kind="spa",
            name="Single-page app",
            client_type="public",
            auth_methods=("none",),
            grant_types=("authorization_code", "refresh_token", "implicit"),
            response_types=("code", "token", "id_token", "id_token token"),
            redirect_uris=(settings.spa_redirect_uri,),
            post_logout_redirect_uris=(settings.spa_post_logout_redirect_uri,),
            scopes=user_scopes,
        ),
        Client(
            client_id=settings.native_client_id,
            kind="native",
            name="Native app",
            client_type="public",
            auth_methods=("none",),
            grant_types=("authorization_code", "refresh_token"),
            response_types=("code",),
            redirect_uris=(settings.native_redirect_uri(),),
            scopes=user_scopes,
        ),
        Client(
            client_id=settings.trusted_client_id,
            kind="trusted",
            name="Trusted app (password grant, deprecated)",
            client_type="confidential",
            client_secret=settings.trusted_client_secret,
            auth_methods=("client_secret_basic",),
            # The password grant exists only while TRUSTED_MODE is on: it
            # hands the user's password to the app (RFC 9700 §2.4).
            grant_types=(("password",) if settings.trusted_mode else ()) + ("refresh_token",),
            scopes=user_scopes,
        ),
    ]
    if settings.service_private_key:
        service_auth = ("private_key_jwt",)
        service_jwk = load_public_jwk(settings.service_private_key)
    else:
        service_auth, service_jwk = ("client_secret_basic",), None
    clients.append(
        Client(
            client_id=settings.service_client_id,
            kind="service",
            name="Service (machine to machine)",
            client_type="confidential",
            client_secret=settings.service_client_secret if not service_jwk else "",
            auth_methods=service_auth,
            grant_types=("client_credentials",),
            scopes=custom,
            public_jwk=service_jwk,
        )
    )
    if settings.api_introspection_client_id:
        clients.append(
            Client(
                client_id=settings.api_introspection_client_id,
                kind="api",
                name="Resource server (introspection only)",
                client_type="confidential",
                client_secret=settings.api_introspection_client_secret,
                auth_methods=("client_secret_basic", "client_secret_post"),
                grant_types=(),
                scopes=(),
                introspect_any=True,
            )
        )
    return {client.client_id: client for client in clients}


# -- users --------------------------------------------------------------------


@dataclass(frozen=True)
class User:
    """A seeded user; only the password's scrypt hash is kept."""

    username: str
    password_hash: str
    uid: str
    given_name: str
    family_name: str

    @property
    def name(self) -> str:
        return f"{self.given_name} {self.family_name}"

    @property
    def email(self) -> str:
        return self.username if "@" in self.username else f"{self.username}@example.com"

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)


def make_user(username: str, password: str) -> User:
    """A user whose profile claims are derived from the login name."""
    local = username.split("@", 1)[0]
    parts = [p for p in re.split(r"[._+\-]", local) if p] or [local]
    given = parts[0].capitalize()
    family = " ".join(p.capitalize() for p in parts[1:]) or "Example"
    # Okta user ids look like 00u...: stable per login, opaque to clients.
    uid = "00u" + hashlib.sha256(username.lower().encode()).hexdigest()[:17]
    return User(username, generate_password_hash(password, method="scrypt"), uid, given, family)


def seed_users(settings: Settings) -> dict[str, User]:
    """The demo user and ``DEV_ISSUER_EXTRA_USERS``, keyed by lower-cased login."""
    pairs = ((settings.demo_username, settings.demo_password),) + settings.dev_issuer_extra_users
    return {username.lower(): make_user(username, password) for username, password in pairs}


# -- tokens --------------------------------------------------------------------


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


def token_hash(value: str) -> str:
    """SHA-256 of a secret, so Redis never holds a usable refresh token or code."""
    return hashlib.sha256(value.encode()).hexdigest()


class Store:
    """All mutable issuer state, in Redis under ``dev_issuer:``.

    Every operation that must happen once (redeeming a code, rotating a
    refresh token, accepting a client assertion) is a single atomic Redis
    command, so two workers racing on the same value cannot both win.
    """

    PREFIX = "dev_issuer:"

    def __init__(self, client: redis.Redis, settings: Settings, clients: dict[str, Client], users: dict[str, User]):
        self.redis = client
        self.settings = settings
        self.clients = clients
        self.users = users

    def _key(self, *parts: str) -> str:
        return self.PREFIX + ":".join(parts)

    # authorization codes (RFC 6749 §4.1.2) ------------------------------

    def save_code(self, code: str, data: dict) -> None:
        lifetime = self.settings.dev_issuer_code_lifetime
        data = {**data, "exp": time.time() + lifetime}
        self.redis.set(self._key("code", token_hash(code)), json.dumps(data), ex=lifetime)

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
        digest = token_hash(code)
        raw, family = self.redis.mget(self._key("code", digest), self._key("code_used", digest))
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
        digest = token_hash(code)
        # The marker (and the code's record) live as long as the tokens can,
        # so that a replay can still find and revoke them.
        result = self.redis.eval(self._REDEEM_CODE, 2, self._key("code", digest), self._key("code_used", digest),
                                 new_id(), self.settings.dev_issuer_refresh_token_lifetime)
        if not result:
            return False, None
        won, family = result
        return bool(won), family.decode() if isinstance(family, bytes) else family

    # token families: everything issued from one authorization grant ----

    def family_revoked(self, family: str) -> bool:
        return self.redis.exists(self._key("family_revoked", family)) > 0

    def revoke_family(self, family: str) -> None:
        """Revoke every token of one grant (RFC 6749 §4.1.2, RFC 9700 §4.14.2)."""
        self.redis.set(self._key("family_revoked", family), "1", ex=self.settings.dev_issuer_refresh_token_lifetime)

    # tokens ----------------------------------------------------------------

    def save_access_token(self, jti: str, data: dict) -> None:
        ttl = max(1, int(data["exp"] - time.time()) + 60)
        self.redis.set(self._key("at", jti), json.dumps(data), ex=ttl)

    def save_refresh_token(self, token: str, data: dict) -> None:
        ttl = max(1, int(data["exp"] - time.time()))
        self.redis.set(self._key("rt", token_hash(token)), json.dumps(data), ex=ttl)

    def access_token(self, jti: str) -> StoredToken | None:
        raw = self.redis.get(self._key("at", jti))
        return StoredToken(self, "access_token", jti, json.loads(raw)) if raw else None

    def refresh_token(self, token: str) -> StoredToken | None:
        digest = token_hash(token)
        raw = self.redis.get(self._key("rt", digest))
        return StoredToken(self, "refresh_token", digest, json.loads(raw)) if raw else None

    def claim_refresh_token(self, token: StoredToken) -> bool:
        """Mark a refresh token as used; False if it already was (a reuse)."""
        return bool(self.redis.set(self._key("rt_used", token.key), "1", nx=True, ex=max(1, token.get_expires_in() + 60)))

    def refresh_token_used(self, token: StoredToken) -> bool:
        return self.redis.exists(self._key("rt_used", token.key)) > 0

    def revoke(self, token: StoredToken) -> None:
        """Mark one token revoked (kept, not deleted: RFC 7009 §2.2's advice)."""
        prefix = "at" if token.kind == "access_token" else "rt"
        token.data["revoked"] = True
        key = self._key(prefix, token.key)
        ttl = self.redis.ttl(key)
        self.redis.set(key, json.dumps(token.data), ex=ttl if ttl and ttl > 0 else 60)

    # replay caches -----------------------------------------------------------

    def first_use(self, kind: str, value: str, ttl: int) -> bool:
        """True the first time ``value`` is seen within ``ttl`` seconds.

        Used for client-assertion ``jti`` values (RFC 7523 §3 item 7) and
        ID-token ``nonce`` values (OpenID Connect Core 15.5.2).
        """
        return bool(self.redis.set(self._key(kind, token_hash(value)), "1", nx=True, ex=max(1, ttl)))

    def seen(self, kind: str, value: str) -> bool:
        return self.redis.exists(self._key(kind, token_hash(value))) > 0


def new_id() -> str:
    return secrets.token_urlsafe(16)


def origin_and_wildcard(uri: str) -> str:
    """The CSP source for a redirect URI: its origin, any port for loopback."""
    parts = urlsplit(uri)
    host = parts.netloc.rsplit(":", 1)[0] if not parts.netloc.endswith("]") else parts.netloc
    if f"{host}" in LOOPBACK_HOSTS and parts.scheme == "http":
        return f"http://{host}:*"
    return f"{parts.scheme}://{parts.netloc}"
