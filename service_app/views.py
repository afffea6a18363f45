"""The status page: the service's cached token, its calls, and a button.

The token and its call counter are the service's, shared by every visitor
and every gunicorn worker (they live in Redis, see ``create_app``).  The
last API answer and the flow inspector belong to the visitor who pressed
the button: they are kept in that visitor's server-side session.
"""

from __future__ import annotations

import json
import time

from flask import Blueprint, current_app, redirect, render_template, session, url_for

from common.errors import FlowError
from common.inspector import FlowLog, decode_unverified, redact, shorten
from common.recorder import FlowRecorder
from common.web import require_csrf, settings_of

from .client import API_PATH, auth_method

bp = Blueprint("service", __name__)


@bp.app_template_filter("as_json")
def as_json(value) -> str:
    """Readable JSON for display (Jinja's ``tojson`` escapes quotes for scripts, not for people)."""
    return value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False)


def service_client():
    """The app's :class:`~service_app.client.ServiceClient` (one per process)."""
    return current_app.extensions["service_client"]


@bp.get("/")
def index():
    """Show the cached token (claims decoded and shortened), its time left and
    call count, the visitor's last API answer and the flow inspector."""
    client = service_client()
    settings = settings_of(current_app)
    cached = client.cache.peek()
    token = None
    if cached is not None:
        access_token = cached.token.access_token
        try:
            # For display only: the API, not the client, validates access
            # tokens (to a client an access token is opaque, RFC 6749 §1.4).
            header, claims = decode_unverified(access_token)
            claims = redact(claims)
        except ValueError:
            header, claims = {}, {}
        token = {
            "shortened": shorten(access_token),
            "header": header,
            "claims": claims,
            "scope": cached.token.scope,
            "time_left": max(0, int(cached.expires_at - time.time())),
            "expires_at": cached.expires_at,
            "calls": client.cache.store.calls(access_token),
        }
    return render_template(
        "service_app/index.html",
        settings=settings,
        method=auth_method(settings),
        api_path=API_PATH,
        token=token,
        result=session.get("last_result"),
        flow=FlowLog.from_list(session.get("flow")).to_list(),
    )


@bp.post("/call")
def call_api():
    """Call the API's scope-protected route now (the "Call the API now" button).

    POST with a CSRF token: the call spends a token and may make a token
    request, so a cross-site page must not be able to trigger it.
    """
    require_csrf()
    log = FlowLog()
    try:
        result = service_client().call_api(log=log)
        session["last_result"] = {**result.summary(), "at": int(time.time())}
    except FlowError as error:
        FlowRecorder(log).failure("service.call_failed", error)
        session["last_result"] = {
            "ok": False,
            "error": error.error,
            "description": error.description,
            "hint": error.hint,
            "at": int(time.time()),
        }
    session["flow"] = log.to_list()
    return redirect(url_for("service.index"))
