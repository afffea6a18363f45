"""One family of error handlers for every app: a page for people, a JSON body for programs.

An app factory calls :func:`init_error_pages` once:

- ``answer="html"`` (the apps people browse): people get an HTML page with
  what went wrong, a hint and a "try again" link; programs (``Accept:
  application/json``, a JSON request or an ``/api/`` route) get JSON.
- ``answer="json"`` (an API): every answer is JSON.

The JSON body has the shape of RFC 6749 §5.2 and RFC 6750 §3: ``error``,
``error_description`` and, when there is one, a ``hint``.  A protected API
adds its ``WWW-Authenticate`` challenge with one handler of its own
(``resource_server.errors``) and keeps everything else from here.

Never a stack trace: unexpected exceptions are logged on the server (Flask
logs them) and answered with a generic page.  Every 503 carries
``Retry-After`` (RFC 9110 §10.2.3).
"""

from __future__ import annotations

from typing import Mapping

from flask import Flask, Response, current_app, jsonify, render_template, request
from werkzeug.exceptions import HTTPException, InternalServerError

from .session import SessionStoreUnavailable

#: The two ways an app answers errors (``init_error_pages(app, answer=...)``).
ANSWERS = ("html", "json")

#: Seconds a client should wait after a 503 before it tries again.
RETRY_AFTER_SECONDS = "5"


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
    """True when the caller is a program rather than a person (always, in an app that answers JSON)."""
    if current_app.extensions.get("error_pages") == "json":
        return True
    json_prefixes = ("/api/", *current_app.extensions.get("json_error_prefixes", ()))
    if request.path.startswith(json_prefixes) or request.is_json:
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    accepted = request.accept_mimetypes
    return best == "application/json" and accepted[best] > accepted["text/html"]


def json_error(
    error: str,
    description: str,
    status: int,
    *,
    hint: str = "",
    headers: Mapping[str, str] | None = None,
    **members: str,
) -> Response:
    """An RFC 6749 §5.2 / RFC 6750 §3 style JSON error body.

    :param members: more members of the body (``scope=...`` for ``insufficient_scope``).
    :param headers: headers to add (``WWW-Authenticate``, ``Allow`` ...).
    """
    body = {"error": error, "error_description": description, **members}
    if hint:
        body["hint"] = hint
    response = jsonify(body)
    response.status_code = status
    return _with_headers(response, headers)


def error_page(
    error: str,
    description: str,
    hint: str,
    status: int,
    retry_url: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """The shared HTML error page (``common/error.html``)."""
    html = render_template(
        "common/error.html",
        error=error,
        description=description,
        hint=hint,
        status=status,
        retry_url=retry_url or "/",
    )
    return _with_headers(Response(html, status=status, mimetype="text/html"), headers)


def error_response(
    error: str,
    description: str,
    hint: str,
    status: int,
    retry_url: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """One error as JSON or as the shared page, whichever the caller wants (:func:`wants_json`)."""
    if wants_json():
        return json_error(error, description, status, hint=hint, headers=headers)
    return error_page(error, description, hint, status, retry_url, headers)


def _with_headers(response: Response, headers: Mapping[str, str] | None) -> Response:
    response.headers.update(headers or {})
    if response.status_code == 503:
        response.headers.setdefault("Retry-After", RETRY_AFTER_SECONDS)
    return response


def init_error_pages(app: Flask, *, answer: str = "html", json_prefixes: tuple[str, ...] = ()) -> None:
    """Install the suite's error handlers on ``app``.

    :param answer: ``"html"``: pages for people, JSON for programs;
        ``"json"``: JSON for everyone (an API).
    :param json_prefixes: path prefixes answered in JSON whatever the caller
        accepts, besides ``/api/`` (the SPA's ``/bff/``, called by ``fetch``).
    """
    if answer not in ANSWERS:
        raise ValueError(f"answer must be one of {ANSWERS}, not {answer!r}")
    app.extensions["error_pages"] = answer
    app.extensions["json_error_prefixes"] = tuple(json_prefixes)
    app.register_error_handler(FlowError, answer_flow_error)
    app.register_error_handler(SessionStoreUnavailable, answer_store_down)
    app.register_error_handler(HTTPException, answer_http_error)
    app.register_error_handler(InternalServerError, answer_server_error)


def answer_flow_error(exc: FlowError) -> Response:
    """A failed protocol step: what happened, and what to do about it."""
    return error_response(exc.error, exc.description, exc.hint, exc.status)


def answer_store_down(exc: SessionStoreUnavailable | None = None) -> Response:
    """Redis did not answer: 503 ``temporarily_unavailable`` (RFC 6749 §4.1.2.1's code) with Retry-After."""
    return error_response(
        "temporarily_unavailable",
        SessionStoreUnavailable.description,
        "Check that Redis is running (REDIS_URL). The app reconnects by itself once it is back.",
        503,
    )


def answer_http_error(exc: HTTPException) -> Response:
    """404, 405, 400 ...: the status and werkzeug's sentence; its headers (``Allow`` on a 405) kept."""
    if exc.code == 500:
        return answer_server_error(exc)
    name = (exc.name or "error").lower().replace(" ", "_")
    headers = {header: value for header, value in exc.get_headers() if header.lower() != "content-type"}
    return error_response(name, exc.description or exc.name, "", exc.code or 400, headers=headers)


def answer_server_error(exc: Exception) -> Response:
    """Anything unexpected: a generic 500, the details only in the server log.

    Also reached for an exception raised while the session was being
    opened (before any view ran): a Redis outage there is a 503, not a 500.
    """
    if isinstance(getattr(exc, "original_exception", None), SessionStoreUnavailable):
        return answer_store_down()
    return error_response(
        "server_error",
        "Something went wrong on our side. The details are in the server log, not here.",
        "Try again; if it keeps happening, check the log of this app.",
        500,
    )
