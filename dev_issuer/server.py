"""Authlib's authorization server, wired the way an Okta custom authorization server behaves.

:func:`config_oauth` builds one authorization server per app, as Authlib's
example server's ``config_oauth(app)`` does, and registers on it every
grant with its extensions, the client authentication methods and the
endpoints.  The server and the issuer's state live in ``app.extensions``
(see ``state.py``): building a second app in the same process builds a
second, independent server.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from authlib.integrations.flask_oauth2 import AuthorizationServer, ResourceProtector
from authlib.integrations.flask_oauth2.requests import FlaskOAuth2Payload, FlaskOAuth2Request
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import OAuth2Request
from flask import Flask
from flask import request as flask_request

from . import dpop
from .client_auth import PrivateKeyJWT
from .clients import OIDC_SCOPES, Client
from .device import register_device_grant
from .endpoints import (
    BearerTokenValidator,
    DPoPTokenValidator,
    EndSessionEndpoint,
    IntrospectionEndpoint,
    RevocationEndpoint,
    UserInfoEndpoint,
)
from .grants import (
    AuthorizationCodeGrant,
    ClientCredentialsGrant,
    CodeChallenge,
    ImplicitGrant,
    OpenIDCode,
    OpenIDImplicitGrant,
    OpenIDToken,
    PasswordGrant,
    RefreshTokenGrant,
)
from .state import SERVER_EXTENSION, STATE_EXTENSION, IssuerState
from .tokens import generate_token, save_token

#: Host names of an issuer that runs on this machine (RFC 8252 §8.3).
LOOPBACK_ISSUER_HOSTS = {"localhost", "127.0.0.1", "::1"}


def is_loopback_http(issuer: str) -> bool:
    """True for an ``http`` issuer on this machine, where nothing crosses a network."""
    parts = urlsplit(issuer)
    return parts.scheme == "http" and parts.hostname in LOOPBACK_ISSUER_HOSTS


class LoopbackIssuerRequest(FlaskOAuth2Request):
    """A request to an ``http`` loopback issuer, addressed by the issuer's own origin.

    Authlib checks the transport of the URI an OAuth 2.0 request is built
    with (RFC 6749 §3.1 and §3.2 require TLS; loopback is the exception of
    RFC 8252 §8.3).  Flask builds the request URL from the ``Host`` header,
    which the client chooses; for an issuer that serves plain http on this
    machine, the transport is the issuer's, so the check is made on the
    issuer's origin.  An issuer anywhere else keeps Authlib's own check.
    """

    def __init__(self, request, issuer_origin: str):
        # What FlaskOAuth2Request.__init__ does, but with the issuer's origin.
        OAuth2Request.__init__(
            self,
            method=request.method,
            uri=issuer_origin + request.full_path.rstrip("?"),
            headers=request.headers,
        )
        self._request = request
        self.payload = FlaskOAuth2Payload(request)


class IssuerAuthorizationServer(AuthorizationServer):
    """Authlib's Flask authorization server for one issuer app.

    :param issuer_state: the app's settings, clients, users, storage and keys.
    """

    def __init__(self, app: Flask, issuer_state: IssuerState):
        self.issuer_state = issuer_state
        issuer = urlsplit(issuer_state.settings.issuer)
        self.loopback_http_origin = (
            f"{issuer.scheme}://{issuer.netloc}" if is_loopback_http(issuer_state.settings.issuer) else None
        )
        super().__init__(app, save_token=save_token)

    def query_client(self, client_id) -> Client | None:
        """The registered client with this id, or ``None`` (RFC 6749 §2.2)."""
        return self.issuer_state.clients.get(client_id) if isinstance(client_id, str) else None

    def create_token_response(self, request=None):
        """The token endpoint (RFC 6749 §3.2), with the DPoP proof checked before any grant (RFC 9449 §5).

        A refused proof, or one without the current nonce (§8), is answered
        before the grant looks at the code or refresh token, so nothing is
        used up and the client can retry with a new proof.
        """
        try:
            dpop.check_token_request_proof()
        except OAuth2Error as error:
            return self.handle_error_response(None, error)
        return dpop.offer_fresh_nonce(super().create_token_response(request))

    def authenticate_client(self, request, methods, endpoint="token"):
        """Authlib's client authentication (RFC 6749 §2.3); then, at the token endpoint, "Require DPoP".

        RFC 9449 §5.2: a client registered with ``dpop_bound_access_tokens``
        gets no token without a proof.  Only at the token endpoint itself:
        Authlib's implicit grants authenticate the client as "token" too, at
        the authorization endpoint, where ``dpop.refuse_implicit_access_token``
        decides instead.
        """
        client = super().authenticate_client(request, methods, endpoint)
        if endpoint == "token" and flask_request.endpoint == "oauth.token":
            dpop.require_proof(client)
        return client

    def create_oauth2_request(self, request):
        """The current request as Authlib's grants and endpoints see it.

        See :class:`LoopbackIssuerRequest` for the transport check.
        """
        if self.loopback_http_origin is not None:
            return LoopbackIssuerRequest(flask_request, self.loopback_http_origin)
        return super().create_oauth2_request(request)


def config_oauth(app: Flask, issuer_state: IssuerState) -> IssuerAuthorizationServer:
    """Build the app's authorization server and register grants, client authentication and endpoints."""
    app.extensions[STATE_EXTENSION] = issuer_state
    scopes = list(OIDC_SCOPES) + issuer_state.settings.service_scope.split()
    app.config.setdefault("OAUTH2_SCOPES_SUPPORTED", scopes)
    server = IssuerAuthorizationServer(app, issuer_state)
    # init_app installed Authlib's opaque-token generator; ours makes JWTs.
    server.register_token_generator("default", generate_token)
    server.register_client_auth_method("private_key_jwt", PrivateKeyJWT())

    server.register_grant(
        AuthorizationCodeGrant, [CodeChallenge(required=True), OpenIDCode(require_nonce=False)]
    )
    server.register_grant(ImplicitGrant)
    server.register_grant(OpenIDImplicitGrant)
    server.register_grant(PasswordGrant, [OpenIDToken()])
    server.register_grant(ClientCredentialsGrant)
    server.register_grant(RefreshTokenGrant, [OpenIDToken()])
    # RFC 8628: the device code grant and its device authorization endpoint (dev_issuer/device.py).
    register_device_grant(server)

    # The userinfo endpoint's bearer-token guard (RFC 6750), per app too.
    require_oauth = ResourceProtector()
    require_oauth.register_token_validator(BearerTokenValidator())
    require_oauth.register_token_validator(DPoPTokenValidator())  # RFC 9449 §7.1
    server.register_endpoint(RevocationEndpoint)
    server.register_endpoint(IntrospectionEndpoint)
    server.register_endpoint(UserInfoEndpoint(resource_protector=require_oauth))
    server.register_endpoint(EndSessionEndpoint)

    app.extensions[SERVER_EXTENSION] = server
    return server
