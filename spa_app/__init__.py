"""The single-page app (guide section c): a public client whose protocol
code runs entirely in the browser.

Flask's only jobs here are to serve one page, its ES modules and a small
``/config.json`` with the issuer and client settings, and to send headers
strict enough that a script injected into the page has a hard time
reaching the tokens the page holds in memory.  There is no server session:
the tokens never reach this server at all.
"""

from __future__ import annotations

from flask import Flask

from common.config import load_settings, origin_of
from common.errors import init_error_pages
from common.web import init_health, init_security_headers, init_settings, init_templates


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
    settings = load_settings(test_config, component="spa_app")
    app = Flask(__name__)
    # No server session: the tokens live in the browser's memory, not here.
    init_settings(app, settings, app_name="spa_app", base_url=settings.spa_base_url, test_config=test_config)
    init_templates(app, title="Single-page app")
    init_error_pages(app, answer="html")
    # The page holds nothing secret, but the callback URL carried a code or
    # tokens: no cache keeps a copy of any page, only of the static files.
    init_security_headers(app, csp=spa_csp(settings), no_store="pages")
    init_health(app)

    from . import views

    app.register_blueprint(views.bp)
    return app
