"""Sign-in, the way back from the issuer, and sign-out.

The Authorization Code flow (RFC 6749 §4.1, OpenID Connect Core §3.1) takes
two requests from the browser to this app:

1. ``GET /login``: we build the authorization request and send the
   browser to the issuer, where the user signs in;
2. ``GET /authorization-code/callback``: the issuer sends the browser back
   with a one-time ``code``; we check the answer, redeem the code server to
   server, validate the ID token and keep the tokens in the session.

``POST /logout`` undoes it all: the refresh token is revoked, the session
deleted, and the browser sent to the issuer to end the session there too.

Each protocol step is a function of ``common/`` named after it; what this
app keeps in the user's (Redis) session between the steps is
:class:`common.signin.BrowserSignIn`'s job.
"""

from __future__ import annotations

import functools

from flask import Blueprint, current_app, flash, redirect, request, session, url_for

from common.authorization import (
    USER_SCOPE,
    build_authorization_request,
    check_authorization_response,
    single_valued,
)
from common.client import Client
from common.dpop_client import new_dpop_key, remember_dpop_key
from common.id_token import validate_id_token
from common.inspector import FlowLog
from common.signin import ALREADY_SIGNED_IN_NOTICE, BrowserSignIn
from common.tokens import exchange_code
from common.web import redirect_to_base_url, require_csrf, safe_next, settings_of

bp = Blueprint("auth", __name__)

# -- helpers the views share ----------------------------------------------------


def oidc_client() -> Client:
    """The app's registered client (one per process, see :func:`web_app.create_app`)."""
    return current_app.extensions["oidc_client"]


def browser_sign_in(log: FlowLog | None = None) -> BrowserSignIn:
    """This request's sign-in state, narrating into the session's flow log (or into ``log``)."""
    settings = settings_of(current_app)
    return BrowserSignIn(
        oidc_client(), post_logout_redirect_uri=settings.web_post_logout_redirect_uri, log=log
    )


def login_required(view):
    """Send signed-out users to the sign-in, coming back here afterwards."""

    @functools.wraps(view)
    def wrapped_view(**kwargs):
        if not browser_sign_in().signed_in:
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
    ``redirect_uri``, the ``scope`` (:data:`common.authorization.USER_SCOPE`:
    an ID token, the user's profile and e-mail, and a refresh token), and
    three fresh random values that we remember in this user's session:
    ``state`` (against login CSRF), ``nonce`` (ties the ID token to this
    request) and the PKCE ``code_verifier``, of which only the S256 hash
    travels now (RFC 7636 §4.1, RFC 9700 §2.1.1).

    ``?next=/path`` says where to land afterwards (same-origin paths only).
    """
    # Cookies belong to a host name: move to the configured base URL first,
    # or the state would be lost on the way back.
    moved = redirect_to_base_url(settings_of(current_app).web_base_url)
    if moved:
        return moved

    return_to = safe_next(request.args.get("next"), url_for("views.profile"))
    sign_in = browser_sign_in(FlowLog())  # a new sign-in starts a new flow log
    # DPoP (RFC 9449 §2), under DPOP: a key pair of this sign-in's own, so that
    # its tokens work only with proofs signed by it. Made first: with DPOP=on
    # and an issuer without DPoP, the user gets the error before going anywhere.
    dpop_key = new_dpop_key(sign_in.client)
    authorization_url, pending = build_authorization_request(sign_in.client, USER_SCOPE)

    # Remember this sign-in (and its DPoP key) in the server-side session, keyed
    # by its state; only the newest few survive, so abandoned attempts cannot pile up.
    sign_in.remember_pending(remember_dpop_key(pending, dpop_key), return_to)
    sign_in.save_flow_log()

    # The user now authenticates at the issuer; one redirect later we are
    # back at the callback below with a code (or an error).
    return redirect(authorization_url)


# -- 2. the authorization response and the token request ------------------------


@bp.get("/authorization-code/callback")
def callback():
    """Finish the sign-in: check the answer, redeem the code, validate the ID token, keep the session."""
    sign_in = browser_sign_in()
    client = sign_in.client

    # RFC 6749 §3.1: an answer with a parameter given twice is not read at all.
    params = single_valued(request.args)
    # The sign-in this answer's state names leaves the session now, whatever
    # happens next, so neither the state nor the code can be replayed.
    entry = sign_in.take_pending(params.get("state"))
    if sign_in.answer_already_used(entry):
        # A reload, Back, or a second tab: the user is signed in already, and
        # this spent answer is not read at all.
        flash(ALREADY_SIGNED_IN_NOTICE, "info")
        return redirect(url_for("views.profile"))
    # Whatever fails below goes to the shared error pages, leaving no half-built session.
    with sign_in.completing(entry):
        # The answer must belong to a sign-in this browser started (state),
        # come from our issuer (RFC 9207 iss), and only then may the issuer's
        # own error be shown; a sign-in older than LOGIN_TIMEOUT is refused.
        # (An answer that names none of our sign-ins is compared with the
        # newest one, for the precise error: state_mismatch or state_missing.)
        code = check_authorization_response(
            client, params, entry["pending"] if entry else sign_in.newest_pending()
        )

        # Server to server: the code, our redirect_uri and the PKCE
        # code_verifier (RFC 7636 §4.5), the client authenticated with HTTP
        # Basic (client_secret_basic, RFC 6749 §2.3.1); with DPoP, a proof of
        # the sign-in's key, to which the tokens are then bound (RFC 9449 §5).
        pending = entry["pending"]
        tokens = exchange_code(client, code, pending)

        # Who signed in (OIDC Core 3.1.3.7): the issuer's signature with a
        # pinned algorithm, iss, aud, azp, exp/iat, our nonce, at_hash.
        tokens.id_claims = validate_id_token(
            client, tokens.id_token, nonce=pending.get("nonce"), access_token=tokens.access_token
        )

    # Signed in: the tokens (and the DPoP key they are bound to) go into a
    # server-side session with a new id (session fixation).
    sign_in.keep(tokens)
    return redirect(entry["next"])


# -- 3. sign-out ------------------------------------------------------------------


@bp.post("/logout")
def logout():
    """Sign out here and at the issuer.

    The refresh token is revoked (RFC 7009), the server-side session deleted,
    and the browser sent to the issuer's end-session endpoint with
    ``id_token_hint``, the registered ``post_logout_redirect_uri`` and a
    ``state`` checked on return (OpenID Connect RP-Initiated Logout 1.0 §2);
    see :meth:`common.signin.BrowserSignIn.sign_out`.

    A POST with an anti-CSRF token: a GET link would let any other site
    sign our users out.
    """
    require_csrf()
    sign_in = browser_sign_in()
    was_signed_in = sign_in.signed_in
    end_session_url = sign_in.sign_out()
    if not end_session_url and was_signed_in:
        flash(
            "You are signed out of this app. The issuer offers no sign-out endpoint (or could not be "
            "reached), so your session there may remain.",
            "info",
        )
    return redirect(end_session_url or url_for("index"))
