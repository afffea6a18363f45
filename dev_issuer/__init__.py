"""The development OpenID Provider: an Okta-shaped issuer built on Authlib.

Run it with ``flask --app dev_issuer run --port 9000`` or
``gunicorn "dev_issuer:create_app()"``; rotate its keys with
``flask --app dev_issuer rotate-keys``.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from authlib.oauth2 import rfc9207
from authlib.oidc import rpinitiated
from authlib.oidc.discovery import OpenIDProviderMetadata

from common.session import connect_redis
from common.web import create_base_app, settings_of

from .keys import Keyring
from .models import Store, origin_and_wildcard, register_clients, seed_users
from .server import IssuerState, config_oauth


def allow_http_for_loopback_issuer(issuer: str) -> None:
    """Let Authlib's server accept plain http, only for an issuer on this machine.

    Authlib refuses every non-https request URL (RFC 6749 §3.1 requires
    TLS) unless ``AUTHLIB_INSECURE_TRANSPORT`` is set.  The dev issuer runs
    on ``http://localhost``, where nothing leaves the machine (the loopback
    exception of RFC 8252 §8.3), so it sets the switch for its own process
    and only then; an issuer configured on any other host keeps https.
    """
    parts = urlsplit(issuer)
    if parts.scheme == "http" and parts.hostname in {"localhost", "127.0.0.1", "::1"}:
        os.environ["AUTHLIB_INSECURE_TRANSPORT"] = "1"


def create_app(test_config=None):
    """Create and configure the dev issuer app."""
    app = create_base_app(
        __name__, "dev_issuer", title="Dev issuer", base_url=lambda s: s.issuer_base_url, test_config=test_config
    )
    settings = settings_of(app)
    allow_http_for_loopback_issuer(settings.issuer)

    clients = register_clients(settings)
    # The sign-in form's redirect chain ends at a client's redirect URI, and
    # CSP form-action applies to every hop of it: allow exactly those.
    app.config["CSP_FORM_ACTION"] = " ".join(
        sorted({origin_and_wildcard(uri) for c in clients.values()
                for uri in c.redirect_uris + c.post_logout_redirect_uris})
    )
    redis_client = connect_redis(settings.redis_url)
    users = seed_users(settings)
    config_oauth(app, IssuerState(settings, clients, users, Store(redis_client, settings, clients, users),
                                  Keyring(redis_client)))

    from . import admin, auth, oauth

    prefix = urlsplit(settings.issuer).path.rstrip("/")
    app.register_blueprint(oauth.bp, url_prefix=prefix or None)
    app.register_blueprint(auth.bp)
    app.register_blueprint(admin.bp)
    app.cli.add_command(admin.rotate_keys_command)

    with app.test_request_context():
        # Fail at start-up, not at the first client, if the metadata we
        # publish is not what the specs require.
        OpenIDProviderMetadata(oauth.metadata()).validate(
            metadata_classes=[rfc9207.AuthorizationServerMetadata, rpinitiated.OpenIDProviderMetadata]
        )

    return app
