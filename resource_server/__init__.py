"""The resource server: the API that the other apps call with access tokens.

It checks each bearer token itself (see :mod:`resource_server.validation`),
answers refusals as RFC 6750 says (:mod:`resource_server.errors`), and lets
only the SPA's origin call it from a browser (:mod:`resource_server.cors`).
It keeps no sessions: every request stands on its token alone.
"""

from __future__ import annotations

from common.web import create_base_app, settings_of

from . import api
from .cors import init_cors
from .errors import register_api_error_handlers
from .validation import init_validation


def create_app(test_config=None):
    """Create and configure the resource server (API)."""
    app = create_base_app(__name__, "resource_server", title="Resource server",
                          base_url=None, test_config=test_config, with_session=False)
    settings = settings_of(app)
    register_api_error_handlers(app)
    init_validation(app)
    init_cors(app, settings.spa_origin)
    app.register_blueprint(api.bp)
    return app
