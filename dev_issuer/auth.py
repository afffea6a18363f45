"""Signing in and out at the issuer: the page where users type their password.

The issuer keeps its own session (in Redis, cookie ``dev_issuer_session``):
that is the single sign-on session, so a second authorization request
from any app skips the form until the user signs out or it expires.
"""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

from flask import Blueprint, current_app, redirect, render_template, request, session, url_for

from common.session import regenerate_session_id
from common.web import require_csrf, safe_next

from .freshness import record_fresh_sign_in, requires_fresh_sign_in
from .oauth import signed_in_user
from .par import pushed_parameter
from .state import state
from .users import authenticate

bp = Blueprint("auth", __name__)

#: Where a failed sign-in leaves the login typed, for the one form the
#: browser is redirected to next (post/redirect/get), which shows the error.
FAILED_SIGN_IN = "failed_sign_in"

#: What a failed sign-in says, whichever of the two was wrong (no hint of
#: who has an account).
SIGN_IN_FAILED = "Unknown username or wrong password."


def client_for(next_url: str):
    """The registered client an authorization request (``next``) comes from, if any."""
    values = parse_qs(urlsplit(next_url).query)
    client_id = (values.get("client_id") or [""])[0]
    return state().clients.get(client_id)


@bp.after_request
def never_cached(response):
    """The sign-in pages carry the CSRF token and set the session cookie: no cache keeps them.

    ``no-store`` (RFC 9111 §5.2.2.5) also makes the browser ask again when
    the user presses Back, so :func:`show_sign_in_form` can skip a form
    that a live SSO session no longer needs, instead of showing a cached one.
    """
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/signin", methods=["GET", "POST"])
def sign_in():
    """The sign-in form (GET) and its submission (POST), both going on to ``next``.

    ``next`` is a same-origin path only (:func:`common.web.safe_next`): the
    authorization request that sent the user here, or the issuer's home.
    """
    next_url = safe_next(request.values.get("next"), url_for("admin.home"))
    if request.method == "POST":
        return check_sign_in(next_url)
    return show_sign_in_form(next_url)


def show_sign_in_form(next_url: str):
    """Show the form, with the message of a failed attempt if the browser was just sent back here.

    With a live SSO session the form is skipped: the user goes straight on
    to ``next`` (a Back press after signing in lands here again), unless the
    authorization request asks for a new sign-in (:func:`reauthentication_requested`).
    """
    failed = session.pop(FAILED_SIGN_IN, None)
    user, auth_time = signed_in_user()
    # A form sent for a re-authentication (prompt=login, max_age) carries a
    # challenge (dev_issuer.freshness): then the SSO session is not enough.
    fresh_needed = requires_fresh_sign_in(next_url) or reauthentication_requested(next_url, auth_time)
    if user is not None and failed is None and not fresh_needed:
        return redirect(next_url)
    if isinstance(failed, dict):
        error, username = SIGN_IN_FAILED, str(failed.get("username", ""))
    else:
        login_hint = (parse_qs(urlsplit(next_url).query).get("login_hint") or [""])[0]
        login_hint = login_hint or pushed_parameter(next_url, "login_hint") or ""  # RFC 9126: pushed
        error, username = None, login_hint if len(login_hint) < 200 else ""
    return render_template(
        "dev_issuer/signin.html",
        next_url=next_url,
        error=error,
        username=username,
        client=client_for(next_url),
        demo_username=state().settings.demo_username,
    )


def reauthentication_requested(next_url: str, auth_time) -> bool:
    """Whether the authorization request in ``next`` wants the password typed again (OIDC Core 3.1.2.1).

    ``prompt=login`` always does; ``max_age`` does when the SSO session's
    sign-in is older than that.  The authorization endpoint makes the
    final decision; this only keeps the form from being skipped when that
    endpoint would send the user straight back to it.
    """
    values = parse_qs(urlsplit(next_url).query, keep_blank_values=True)
    if any("login" in prompt.split() for prompt in values.get("prompt", [])):
        return True
    for max_age in values.get("max_age", []):
        if not (max_age.isascii() and max_age.isdigit() and len(max_age) <= 10):
            return True
        if not isinstance(auth_time, int) or auth_time + int(max_age) < time.time():
            return True
    return False


def check_sign_in(next_url: str):
    """Check the submitted password; on success start the SSO session and go on to ``next``.

    The session id is replaced at sign-in (against session fixation).  A
    failure redirects back to the form (post/redirect/get), so that Back
    and reload never resubmit the password form; the login typed waits in
    the session for that one GET, which shows the error.
    """
    require_csrf()
    username = request.form.get("username", "").strip()
    user = authenticate(state().users, username, request.form.get("password", ""))
    if user is not None:
        session.pop(FAILED_SIGN_IN, None)
        regenerate_session_id(current_app, session)
        session["username"] = user.username
        session["auth_time"] = int(time.time())
        record_fresh_sign_in(next_url)
        return redirect(next_url)
    session[FAILED_SIGN_IN] = {"username": username if len(username) < 200 else ""}
    return redirect(url_for("auth.sign_in", next=next_url), 303)


@bp.route("/signout", methods=["POST"])
def sign_out():
    """End the SSO session from the issuer's own pages."""
    require_csrf()
    session.clear()
    return redirect(url_for("admin.home"))
