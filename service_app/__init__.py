"""The service app: Client Credentials with a custom scope, machine to machine.

A service has no user.  It authenticates itself at the issuer's token
endpoint (RFC 6749 §4.4), receives an access token for ``SERVICE_SCOPE``
and calls the API with it.  The real work is the command line
(``python -m service_app call``); this package's Flask app is a small
status page for people who would rather click.
"""

from __future__ import annotations

import hashlib

from flask import Flask

from common.config import load_settings
from common.errors import init_error_pages
from common.web import init_health, init_security_headers, init_server_session, init_settings, init_templates

from .client import ServiceClient, auth_method
from .token_cache import RedisStore


def create_app(test_config=None):
    """Create and configure the service app's status page."""
    settings = load_settings(test_config, component="service_app")
    app = Flask(__name__)
    init_settings(
        app, settings, app_name="service_app", base_url=settings.service_base_url, test_config=test_config
    )
    init_server_session(app, settings)
    init_templates(app, title="Service app (Client Credentials)")
    init_error_pages(app, answer="html")
    init_security_headers(app)
    init_health(app)

    # Where the page's cached token lives.  gunicorn runs several worker
    # processes, and a token cached in one worker's memory would be
    # invisible to the others: each worker would ask the issuer for its
    # own token, and the page would show a different token (and call
    # count) depending on which worker answered.  So the page keeps ONE
    # token in Redis, shared by every worker, with a Redis lock making the
    # single flight hold across processes.  The key names the issuer,
    # client, scope and authentication method, so that changing any of
    # them never serves a token obtained for another configuration.
    identity = "|".join(
        (settings.issuer, settings.service_client_id, settings.service_scope, auth_method(settings))
    )
    store = RedisStore(
        app.config["SESSION_REDIS"],
        prefix=f"service_app:token:{hashlib.sha256(identity.encode()).hexdigest()[:12]}",
    )
    app.extensions["service_client"] = ServiceClient(settings, store=store)

    from . import views

    app.register_blueprint(views.bp)
    return app
