"""The single-page app (guide section c): a public client whose protocol
code runs entirely in the browser.

Flask's only jobs here are to serve one page, its ES modules and a small
``/config.json`` with the issuer and client settings, and to send headers
strict enough that a script injected into the page has a hard time
reaching the tokens the page holds in memory.  There is no server session:
the tokens never reach this server at all.
"""

from __future__ import annotations

from flask import request

from common.config import origin_of
from common.web import create_base_app, settings_of


def spa_csp(settings) -> str:
    """The SPA's Content-Security-Policy.

    Stricter than the suite's default where it matters for a browser app
    that holds tokens (RFC 9700 §4.16 and the OAuth 2.0 for Browser-Based
    Apps BCP): scripts only from this origin and never inline, ``fetch``
    only to this origin, the issuer (discovery, JWKS, token, revocation)
    and the API, no plugins, no ``<base>`` tricks, no framing, and Trusted
    Types so that no string can be turned into markup or script.
    """
    connect = " ".join(dict.fromkeys(["'self'", origin_of(settings.issuer), origin_of(settings.api_url)]))
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"connect-src {connect}; form-action 'none'; base-uri 'none'; object-src 'none'; "
        "frame-ancestors 'none'; require-trusted-types-for 'script'; trusted-types 'none'"
    )


def create_app(test_config=None):
    """Create and configure the single-page app's server."""
    app = create_base_app(
        __name__,
        "spa_app",
        title="Single-page app",
        base_url=lambda s: s.spa_base_url,
        test_config=test_config,
        with_session=False,  # tokens live in the browser's memory, not here
    )
    settings = settings_of(app)
    csp = spa_csp(settings)

    @app.after_request
    def strict_headers(response):
        """Replace the suite's default CSP with the SPA's stricter one.

        ``after_request`` functions run in reverse order of registration,
        so this runs before the shared hook, whose ``setdefault`` then
        leaves our header alone.
        """
        response.headers["Content-Security-Policy"] = csp
        response.headers["Referrer-Policy"] = "no-referrer"
        if not request.path.startswith("/static/"):
            # The page holds nothing secret, but the callback URL carried a
            # code or tokens: no cache should keep a copy of it.
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    from . import views

    app.register_blueprint(views.bp)
    return app
