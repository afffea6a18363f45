"""The server-side web app: Authorization Code flow for a confidential client.

The browser only ever sees an opaque session cookie; the code is exchanged
for tokens server to server, with the client authenticating at the token
endpoint with its secret (``client_secret_basic``, RFC 6749 §2.3.1), and
the tokens stay in the Redis session.  PKCE is used as well, as RFC 9700
§2.1.1 recommends even for confidential clients.

Every other client app in the suite is a variation of this one.
"""

from __future__ import annotations

from common.client import Client
from common.config import origin_of
from common.issuer import Issuer
from common.web import create_base_app, settings_of


def create_app(test_config=None):
    """Create and configure the web app."""
    app = create_base_app(
        __name__,
        "web_app",
        title="Web app · Authorization Code",
        base_url=lambda settings: settings.web_base_url,
        test_config=test_config,
    )
    settings = settings_of(app)
    # Sign-out is a form POST answered with a redirect to the issuer's
    # end-session endpoint; CSP's form-action also governs where such a
    # redirect may go, so the issuer's origin has to be allowed.
    app.config["CSP_FORM_ACTION"] = origin_of(settings.issuer)
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
