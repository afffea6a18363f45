"""The server-side web app: Authorization Code flow for a confidential client.

The browser only ever sees an opaque session cookie; the code is exchanged
for tokens server to server, with the client authenticating at the token
endpoint with its secret (``client_secret_basic``, RFC 6749 §2.3.1), and
the tokens stay in the Redis session.  PKCE is used as well, as RFC 9700
§2.1.1 recommends even for confidential clients.

Every other client app in the suite is a variation of this one.
"""

from __future__ import annotations

from flask import Flask

from common.client import Client
from common.config import load_settings, origin_of
from common.errors import init_error_pages
from common.issuer import Issuer
from common.web import (
    default_csp,
    init_health,
    init_security_headers,
    init_server_session,
    init_settings,
    init_templates,
)


def create_app(test_config=None):
    """Create and configure the web app."""
    settings = load_settings(test_config, component="web_app")
    app = Flask(__name__)
    init_settings(app, settings, app_name="web_app", base_url=settings.web_base_url, test_config=test_config)
    init_server_session(app, settings)  # the tokens stay here, in Redis
    init_templates(app, title="Web app · Authorization Code", nav="web_app/_nav.html")
    init_error_pages(app, answer="html")
    # Sign-out is a form POST answered with a redirect to the issuer's
    # end-session endpoint; CSP's form-action also governs where such a
    # redirect may go, so the issuer's origin has to be allowed.
    init_security_headers(app, csp=default_csp(form_action=origin_of(settings.issuer)))
    init_health(app)
    # One client per process: discovery and the JWKS are cached inside it,
    # so all requests a worker serves share them.
    app.extensions["oidc_client"] = Client(
        Issuer(settings),
        client_id=settings.web_client_id,
        client_secret=settings.web_client_secret,
        redirect_uri=settings.web_redirect_uri,
        token_endpoint_auth_method="client_secret_basic",
    )

    from . import auth, views

    app.register_blueprint(auth.bp)
    app.register_blueprint(views.bp)
    app.add_url_rule("/", endpoint="index")
    return app
