"""The single-page app (guide section c): a public client whose protocol
code runs entirely in the browser.

Flask's only jobs here are to serve one page, its ES modules and a small
``/config.json`` with the issuer and client settings, and to send headers
strict enough that a script injected into the page has a hard time
reaching the tokens the page holds in memory.  In those two modes there is
no server session: the tokens never reach this server at all.

The third mode, the backend for frontend (:mod:`spa_app.bff`), is the
opposite: this server is a confidential client and keeps the tokens in a
Redis session that only the ``/bff/*`` routes open; the browser gets an
HttpOnly cookie and never a token.
"""

from __future__ import annotations

from flask import Flask

from common.client import Client
from common.config import load_settings, origin_of
from common.errors import init_error_pages
from common.issuer import Issuer
from common.session import host_only_cookie_name
from common.web import init_health, init_security_headers, init_server_session, init_settings, init_templates

#: The BFF's own session cookie: not ``web_app_session`` (cookies are per
#: host, not per port, RFC 6265 §8.5), ``__Host-`` prefixed on https.
BFF_COOKIE = "spa_bff_session"

#: The BFF's routes answer JSON errors to the page's fetch calls (the two
#: navigations, /bff/login and /bff/callback, show the error page).
BFF_JSON_PREFIXES = ("/bff/user", "/bff/logout", "/bff/api/", "/bff/inspector")


def spa_csp(settings) -> str:
    """The SPA's Content-Security-Policy.

    Stricter than the suite's default where it matters for a browser app
    that holds tokens (RFC 9700 §4.16 and the OAuth 2.0 for Browser-Based
    Apps BCP): scripts only from this origin and never inline, ``fetch``
    only to this origin, the issuer (discovery, JWKS, token, revocation)
    and the API, no plugins, no ``<base>`` tricks, no framing, and Trusted
    Types so that no string can be turned into markup or script.

    The BFF mode needs only ``connect-src 'self'`` (its ``fetch`` calls go
    to ``/bff/*``; in the BCP's §6.1.1 the BFF alone talks to the issuer and
    the API); sign-in and the RP-initiated logout are navigations.
    """
    connect = " ".join(dict.fromkeys(["'self'", origin_of(settings.issuer), origin_of(settings.api_url)]))
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"connect-src {connect}; form-action 'none'; base-uri 'none'; object-src 'none'; "
        "frame-ancestors 'none'; require-trusted-types-for 'script'; trusted-types 'none'"
    )


def create_app(test_config=None):
    """Create and configure the single-page app's server."""
    settings = load_settings(test_config, component="spa_app")
    app = Flask(__name__)
    init_settings(app, settings, app_name="spa_app", base_url=settings.spa_base_url, test_config=test_config)
    # A Redis session for the BFF only (bff.uses_session): the in-browser
    # modes keep their tokens in the page's memory and never get a cookie.
    # The cookie is HttpOnly (no script reads it) and SameSite=Lax: Strict
    # would drop it on the issuer's cross-site redirect to /bff/callback;
    # the X-CSRF header is the CSRF defence (OAuth 2.0 for Browser-Based
    # Applications BCP §6.1.3.2 for the cookie, §6.1.3.3.2 for the header).
    from . import bff

    if settings.redis_url:
        init_server_session(
            app,
            settings,
            cookie_name=host_only_cookie_name(BFF_COOKIE, settings.spa_base_url),
            uses_session=bff.uses_session,
        )
    # else (`flask --app spa_app run` without REDIS_URL): the in-browser
    # modes work, and the /bff/* routes answer 503 (bff.refuse_cross_site).
    init_templates(app, title="Single-page app")
    init_error_pages(app, answer="html", json_prefixes=BFF_JSON_PREFIXES)
    # The page holds nothing secret, but the callback URL carried a code or
    # tokens: no cache keeps a copy of any page, only of the static files.
    init_security_headers(app, csp=spa_csp(settings), no_store="pages")
    init_health(app)

    # The BFF's registration: a confidential client, client_secret_basic.
    app.extensions["bff_client"] = Client(
        Issuer(settings),
        client_id=settings.spa_bff_client_id,
        client_secret=settings.spa_bff_client_secret,
        redirect_uri=settings.spa_bff_redirect_uri,
        token_endpoint_auth_method="client_secret_basic",
    )

    from . import views

    app.register_blueprint(views.bp)
    app.register_blueprint(bff.bp)
    return app
