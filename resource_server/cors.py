"""CORS for the single-page app, and for nobody else.

The SPA (``SPA_BASE_URL``) calls this API from browser JavaScript on a
different origin, so the browser asks first (a "preflight" ``OPTIONS``,
because of the ``Authorization`` header) and then only hands the answer to
the script if ``Access-Control-Allow-Origin`` names the SPA's origin
(Fetch standard, "CORS protocol").

Exactly one origin is allowed, echoed rather than ``*``, with ``Vary:
Origin`` so that a cache never serves one origin's answer to another.  No
``Access-Control-Allow-Credentials``: the API authenticates with bearer
tokens, never cookies, so there is nothing ambient for a foreign page to
ride on.
"""

from __future__ import annotations

from flask import Flask, jsonify, request

#: How long a browser may reuse a preflight answer (seconds).
PREFLIGHT_MAX_AGE = 600


def init_cors(app: Flask, allowed_origin: str) -> None:
    """Answer preflights and add CORS headers for ``allowed_origin`` only.

    :param app: the API.
    :param allowed_origin: the SPA's origin (``Settings.spa_origin``).
    """

    @app.before_request
    def answer_preflight():
        """A CORS preflight is answered here, before any token check (it carries no token)."""
        if request.method != "OPTIONS" or "Access-Control-Request-Method" not in request.headers:
            return None
        if request.headers.get("Origin") != allowed_origin:
            # No CORS headers: the browser will refuse the real request.
            response = jsonify(
                error="origin_not_allowed",
                error_description="This API accepts cross-origin calls only from the SPA.",
            )
            response.status_code = 403
            return response
        response = app.response_class(status=204)
        response.headers["Access-Control-Allow-Methods"] = "GET"
        # DPoP: the SPA sends its proof in the DPoP header (RFC 9449 §4.1).
        response.headers["Access-Control-Allow-Headers"] = "Authorization, DPoP"
        response.headers["Access-Control-Max-Age"] = str(PREFLIGHT_MAX_AGE)
        return response

    @app.after_request
    def add_cors_headers(response):
        """Let the SPA's scripts read our answers, including the RFC 6750 challenge."""
        response.vary.add("Origin")
        if request.headers.get("Origin") == allowed_origin:
            response.headers["Access-Control-Allow-Origin"] = allowed_origin
            # Without these the SPA could not read why a call was refused, nor
            # the nonce to retry with (RFC 9449 §9).
            response.headers["Access-Control-Expose-Headers"] = "WWW-Authenticate, DPoP-Nonce"
        return response
