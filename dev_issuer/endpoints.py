"""The issuer's endpoints beyond the grants: revocation, introspection, userinfo, logout.

Each is an Authlib endpoint class named after its spec, with the storage
and policy hooks filled in; ``config_oauth`` registers them on the app's
authorization server, and the views in ``oauth.py`` call them by name.
"""

from __future__ import annotations

import base64
import json

from authlib.oauth2 import rfc7009, rfc7662
from authlib.oauth2.rfc6749.errors import InvalidRequestError
from authlib.oauth2.rfc6750 import BearerTokenValidator as _BearerTokenValidator
from authlib.oauth2.rfc6750 import InvalidTokenError
from authlib.oidc import core as oidc
from authlib.oidc import rpinitiated
from flask import session

from .dpop import (
    DPoPChallengeError,
    check_resource_proof,
    check_revocation_proof,
    refuse_bound_token_as_bearer,
)
from .state import state
from .tokens import find_token, signing_key
from .users import user_info


class RevocationEndpoint(rfc7009.RevocationEndpoint):
    """Token revocation (RFC 7009)."""

    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]

    def authenticate_endpoint_client(self, request):
        """Authenticate the client (§2.1); then check its DPoP proof, if it sent one (RFC 9449 §4.3)."""
        client = super().authenticate_endpoint_client(request)
        check_revocation_proof()
        return client

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
        if data.get("jkt"):
            # RFC 9449 §6.2: the key the token is bound to, for a resource server that introspects.
            body["cnf"] = {"jkt": data["jkt"]}
            if token.kind == "access_token":
                body["token_type"] = "DPoP"
        if user is not None:
            body["uid"] = user.uid
        return {k: v for k, v in body.items() if v is not None}


class BearerTokenValidator(_BearerTokenValidator):
    """Bearer access tokens for the userinfo endpoint (RFC 6750); never a DPoP-bound one (RFC 9449 §7.2)."""

    def authenticate_token(self, token_string):
        token = find_token(token_string)
        return token if token is not None and token.kind == "access_token" else None

    def validate_token(self, token, scopes, request):
        """Authlib's checks (active, unexpired, scope), then: a bound token is no bearer token."""
        super().validate_token(token, scopes, request)
        refuse_bound_token_as_bearer(token)


class DPoPTokenValidator(BearerTokenValidator):
    """``Authorization: DPoP <token>`` at userinfo (RFC 9449 §7.1): a bound token and its proof."""

    TOKEN_TYPE = "dpop"

    def authenticate_token(self, token_string):
        token = super().authenticate_token(token_string)
        if token is not None:
            token.presented = token_string  # for the proof's ath (§4.2)
        return token

    def validate_token(self, token, scopes, request):
        """Authlib's checks (active, unexpired, scope), then the proof (§7.1); refusals as DPoP challenges."""
        try:
            _BearerTokenValidator.validate_token(self, token, scopes, request)
        except InvalidTokenError as error:
            raise DPoPChallengeError("invalid_token", error.get_error_description()) from None
        check_resource_proof(token, token.presented)


class UserInfoEndpoint(oidc.UserInfoEndpoint):
    """Userinfo (OpenID Connect Core 5.3): claims for the token's scopes."""

    def get_issuer(self):
        return state().settings.issuer

    def generate_user_info(self, user, scope):
        return user_info(user, scope)

    def resolve_private_key(self):
        return signing_key()


#: Claims of this issuer's access tokens that its ID tokens never carry.
ACCESS_TOKEN_ONLY_CLAIMS = ("scp", "cid")


def hint_header_type(id_token_hint: str) -> str:
    """The ``typ`` of the (already verified) hint's JOSE header, lower-cased (RFC 7515 §4.1.9)."""
    segment = id_token_hint.split(".")[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, UnicodeDecodeError):
        return ""
    typ = header.get("typ") if isinstance(header, dict) else None
    return typ.lower() if isinstance(typ, str) else ""


def suspect_hint_reason(id_token_hint: str, claims: dict, session_user) -> str | None:
    """Why a verified ``id_token_hint`` does not by itself end ``session_user``'s session, if it does not.

    RP-Initiated Logout 1.0 §2: the hint is an *ID token* issued to the
    client, about the End-User of the session; §4 and §6: a request that
    does not show that is suspect and needs the End-User's confirmation.
    An access token is never taken for an ID token (RFC 9068 §2.1, RFC 8725
    §3.11): it says ``typ: at+jwt`` or carries ``scp``/``cid``.
    """
    if hint_header_type(id_token_hint) == "at+jwt" or any(c in claims for c in ACCESS_TOKEN_ONLY_CLAIMS):
        return "The id_token_hint is an access token, not an ID token."
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    if not audiences or not all(isinstance(a, str) and a in state().clients for a in audiences):
        return "The id_token_hint was not issued to an application registered here."
    if session_user is not None and claims.get("sub") != session_user.uid:
        return "The id_token_hint names another user than the one signed in here."
    return None


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
