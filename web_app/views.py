"""Pages of the web app: home, profile, calling the API, the flow inspector."""

from __future__ import annotations

import json
import time

from flask import Blueprint, current_app, flash, g, redirect, render_template, request, session, url_for

from common import api
from common.dpop_client import key_of
from common.signin import BrowserSignIn
from common.tokens import TokenSet
from common.web import require_csrf, settings_of

from .auth import browser_sign_in, login_required, sign_in_again

bp = Blueprint("views", __name__)

#: The resource server's route this app calls with the user's access token.
API_PATH = "/api/messages"

#: Longest API answer shown on the page (and kept nowhere).
MAX_API_BODY = 4000

#: The session key of the last API answer, shown on the profile after the redirect.
API_RESULT_KEY = "api_result"

#: Seconds the last API answer stays on the profile (a reload shows it again, then it is gone).
API_RESULT_LIFETIME = 120

#: Claims about the person first on the profile, then those about the token.
CLAIM_ORDER = ("sub", "name", "given_name", "family_name", "preferred_username", "email", "email_verified")


@bp.before_app_request
def load_signed_in_state():
    """Note whether this browser session is signed in (like flaskr's ``load_logged_in_user``)."""
    if request.endpoint != "health.healthz":
        g.signed_in = browser_sign_in().signed_in


@bp.app_context_processor
def inject_signed_in():
    """Make ``signed_in`` available to every template, error pages included.

    Read from ``g``, not from the session: an error page may be rendered
    for a request whose session could not be opened (Redis down).
    """
    return {"signed_in": g.get("signed_in", False)}


@bp.app_template_global()
def ordered_claims(claims: dict) -> list[tuple[str, object]]:
    """The ID token's claims as (name, value) pairs, the person's first."""
    rank = {name: i for i, name in enumerate(CLAIM_ORDER)}
    return sorted(claims.items(), key=lambda item: (rank.get(item[0], len(rank)), item[0]))


@bp.route("/")
def index():
    """Home: what this app does, and the Sign in button.

    The issuer's RP-initiated logout ends here too (our registered
    ``post_logout_redirect_uri``), with the ``state`` we sent; a match
    confirms that the issuer really ended its session.
    """
    sign_in = browser_sign_in()
    returned_state = request.args.get("state")
    if returned_state is not None:
        if sign_in.confirm_logout(returned_state):
            flash("You are signed out, here and at the issuer.", "info")
        return redirect(url_for("index"))
    tokens = sign_in.tokens()
    return render_template("web_app/index.html", claims=tokens.id_claims if tokens else None)


@bp.get("/profile")
@login_required
def profile():
    """The signed-in user's claims, from the validated ID token (OIDC Core §5.1)."""
    return render_template(
        "web_app/profile.html", tokens=browser_sign_in().tokens(), api_result=_recent_api_result()
    )


@bp.get("/call-api")
@login_required
def call_api_again():
    """A reload (or a bookmark) of the page the API call ended on: the profile, at its last API answer."""
    return redirect(url_for("views.profile", _anchor="api-answer"), code=303)


@bp.post("/call-api")
@login_required
def call_api():
    """Call the resource server with the user's access token (RFC 6750 §2.1).

    An access token that has expired (or is about to) is renewed first with
    the refresh token (RFC 6749 §6); an issuer that rotates refresh tokens
    returns a new one each time, which replaces the old one in the session.
    When the API still says ``401`` we refresh once and try again: the token
    may have been revoked before its expiry.  When renewal fails, the
    user's sign-in is over and they are asked to sign in again.
    """
    require_csrf()
    sign_in = browser_sign_in()
    tokens = sign_in.tokens()
    refreshed = False
    if tokens.expired():
        # Renewed under the session's lock (common/signin.py), so that two
        # tabs never spend the same refresh token.
        tokens = sign_in.refresh(tokens)
        if tokens is None:
            return sign_in_again("Your sign-in has expired and could not be renewed. Please sign in again.")
        refreshed = True

    answer = _get_api(sign_in, tokens)
    if answer.status == 401 and not refreshed and tokens.refresh_token:
        tokens = sign_in.refresh(tokens)
        if tokens is None:
            return sign_in_again(
                "The API no longer accepts your sign-in and it could not be renewed. Please sign in again."
            )
        answer = _get_api(sign_in, tokens)

    sign_in.save_flow_log()
    # Post/redirect/get: the answer waits in the session and the browser is
    # sent to the profile (303, RFC 9110 §15.4.4), so a reload or Back
    # repeats no POST and never meets a 405 at GET /call-api.
    session[API_RESULT_KEY] = {"status": answer.status, "body": _readable_body(answer), "at": time.time()}
    return redirect(url_for("views.profile", _anchor="api-answer"), code=303)


@bp.get("/inspector")
@login_required
def inspector():
    """The flow inspector: every protocol step of this user's sign-in and API calls."""
    return render_template("web_app/inspector.html", steps=browser_sign_in().log.to_list())


# -- helpers ---------------------------------------------------------------------------


def _get_api(sign_in: BrowserSignIn, tokens: TokenSet) -> api.ApiAnswer:
    """GET the API's route with the access token, narrated into the flow log.

    ``Authorization: Bearer`` (RFC 6750 §2.1), or, for DPoP-bound tokens,
    ``Authorization: DPoP`` with a proof signed by the session's key (RFC 9449 §7.1).
    """
    return api.call_api(
        settings_of(current_app).api_url + API_PATH,
        tokens.access_token,
        http=sign_in.client.http,
        recorder=sign_in.client.recorder,
        dpop_key=key_of(tokens),
    )


def _recent_api_result() -> dict | None:
    """The session's last API answer if it is recent (:data:`API_RESULT_LIFETIME`), else ``None``."""
    result = session.get(API_RESULT_KEY)
    if not isinstance(result, dict) or not isinstance(result.get("at"), (int, float)):
        return None
    return result if 0 <= time.time() - result["at"] < API_RESULT_LIFETIME else None


def _readable_body(answer: api.ApiAnswer) -> str:
    """The API's answer, pretty-printed when it is JSON, and cut to a sane length."""
    text = answer.body if isinstance(answer.body, str) else json.dumps(answer.body, indent=2)
    return text[:MAX_API_BODY]
