"""Peer (a): Auth0's Python API quickstart, Authlib's ResourceProtector.

Shape from Auth0's "Python API: Authorization" quickstart
(https://auth0.com/docs/quickstart/backend/python/01-authorization), its
``validator.py`` and ``server.py``: a ``JWTBearerTokenValidator`` subclass
that downloads the JWKS once with ``urlopen`` and imports it with
``JsonWebKey.import_key_set``, claims options for ``exp``, ``aud`` and
``iss``, registered on a ``ResourceProtector`` that decorates the view with
``@require_auth(None)``.  Written as the quickstart does it, with no tuning
of ours; only the issuer (``ISSUER``, here a loopback test issuer) and the
audience (``API_AUDIENCE``) come from the environment, as the quickstart
reads its domain and API identifier from ``.env``.  The JWKS is at
``{issuer}/.well-known/jwks.json``, where Auth0 publishes it.

Run (benchmarks/peers_compare.py does): ``gunicorn --chdir benchmarks/peers "auth0_authlib:create_app()"``.
"""

import json
import os
from urllib.request import urlopen

from authlib.integrations.flask_oauth2 import ResourceProtector, current_token
from authlib.jose.rfc7517.jwk import JsonWebKey
from authlib.oauth2.rfc7523 import JWTBearerTokenValidator
from flask import Flask, jsonify
from peer_answer import messages_answer


class Auth0JWTBearerTokenValidator(JWTBearerTokenValidator):
    """The quickstart's validator.py: the issuer's keys, loaded once, and the claims it requires."""

    def __init__(self, issuer, audience):
        jsonurl = urlopen(f"{issuer}/.well-known/jwks.json")
        public_key = JsonWebKey.import_key_set(json.loads(jsonurl.read()))
        super().__init__(public_key)
        self.claims_options = {
            "exp": {"essential": True},
            "aud": {"essential": True, "values": [audience]},
            "iss": {"essential": True, "values": [issuer]},
        }


def create_app():
    """The quickstart's server.py, with its private route at our route."""
    require_auth = ResourceProtector()
    validator = Auth0JWTBearerTokenValidator(os.environ["ISSUER"], os.environ["API_AUDIENCE"])
    require_auth.register_token_validator(validator)

    app = Flask(__name__)

    @app.route("/api/messages")
    @require_auth(None)
    def messages():
        """A valid access token is required to access this route."""
        return jsonify(messages_answer(dict(current_token)))

    return app
