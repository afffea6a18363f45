"""The issuer's errors, in one place: JSON for clients, a page for people.

Two audiences, two shapes:

- a client calling the token, introspection, revocation or userinfo
  endpoint gets an RFC 6749 §5.2 JSON body (``error``,
  ``error_description``) with ``Cache-Control: no-store`` (§5.1), whatever
  it put in ``Accept``.  Authlib builds that body for the errors its grants
  and endpoints raise; :func:`oauth_error` builds it, the same way, for the
  few the views detect themselves.
- a person whose authorization or sign-out request cannot be sent back
  to an application sees the shared error page of ``common.errors``
  (:func:`common.errors.error_response`), as every app's people do.

Everything else (404s, unexpected exceptions) is left to the app-wide
handlers that ``common.errors.init_error_pages`` installs.
"""

from __future__ import annotations

import redis
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749.errors import InsecureTransportError
from flask import Blueprint, jsonify, request, url_for

from common.errors import error_response

from .keys import SigningKeysUnavailable
from .responses import authorization_response
from .state import authorization_server

#: What a person can check when an authorization request is shown here.
AUTHORIZATION_HINT = (
    "Check the client_id and that redirect_uri matches one registered on the Applications page exactly "
    "(scheme, host, port, path and trailing slash)."
)

#: What a person can do about a sign-out request that is not valid.
LOGOUT_HINT = "Sign out from the application again; its id_token_hint must be an ID token from this issuer."


def oauth_error(error: str, description: str, status: int = 400, headers: dict | None = None):
    """An RFC 6749 §5.2 JSON error body, never cached (§5.1)."""
    response = jsonify(error=error, error_description=description)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    response.headers.update(headers or {})
    return response


def post_only(name: str):
    """Token, introspection and revocation requests are POSTs (RFC 6749 §3.2)."""
    return oauth_error(
        "invalid_request", f"The {name} endpoint accepts only POST with a form body.", 405, {"Allow": "POST"}
    )


def invalid_client_credentials(description: str):
    """``invalid_client`` for a Basic ``Authorization`` header (RFC 6749 §5.2: 401 and a challenge)."""
    return oauth_error("invalid_client", description, 401, {"WWW-Authenticate": 'Basic realm="dev_issuer"'})


def store_unavailable(error):
    """Redis is the issuer's memory: without it, say so (RFC 6749 §4.1.2.1's temporarily_unavailable)."""
    description = "The issuer's store (Redis) is not reachable. Try again shortly."
    return oauth_error("temporarily_unavailable", description, 503, {"Retry-After": "5"})


def plain_http(error):
    """A request over plain http to an https issuer (RFC 6749 §3.2: the token endpoint requires TLS).

    Its likeliest cause is not an attacker but a TLS-terminating proxy in
    front whose ``X-Forwarded-Proto`` the issuer was not told to trust: so
    the answer names the setting (README, "Deploying").
    """
    description = (
        "This issuer's URL is https, but this request reached it over plain http. Behind a reverse proxy "
        "that terminates TLS, set TRUSTED_PROXIES to the number of proxies in front (README, Deploying)."
    )
    return oauth_error("invalid_request", description, 400)


def register_protocol_error_handlers(blueprint: Blueprint) -> None:
    """Answer the protocol endpoints' own failures (Redis down, keys not ready, plain http) as JSON errors."""
    blueprint.register_error_handler(redis.RedisError, store_unavailable)
    blueprint.register_error_handler(SigningKeysUnavailable, store_unavailable)
    blueprint.register_error_handler(InsecureTransportError, plain_http)


def authorization_error(error: OAuth2Error, grant=None):
    """Send an authorization error back to the client, or show it here.

    Authlib sets ``error.redirect_uri`` only once the client and its
    redirect URI are verified.  Without it (unknown client, unregistered
    or mismatched redirect URI, repeated parameters) the error is shown on
    the issuer and never redirected: RFC 6749 §4.1.2.1, so the issuer
    cannot be used as an open redirector.
    """
    description = error.get_error_description() or error.error
    if error.redirect_uri:
        mode = getattr(grant.request, "response_mode", None) if grant is not None else None
        mode = mode or ("fragment" if error.redirect_fragment else "query")
        params = [
            ("error", error.error),
            ("error_description", description),
            ("state", request.values.get("state")),
        ]
        response = authorization_response(error.redirect_uri, params, mode)
        return authorization_server().handle_response(*response)
    return error_response(error.error, description, AUTHORIZATION_HINT, 400, retry_url=url_for("admin.apps"))


def logout_error(error: OAuth2Error | ValueError):
    """The page for an RP-initiated logout request that is not valid (RP-Initiated Logout 1.0 §2).

    It is never redirected: without a valid ``id_token_hint`` there is no
    client whose registered ``post_logout_redirect_uri`` could be trusted.
    """
    description = error.get_error_description() if isinstance(error, OAuth2Error) else str(error)
    return error_response(
        "invalid_request",
        f"This sign-out request is not valid: {description}",
        LOGOUT_HINT,
        400,
        retry_url=url_for("admin.home"),
    )
