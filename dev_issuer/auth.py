"""Signing in and out at the issuer: the page where users type their password.

The issuer keeps its own session (in Redis, cookie ``dev_issuer_session``):
that is the single sign-on session, so a second authorization request
from any app skips the form until the user signs out or it expires.
"""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

from flask import Blueprint, current_app, redirect, render_template, request, session, url_for
from werkzeug.security import check_password_hash

from common.session import regenerate_session_id
from common.web import require_csrf, safe_next

from .freshness import record_fresh_sign_in
from .state import state

bp = Blueprint("auth", __name__)

#: Compared against when the username is unknown, so that a wrong username
#: takes as long as a wrong password and does not reveal who exists.
_DUMMY_HASH = "scrypt:32768:8:1$dummysaltdummysa$" + "0" * 128


def client_for(next_url: str):
    """The registered client an authorization request (``next``) comes from, if any."""
    values = parse_qs(urlsplit(next_url).query)
    client_id = (values.get("client_id") or [""])[0]
    return state().clients.get(client_id)


@bp.route("/signin", methods=["GET", "POST"])
def sign_in():
    """Show the sign-in form; on a correct password, start the SSO session.

    The session id is replaced at sign-in (against session fixation), and
    the user goes back to the authorization request that sent them here.
    """
    next_url = safe_next(request.values.get("next"), url_for("admin.home"))
    error = None
    status = 200
    username = ""
    if request.method == "POST":
        require_csrf()
        username = request.form.get("username", "").strip()
        password = request.form.get("password", "")
        user = state().users.get(username.lower())
        if user is not None and user.check_password(password):
            regenerate_session_id(current_app, session)
            session["username"] = user.username
            session["auth_time"] = int(time.time())
            record_fresh_sign_in(next_url)
            return redirect(next_url)
        if user is None:
            check_password_hash(_DUMMY_HASH, password)
        error = "Unknown username or wrong password."
        status = 401
    else:
        login_hint = (parse_qs(urlsplit(next_url).query).get("login_hint") or [""])[0]
        username = login_hint if len(login_hint) < 200 else ""
    return render_template(
        "dev_issuer/signin.html",
        next_url=next_url,
        error=error,
        username=username,
        client=client_for(next_url),
        demo_username=state().settings.demo_username,
    ), status


@bp.route("/signout", methods=["POST"])
def sign_out():
    """End the SSO session from the issuer's own pages."""
    require_csrf()
    session.clear()
    return redirect(url_for("admin.home"))
