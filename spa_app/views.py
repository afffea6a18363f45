"""The SPA's few server routes: the page, the callback (the same page)
and the public settings the page's JavaScript needs.

Everything protocol-related happens in ``static/js/oidc.js`` in the
browser; read that file next.
"""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, render_template

from common.authorization import USER_SCOPE
from common.web import settings_of

bp = Blueprint("spa", __name__)

#: The scopes the SPA asks for.  ``offline_access`` asks for a refresh
#: token (Okta's convention, OIDC Core 11), which the code flow uses to stay
#: signed in; the Implicit flow cannot receive one.
PKCE_SCOPES = USER_SCOPE
IMPLICIT_SCOPES = "openid profile email"


@bp.get("/")
def index():
    """The single page: signed-out view, profile, API call, inspector."""
    return render_template("spa_app/index.html")


@bp.get("/login/callback")
def callback():
    """The redirect URI, for both modes (``{SPA_BASE_URL}/login/callback``).

    The same page: its script finds the code (query, RFC 6749 §4.1.2) or
    the tokens (fragment, OIDC Core 3.2.2.5) and completes the flow.  The
    server never sees the fragment, and ignores the query.
    """
    return render_template("spa_app/index.html")


@bp.get("/config.json")
def config():
    """Public settings for the browser: nothing here is a secret.

    A single-page app is a public client (RFC 6749 §2.1): anything shipped
    to the browser can be read by its user, so there is no client secret
    to hide; PKCE (RFC 7636) takes its place for the code exchange.
    """
    settings = settings_of(current_app)
    return jsonify(
        issuer=settings.issuer,
        client_id=settings.spa_client_id,
        redirect_uri=settings.spa_redirect_uri,
        post_logout_redirect_uri=settings.spa_post_logout_redirect_uri,
        api_url=f"{settings.api_url}/api/messages",
        scopes={"pkce": PKCE_SCOPES, "implicit": IMPLICIT_SCOPES},
        clock_leeway=settings.clock_leeway,
        http_timeout=settings.http_timeout,
        login_timeout=settings.login_timeout,
        # DPoP in the PKCE mode (RFC 9449): auto, on or off; the page reads the issuer's metadata for auto.
        dpop=settings.dpop,
    )
