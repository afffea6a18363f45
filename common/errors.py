"""One family of error handlers for every app.

People get an HTML page with what went wrong, a hint and a "try again"
link; API clients (``Accept: application/json`` or a JSON route) get an
RFC 6749 §5.2 / RFC 6750 §3 style body with ``error`` and
``error_description``.  Never a stack trace: unexpected exceptions are
logged on the server and shown as a generic page.
"""

from __future__ import annotations

from flask import Flask, jsonify, render_template, request
from werkzeug.exceptions import HTTPException, InternalServerError

from .session import SessionStoreUnavailable


class FlowError(Exception):
    """A protocol step failed in a way the user should be told about.

    :param error: a short machine-readable code (``access_denied``,
        ``state_mismatch``, ``invalid_id_token`` ...).
    :param description: one human sentence saying what happened.
    :param hint: what the user (or the developer running the sample) can do.
    :param status: the HTTP status of the error page.
    """

    def __init__(self, error: str, description: str, hint: str = "", status: int = 400):
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.hint = hint
        self.status = status


def wants_json() -> bool:
    """True when the caller is a program rather than a person."""
    if request.path.startswith("/api/") or request.is_json:
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json" and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]


def error_response(error: str, description: str, hint: str, status: int, retry_url: str | None = None):
    """Render one error as JSON or as the shared error page."""
    if wants_json():
        body = {"error": error, "error_description": description}
        if hint:
            body["hint"] = hint
        return jsonify(body), status
    return (
        render_template(
            "common/error.html",
            error=error,
            description=description,
            hint=hint,
            status=status,
            retry_url=retry_url or "/",
        ),
        status,
    )


def register_error_handlers(app: Flask) -> None:
    """Install the handlers on ``app``."""

    @app.errorhandler(FlowError)
    def handle_flow_error(exc: FlowError):
        return error_response(exc.error, exc.description, exc.hint, exc.status)

    @app.errorhandler(SessionStoreUnavailable)
    def handle_store_down(exc: SessionStoreUnavailable):
        return _store_down()

    @app.errorhandler(HTTPException)
    def handle_http_error(exc: HTTPException):
        if exc.code == 500:
            return handle_server_error(exc)
        name = (exc.name or "error").lower().replace(" ", "_")
        response = error_response(name, exc.description or exc.name, "", exc.code or 400)
        return response

    @app.errorhandler(InternalServerError)
    def handle_server_error(exc):
        # Reached for any unhandled exception, including one raised while
        # the session was being opened (before any view ran).
        original = getattr(exc, "original_exception", None)
        if isinstance(original, SessionStoreUnavailable):
            return _store_down()
        return error_response(
            "server_error",
            "Something went wrong on our side. The details are in the server log, not here.",
            "Try again; if it keeps happening, check the log of this app.",
            500,
        )


def _store_down():
    response = error_response(
        "temporarily_unavailable",
        SessionStoreUnavailable.description,
        "Check that Redis is running (REDIS_URL). The app reconnects by itself once it is back.",
        503,
    )
    body, status = response
    if hasattr(body, "headers"):
        body.headers["Retry-After"] = "5"
        return body, status
    return body, status, {"Retry-After": "5"}
