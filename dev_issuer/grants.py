"""Authlib's authorization server, wired the way an Okta custom authorization server behaves.

Module-level extension objects (``authorization``, ``require_oauth``) are
set up by :func:`config_oauth`, as in Authlib's example server.  Each grant
class is named after its spec and registered with its extensions; the
methods below are the storage and policy hooks Authlib asks for.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from dataclasses import dataclass

from authlib.common.urls import add_params_to_uri
from authlib.integrations.flask_oauth2 import AuthorizationServer, ResourceProtector
from authlib.oauth2 import rfc7009, rfc7636, rfc7662
from authlib.oauth2.rfc6749 import grants, scope_to_list
from authlib.oauth2.rfc6749.errors import (
    AccessDeniedError,
    InvalidClientError,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
)
from authlib.oauth2.rfc6750 import BearerTokenValidator as _BearerTokenValidator
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oidc import core as oidc
from authlib.oidc import rpinitiated
from authlib.oidc.core.grants import OpenIDCode as _OpenIDCode
from authlib.oidc.core.grants import OpenIDImplicitGrant as _OpenIDImplicitGrant
from authlib.oidc.core.grants import OpenIDToken as _OpenIDToken
from flask import current_app, g, render_template, session
from joserfc import jwt
from joserfc.errors import JoseError

from common.config import Settings, origin_of

from .keys import Keyring
from .models import OIDC_SCOPES, Client, Store, StoredToken, User, new_id

#: The authorization server (RFC 6749 §3) and the bearer-token guard of the
#: userinfo endpoint (RFC 6750); both are configured by :func:`config_oauth`.
authorization = AuthorizationServer()
require_oauth = ResourceProtector()

#: The response modes of OAuth 2.0 Multiple Response Types §2 and Form Post.
RESPONSE_MODES = ("query", "fragment", "form_post")

#: Lifetime of ID tokens (Okta's figure: one hour).
ID_TOKEN_LIFETIME = 3600


@dataclass
class IssuerState:
    """What every request of the issuer needs: settings, registry, storage, keys."""

    settings: Settings
    clients: dict[str, Client]
    users: dict[str, User]
    store: Store
    keyring: Keyring

    def endpoint(self, name: str) -> str:
        return f"{self.settings.issuer}/v1/{name}"


def state() -> IssuerState:
    return current_app.extensions["dev_issuer"]


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


# -- tokens ----------------------------------------------------------------------


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
    token = {
        "token_type": "Bearer",
        "expires_in": lifetime,
        "access_token": sign_jwt(claims),
        "scope": " ".join(scopes),
    }
    if include_refresh_token and user is not None and "offline_access" in scopes and client.check_grant_type("refresh_token"):
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
    store.save_access_token(claims["jti"], {**common, "sub": claims["sub"], "iat": claims["iat"], "exp": claims["exp"]})
    if "refresh_token" in token:
        now = int(time.time())
        store.save_refresh_token(
            token["refresh_token"],
            {**common, "iat": now, "exp": now + state().settings.dev_issuer_refresh_token_lifetime,
             "auth_time": getattr(request, "auth_time", None)},
        )


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


def user_info(user: User, scope: str) -> oidc.UserInfo:
    """The standard claims a scope releases (OpenID Connect Core 5.4)."""
    info = oidc.UserInfo(
        sub=user.uid,
        name=user.name,
        given_name=user.given_name,
        family_name=user.family_name,
        preferred_username=user.username,
        locale="en-US",
        zoneinfo="America/Los_Angeles",
        email=user.email,
        email_verified=True,
    )
    return info.filter(scope)


# -- authorization responses ---------------------------------------------------------


def response_mode(request, default: str) -> str:
    """The validated ``response_mode`` (OAuth 2.0 Multiple Response Types §2.1).

    Tokens never travel in a query string, where they end up in logs and
    ``Referer`` headers, so ``query`` is refused for token responses.
    """
    mode = request.payload.data.get("response_mode") or default
    if mode not in RESPONSE_MODES:
        raise InvalidRequestError("Unsupported response_mode: use query, fragment or form_post.")
    if mode == "query" and default != "query":
        raise InvalidRequestError("response_mode=query is not allowed when tokens are returned.")
    return mode


def authorization_response(redirect_uri: str, params: list, mode: str):
    """Deliver an authorization response (success or error) to the client.

    Every response carries ``iss`` (RFC 9207 §2), so a client talking to
    several issuers can tell which one answered (mix-up attacks, RFC 9700
    §4.4).  ``form_post`` renders a self-submitting form whose script is a
    static file, so the page keeps a strict Content-Security-Policy.
    """
    params = [(k, str(v)) for k, v in params if v is not None] + [("iss", state().settings.issuer)]
    if mode == "form_post":
        body = render_template("dev_issuer/form_post.html", redirect_uri=redirect_uri, params=params)
        csp = (
            "default-src 'none'; script-src 'self'; style-src 'self'; base-uri 'none'; "
            f"frame-ancestors 'none'; form-action {origin_of(redirect_uri)}"
        )
        return 200, body, [("Content-Type", "text/html; charset=utf-8"), ("Content-Security-Policy", csp),
                           ("Cache-Control", "no-store")]
    uri = add_params_to_uri(redirect_uri, params, fragment=(mode == "fragment"))
    return 302, "", [("Location", uri), ("Cache-Control", "no-store")]


def validate_redirect_uri(request, client):
    """Require ``redirect_uri`` and match it exactly (RFC 9700 §4.1.3).

    OpenID Connect Core 3.1.2.1 makes the parameter REQUIRED; a mismatch is
    raised *without* a redirect URI, so it is shown on the issuer's own
    error page and never sent to an unverified address (RFC 6749 §4.1.2.1).
    """
    redirect_uri = request.payload.redirect_uri
    if not redirect_uri:
        raise InvalidRequestError("Missing redirect_uri: it is required and must match a registered one exactly.")
    if not client.check_redirect_uri(redirect_uri):
        raise InvalidRequestError("The redirect_uri is not registered for this client (exact match required).")
    return redirect_uri


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
        return {"iss": state().settings.issuer, "aud": client.get_client_id(), "ver": 1, "jti": "ID." + new_id(),
                "amr": ["pwd"]}

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


class OpenIDCode(IdTokenMixin, _OpenIDCode):
    """ID tokens from the authorization code (OpenID Connect Core 3.1.3.3)."""


class OpenIDToken(IdTokenMixin, _OpenIDToken):
    """ID tokens from the password and refresh grants, when ``openid`` was granted."""


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


# -- grants ----------------------------------------------------------------------------


class CodeChallenge(rfc7636.CodeChallenge):
    """PKCE (RFC 7636): required of public clients, and only ``S256``.

    ``plain`` protects nothing once the authorization request leaks, so it
    is refused (RFC 9700 §2.1.1); a missing method would mean ``plain``
    (RFC 7636 §4.3), so it is refused too.
    """

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]
    DEFAULT_CODE_CHALLENGE_METHOD = "S256"

    def validate_code_challenge(self, grant, redirect_uri):
        """Check the authorization request's PKCE parameters (RFC 7636 §4.3, §4.4.1).

        Public clients must send a challenge (RFC 9700 §2.1.1), and only
        ``S256``; Authlib then checks the challenge's syntax.
        """
        data = grant.request.payload.data
        challenge, method = data.get("code_challenge"), data.get("code_challenge_method")
        if grant.request.client.is_public and not challenge:
            raise InvalidRequestError("PKCE is required for public clients: send code_challenge and code_challenge_method=S256.")
        if challenge and method != "S256":
            raise InvalidRequestError("code_challenge_method must be S256; plain is not accepted.")
        return super().validate_code_challenge(grant, redirect_uri)


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
    """Authorization Code (RFC 6749 §4.1; OpenID Connect Core 3.1)."""

    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]
    AUTHORIZATION_CODE_LENGTH = 43

    validate_authorization_redirect_uri = staticmethod(validate_redirect_uri)

    def validate_authorization_request(self):
        redirect_uri = super().validate_authorization_request()
        try:
            self.request.response_mode = response_mode(self.request, "query")
        except InvalidRequestError as error:
            error.redirect_uri = redirect_uri
            raise
        return redirect_uri

    def create_authorization_response(self, redirect_uri, grant_user):
        """Issue a code bound to client, redirect URI, PKCE challenge and nonce (§4.1.2)."""
        if not grant_user:
            raise AccessDeniedError(redirect_uri=redirect_uri)
        self.request.user = grant_user
        code = self.generate_authorization_code()
        self.save_authorization_code(code, self.request)
        params = [("code", code), ("state", self.request.payload.state)]
        return authorization_response(redirect_uri, params, self.request.response_mode)

    def save_authorization_code(self, code, request):
        data = request.payload.data
        nonce = data.get("nonce")
        if nonce:
            state().store.first_use("nonce", f"{request.client.client_id}:{nonce}", ID_TOKEN_LIFETIME * 2)
        state().store.save_code(code, {
            "client_id": request.client.client_id,
            "redirect_uri": request.payload.redirect_uri,
            "scope": request.scope,
            "username": request.user.username,
            "nonce": nonce,
            "code_challenge": data.get("code_challenge"),
            "code_challenge_method": data.get("code_challenge_method"),
            "auth_time": getattr(request, "auth_time", None) or int(time.time()),
        })

    def query_authorization_code(self, code, client):
        """Find the code this client presents, without using it up yet.

        RFC 6749 §4.1.3 has the server authenticate the client, ensure the
        code was issued to it, and check ``redirect_uri``; RFC 7636 §4.6
        adds the ``code_verifier``.  A request that fails any of them has
        not *used* the code: if it burned the code, anyone who intercepted
        a public client's code (RFC 9700 §4.5) could spend it with a wrong
        verifier and turn the real client's exchange into a "replay" that
        revokes its tokens.  So this only looks the code up; it is spent in
        :meth:`validate_token_request`, after every check has passed.  (A
        wrong ``code_verifier`` cannot be guessed: it carries 256 bits.)
        """
        if not isinstance(code, str) or not code or len(code) > 512:
            return None
        data, family = state().store.peek_code(code)
        if data is None or data["client_id"] != client.client_id:
            # §4.1.3: "ensure that the authorization code was issued to the
            # authenticated confidential client" (or the public client_id).
            return None
        return AuthorizationCode({**data, "code": code})

    def validate_token_request(self):
        """Check the token request (RFC 6749 §4.1.3), then spend the code, once.

        Authlib's checks (client authentication, the code's client, the
        redirect URI) and the PKCE hook (RFC 7636 §4.6) run first; only a
        request that passed all of them redeems the code.  Redeeming is one
        atomic Redis step (``Store.redeem_code``), so of two concurrent
        redemptions exactly one wins, and the loser, like any later replay
        that passes the same checks, revokes every token the winner got.
        RFC 6749 §4.1.2: "If an authorization code is used more than once,
        the authorization server MUST deny the request and SHOULD revoke
        (when possible) all tokens previously issued based on that
        authorization code."
        """
        super().validate_token_request()
        code = self.request.authorization_code
        fresh, family = state().store.redeem_code(code.data["code"])
        if family is None:
            raise InvalidGrantError("The authorization code has expired; start the sign-in again.")
        if not fresh:
            state().store.revoke_family(family)
            raise InvalidGrantError("The authorization code was already used; the tokens issued for it are now revoked.")
        self.request.family = family
        self.request.auth_time = code.data.get("auth_time")

    def delete_authorization_code(self, authorization_code):
        # Spent already, atomically, by validate_token_request (the record
        # itself stays, marked used, so a replay can be recognised).
        pass

    def authenticate_user(self, authorization_code):
        return state().users.get(authorization_code.data["username"].lower())


class FragmentResponseMixin:
    """What both Implicit grants share: exact redirect-URI matching, and the
    answer in the fragment (or a form post), never in the query, so tokens
    stay out of server logs and Referer headers (OAuth 2.0 Multiple Response
    Type Encoding Practices §3.0, RFC 9700 §4.3)."""

    validate_authorization_redirect_uri = staticmethod(validate_redirect_uri)

    def validate_authorization_request(self):
        redirect_uri = super().validate_authorization_request()
        try:
            self.request.response_mode = response_mode(self.request, "fragment")
        except InvalidRequestError as error:
            error.redirect_uri, error.redirect_fragment = redirect_uri, True
            raise
        return redirect_uri


class ImplicitGrant(FragmentResponseMixin, grants.ImplicitGrant):
    """Implicit, ``response_type=token`` (RFC 6749 §4.2): legacy, for the SPA only."""

    def create_authorization_response(self, redirect_uri, grant_user):
        """Return the access token in the fragment (§4.2.2); never a refresh token."""
        if not grant_user:
            raise AccessDeniedError(redirect_uri=redirect_uri, redirect_fragment=True)
        self.request.user = grant_user
        self.request.family = new_id()
        token = self.generate_token(user=grant_user, scope=self.request.scope, include_refresh_token=False)
        self.save_token(token)
        params = list(token.items()) + [("state", self.request.payload.state)]
        return authorization_response(redirect_uri, params, self.request.response_mode)


class OpenIDImplicitGrant(FragmentResponseMixin, IdTokenMixin, _OpenIDImplicitGrant):
    """Implicit, ``id_token`` and ``id_token token`` (OpenID Connect Core 3.2)."""

    def validate_consent_request(self):
        # Authlib's OpenID implicit grant validates but does not remember the
        # redirect URI; the authorization view needs it.
        self.redirect_uri = super().validate_consent_request()
        return self.redirect_uri

    def create_authorization_response(self, redirect_uri, grant_user):
        """ID token (and access token) in the fragment or a form post (3.2.2.5)."""
        if not grant_user:
            raise AccessDeniedError(redirect_uri=redirect_uri, redirect_fragment=True)
        self.request.family = new_id()
        nonce = self.request.payload.data.get("nonce")
        state().store.first_use("nonce", f"{self.request.client.client_id}:{nonce}", ID_TOKEN_LIFETIME * 2)
        params = self.create_granted_params(grant_user) + [("state", self.request.payload.state)]
        return authorization_response(redirect_uri, params, self.request.response_mode)


class PasswordGrant(grants.ResourceOwnerPasswordCredentialsGrant):
    """Resource Owner Password Credentials (RFC 6749 §4.3), trusted app only.

    Deprecated by RFC 9700 §2.4; the trusted client has the grant only
    while ``TRUSTED_MODE`` is on, otherwise Authlib answers
    ``unauthorized_client``.
    """

    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic"]

    def authenticate_user(self, username, password):
        user = state().users.get(str(username).lower())
        if user is None or not user.check_password(str(password)):
            # §5.2: wrong resource-owner credentials are an invalid grant.
            raise InvalidGrantError("The username or password is incorrect.")
        return user

    def validate_token_request(self):
        super().validate_token_request()
        scope = self.request.client.get_allowed_scope(self.request.payload.scope)
        if scope is None:
            raise InvalidScopeError("Ask for scopes this app may have, e.g. openid profile email offline_access.")
        self.request.scope = scope
        self.request.auth_time = int(time.time())


class ClientCredentialsGrant(grants.ClientCredentialsGrant):
    """Client Credentials (RFC 6749 §4.4): custom scopes only, never ``openid``."""

    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt"]

    def validate_token_request(self):
        """Authenticate the client and settle the scope (RFC 6749 §4.4.2, §3.3).

        Only the client's own custom scopes may be granted; an empty
        request gets the client's registered default scope.
        """
        super().validate_token_request()
        client = self.request.client
        requested = scope_to_list(self.request.payload.scope) or []
        if set(requested) & set(OIDC_SCOPES):
            # There is no user, so there is nobody for an ID token or
            # userinfo to describe (Okta answers the same).
            raise InvalidScopeError("A service has no user: openid, profile, email and offline_access cannot be granted.")
        if not requested:
            # RFC 6749 §3.3: without a scope, the client's default applies.
            self.request.scope = " ".join(client.scopes)
        elif client.get_allowed_scope(self.request.payload.scope) is None:
            raise InvalidScopeError("This client may ask only for: " + " ".join(client.scopes) + ".")
        else:
            self.request.scope = client.get_allowed_scope(self.request.payload.scope)

    def create_token_response(self):
        """An access token and nothing else: no refresh token (§4.4.3)."""
        token = self.generate_token(scope=self.request.scope, include_refresh_token=False)
        self.save_token(token)
        return 200, token, self.TOKEN_RESPONSE_HEADER


class RefreshTokenGrant(grants.RefreshTokenGrant):
    """Refresh Token (RFC 6749 §6) with rotation and reuse detection.

    Every use returns a new refresh token and retires the old one.  A
    retired token presented again means two parties hold it, one of them
    an attacker: the whole family is revoked (RFC 9700 §4.14.2).
    """

    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token):
        """The stored refresh token, if it is known, unexpired and unrevoked (RFC 6749 §6).

        Authlib then checks that it was issued to the authenticated client,
        as §6 requires.
        """
        if not isinstance(refresh_token, str) or len(refresh_token) > 512:
            return None
        token = state().store.refresh_token(refresh_token)
        if token is None or token.is_expired() or token.data.get("revoked") or state().store.family_revoked(token.family):
            return None
        return token

    def validate_token_request(self):
        """Validate the refresh request (RFC 6749 §6), then detect reuse (RFC 9700 §4.14.2).

        Claiming the token is one atomic Redis step: whoever presents it
        second, honest client or attacker, gets ``invalid_grant`` and the
        whole family is revoked, since the server cannot tell which of the
        two is the legitimate one.
        """
        super().validate_token_request()
        token = self.request.refresh_token
        if not state().store.claim_refresh_token(token):
            state().store.revoke_family(token.family)
            raise InvalidGrantError("This refresh token was already used, so every token of its grant is now revoked.")
        self.request.auth_time = token.data.get("auth_time")

    def authenticate_user(self, refresh_token):
        return refresh_token.get_user()

    def revoke_old_credential(self, refresh_token):
        """Retire the rotated refresh token (RFC 9700 §4.14.2, RFC 6749 §6).

        Nothing to do here: ``claim_refresh_token`` in
        :meth:`validate_token_request` retired it already, atomically.
        """


# -- client authentication: private_key_jwt (RFC 7523 §2.2) ---------------------------


class PrivateKeyJWT(JWTBearerClientAssertion):
    """``private_key_jwt``: the client signs a short JWT with its own key.

    The assertion's ``aud`` must be this issuer's token endpoint (or the
    issuer), it must be short-lived, and each ``jti`` is accepted once
    (RFC 7523 §3 items 4-7).
    """

    CLIENT_AUTH_METHOD = "private_key_jwt"

    #: The longest an assertion may live (``exp`` ahead of now, ``iat``
    #: behind it), in seconds.  The ``jti`` of every accepted assertion is
    #: remembered until its ``exp``; without this bound an assertion valid
    #: for a month would outlive that memory and could be replayed.
    MAX_LIFETIME = 300

    def get_audiences(self):
        return [state().endpoint("token"), state().settings.issuer]

    def resolve_client_public_key(self, client):
        if not client.public_jwk:
            raise InvalidClientError(description="This client has no registered public key.")
        from joserfc.jwk import import_key

        return import_key(client.public_jwk)

    def verify_claims(self, claims):
        """Refuse long-lived assertions before the usual checks (RFC 7523 §3).

        Item 4 requires ``exp``, and item 5 lets the server refuse one
        "unreasonably far in the future"; item 6 lets it refuse an ``iat``
        "unreasonably far in the past".  Both are bounded to
        :attr:`MAX_LIFETIME` (plus clock-skew leeway), and ``iat`` is
        required so that the assertion's age is known.  Then Authlib checks
        ``iss``/``sub``/``aud``/``exp`` and calls :meth:`validate_jti`.
        """
        now = time.time()
        exp, iat = claims.get("exp"), claims.get("iat")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (exp, iat)):
            raise InvalidClientError(description="The client assertion needs numeric 'iat' and 'exp' claims.")
        if exp > now + self.MAX_LIFETIME + self.leeway:
            raise InvalidClientError(
                description=f"The client assertion expires too far ahead: 'exp' may be at most {self.MAX_LIFETIME} s away.")
        if iat > now + self.leeway:
            raise InvalidClientError(description="The client assertion was issued in the future ('iat').")
        if iat < now - self.MAX_LIFETIME - self.leeway:
            raise InvalidClientError(
                description=f"The client assertion is too old: 'iat' may be at most {self.MAX_LIFETIME} s ago.")
        super().verify_claims(claims)

    def validate_jti(self, claims, jti):
        """Accept each assertion ``jti`` once (RFC 7523 §3 item 7).

        It is remembered "for the length of time for which the JWT would be
        considered valid based on the applicable exp instant": until
        ``exp`` plus the leeway, which :meth:`verify_claims` has bounded.
        """
        ttl = int(claims["exp"] - time.time()) + self.leeway + 1
        return state().store.first_use("assertion_jti", f"{claims['sub']}:{jti}", ttl)


# -- endpoints -------------------------------------------------------------------------


class RevocationEndpoint(rfc7009.RevocationEndpoint):
    """Token revocation (RFC 7009)."""

    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]

    def query_token(self, token_string, token_type_hint):
        return find_token(token_string, token_type_hint)

    def revoke_token(self, token, request):
        """Revoke one access token; a refresh token takes its whole grant (§2.1)."""
        if token.kind == "refresh_token":
            state().store.revoke_family(token.family)
        state().store.revoke(token)


class IntrospectionEndpoint(rfc7662.IntrospectionEndpoint):
    """Token introspection (RFC 7662)."""

    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]

    def query_token(self, token_string, token_type_hint):
        return find_token(token_string, token_type_hint)

    def check_permission(self, token, client, request):
        # The resource server's introspection client may ask about any
        # token; any other client only about its own (§2.1, §4).
        return client.introspect_any or token.check_client(client)

    def introspect_token(self, token):
        """The introspection answer for an active token (RFC 7662 §2.2).

        Authlib answers ``{"active": false}`` itself for unknown, expired
        or revoked tokens; the claims here are §2.2's plus Okta's ``uid``.
        """
        data = token.data
        user = token.get_user()
        body = {
            "active": True,
            "scope": token.scope,
            "client_id": token.client_id,
            "username": data.get("username"),
            "exp": int(data["exp"]),
            "iat": int(data["iat"]),
            "sub": data.get("sub") or data.get("username"),
            "iss": state().settings.issuer,
            "token_type": "Bearer" if token.kind == "access_token" else "refresh_token",
        }
        if token.kind == "access_token":
            body.update(aud=state().settings.api_audience, jti=token.key)
        if user is not None:
            body["uid"] = user.uid
        return {k: v for k, v in body.items() if v is not None}


class BearerTokenValidator(_BearerTokenValidator):
    """Bearer access tokens for the userinfo endpoint (RFC 6750)."""

    def authenticate_token(self, token_string):
        token = find_token(token_string)
        return token if token is not None and token.kind == "access_token" else None


class UserInfoEndpoint(oidc.UserInfoEndpoint):
    """Userinfo (OpenID Connect Core 5.3): claims for the token's scopes."""

    def get_issuer(self):
        return state().settings.issuer

    def generate_user_info(self, user, scope):
        return user_info(user, scope)

    def resolve_private_key(self):
        return signing_key()


class EndSessionEndpoint(rpinitiated.EndSessionEndpoint):
    """RP-Initiated Logout 1.0: redirect only to registered post-logout URIs."""

    def get_server_jwks(self):
        return state().keyring.public_key_set()

    def get_algorithms(self):
        return ["RS256"]

    def validate_request(self, request):
        validated = super().validate_request(request)
        claims = validated.id_token_claims
        # §2: the hint must be an ID token *we* issued.
        if claims is not None and claims.get("iss") != state().settings.issuer:
            raise InvalidRequestError("The id_token_hint was not issued by this issuer.")
        return validated

    def end_session(self, end_session_request):
        """End the issuer's own sign-in session (the SSO session)."""
        session.clear()


def query_client(client_id):
    """The registered client with this id, or ``None`` (RFC 6749 §2.2)."""
    return state().clients.get(client_id) if isinstance(client_id, str) else None


def config_oauth(app, issuer_state: IssuerState) -> None:
    """Register grants, client authentication and endpoints on ``authorization``."""
    app.extensions["dev_issuer"] = issuer_state
    app.config.setdefault("OAUTH2_SCOPES_SUPPORTED", list(OIDC_SCOPES) + issuer_state.settings.service_scope.split())
    authorization.init_app(app, query_client=query_client, save_token=save_token)
    # init_app installs Authlib's opaque-token generator; ours makes JWTs.
    authorization.register_token_generator("default", generate_token)
    if getattr(authorization, "_dev_issuer_wired", False):
        return  # a second app in the same process: the grants are registered already
    authorization._dev_issuer_wired = True
    authorization.register_client_auth_method("private_key_jwt", PrivateKeyJWT())

    authorization.register_grant(AuthorizationCodeGrant, [CodeChallenge(required=True), OpenIDCode(require_nonce=False)])
    authorization.register_grant(ImplicitGrant)
    authorization.register_grant(OpenIDImplicitGrant)
    authorization.register_grant(PasswordGrant, [OpenIDToken()])
    authorization.register_grant(ClientCredentialsGrant)
    authorization.register_grant(RefreshTokenGrant, [OpenIDToken()])

    authorization.register_endpoint(RevocationEndpoint)
    authorization.register_endpoint(IntrospectionEndpoint)
    authorization.register_endpoint(UserInfoEndpoint(resource_protector=require_oauth))
    authorization.register_endpoint(EndSessionEndpoint)
    require_oauth.register_token_validator(BearerTokenValidator())
