"""The grants: one class per grant type, named after its spec.

Authlib does the protocol work; the methods here are the storage and policy
hooks it asks for, plus what this issuer is stricter about: PKCE ``S256``
for public clients, exact redirect URIs, single-use codes that revoke their
tokens when replayed, rotating refresh tokens with reuse detection, and no
tokens in query strings.  ``config_oauth`` registers each grant with its
extensions (:class:`CodeChallenge`, :class:`OpenIDCode`, :class:`OpenIDToken`).
"""

from __future__ import annotations

import time

from authlib.oauth2 import rfc7636
from authlib.oauth2.rfc6749 import grants, scope_to_list
from authlib.oauth2.rfc6749.errors import (
    AccessDeniedError,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    UnauthorizedClientError,
)
from authlib.oidc.core.grants import OpenIDCode as _OpenIDCode
from authlib.oidc.core.grants import OpenIDImplicitGrant as _OpenIDImplicitGrant
from authlib.oidc.core.grants import OpenIDToken as _OpenIDToken

from .clients import OIDC_SCOPES
from .dpop import check_refresh_token_binding, refuse_implicit_access_token
from .responses import authorization_response, response_mode, validate_redirect_uri
from .state import state
from .storage import AuthorizationCode, new_id
from .tokens import ID_TOKEN_LIFETIME, IdTokenMixin
from .users import authenticate

# -- extensions: PKCE and ID tokens ----------------------------------------------------


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
            raise InvalidRequestError(
                "PKCE is required for public clients: send code_challenge and code_challenge_method=S256."
            )
        if challenge and method != "S256":
            raise InvalidRequestError("code_challenge_method must be S256; plain is not accepted.")
        return super().validate_code_challenge(grant, redirect_uri)


class OpenIDCode(IdTokenMixin, _OpenIDCode):
    """ID tokens from the authorization code (OpenID Connect Core 3.1.3.3)."""


class OpenIDToken(IdTokenMixin, _OpenIDToken):
    """ID tokens from the password and refresh grants, when ``openid`` was granted."""


# -- authorization code and implicit ---------------------------------------------------


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
        state().store.save_code(
            code,
            {
                "client_id": request.client.client_id,
                "redirect_uri": request.payload.redirect_uri,
                "scope": request.scope,
                "username": request.user.username,
                "nonce": nonce,
                "code_challenge": data.get("code_challenge"),
                "code_challenge_method": data.get("code_challenge_method"),
                "auth_time": getattr(request, "auth_time", None) or int(time.time()),
            },
        )

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
            raise InvalidGrantError(
                "The authorization code was already used; the tokens issued for it are now revoked."
            )
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
            refuse_implicit_access_token(self.request)
        except (InvalidRequestError, UnauthorizedClientError) as error:
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


# -- token-endpoint grants --------------------------------------------------------------


class PasswordGrant(grants.ResourceOwnerPasswordCredentialsGrant):
    """Resource Owner Password Credentials (RFC 6749 §4.3), trusted app only.

    Deprecated by RFC 9700 §2.4; the trusted client has the grant only
    while ``TRUSTED_MODE`` is on, otherwise Authlib answers
    ``unauthorized_client``.
    """

    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic"]

    def authenticate_user(self, username, password):
        """The resource owner (§4.3.2), with the same password work for unknown usernames."""
        user = authenticate(state().users, str(username), str(password))
        if user is None:
            # §5.2: wrong resource-owner credentials are an invalid grant.
            raise InvalidGrantError("The username or password is incorrect.")
        return user

    def validate_token_request(self):
        super().validate_token_request()
        scope = self.request.client.get_allowed_scope(self.request.payload.scope)
        if scope is None:
            raise InvalidScopeError(
                "Ask for scopes this app may have, e.g. openid profile email offline_access."
            )
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
            raise InvalidScopeError(
                "A service has no user: openid, profile, email and offline_access cannot be granted."
            )
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
        store = state().store
        token = store.refresh_token(refresh_token)
        if token is None or token.is_expired() or token.data.get("revoked"):
            return None
        if store.family_revoked(token.family):
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
        # RFC 9449 §5: a key-bound refresh token needs a proof by that key;
        # checked before the claim, so a thief without the key spends nothing.
        check_refresh_token_binding(token)
        if not state().store.claim_refresh_token(token):
            state().store.revoke_family(token.family)
            raise InvalidGrantError(
                "This refresh token was already used, so every token of its grant is now revoked."
            )
        self.request.auth_time = token.data.get("auth_time")

    def authenticate_user(self, refresh_token):
        return refresh_token.get_user()

    def revoke_old_credential(self, refresh_token):
        """Retire the rotated refresh token (RFC 9700 §4.14.2, RFC 6749 §6).

        Nothing to do here: ``claim_refresh_token`` in
        :meth:`validate_token_request` retired it already, atomically.
        """
