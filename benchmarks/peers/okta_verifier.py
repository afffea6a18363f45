"""Peer (b): Okta's Flask resource server, okta-jwt-verifier's AccessTokenVerifier in the view.

Shape from Okta's Flask resource-server sample and the okta-jwt-verifier
README (https://github.com/okta/okta-jwt-verifier-python, "Verify Access
Token"): an ``is_access_token_valid(token, issuer)`` helper that builds an
``AccessTokenVerifier(issuer=..., audience=...)`` and runs its ``verify``
coroutine to completion on each request, called from the view, which
answers 401 when it returns false.  The library is asyncio-based; a Flask
view under gunicorn's threads has no running event loop, so each call runs
``asyncio.run``, the per-request form of the README's
``loop.run_until_complete``.  No tuning of ours: the verifier keeps its
default JWKS cache (shared by every verifier in the process).  The issuer
(``ISSUER``) and audience (``API_AUDIENCE``) come from the environment.

Run (benchmarks/peers_compare.py does): ``gunicorn --chdir benchmarks/peers "okta_verifier:create_app()"``.
"""

import asyncio
import os

from flask import Flask, jsonify, request
from okta_jwt_verifier import AccessTokenVerifier
from okta_jwt_verifier.jwt_utils import JWTUtils
from peer_answer import messages_answer


def is_access_token_valid(token, issuer, audience):
    """The sample's check: the verifier, run to completion; any exception means "not valid"."""
    jwt_verifier = AccessTokenVerifier(issuer=issuer, audience=audience)
    try:
        asyncio.run(jwt_verifier.verify(token))
        return True
    except Exception:
        return False


def create_app():
    """A Flask app with the sample's protected route."""
    issuer, audience = os.environ["ISSUER"], os.environ["API_AUDIENCE"]
    app = Flask(__name__)

    @app.route("/api/messages")
    def messages():
        """Messages for a caller with a valid access token, else 401."""
        authorization = request.headers.get("Authorization", "")
        if not authorization.startswith("Bearer "):
            return jsonify(error="Unauthorized"), 401
        token = authorization.split(" ")[1]
        if not is_access_token_valid(token, issuer, audience):
            return jsonify(error="Unauthorized"), 401
        _, claims, _, _ = JWTUtils.parse_token(token)  # verified above; read for the answer
        return jsonify(messages_answer(claims))

    return app
