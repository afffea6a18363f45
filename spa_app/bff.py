"""The SPA's backend for frontend (BFF): this server signs the user in and keeps every token.

The OAuth 2.0 for Browser-Based Applications BCP (§6) ranks this
architecture first (§6.1): the SPA's own server is a confidential client
(``client_secret_basic``, RFC 6749 §2.3.1), runs the Authorization Code
flow with PKCE, keeps the tokens in its Redis session, and forwards the
page's API calls with the access token.  The browser holds one HttpOnly
cookie naming that session; a script injected into the page can act
through the BFF while the page is open, but never carries a token away.

The routes (the page calls them with ``fetch``; sign-in is a navigation):

1. ``GET /bff/login?returnTo=/path``: the authorization request;
2. ``GET /bff/callback``: the issuer's answer; the code is redeemed here;
3. ``GET /bff/user``: the ID token's claims (never a token), ``401`` signed out;
4. ``/bff/api/<path>``: forwarded to ``{API_URL}/api/<path>`` (:mod:`spa_app.bff_proxy`);
5. ``POST /bff/logout``: revoke, delete the session, answer the issuer's logout URL;
6. ``GET /bff/inspector``: the flow inspector's steps of this session.

Section numbers below are those of the OAuth 2.0 for Browser-Based
Applications BCP (draft-ietf-oauth-browser-based-apps-26).

CSRF (§6.1.3.3.2, "Cross-Origin Resource Sharing"): every route but the
two navigations requires the static header ``X-CSRF: 1`` and is refused
with ``403`` before anything else runs, before the session is even opened
(:func:`uses_session`).  A page of another origin cannot add that header
without a CORS preflight, and this server grants none: it sends no
``Access-Control-Allow-*`` header at all, so the browser never sends the
real request.  An ``Origin`` header naming another origin is refused too.
The cookie (§6.1.3.2) is HttpOnly and ``SameSite=Lax`` rather than the
Strict it recommends: Strict would drop it on the issuer's cross-site
redirect to ``/bff/callback``; the header above is the CSRF defence.
"""

from __future__ import annotations

from flask import Blueprint, current_app, g, jsonify, redirect, request, session

from common.authorization import (
    USER_SCOPE,
    build_authorization_request,
    check_authorization_response,
    single_valued,
)
from common.client import Client
from common.dpop_client import key_of, new_dpop_key, remember_dpop_key
from common.errors import FlowError, json_error
from common.id_token import validate_id_token
from common.inspector import FlowLog
from common.signin import BrowserSignIn
from common.tokens import TokenSet, exchange_code
from common.web import redirect_to_base_url, safe_next, settings_of

from . import bff_proxy

bp = Blueprint("bff", __name__, url_prefix="/bff")

#: The two routes a browser reaches by navigation (no custom header possible there).
NAVIGATIONS = ("/bff/login", "/bff/callback")

#: Where the page lands after a sign-in without ``returnTo``.
HOME = "/?mode=bff"

# -- helpers ---------------------------------------------------------------------


def oidc_client() -> Client:
    """The BFF's registered client (one per process, see :func:`spa_app.create_app`)."""
    return current_app.extensions["bff_client"]


def bff_sign_in(log: FlowLog | None = None) -> BrowserSignIn:
    """This request's sign-in state, narrating into the session's flow log (or into ``log``)."""
    settings = settings_of(current_app)
    return BrowserSignIn(
        oidc_client(), post_logout_redirect_uri=settings.spa_post_logout_redirect_uri, log=log
    )


def csrf_refusal(req) -> str | None:
    """Why ``req`` is refused as a possible CSRF, or ``None`` (BCP §6.1.3.3.2).

    Every ``/bff/*`` route but the navigations needs ``X-CSRF: 1``; an
    ``Origin`` header, when the browser sends one, must be the SPA's own.
    """
    if not req.path.startswith("/bff/") or req.path in NAVIGATIONS:
        return None
    if req.headers.get("X-CSRF") != "1":
        return "The request lacks the header X-CSRF: 1 that the page's own fetch calls send."
    origin = req.headers.get("Origin")
    if origin is not None and origin != settings_of(current_app).spa_origin:
        return "The request comes from another origin."
    return None


def uses_session(req) -> bool:
    """Which requests open the Redis session: the BFF's, and only once they passed the CSRF check.

    The in-browser modes (the page, ``/config.json``, ``/login/callback``)
    never create a session or a cookie; a refused request never reaches
    Redis at all.
    """
    return req.path.startswith("/bff/") and csrf_refusal(req) is None


@bp.before_app_request
def refuse_cross_site():
    """``403`` for a ``/bff/*`` request without ``X-CSRF: 1`` (or from another origin), before any work.

    An app-wide hook, so that it also answers requests no route matches
    (and preflights); then a proxied path is checked, before routing could
    answer a ``//`` with a redirect.
    """
    reason = csrf_refusal(request)
    if reason:
        return json_error(
            "csrf_refused", reason, 403, hint="Call the BFF from the SPA's page, with fetch and X-CSRF: 1."
        )
    if not current_app.config.get("SESSION_REDIS") and request.path.startswith("/bff/"):
        raise FlowError(
            "bff_unavailable",
            "The backend-for-frontend mode keeps its sessions in Redis, and none is configured.",
            "Start the suite with `make run` (it starts an embedded Redis) or set REDIS_URL.",
            503,
        )
    if request.path.startswith(bff_proxy.PREFIX):
        # 400 for any trick (spa_app.bff_proxy)
        g.bff_api_target = bff_proxy.api_target(request, settings_of(current_app).api_url)
    return None


def not_signed_in():
    """``401`` for the page: nobody is signed in to the BFF (any more)."""
    return json_error("not_signed_in", "Nobody is signed in.", 401, hint="Sign in with GET /bff/login.")


# -- 1. the authorization request -----------------------------------------------


@bp.get("/login")
def login():
    """Send the browser to the issuer's authorization endpoint (RFC 6749 §4.1.1, OIDC Core §3.1.2.1).

    As the web app's sign-in: ``response_type=code``, our ``client_id`` and
    ``{SPA_BASE_URL}/bff/callback``, the scope, and a fresh ``state``,
    ``nonce`` and PKCE ``code_verifier`` kept in this browser's Redis
    session (only the S256 challenge travels, RFC 7636 §4.3).
    ``?returnTo=/path`` says where the page lands afterwards (same-origin paths only).
    """
    # Cookies belong to a host name: move to SPA_BASE_URL first, or the
    # state would be lost on the way back from the issuer.
    moved = redirect_to_base_url(settings_of(current_app).spa_base_url)
    if moved:
        return moved

    return_to = safe_next(request.args.get("returnTo"), HOME)
    sign_in = bff_sign_in(FlowLog())  # a new sign-in starts a new flow log
    # DPoP (RFC 9449 §2), under DPOP: a key pair of this browser session's own,
    # made before anything else so that DPOP=on fails before the redirect.
    dpop_key = new_dpop_key(sign_in.client)
    authorization_url, pending = build_authorization_request(sign_in.client, USER_SCOPE)

    # Remembered in the server-side session (with the DPoP key), keyed by its
    # state: the browser never holds the key, only the HttpOnly session cookie.
    sign_in.remember_pending(remember_dpop_key(pending, dpop_key), return_to)
    sign_in.save_flow_log()
    return redirect(authorization_url)


# -- 2. the authorization response and the token request ------------------------


@bp.get("/callback")
def callback():
    """Finish the sign-in: check the answer, redeem the code, validate the ID token, keep the session."""
    sign_in = bff_sign_in()
    client = sign_in.client

    # RFC 6749 §3.1: an answer with a parameter given twice is not read at all.
    params = single_valued(request.args)
    # The sign-in this answer's state names leaves the session now, whatever
    # happens next (single use: neither state nor code can be replayed).
    entry = sign_in.take_pending(params.get("state"))
    if sign_in.answer_already_used(entry):
        # A reload or Back after a finished sign-in: nothing of it is read again.
        return redirect(HOME)
    # Whatever fails below goes to the shared error pages, leaving no half-built session.
    with sign_in.completing(entry):
        # state first (our sign-in?), then RFC 9207 iss (our issuer?); only
        # then may the issuer's own error be shown; then the sign-in's age
        # and the code.
        code = check_authorization_response(
            client, params, entry["pending"] if entry else sign_in.newest_pending()
        )

        # Server to server: the code, our redirect_uri and the PKCE
        # code_verifier (RFC 7636 §4.5), authenticated with HTTP Basic
        # (client_secret_basic, RFC 6749 §2.3.1): a confidential client; with
        # DPoP, a proof of the session's key binds the tokens to it (RFC 9449 §5).
        pending = entry["pending"]
        tokens = exchange_code(client, code, pending)

        # Who signed in (OIDC Core 3.1.3.7): signature with a pinned
        # algorithm, iss, aud, azp, exp/iat, our nonce, at_hash.
        tokens.id_claims = validate_id_token(
            client, tokens.id_token, nonce=pending.get("nonce"), access_token=tokens.access_token
        )

    # Signed in: the tokens stay in Redis, under a new session id (session
    # fixation); the browser gets only the HttpOnly cookie naming it.
    sign_in.keep(tokens)
    return redirect(entry["next"])


# -- 3. what the page may read ---------------------------------------------------


@bp.get("/user")
def user():
    """``200`` with the signed-in user's ID-token claims (``sub``, ``name``, ``email`` …), never a token."""
    tokens = bff_sign_in().tokens()
    if tokens is None:
        return not_signed_in()
    return jsonify(tokens.id_claims)


@bp.get("/inspector")
def inspector():
    """The flow inspector's server steps of this session (tokens shortened by common.inspector.FlowLog)."""
    return jsonify(steps=bff_sign_in().log.to_list())


# -- 4. the API proxy ------------------------------------------------------------


@bp.route("/api/<path:path>", methods=bff_proxy.PROXIED_METHODS)
def api(path: str):
    """Forward the page's call to ``{API_URL}/api/<path>`` with the user's access token.

    An access token about to expire is renewed first (RFC 6749 §6) under
    the session's lock (:meth:`common.signin.BrowserSignIn.refresh`), so
    parallel calls spend the refresh token once.  A ``401`` from the API is
    retried once with renewed tokens; a ``401`` after a renewal, or a
    renewal the issuer refuses, ends the BFF sign-in: the session is
    deleted and the page gets the ``401`` (with the API's ``WWW-Authenticate``).
    """
    target = g.bff_api_target  # checked by refuse_cross_site, before routing
    sign_in = bff_sign_in()
    tokens = sign_in.tokens()
    if tokens is None:
        return not_signed_in()
    refreshed = False
    if tokens.expired():
        tokens, refreshed = sign_in.refresh(tokens), True
        if tokens is None:
            return signed_out_by_issuer()

    answer = _forward(sign_in, target, tokens)
    if answer.status == 401 and not refreshed and tokens.refresh_token:
        tokens, refreshed = sign_in.refresh(tokens), True
        if tokens is None:
            return signed_out_by_issuer()
        answer = _forward(sign_in, target, tokens)
    if answer.status == 401 and refreshed:
        session.clear()  # even renewed tokens are refused: this sign-in is over
    # The proxied calls themselves are not written to the flow log: the
    # session is written only when its tokens change (a renewal, published
    # under the lock), so parallel calls never write back a stale copy.
    response = current_app.response_class(answer.body, status=answer.status)
    response.headers.update(answer.headers)  # Content-Type replaces Flask's default
    response.headers["Cache-Control"] = "no-store"
    return response


def _forward(sign_in: BrowserSignIn, target: str, tokens: TokenSet) -> bff_proxy.ProxiedAnswer:
    """One call to the API with ``tokens``' access token (the method, headers and body the page sent)."""
    return bff_proxy.forward(
        sign_in.client.http,
        request.method,
        target,
        bff_proxy.forwarded_headers(request),
        request.get_data(cache=True),
        tokens.access_token,
        sign_in.client.recorder,
        key_of(tokens),
    )


def signed_out_by_issuer():
    """The issuer refused the renewal (expired, revoked or reused refresh token): sign out of the BFF.

    The BCP's §6.1.2.2: once the refresh token is no longer valid, the session is invalidated.
    """
    session.clear()
    return json_error(
        "login_required",
        "Your sign-in has ended at the issuer and could not be renewed.",
        401,
        hint="Sign in again.",
    )


# -- 5. sign-out -----------------------------------------------------------------


@bp.post("/logout")
def logout():
    """Sign out here, then answer where the page sends the browser to sign out at the issuer.

    The refresh token is revoked (RFC 7009), the session deleted (cookie
    and Redis key), and ``{"logout_url": …}`` is the issuer's
    ``end_session_endpoint`` with ``id_token_hint``, the registered
    ``post_logout_redirect_uri`` ``{SPA_BASE_URL}/`` and a ``state``
    (RP-Initiated Logout 1.0 §2); ``null`` when the issuer offers none.
    """
    url = bff_sign_in().sign_out()
    # sign_out keeps the logout state in a fresh session for a callback;
    # the SPA's page is the post-logout target, so nothing is kept here.
    session.clear()
    return jsonify(logout_url=url)
