"""Pushed authorization requests (RFC 9126): ``{issuer}/v1/par``, and ``request_uri`` at ``/v1/authorize``.

1. **The push** (``POST /v1/par``, RFC 9126 §2): the client authenticates
   as at the token endpoint, and its authorization request is validated
   now, by the very code ``/v1/authorize`` uses (Authlib's grant, the
   client, the exact redirect URI, the response type, the scopes, PKCE
   ``S256`` where required, :func:`dev_issuer.oauth.unsupported_parameter_error`).
   The request is stored in Redis under a random
   ``urn:ietf:params:oauth:request_uri:…`` for ``DEV_ISSUER_PAR_LIFETIME``
   seconds (60), bound to the client; the answer is ``201 {request_uri,
   expires_in}`` (§2.2), a refusal a JSON error (§2.3).
2. **The authorization request** (``/v1/authorize?client_id&request_uri``,
   §4): :func:`apply_pushed_request` resolves the ``request_uri`` and makes
   the pushed parameters the request's own, refusing, on a page here (the
   redirect URI of a request we cannot read is unverified, RFC 6749
   §4.1.2.1), one that is unknown, expired, used before or another
   client's, and query parameters that contradict the pushed ones.

**Single use and the sign-in round trip.**  The authorization endpoint
sends a signed-out user to the sign-in form and is called again, with the
same ``request_uri``, once the password is right.  So the ``request_uri``
is *claimed* in Redis the first time it arrives (one atomic ``SET … GET``:
of two browsers only one wins) and the resolved request is carried in the
issuer's own session of that browser, under the same ``request_uri``, for
the sign-in (at most :data:`SIGN_IN_WINDOW` seconds).  The sign-in form's
``next`` carries only ``client_id`` and ``request_uri``: the parameters stay
off the address bar there too.  The session copy is dropped as soon as the
endpoint answers with anything but the sign-in form (the code, or an
error), so the same ``request_uri`` cannot yield a second code, in that
browser or any other.  (Consuming it only at code issuance would leave it
usable by a second browser while the first one signs in.)

``DEV_ISSUER_REQUIRE_PAR`` (client ids, or ``all``) makes the push
mandatory (§5): an unpushed request from such a client is refused with
``invalid_request``, redirected once client and redirect URI are verified.
"""

from __future__ import annotations

import json
import secrets
import time
from urllib.parse import parse_qs, urlsplit

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749.errors import InvalidRequestError
from flask import Blueprint, after_this_request, g, jsonify, request, session, url_for
from werkzeug.datastructures import MultiDict

from common.errors import error_response

from . import oauth
from .client_auth import refuse_unreadable_client_credentials
from .clients import Client
from .errors import authorization_error, oauth_error, post_only, register_protocol_error_handlers
from .freshness import CHALLENGE_PARAMETER
from .responses import authorization_response
from .state import authorization_server, state
from .storage import storage_digest

bp = Blueprint("par", __name__)
bp.before_request(refuse_unreadable_client_credentials)
register_protocol_error_handlers(bp)

#: RFC 9126 §2.2: the URN namespace of a pushed request's reference.
REQUEST_URI_PREFIX = "urn:ietf:params:oauth:request_uri:"

#: The client authentication methods the push accepts: the token endpoint's (RFC 9126 §2.1).
PAR_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]

#: Seconds a claimed request waits in the browser's issuer session for the user to sign in.
SIGN_IN_WINDOW = 600

#: Session key of the claimed requests of this browser: ``{digest: {client_id, params, until}}``.
SESSION_KEY = "pushed_requests"

#: Claimed requests one browser session holds at once (several tabs).
MAX_HELD = 3

#: Seconds a record outlives its request_uri, so "expired" and "used" can be told from "unknown".
GRACE = 300

#: What a claimed record becomes in Redis.
USED = b"used"

#: The short authorization request's parameters (§4), and the issuer's own re-authentication challenge.
SHORT_REQUEST = ("client_id", "request_uri", CHALLENGE_PARAMETER)

#: At push time the user is not known yet; this stands in for them so that
#: ``prompt=none`` is judged where it belongs, at the authorization endpoint.
USER_NOT_YET_KNOWN = object()


class RequestUriRefused(Exception):
    """A ``request_uri`` that cannot be used; the message says why, for the page."""


class AnsweredInThisBrowser(RequestUriRefused):
    """A ``request_uri`` this browser already got its answer for (Back, reload): sent back to the app.

    :param held: the session's record of it (its pushed ``redirect_uri``, ``state`` and ``mode``).
    """

    def __init__(self, held: dict):
        super().__init__("This request_uri was used already; this browser's sign-in with it is complete.")
        self.held = held


def metadata() -> dict:
    """RFC 9126 §5: the endpoint, and whether every client must use it (``DEV_ISSUER_REQUIRE_PAR=all``)."""
    st = state()
    document = {"pushed_authorization_request_endpoint": st.endpoint("par")}
    if _listed_all(st.settings.dev_issuer_require_par):
        document["require_pushed_authorization_requests"] = True
    return document


def _listed_all(setting: str) -> bool:
    return "all" in {item.strip() for item in (setting or "").split(",")}


def _key(request_uri: str) -> str:
    """The Redis key of a pushed request: one key per request_uri (the reference is a secret: hashed)."""
    return f"{state().store.PREFIX}par:{storage_digest(request_uri)}"


# -- 1. the push ------------------------------------------------------------------------


@bp.route("/v1/par", methods=["GET", "POST"])
def push():
    """The pushed authorization request endpoint (RFC 9126 §2): authenticate, validate, store, answer 201."""
    if request.method != "POST":
        return post_only("pushed authorization request")
    server = authorization_server()
    try:
        # §2.1: "the same rules for client authentication as ... the token endpoint".
        client = server.authenticate_client(server.create_oauth2_request(request), PAR_AUTH_METHODS, "par")
    except OAuth2Error as error:
        headers = {"WWW-Authenticate": 'Basic realm="dev_issuer"'} if error.status_code == 401 else None
        return oauth_error("invalid_client", error.get_error_description(), error.status_code, headers)
    refused = _malformed_push(client)
    if refused:
        return oauth_error("invalid_request", refused)
    try:
        # §2.1: validated now as the authorization endpoint would (Authlib's grant, our extensions).
        grant = server.get_consent_grant(end_user=USER_NOT_YET_KNOWN)
    except OAuth2Error as error:
        return oauth_error(error.error, error.get_error_description() or error.error)
    except ValueError:
        return oauth_error("invalid_request", "The authorization request is malformed.")
    unsupported = oauth.unsupported_parameter_error(grant)
    if unsupported is not None:
        return oauth_error(unsupported.error, unsupported.get_error_description())
    return _stored(client, list(request.form.items(multi=True)))


def _malformed_push(client: Client) -> str | None:
    """What makes a push malformed before its parameters are even read, or ``None``."""
    if request.args:
        return "Send the pushed authorization request as a form body, not in the URL (RFC 9126 §2.1)."
    if request.form.getlist("client_id") != [client.client_id]:
        return "The pushed request must name the authenticated client as client_id, once (RFC 9126 §2.1)."
    if "request_uri" in request.form:
        return "A pushed authorization request must not itself carry a request_uri (RFC 9126 §2.1)."
    return None


def _stored(client: Client, items: list[tuple[str, str]]):
    """Keep the validated request under a fresh request_uri; answer ``201`` (RFC 9126 §2.2)."""
    lifetime = state().settings.dev_issuer_par_lifetime
    request_uri = REQUEST_URI_PREFIX + secrets.token_urlsafe(32)
    # Client authentication is not part of the authorization request, and the
    # re-authentication challenge is the issuer's own (freshness.py), never a client's.
    dropped = ("client_secret", "client_assertion", "client_assertion_type", CHALLENGE_PARAMETER)
    params = [[name, value] for name, value in items if name not in dropped]
    record = {"client_id": client.client_id, "params": params, "exp": time.time() + lifetime}
    state().store.redis.set(_key(request_uri), json.dumps(record), ex=lifetime + GRACE)
    response = jsonify(request_uri=request_uri, expires_in=lifetime)
    response.status_code = 201
    response.headers["Cache-Control"] = "no-store"
    return response


# -- 2. the authorization request that names it ---------------------------------------------


def apply_pushed_request():
    """At ``/v1/authorize``: make a pushed request's parameters this request's own (RFC 9126 §4).

    :return: ``None`` (no ``request_uri``, or one resolved into ``request.values``),
        or the error page that refuses it.
    """
    if not any(value.startswith(REQUEST_URI_PREFIX) for value in request.values.getlist("request_uri")):
        # No pushed request: a request object by reference (OpenID Connect
        # Core 6.2) is refused as request_uri_not_supported by the endpoint.
        return None
    client_id = request.values.get("client_id")
    client = state().clients.get(client_id) if isinstance(client_id, str) else None
    try:
        if client is None or request.values.getlist("client_id") != [client_id]:
            raise RequestUriRefused("A request with a request_uri must name its registered client_id, once.")
        if len(request.values.getlist("request_uri")) != 1:
            raise RequestUriRefused("The request names more than one request_uri.")
        request_uri = request.values["request_uri"]
        params = _resolve(request_uri, client)
        _refuse_conflicts(params)
    except AnsweredInThisBrowser as answered:
        return _answered_again(str(answered), answered.held)
    except RequestUriRefused as refused:
        return _refusal_page(str(refused), client)
    challenge = request.values.getlist(CHALLENGE_PARAMETER)
    g.pushed_request = {"client_id": client.client_id, "request_uri": request_uri, "params": params}
    # From here on the pushed parameters *are* the request (§4): Authlib's
    # grant and the views read them from request.values.
    request.values = MultiDict([*map(tuple, params), *((CHALLENGE_PARAMETER, c) for c in challenge[:1])])
    after_this_request(_forget_unless_signing_in)
    return None


def _resolve(request_uri: str, client: Client) -> list[list[str]]:
    """The pushed parameters: from this browser's session during its sign-in, else claimed once in Redis."""
    digest = storage_digest(request_uri)
    held = (session.get(SESSION_KEY) or {}).get(digest)
    if isinstance(held, dict) and held.get("client_id") == client.client_id and held["until"] > time.time():
        if held.get("answered"):
            raise AnsweredInThisBrowser(held)
        return held["params"]
    key = _key(request_uri)
    raw = state().store.redis.get(key)
    if raw is None:
        raise RequestUriRefused("This request_uri is unknown: it was never issued here, or expired long ago.")
    if raw == USED:
        raise RequestUriRefused(
            "This request_uri was used already; a pushed request is good for one sign-in."
        )
    record = json.loads(raw)
    if record["client_id"] != client.client_id:
        raise RequestUriRefused("This request_uri was issued to another client.")
    if record["exp"] <= time.time():
        raise RequestUriRefused("This request_uri has expired: it lives only a short time after the push.")
    # One atomic step claims it: of two concurrent arrivals only one finds the record.
    if state().store.redis.set(key, USED, xx=True, get=True, keepttl=True) != raw:
        raise RequestUriRefused(
            "This request_uri was used already; a pushed request is good for one sign-in."
        )
    held_requests = dict(session.get(SESSION_KEY) or {})
    held_requests[digest] = {
        "client_id": client.client_id,
        "params": record["params"],
        "until": time.time() + SIGN_IN_WINDOW,
    }
    session[SESSION_KEY] = dict(list(held_requests.items())[-MAX_HELD:])
    return record["params"]


def _refuse_conflicts(params: list[list[str]]) -> None:
    """Query parameters beside client_id and request_uri must repeat pushed values exactly (RFC 9126 §4)."""
    pushed: dict[str, list[str]] = {}
    for name, value in params:
        pushed.setdefault(name, []).append(value)
    for name in request.values:
        if name not in SHORT_REQUEST and request.values.getlist(name) != pushed.get(name):
            raise RequestUriRefused(
                f"The parameter {name!r} was sent beside the request_uri with a value the pushed request "
                "does not have; only the pushed parameters count."
            )


def _forget_unless_signing_in(response):
    """After the endpoint answered: unless the user was sent to sign in, the held request is spent.

    Only what a repeat in this browser needs stays (Back after the sign-in
    lands here again): the pushed ``redirect_uri``, verified at push time,
    and ``state``, so that the repeat goes back to the app with an error
    (:func:`_answered_again`) instead of a second code.
    """
    pushed = g.get("pushed_request")
    if pushed and not g.get("pushed_request_signing_in"):
        params = dict(map(tuple, pushed["params"]))
        fragment = "code" not in (params.get("response_type") or "").split()
        held_requests = dict(session.get(SESSION_KEY) or {})
        held_requests[storage_digest(pushed["request_uri"])] = {
            "client_id": pushed["client_id"],
            "answered": True,
            "redirect_uri": params.get("redirect_uri"),
            "state": params.get("state"),
            "mode": params.get("response_mode") or ("fragment" if fragment else "query"),
            "until": time.time() + SIGN_IN_WINDOW,
        }
        session[SESSION_KEY] = dict(list(held_requests.items())[-MAX_HELD:])
    return response


def _answered_again(description: str, held: dict):
    """Back to the app with ``invalid_request_uri`` (RFC 9126 §4) and the pushed ``state``: no second code.

    The redirect URI was verified when the request was pushed, and this
    browser's own session holds it; the app then sees an answer to a
    sign-in it has completed ("already signed in").
    """
    params = [
        ("error", "invalid_request_uri"),
        ("error_description", description),
        ("state", held.get("state")),
    ]
    return authorization_server().handle_response(
        *authorization_response(held["redirect_uri"], params, held.get("mode") or "query")
    )


def pushed_parameter(next_url: str, name: str) -> str | None:
    """A parameter of the pushed request that the sign-in form's ``next`` names, held for this browser.

    The form's ``next`` carries only ``client_id`` and ``request_uri``; the
    form still pre-fills ``login_hint`` (OpenID Connect Core 3.1.2.1) from the pushed request.
    """
    request_uri = (parse_qs(urlsplit(next_url).query).get("request_uri") or [""])[0]
    held = (session.get(SESSION_KEY) or {}).get(storage_digest(request_uri)) if request_uri else None
    if not isinstance(held, dict) or held.get("answered"):
        return None
    return next((value for key, value in held.get("params", []) if key == name), None)


def sign_in_return_parameters(items: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The parameters the sign-in form sends the user back with: for a pushed request, the short ones only."""
    pushed = g.get("pushed_request")
    if not pushed:
        return items
    g.pushed_request_signing_in = True
    return [("client_id", pushed["client_id"]), ("request_uri", pushed["request_uri"])]


def _refusal_page(description: str, client: Client | None):
    """The issuer's page for an unusable request_uri, with a way back to the app where one is safe.

    Never a redirect: the redirect URI of a request we cannot read is not
    verified (RFC 6749 §4.1.2.1).  The link is the origin of the client's
    registered redirect URI (its home page), not a loopback port nobody
    listens on any more.
    """
    back = None
    if client is not None and client.redirect_uris:
        parts = urlsplit(client.redirect_uris[0])
        if parts.hostname not in ("127.0.0.1", "::1"):  # a native app's loopback listener (RFC 8252 §7.3)
            back = f"{parts.scheme}://{parts.netloc}/"
    hint = (
        "Go back to the application and sign in again: it will push a new request."
        if back
        else "Start the sign-in again from the application (e.g. run its login command again)."
    )
    return error_response(
        "invalid_request_uri", description, hint, 400, retry_url=back or url_for("admin.home")
    )


# -- DEV_ISSUER_REQUIRE_PAR (RFC 9126 §5) ---------------------------------------------------------


def refuse_unpushed(grant):
    """``invalid_request`` for a client that must push but did not, or ``None``.

    Called once the grant has verified the client and its redirect URI, so
    the refusal goes back to the client (RFC 6749 §4.1.2.1).
    """
    client = grant.request.client
    if g.get("pushed_request") or not getattr(client, "require_par", False):
        return None
    error = InvalidRequestError(
        "This application must push its authorization requests (pushed authorization requests, RFC 9126): "
        "the issuer's DEV_ISSUER_REQUIRE_PAR names it.",
        redirect_uri=grant.redirect_uri,
        redirect_fragment=getattr(grant, "ERROR_RESPONSE_FRAGMENT", False),
    )
    return authorization_error(error, grant)
