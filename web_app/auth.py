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

from common.inspector import FlowLog
from common.oidc import OIDCClient, TokenSet
from common.pkce import generate_state
from common.session import regenerate_session_id
from common.web import require_csrf, safe_next, settings_of

bp = Blueprint("auth", __name__)

#: What we ask the issuer for: an ID token (``openid``) with the user's name
#: and e-mail address (``profile``, ``email``; OIDC Core §5.4), and a refresh
#: token (``offline_access``; OIDC Core §11) so that the app can keep calling
#: the API after the short-lived access token expires, without sending the
#: user back to the issuer.
SCOPE = "openid profile email offline_access"

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
    ``redirect_uri``, the ``scope``, and three fresh random values that
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
    authorization_url, pending = oidc_client().build_authorization_request(SCOPE, log=log)

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

    * the issuer's ``error`` / ``error_description`` (RFC 6749 §4.1.2.1);
    * ``state``: present and equal to the one we sent (RFC 6749 §10.12),
      and the sign-in not older than ``LOGIN_TIMEOUT``;
    * ``iss`` equal to our issuer when the issuer says it sends one
      (RFC 9207 §2.4, against mix-up attacks);
    * the token request (RFC 6749 §4.1.3) with the ``code``, our
      ``redirect_uri`` and the PKCE ``code_verifier`` (RFC 7636 §4.5), the
      client authenticated with HTTP Basic (``client_secret_basic``);
    * ID token validation (OIDC Core §3.1.3.7): signature with the issuer's
      keys and pinned algorithms, ``iss``, ``aud``, ``azp``, ``exp``/``iat``,
      ``nonce``, ``at_hash``.

    Then the session gets a new id (against session fixation) and holds the
    tokens; the browser lands on the profile (or the page it asked for).
    """
    # Single use: whatever happens next, the in-flight sign-ins leave the
    # session now, so the same state (and code) can never be replayed.
    pending_logins = session.pop("pending_logins", None) or {}
    entry = _pending_login_for(request.args.get("state"), pending_logins)
    log = load_flow_log()
    try:
        tokens = oidc_client().handle_callback(
            request.args.to_dict(), entry["pending"] if entry else None, log=log
        )
    except Exception:
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


def _pending_login_for(state: str | None, pending_logins: dict) -> dict | None:
    """The in-flight sign-in that the callback's ``state`` belongs to.

    When the state is missing or unknown, the newest pending sign-in is
    handed to ``handle_callback`` anyway, so that it reports the precise
    error (``state_missing`` or ``state_mismatch``) rather than a generic
    one; it has been removed from the session either way.
    """
    if state and state in pending_logins:
        return pending_logins[state]
    if pending_logins:
        return list(pending_logins.values())[-1]
    return None


def _forget_failed_sign_in() -> None:
    """Leave no half-built session behind after a failed callback.

    A user who was already signed in keeps that session (an attacker's
    forged callback must not sign them out); anyone else's session is
    deleted, cookie and Redis key alike.
    """
    if session.get("tokens") is None:
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
