"""The resource server: the API that the other apps call with access tokens.

It checks each access token itself (see :mod:`resource_server.validation`),
a DPoP-bound one only with a valid proof for the request (RFC 9449 §7,
:mod:`resource_server.dpop`), answers refusals as RFC 6750 and RFC 9449 §7.1
say (:mod:`resource_server.errors`), and lets only the SPA's origin call it
from a browser (:mod:`resource_server.cors`).
It keeps no sessions: every request stands on its token alone.
"""

from __future__ import annotations

from flask import Flask

from common.config import load_settings
from common.errors import init_error_pages
from common.web import init_health, init_security_headers, init_settings

from . import api
from .cors import init_cors
from .errors import init_bearer_challenge
from .validation import init_validation


def create_app(test_config=None):
    """Create and configure the resource server (API)."""
    settings = load_settings(test_config, component="resource_server")
    app = Flask(__name__)
    init_settings(app, settings, app_name="resource_server", base_url=None, test_config=test_config)
    init_error_pages(app, answer="json")  # an API has no people to show a page to
    init_bearer_challenge(app)  # RFC 6750 §3: refusals carry WWW-Authenticate
    init_security_headers(app)
    init_health(app)
    init_validation(app)
    init_cors(app, settings.spa_origin)
    app.register_blueprint(api.bp)
    return app
