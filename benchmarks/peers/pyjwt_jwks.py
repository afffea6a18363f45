"""Peer (c): the common hand-rolled API, PyJWT with PyJWKClient.

Shape from PyJWT's documentation, "Retrieve RSA signing keys from a JWKS
endpoint" (https://pyjwt.readthedocs.io/en/stable/usage.html#retrieve-rsa-signing-keys-from-a-jwks-endpoint):
one ``PyJWKClient`` for the issuer's ``jwks_uri`` (it caches the JWK set and
the keys it found), ``get_signing_key_from_jwt`` and then ``jwt.decode``
with the algorithm pinned, the audience and the issuer, in a
``requires_auth`` decorator as countless Flask APIs write it.  No tuning of
ours; the issuer (``ISSUER``) and audience (``API_AUDIENCE``) come from the
environment; the key set is at ``{issuer}/v1/keys``, Okta's ``jwks_uri``.

Run (benchmarks/peers_compare.py does): ``gunicorn --chdir benchmarks/peers "pyjwt_jwks:create_app()"``.
"""

import functools
import os

import jwt
from flask import Flask, g, jsonify, request
from peer_answer import messages_answer


def create_app():
    """A Flask app whose protected route needs a JWT access token from ``ISSUER`` for ``API_AUDIENCE``."""
    issuer, audience = os.environ["ISSUER"], os.environ["API_AUDIENCE"]
    jwks_client = jwt.PyJWKClient(f"{issuer}/v1/keys")
    app = Flask(__name__)

    def requires_auth(view):
        """The view runs only with a valid bearer token; else 401."""

        @functools.wraps(view)
        def decorated(*args, **kwargs):
            scheme, _, token = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not token:
                return jsonify(error="missing bearer token"), 401
            try:
                signing_key = jwks_client.get_signing_key_from_jwt(token)
                g.claims = jwt.decode(
                    token,
                    signing_key.key,
                    algorithms=["RS256"],
                    audience=audience,
                    issuer=issuer,
                    options={"require": ["exp", "iss", "aud"]},
                )
            except jwt.PyJWTError as error:
                return jsonify(error=str(error)), 401
            return view(*args, **kwargs)

        return decorated

    @app.route("/api/messages")
    @requires_auth
    def messages():
        """Messages for the token's subject."""
        return jsonify(messages_answer(g.claims))

    return app
