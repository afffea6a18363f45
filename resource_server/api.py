"""The API's routes: one open, one for any valid token, one for the custom scope.

These are what the other apps call: the web app, the SPA and the native
app with a user's token (``/api/messages``), the service app with a client
credentials token carrying the custom scope (``/api/custom``).
"""

from __future__ import annotations

import time

from flask import Blueprint, current_app, g

from common.web import settings_of

from .validation import current_token, require_scope, require_token

bp = Blueprint("api", __name__)


@bp.after_request
def not_for_shared_caches(response):
    """Answers depend on the caller's token: no cache may keep or share them (RFC 9111 §5.2.2.5)."""
    response.headers.setdefault("Cache-Control", "no-store")
    return response


@bp.get("/api/messages")
@require_token
def messages():
    """Messages for the token's subject: any valid access token for ``API_AUDIENCE`` may call.

    Shaped like the messages route of Okta's sample resource servers, plus
    what the token said (subject, client, scopes) so the calling app can show it.
    """
    token = current_token()
    now = int(time.time())
    return {
        "messages": [
            {"date": now, "text": f"Hello, {token.sub}. Your access token was accepted."},
            {
                "date": now,
                "text": f"It was issued to client {token.client_id or '(unknown)'} "
                f"with the scopes: {' '.join(token.scopes) or '(none)'}.",
            },
        ],
        "sub": token.sub,
        "client_id": token.client_id,
        "scopes": list(token.scopes),
        "dpop": proof_report(),
    }


def proof_report() -> dict | None:
    """What the API checked of the request's DPoP proof, for the caller's inspector (``None``: Bearer)."""
    proof = g.get("dpop_proof")
    if proof is None:
        return None
    return {"jkt": current_token().jkt, "checks": list(proof.checks), "htu": proof.claims.get("htu")}


@bp.get("/api/custom")
@require_scope(lambda settings: settings.service_scope)
def custom():
    """A route only tokens with the service's custom scope (``SERVICE_SCOPE``) may call.

    A token without it gets ``403 insufficient_scope`` (RFC 6750 §3.1).
    """
    token = current_token()
    scope = settings_of(current_app).service_scope
    return {
        "message": f"Access granted: the token carries the {scope!r} scope.",
        "sub": token.sub,
        "client_id": token.client_id,
        "scopes": list(token.scopes),
        "dpop": proof_report(),
    }
