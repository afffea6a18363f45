"""``{issuer base}/activate``: where a person approves a device (RFC 8628 §3.3), as at Okta.

1. ``GET /activate`` shows the form; ``?user_code=`` (the
   ``verification_uri_complete`` of a QR code) fills it in, but the user
   still presses Next, having compared the code with the device's (§5.4).
2. ``POST /activate`` checks the code (case and dash do not matter), at a
   bounded rate of wrong codes per browser session and per address (§5.1);
   the code waits in the issuer's session.
3. ``GET /activate/confirm`` sends a signed-out user through the sign-in
   form (``auth.py``) and back; then it shows which app asks for which
   scopes, with Allow and Deny.
4. ``POST /activate/confirm`` records the decision, once, for the signed-in
   user, and shows the result; the device's next poll gets its tokens or
   ``access_denied``.
"""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, request, session, url_for

from common.errors import error_response
from common.web import require_csrf

from .device import device_store, display_user_code, normalize_user_code
from .oauth import signed_in_user
from .state import state
from .storage import new_id

bp = Blueprint("activate", __name__)

#: Where the entered user code waits in the issuer's session between the steps.
ACTIVATION = "device_activation"

#: RFC 8628 §5.1: with 20^8 codes, a few guesses per window cannot find a
#: live one.  Wrong codes allowed per browser session, and per client
#: address (a browser can drop its cookie), in one window of seconds.
WRONG_CODES_PER_SESSION = 5
WRONG_CODES_PER_ADDRESS = 20
WRONG_CODE_WINDOW = 600

#: What each scope lets the app do, in the words of the consent page.
SCOPE_TEXTS = {
    "openid": "know who you are (sign you in)",
    "profile": "see your name",
    "email": "see your email address",
    "offline_access": "stay signed in while you are away (a refresh token)",
}

WRONG_CODE = "That code is not valid, or it has expired. Check the code on your device and type it again."


@bp.after_request
def never_cached(response):
    """These pages carry the CSRF token and the user's decision: no cache keeps them (RFC 9111 §5.2.2.5)."""
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/activate", methods=["GET", "POST"])
def activate():
    """The form to enter the code (GET, maybe filled in from ``?user_code=``) and its check (POST)."""
    if request.method == "POST":
        require_csrf()
        return check_code()
    typed = request.args.get("user_code", "")
    code = normalize_user_code(typed)
    shown = display_user_code(code) if code else typed[:20]
    return render_template("dev_issuer/activate.html", user_code=shown, error=None)


def check_code():
    """Find the pending device the typed code names, or count a wrong code (RFC 8628 §5.1)."""
    if wrong_code_limit_reached():
        return too_many_wrong_codes()
    typed = request.form.get("user_code", "")
    code = normalize_user_code(typed)
    if code is None or device_store().by_user_code(code) is None:
        count_wrong_code()
        return render_template("dev_issuer/activate.html", user_code=typed[:20], error=WRONG_CODE), 400
    session[ACTIVATION] = code
    return redirect(url_for(".confirm"), 303)


@bp.route("/activate/confirm", methods=["GET", "POST"])
def confirm():
    """Which app asks for what, with Allow and Deny (GET); the decision (POST). Signed-in users only."""
    if request.method == "POST":
        require_csrf()
    code = session.get(ACTIVATION)
    found = device_store().by_user_code(code) if isinstance(code, str) else None
    if found is None:
        session.pop(ACTIVATION, None)
        return render_template("dev_issuer/activate_done.html", outcome="expired"), 400
    user, auth_time = signed_in_user()
    if user is None:
        # The issuer's own sign-in form, which comes back here (a same-origin path).
        return redirect(url_for("auth.sign_in", next=url_for(".confirm")), 303)
    digest, record = found
    client = state().clients.get(record["client_id"])
    if request.method == "GET":
        scopes = [(scope, SCOPE_TEXTS.get(scope, scope)) for scope in record["scope"].split()]
        return render_template(
            "dev_issuer/activate_confirm.html",
            client=client,
            client_id=record["client_id"],
            scopes=scopes,
            user_code=display_user_code(code),
            user=user,
        )
    decision = request.form.get("decision")
    if decision not in ("allow", "deny"):
        return render_template("dev_issuer/activate_done.html", outcome="unknown"), 400
    made = device_store().decide(
        digest,
        code,
        {"approved": decision == "allow", "username": user.username, "auth_time": auth_time},
    )
    session.pop(ACTIVATION, None)
    outcome = ("approved" if decision == "allow" else "denied") if made else "expired"
    return render_template("dev_issuer/activate_done.html", outcome=outcome, client=client, user=user)


# -- the rate of wrong codes (RFC 8628 §5.1) ---------------------------------------------------


def _limit_keys() -> list[tuple[str, int]]:
    """The counters of this browser session and of this client address, with their limits."""
    if "device_attempts" not in session:
        session["device_attempts"] = new_id()
    return [
        (f"dev_issuer:device_wrong:session:{session['device_attempts']}", WRONG_CODES_PER_SESSION),
        (f"dev_issuer:device_wrong:address:{request.remote_addr}", WRONG_CODES_PER_ADDRESS),
    ]


def wrong_code_limit_reached() -> bool:
    """True when this session or this address has typed too many wrong codes in the window."""
    redis = state().store.redis
    return any(int(redis.get(key) or 0) >= limit for key, limit in _limit_keys())


def count_wrong_code() -> None:
    """One more wrong code for this session and this address (each counter one key, its own window)."""
    redis = state().store.redis
    for key, _ in _limit_keys():
        redis.set(key, 0, ex=WRONG_CODE_WINDOW, nx=True)
        redis.incr(key)


def too_many_wrong_codes():
    """The 429 page: how long to wait (RFC 6585 §4, ``Retry-After``)."""
    redis = state().store.redis
    wait = max([redis.ttl(key) for key, _ in _limit_keys()] + [1])
    return error_response(
        "too_many_attempts",
        "Too many wrong codes were entered from this browser or this network.",
        f"Wait {max(1, wait // 60)} minutes, then type the code shown on your device again.",
        429,
        retry_url=url_for(".activate"),
        headers={"Retry-After": str(wait)},
    )
