"""Sign-in, the way back from the issuer, and sign-out.

The Authorization Code flow (RFC 6749 §4.1, OpenID Connect Core §3.1) takes
two requests from the browser to this app:

1. ``GET /login``: we build the authorization request and send the
   browser to the issuer, where the user signs in;
2. ``GET /authorization-code/callback``: the issuer sends the browser back
   with a one-time ``code``, which we redeem for tokens server to server.

``POST /logout`` undoes it all: the refresh token is revoked, the session
deleted, and the browser sent to the issuer to end the session there too.

All protocol work is done by :class:`common.oidc.OIDCClient`; this module
decides what to keep in the user's (Redis) session and when.
"""

from __future__ import annotations

import functools
from urllib.parse import urlsplit

from flask import Blueprint, current_app, flash, redirect, request, session, url_for

from common.errors import FlowError
from common.inspector import FlowLog
from common.oidc import USER_SCOPE, OIDCClient, TokenSet
from common.pkce import generate_state
from common.session import regenerate_session_id
from common.web import require_csrf, safe_next, settings_of

bp = Blueprint("auth", __name__)

#: Sign-ins one browser session may have in flight at once (several tabs).
MAX_PENDING_LOGINS = 3

# -- helpers the views share ----------------------------------------------------


def oidc_client() -> OIDCClient:
    """The app's OIDC client (one per process, see :func:`web_app.create_app`)."""
    return current_app.extensions["oidc_client"]


def signed_in_tokens() -> TokenSet | None:
    """The signed-in user's tokens from the Redis session, or ``None``."""
    data = session.get("tokens")
    return TokenSet.from_dict(data) if data else None


def load_flow_log() -> FlowLog:
    """This session's flow inspector log."""
    return FlowLog.from_list(session.get("flow_log") or [])


def save_flow_log(log: FlowLog) -> None:
    """Store the log back in the session.

    A FlowLog keeps only its newest steps, so the session stays small however
    long the user clicks around.
    """
    session["flow_log"] = log.to_list()


def login_required(view):
    """Send signed-out users to the sign-in, coming back here afterwards."""

    @functools.wraps(view)
    def wrapped_view(**kwargs):
        if session.get("tokens") is None:
            back = request.path if request.method == "GET" else url_for("views.profile")
            return redirect(url_for("auth.login", next=back))
        return view(**kwargs)

    return wrapped_view


def sign_in_again(message: str):
    """Forget the session and ask the user to sign in again (on the home page)."""
    session.clear()
    flash(message, "error")
    return redirect(url_for("index"))


# -- 1. the authorization request -----------------------------------------------


@bp.get("/login")
def login():
    """Send the browser to the issuer's authorization endpoint.

    The authorization request (RFC 6749 §4.1.1, OIDC Core §3.1.2.1) carries
    ``response_type=code``, our ``client_id`` and registered
    ``redirect_uri``, the ``scope`` (:data:`common.oidc.USER_SCOPE`: an ID
    token, the user's profile and e-mail, and a refresh token), and three
    fresh random values that
    we remember in this user's session:

    * ``state`` (RFC 6749 §10.12) ties the answer to this browser session, so
      nobody can slip us a code from their own sign-in (login CSRF);
    * ``nonce`` (OIDC Core §3.1.2.1) ties the ID token to this request, so an
      ID token cannot be replayed;
    * the PKCE ``code_verifier`` (RFC 7636 §4.1); only its S256 hash, the
      ``code_challenge``, travels now, so a code intercepted on the way back
      is useless without the verifier (RFC 9700 §2.1.1).

    ``?next=/path`` says where to land afterwards (same-origin paths only).
    """
    settings = settings_of(current_app)
    base = urlsplit(settings.web_base_url)
    if request.host.lower() != base.netloc.lower():
        # Cookies belong to a host name: a sign-in started on 127.0.0.1 would
        # come back on the registered redirect URI's host (say localhost),
        # where the browser has a different cookie, and the state would be
        # lost.  So move to the configured base URL first.
        query = request.query_string.decode("utf-8", "replace")
        return redirect(settings.web_base_url + request.path + (f"?{query}" if query else ""))

    return_to = safe_next(request.args.get("next"), url_for("views.profile"))
    log = FlowLog()
    authorization_url, pending = oidc_client().build_authorization_request(USER_SCOPE, log=log)

    # Remember this sign-in in the server-side session, keyed by its state;
    # only the newest few survive, so abandoned attempts cannot pile up.
    pending_logins = dict(session.get("pending_logins") or {})
    pending_logins[pending["state"]] = {"pending": pending, "next": return_to}
    session["pending_logins"] = dict(list(pending_logins.items())[-MAX_PENDING_LOGINS:])
    save_flow_log(log)

    # The user now authenticates at the issuer; one redirect later we are
    # back at the callback below with a code (or an error).
    return redirect(authorization_url)


# -- 2. the authorization response and the token request ------------------------


@bp.get("/authorization-code/callback")
def callback():
    """Finish the sign-in: check the answer, redeem the code, validate the ID token.

    ``handle_callback`` performs, in order:

    * ``state``: present and equal to the one of a sign-in this browser
      started (RFC 6749 §10.12).  Nothing else in an answer that fails this
      is shown or used, not even its ``error_description``;
    * ``iss`` equal to our issuer when the issuer says it sends one
      (RFC 9207 §2.4, against mix-up attacks);
    * the issuer's ``error`` / ``error_description`` (RFC 6749 §4.1.2.1),
      shown escaped;
    * the sign-in not older than ``LOGIN_TIMEOUT``;
    * the token request (RFC 6749 §4.1.3) with the ``code``, our
      ``redirect_uri`` and the PKCE ``code_verifier`` (RFC 7636 §4.5), the
      client authenticated with HTTP Basic (``client_secret_basic``);
    * ID token validation (OIDC Core §3.1.3.7): signature with the issuer's
      keys and pinned algorithms, ``iss``, ``aud``, ``azp``, ``exp``/``iat``,
      ``nonce``, ``at_hash``.

    Then the session gets a new id (against session fixation) and holds the
    tokens; the browser lands on the profile (or the page it asked for).
    """
    params = _authorization_response()
    entry = _take_pending_login(params.get("state"))
    log = load_flow_log()
    try:
        tokens = oidc_client().handle_callback(params, entry["pending"] if entry else _newest_pending(), log=log)
    except Exception:
        if entry is not None:
            _forget_failed_sign_in()
        raise  # the shared error handlers render a clear page with a hint

    # Session fixation (OWASP): the privilege level changes now, so the user
    # gets a new session id, and the old one (possibly known to an attacker
    # who planted it) is deleted from Redis.  Nothing from before the
    # sign-in survives except the flow log of this very sign-in.
    session.clear()
    session["tokens"] = tokens.to_dict()
    save_flow_log(log)
    regenerate_session_id(current_app, session)
    return redirect(entry["next"])


def _authorization_response() -> dict[str, str]:
    """The callback's query parameters, each given exactly once.

    RFC 6749 §3.1: "Request and response parameters MUST NOT be included
    more than once."  Two ``state`` or ``code`` values leave it open which
    one the issuer sent, so such an answer is refused rather than read as
    its first value (as the native app's loopback listener does).
    """
    if any(len(values) > 1 for values in request.args.listvalues()):
        raise FlowError("invalid_request", "A parameter appears more than once in the issuer's answer.",
                        "Start the sign-in again from this app; this answer was not used.", 400)
    return request.args.to_dict()


def _take_pending_login(state: str | None) -> dict | None:
    """Remove and return the in-flight sign-in that ``state`` names, if any.

    Single use: once an answer with its state has arrived, that sign-in
    leaves the session, whatever happens next, so the same state (and code)
    can never be replayed.  Other tabs' sign-ins stay where they are.
    """
    pending_logins = dict(session.get("pending_logins") or {})
    entry = pending_logins.pop(state, None) if state else None
    if entry is not None:
        if pending_logins:
            session["pending_logins"] = pending_logins
        else:
            session.pop("pending_logins")
    return entry


def _newest_pending() -> dict | None:
    """The newest in-flight sign-in, left in the session, for an answer that names none of them.

    ``handle_callback`` compares its ``state`` with the answer's and refuses
    with the precise error (``state_mismatch``, or ``state_missing`` when
    there is none at all) instead of a generic one.
    """
    pending_logins = session.get("pending_logins") or {}
    return list(pending_logins.values())[-1]["pending"] if pending_logins else None


def _forget_failed_sign_in() -> None:
    """Leave no half-built session behind after a sign-in failed.

    A user who was already signed in keeps that session, and a sign-in
    still in flight in another tab keeps its place; otherwise the session
    is deleted, cookie and Redis key alike.
    """
    if session.get("tokens") is None and not session.get("pending_logins"):
        session.clear()


# -- 3. sign-out ------------------------------------------------------------------


@bp.post("/logout")
def logout():
    """Sign out here and at the issuer.

    1. Revoke the refresh token (RFC 7009 §2), so that a copy of it, say in
       a backup of the session store, is worthless from now on.
    2. Delete the server-side session: the tokens are gone from Redis.
    3. RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0 §2): send
       the browser to the issuer's ``end_session_endpoint`` with
       ``id_token_hint`` (which session to end), the registered
       ``post_logout_redirect_uri`` and a ``state`` we check on return.

    A POST with an anti-CSRF token: a GET link would let any other site
    sign our users out.
    """
    require_csrf()
    settings = settings_of(current_app)
    client = oidc_client()
    tokens = signed_in_tokens()
    if tokens is not None and tokens.refresh_token:
        # Best effort by design: a failure is recorded, not raised, because
        # the user must be able to sign out even while the issuer is down.
        client.revoke_token(tokens.refresh_token, token_type_hint="refresh_token")

    session.clear()
    state = generate_state()
    end_session_url = None
    if tokens is not None and tokens.id_token:
        end_session_url = client.end_session_url(tokens.id_token, settings.web_post_logout_redirect_uri, state)
    if end_session_url:
        # The only thing the new, nearly empty session holds: the state to
        # check when the issuer sends the browser back to our home page.
        session["logout_state"] = state
    elif tokens is not None:
        flash("You are signed out of this app. The issuer offers no sign-out endpoint (or could not be "
              "reached), so your session there may remain.", "info")
    # A fresh id as well: the signed-in session's id is now worthless.
    regenerate_session_id(current_app, session)
    return redirect(end_session_url or url_for("index"))
