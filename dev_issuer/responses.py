"""Authorization responses: how the result of ``/v1/authorize`` reaches the client.

The response mode (query, fragment or form post) is validated here, every
response carries the issuer's ``iss`` (RFC 9207), and the redirect URI is
matched exactly before anything is sent to it (RFC 9700 §4.1.3).
"""

from __future__ import annotations

from authlib.common.urls import add_params_to_uri
from authlib.oauth2.rfc6749.errors import InvalidRequestError
from flask import render_template

from common.config import origin_of

from .state import state

#: The response modes of OAuth 2.0 Multiple Response Types §2 and Form Post.
RESPONSE_MODES = ("query", "fragment", "form_post")


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
        return (
            200,
            body,
            [
                ("Content-Type", "text/html; charset=utf-8"),
                ("Content-Security-Policy", csp),
                ("Cache-Control", "no-store"),
            ],
        )
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
        raise InvalidRequestError(
            "Missing redirect_uri: it is required and must match a registered one exactly."
        )
    if not client.check_redirect_uri(redirect_uri):
        if not redirect_uri.isascii():
            # E.g. a loopback port in full-width or Arabic-Indic digits: a
            # port is ASCII digits only (RFC 3986 §3.2.3, RFC 8252 §7.3).
            raise InvalidRequestError(
                "The redirect_uri contains characters outside ASCII (a port must be the digits 0-9), "
                "so it matches no registered redirect URI."
            )
        raise InvalidRequestError(
            "The redirect_uri is not registered for this client (exact match required)."
        )
    return redirect_uri
