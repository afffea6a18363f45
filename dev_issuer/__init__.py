"""The development OpenID Provider: an Okta-shaped issuer built on Authlib.

Run it with ``flask --app dev_issuer run --port 9000`` or
``gunicorn "dev_issuer:create_app()"``; rotate its keys with
``flask --app dev_issuer rotate-keys``.

One module per concern: ``clients.py`` (the client registry), ``users.py``,
``storage.py`` (Redis: codes, tokens, grant families, single-use markers),
``keys.py`` (signing keys and their rotation), ``tokens.py`` (minting),
``grants.py`` and ``endpoints.py`` (Authlib's grants and endpoints),
``client_auth.py``, ``responses.py`` (authorization responses),
``errors.py``, ``hosts.py`` (the ``Host`` check), ``freshness.py`` (re-authentication),
``server.py`` (the wiring), and the views: ``oauth.py``
(protocol), ``auth.py`` (sign-in), ``admin.py`` (the issuer's own pages).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from authlib.oauth2 import rfc9207
from authlib.oidc import rpinitiated
from authlib.oidc.discovery import OpenIDProviderMetadata
from flask import Flask

from common.config import load_settings
from common.errors import init_error_pages
from common.redis_client import connect_redis
from common.web import (
    default_csp,
    init_health,
    init_security_headers,
    init_server_session,
    init_settings,
    init_templates,
)

from . import activate, admin, auth, device, oauth, par
from .clients import origin_and_wildcard, register_clients
from .hosts import init_host_check
from .keys import Keyring, retention_for
from .server import config_oauth
from .state import IssuerState
from .storage import Store
from .users import seed_users


def create_app(test_config=None):
    """Create and configure the dev issuer app."""
    settings = load_settings(test_config, component="dev_issuer")
    clients = register_clients(settings)
    app = Flask(__name__)
    init_settings(
        app, settings, app_name="dev_issuer", base_url=settings.issuer_base_url, test_config=test_config
    )
    # First of all the hooks: no page or endpoint answers under another host name (DNS rebinding).
    init_host_check(app, settings.issuer)
    init_server_session(app, settings)  # the issuer's own sign-in session (SSO)
    init_templates(app, title="Dev issuer", nav="dev_issuer/_nav.html")
    init_error_pages(app, answer="html")
    # The sign-in form's redirect chain ends at a client's redirect URI, and
    # CSP form-action applies to every hop of it: allow exactly those.
    form_action = " ".join(
        sorted(
            {
                origin_and_wildcard(uri)
                for c in clients.values()
                for uri in c.redirect_uris + c.post_logout_redirect_uris
            }
        )
    )
    init_security_headers(app, csp=default_csp(form_action=form_action))
    init_health(app)
    redis_client = connect_redis(settings.redis_url)
    users = seed_users(settings)
    store = Store(redis_client, settings, clients, users)
    config_oauth(
        app, IssuerState(settings, clients, users, store, Keyring(redis_client, retention_for(settings)))
    )
    register_views(app, settings.issuer)
    validate_metadata(app)
    return app


def register_views(app: Flask, issuer: str) -> None:
    """The protocol endpoints under the issuer's path, the sign-in and admin pages, the CLI."""
    prefix = urlsplit(issuer).path.rstrip("/")
    app.register_blueprint(oauth.bp, url_prefix=prefix or None)
    # RFC 8628: {issuer}/v1/device/authorize, and the /activate pages at the issuer base.
    app.register_blueprint(device.device_protocol, url_prefix=prefix or None)
    app.register_blueprint(activate.bp)
    app.register_blueprint(par.bp, url_prefix=prefix or None)
    app.register_blueprint(auth.bp)
    app.register_blueprint(admin.bp)
    app.cli.add_command(admin.rotate_keys_command)


def validate_metadata(app: Flask) -> None:
    """Fail at start-up, not at the first client, if the metadata we publish is not what the specs require.

    OpenID Connect Discovery 1.0 §3, RFC 8414 §2, RFC 9207 §3 and
    RP-Initiated Logout 1.0 §2.1 (which also require https endpoints, except
    on loopback, RFC 8252 §8.3).
    """
    with app.test_request_context():
        OpenIDProviderMetadata(oauth.metadata()).validate(
            metadata_classes=[rfc9207.AuthorizationServerMetadata, rpinitiated.OpenIDProviderMetadata]
        )
