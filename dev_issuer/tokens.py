"""Token minting: Okta-shaped JWT access tokens, refresh tokens, ID tokens.

Every JWT is signed RS256 with the keyring's ``current`` key and names it in
``kid`` (RFC 7515 §4.1.4), as Okta signs its tokens.  Access tokens are JWTs
whose ``jti`` keys their record in storage; refresh tokens are opaque.  A
token's record belongs to its grant's *family*, which revocation and reuse
detection act on as a whole.
"""

from __future__ import annotations

import base64
import json
import secrets
import time

from authlib.oauth2.rfc6749 import scope_to_list
from flask import g
from joserfc import jwt
from joserfc.errors import JoseError

from .dpop import access_token_confirmation, refresh_token_binding, token_type
from .state import state
from .storage import StoredToken, new_id
from .users import user_info

#: Lifetime of ID tokens (Okta's figure: one hour).
ID_TOKEN_LIFETIME = 3600


# -- signing ---------------------------------------------------------------------


def signing_key():
    """The current signing key, fixed for the whole request.

    A rotation in another worker between writing a JWT's header and signing
    it must not produce a ``kid`` that names a different key.
    """
    if "signing_key" not in g:
        g.signing_key = state().keyring.signing_key()
    return g.signing_key


def sign_jwt(claims: dict) -> str:
    """An RS256 JWT with ``kid`` and ``typ: JWT``, as Okta signs its tokens."""
    key = signing_key()
    header = {"alg": "RS256", "kid": key.kid, "typ": "JWT"}
    return jwt.encode(header, claims, key, algorithms=["RS256"])


def unverified_claims(token: str) -> dict:
    """The payload of a JWT this issuer has just made itself (no checks needed)."""
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def verify_own_jwt(token: str) -> dict | None:
    """The claims of a JWT signed by one of our published keys, else ``None``."""
    if not isinstance(token, str) or token.count(".") != 2 or len(token) > 8192:
        return None
    try:
        decoded = jwt.decode(token, state().keyring.public_key_set(), algorithms=["RS256"])
    except (JoseError, ValueError, TypeError, KeyError):
        return None
    claims = dict(decoded.claims)
    return claims if claims.get("iss") == state().settings.issuer else None


# -- access and refresh tokens -----------------------------------------------------


def generate_token(grant_type, client, user=None, scope=None, expires_in=None, include_refresh_token=True):
    """Make the token response: an Okta-shaped JWT access token, maybe a refresh token.

    Access-token claims are Okta's: ``ver``, ``jti``, ``iss``, ``aud``,
    ``iat``, ``exp``, ``cid``, ``uid``, ``scp`` (an array) and ``sub`` (the
    user's login, or the client id when there is no user).  A refresh token
    is issued, as Okta does, only when ``offline_access`` was granted to a
    client allowed the ``refresh_token`` grant (OpenID Connect Core §11).
    """
    settings = state().settings
    now = int(time.time())
    lifetime = expires_in or settings.dev_issuer_access_token_lifetime
    scopes = scope_to_list(scope) or []
    claims = {
        "ver": 1,
        "jti": "AT." + new_id(),
        "iss": settings.issuer,
        "aud": settings.api_audience,
        "iat": now,
        "exp": now + lifetime,
        "cid": client.get_client_id(),
        "scp": scopes,
        "sub": user.username if user else client.get_client_id(),
    }
    if user is not None:
        claims["uid"] = user.uid
    confirmation = access_token_confirmation()
    if confirmation is not None:
        # RFC 9449 §6.1: bound to the key of the request's DPoP proof.
        claims["cnf"] = confirmation
    token = {
        # RFC 9449 §5: "DPoP" tells the client to send the token with proofs.
        "token_type": token_type(),
        "expires_in": lifetime,
        "access_token": sign_jwt(claims),
        "scope": " ".join(scopes),
    }
    wants_refresh = include_refresh_token and user is not None and "offline_access" in scopes
    if wants_refresh and client.check_grant_type("refresh_token"):
        token["refresh_token"] = secrets.token_urlsafe(48)
    return token


def save_token(token, request):
    """Remember what was issued, under the grant's family id.

    One authorization grant (a code, a password exchange, an implicit
    response) is one *family*: its refresh tokens and the access tokens
    minted from them.  Revoking the family revokes all of them at once,
    which both code replay (RFC 6749 §4.1.2) and refresh-token reuse
    (RFC 9700 §4.14.2) call for.
    """
    store = state().store
    if request.refresh_token is not None:
        family = request.refresh_token.family
    else:
        family = getattr(request, "family", None) or new_id()
    user = request.user
    claims = unverified_claims(token["access_token"])
    common = {
        "client_id": request.client.get_client_id(),
        "username": user.username if user else None,
        "scope": token.get("scope", ""),
        "family": family,
    }
    access = {**common, "sub": claims["sub"], "iat": claims["iat"], "exp": claims["exp"]}
    if "cnf" in claims:
        access["jkt"] = claims["cnf"]["jkt"]  # for introspection's cnf (RFC 9449 §6.2) and userinfo
    store.save_access_token(claims["jti"], access)
    if "refresh_token" in token:
        now = int(time.time())
        refresh = {
            **common,
            "iat": now,
            "exp": now + state().settings.dev_issuer_refresh_token_lifetime,
            "auth_time": getattr(request, "auth_time", None),
        }
        jkt = refresh_token_binding(request.client)
        if jkt:
            refresh["jkt"] = jkt  # RFC 9449 §5: a public client's refresh token is bound to its key
        store.save_refresh_token(token["refresh_token"], refresh)


def find_token(token_string, token_type_hint=None) -> StoredToken | None:
    """Look a presented token up: JWTs by their ``jti``, refresh tokens by hash.

    The hint is only a hint (RFC 7009 §2.1, RFC 7662 §2.1): both kinds are
    tried.
    """
    if not isinstance(token_string, str) or not token_string:
        return None
    claims = verify_own_jwt(token_string)
    if claims and isinstance(claims.get("jti"), str):
        return state().store.access_token(claims["jti"])
    return state().store.refresh_token(token_string)


# -- ID tokens -------------------------------------------------------------------------


class IdTokenMixin:
    """How this issuer signs ID tokens: RS256, current key, Okta-like claims."""

    DEFAULT_EXPIRES_IN = ID_TOKEN_LIFETIME

    def resolve_client_private_key(self, client):
        return signing_key()

    def get_client_algorithm(self, client):
        # Pinned: the client's metadata cannot ask for "none" or HMAC.
        return "RS256"

    def get_encode_header(self, client):
        return {"alg": "RS256", "kid": signing_key().kid, "typ": "JWT"}

    def get_client_claims(self, client):
        return {
            "iss": state().settings.issuer,
            "aud": client.get_client_id(),
            "ver": 1,
            "jti": "ID." + new_id(),
            "amr": ["pwd"],
        }

    def get_compatible_claims(self, request):
        claims = super().get_compatible_claims(request)
        auth_time = getattr(request, "auth_time", None)
        if auth_time:
            claims["auth_time"] = int(auth_time)
        return claims

    def generate_user_info(self, user, scope):
        return user_info(user, scope)

    def exists_nonce(self, nonce, request):
        """A nonce seen before for this client is a replay (OpenID Connect Core 15.5.2)."""
        return state().store.seen("nonce", f"{request.payload.client_id}:{nonce}")
