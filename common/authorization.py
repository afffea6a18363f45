"""The front channel of a browser sign-in: the authorization request and its response.

1. :func:`build_authorization_request` (RFC 6749 §4.1.1, OpenID Connect Core
   3.1.2.1, RFC 7636 §4.3): the URL the browser is sent to, with fresh
   ``state``, ``nonce`` and PKCE, and what the app must remember until the
   answer comes back (the *pending* sign-in).  When the issuer offers
   pushed authorization requests (RFC 9126, ``PAR``), the parameters are
   POSTed to it first (:mod:`common.par`) and the URL carries only
   ``client_id`` and ``request_uri``.
2. :func:`check_authorization_response` (RFC 6749 §4.1.2, RFC 9207): the
   redirect back, checked against that pending sign-in; it yields the
   authorization code that :func:`common.tokens.exchange_code` redeems.
"""

from __future__ import annotations

import hmac
import time
from typing import Any, Iterable, Mapping, Union
from urllib.parse import parse_qsl, urlsplit

from authlib.oauth2.rfc6749.parameters import prepare_grant_uri

from .client import Client
from .errors import FlowError
from .par import push_authorization_request, pushed_authorization_url, request_uri_refused, should_push
from .pkce import code_challenge_s256, generate_code_verifier, generate_nonce, generate_state
from .untrusted import error_code, plain_text

#: What the apps that sign a user in ask for: an ID token (``openid``) with
#: the user's name and e-mail address (``profile``, ``email``; OIDC Core
#: §5.4), and a refresh token (``offline_access``; OIDC Core §11) so that the
#: app can keep calling the API after the short-lived access token expires,
#: without sending the user back to the issuer.
USER_SCOPE = "openid profile email offline_access"

#: Parameters the caller's ``extra`` may not set: the request's own.
_RESERVED = (
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "client_id",
    "redirect_uri",
    "response_type",
    "scope",
)

#: An authorization response as it arrives: a MultiDict (Flask's ``request.args``),
#: a list of ``(name, value)`` pairs, or a mapping of single values.
AuthorizationResponse = Union[Mapping[str, Any], Iterable[tuple[str, str]]]


def build_authorization_request(
    client: Client,
    scope: str,
    *,
    response_type: str = "code",
    extra: Mapping[str, str] | None = None,
    redirect_uri: str | None = None,
) -> tuple[str, dict]:
    """The URL the browser is sent to, with fresh ``state``, ``nonce`` and PKCE (RFC 6749 §4.1.1).

    * ``state`` (RFC 6749 §10.12) ties the answer to this browser session,
      so nobody can slip us a code from their own sign-in (login CSRF);
    * ``nonce`` (OIDC Core 3.1.2.1) ties the ID token to this request;
    * PKCE (RFC 7636 §4.3): only the S256 hash of the ``code_verifier``
      travels through the browser; the verifier stays with us until the
      token request, so an intercepted code is useless (RFC 9700 §2.1.1).

    :param scope: e.g. :data:`USER_SCOPE`.
    :param response_type: ``code`` (the default and the recommendation of RFC 9700).
    :param extra: more parameters (``prompt``, ``login_hint``, ``response_mode`` ...);
        they cannot override the request's own.
    :param redirect_uri: overrides the client's (the native app's loopback port).
    :return: ``(authorization_url, pending)``; the caller stores ``pending``
        (server-side) and hands it to :func:`check_authorization_response` once.
        After a push (RFC 9126, :func:`_pushed`) the URL is ``?client_id=…&request_uri=…``.
    :raises FlowError: ``par_required``, ``par_unsupported``, ``par_refused``, ``par_error``.
    """
    redirect_uri = redirect_uri or client.redirect_uri
    if not redirect_uri:
        raise ValueError("a browser flow needs a redirect_uri")
    authorization_endpoint = client.endpoint("authorization_endpoint")
    # PAR=auto|on|off against the metadata (RFC 9126 §5): a misconfiguration fails here, at once.
    push = should_push(client)
    state, nonce, verifier = generate_state(), generate_nonce(), generate_code_verifier()
    params = _request_parameters(response_type, extra, nonce=nonce, code_verifier=verifier)
    url = prepare_grant_uri(
        authorization_endpoint,
        client.client_id,
        response_type,
        redirect_uri=redirect_uri,
        scope=scope,
        state=state,
        **params,
    )
    pending = _pending_sign_in(
        state=state, nonce=nonce, code_verifier=verifier, redirect_uri=redirect_uri, scope=scope
    )
    if push:
        return _pushed(client, authorization_endpoint, url, pending), pending
    _record_request(
        client,
        authorization_endpoint,
        response_type=response_type,
        redirect_uri=redirect_uri,
        scope=scope,
        state=state,
        params=params,
    )
    return url, pending


def _pushed(client: Client, authorization_endpoint: str, url: str, pending: dict) -> str:
    """Push the request built as ``url`` (RFC 9126 §2.1); return the browser's short URL (§4).

    The very same parameters (PKCE challenge, ``state``, ``nonce``,
    ``redirect_uri``, ``scope``) go server to server, authenticated; the
    browser carries only ``client_id`` and the one-time ``request_uri``.
    ``pending["par"]`` remembers the push and when its ``request_uri``
    lapses (§2.2), for the callback's "expired, try again".
    """
    request = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
    pushed = push_authorization_request(client, request)
    pending["par"] = pushed
    short = pushed_authorization_url(authorization_endpoint, client.client_id, pushed["request_uri"])
    client.recorder.step(
        "authorization_request.pushed",
        request={"method": "GET", "url": short},
        expires_in=pushed["expires_in"],
    )
    return short


def _request_parameters(
    response_type: str, extra: Mapping[str, str] | None, *, nonce: str, code_verifier: str
) -> dict[str, str]:
    """The parameters beyond RFC 6749 §4.1.1's own: the caller's extras, ``nonce`` and the PKCE challenge.

    The extras cannot override the request's own parameters (:data:`_RESERVED`).
    The ``code_challenge`` (RFC 7636 §4.2-4.3, always S256) goes with every
    response type that returns a code; the verifier itself never leaves us here.
    """
    params = {k: v for k, v in (extra or {}).items() if k not in _RESERVED}
    params["nonce"] = nonce
    if "code" in response_type.split():
        params["code_challenge"] = code_challenge_s256(code_verifier)
        params["code_challenge_method"] = "S256"
    return params


def _pending_sign_in(*, state: str, nonce: str, code_verifier: str, redirect_uri: str, scope: str) -> dict:
    """What the app remembers (server-side) until the answer comes back: all that checking it needs.

    ``state`` and ``nonce`` to compare (RFC 6749 §10.12, OIDC Core 3.1.3.7
    step 11), the ``code_verifier`` for the token request (RFC 7636 §4.5), the
    ``redirect_uri`` that request repeats (RFC 6749 §4.1.3), and the time the
    sign-in started, for ``LOGIN_TIMEOUT``.
    """
    return {
        "state": state,
        "nonce": nonce,
        "code_verifier": code_verifier,
        "redirect_uri": redirect_uri,
        "created_at": int(time.time()),
        "scope": scope,
    }


def _record_request(
    client: Client,
    authorization_endpoint: str,
    *,
    response_type: str,
    redirect_uri: str,
    scope: str,
    state: str,
    params: Mapping[str, str],
) -> None:
    """Show the authorization request in the flow inspector: every parameter, the request's own first."""
    shown = {
        "response_type": response_type,
        "client_id": client.client_id,
        "redirect_uri": redirect_uri,
        "scope": scope,
        "state": state,
        "nonce": params["nonce"],
        **{k: v for k, v in params.items() if k != "nonce"},
    }
    client.recorder.step(
        "authorization_request", request={"method": "GET", "url": authorization_endpoint, "params": shown}
    )


def single_valued(response: AuthorizationResponse) -> dict[str, str]:
    """The response's parameters, each given exactly once (RFC 6749 §3.1).

    "Request and response parameters MUST NOT be included more than once":
    two ``state`` or ``code`` values leave it open which one the issuer sent,
    so such an answer is refused rather than read as its first value.

    :raises FlowError: ``invalid_request``.
    """
    if hasattr(response, "getlist"):
        pairs = list(response.items(multi=True))  # a Werkzeug MultiDict
    elif isinstance(response, Mapping):
        pairs = list(response.items())
    else:
        pairs = list(response)
    params = dict(pairs)
    if len(params) != len(pairs):
        raise FlowError(
            "invalid_request",
            "A parameter appears more than once in the issuer's answer.",
            "Start the sign-in again from this app; this answer was not used.",
            400,
        )
    return params


def check_authorization_response(
    client: Client, response: AuthorizationResponse, pending: dict | None
) -> str:
    """Check that the authorization response answers the request we made; return its code.

    In this order, because each check decides whether the next may trust
    anything in the response:

    0. every parameter once (RFC 6749 §3.1, :func:`single_valued`);
    1. ``state`` (RFC 6749 §10.12) must be the one of a sign-in this browser
       started.  It comes before even the ``error``: an answer that does not
       belong to us is refused without repeating any of its text.  Otherwise
       anyone could link a user to our callback with ``?error=...&
       error_description=Call this number`` and have that sentence shown on
       our origin: a forged response is cross-site request forgery
       (RFC 6749 §10.12, RFC 9700 §4.7), here used for content spoofing;
    2. ``iss`` (RFC 9207 §2.4) must be our issuer, in error responses too;
    3. only then is the issuer's ``error`` / ``error_description``
       (RFC 6749 §4.1.2.1) passed on, as bounded plain text;
    4. the sign-in must not be older than ``LOGIN_TIMEOUT``, and the answer
       must carry a ``code``.

    The caller must already have removed ``pending`` from its store, so that
    a replayed answer finds nothing (``state`` and code are single use).

    :param response: the callback's query parameters (see :data:`AuthorizationResponse`).
    :param pending: what :func:`build_authorization_request` returned, or ``None``.
    :raises FlowError: ``invalid_request``, ``state_missing``, ``state_mismatch``,
        ``iss_mismatch``, the issuer's own error code (``access_denied`` ...) or
        ``login_expired``, all with status 400, before any token request.
    """
    params = single_valued(response)
    checks: list[dict] = []
    client.recorder.step(
        "callback", request={"method": "GET", "url": "(our redirect URI)", "params": params}, checks=checks
    )
    with client.recorder.failures("callback"):
        _check_state(params, pending)
        _check_issuer(client, params)
        _check_for_error(params, pending)
        age = _check_age(client, pending)
        code = params.get("code")
        if not code:
            raise FlowError(
                "invalid_request",
                "The issuer's answer carries no authorization code.",
                "Start the sign-in again.",
                400,
            )
    checks.append({"check": "state", "ok": True, "detail": "matches the sign-in this browser started"})
    checks.append(
        {"check": "age", "ok": True, "detail": f"{int(age)} s old (limit {client.settings.login_timeout} s)"}
    )
    if params.get("iss") is not None:
        checks.append({"check": "iss (RFC 9207)", "ok": True, "detail": "exactly the configured issuer"})
    return code


def _check_state(params: Mapping[str, str], pending: dict | None) -> None:
    """1. The answer belongs to a sign-in this browser started, and to no other (RFC 6749 §10.12)."""
    sent_state = params.get("state")
    if not sent_state:
        raise FlowError(
            "state_missing",
            "The issuer's answer carries no 'state' parameter.",
            "Start the sign-in again from this app.",
            400,
        )
    if not isinstance(pending, Mapping) or not pending.get("state") or not pending.get("code_verifier"):
        raise FlowError(
            "state_missing",
            "No sign-in was in progress in this browser session (or it was already completed).",
            "Start the sign-in again from this app; do not reuse an old callback link.",
            400,
        )
    if not hmac.compare_digest(str(sent_state).encode(), str(pending["state"]).encode()):
        raise FlowError(
            "state_mismatch",
            "The answer's 'state' does not match the sign-in this browser started.",
            "Start the sign-in again; if you opened two sign-ins at once, finish only the latest.",
            400,
        )


def _check_issuer(client: Client, params: Mapping[str, str]) -> None:
    """2. RFC 9207 §2.4: the answer names our issuer (against mix-up attacks).

    When the issuer says it sends ``iss`` on the callback, it must be there;
    whenever it is there, it must be exactly our issuer, so that a code from
    another issuer cannot be injected into our callback.
    """
    metadata = client.metadata()
    sent_iss = params.get("iss")
    if metadata.get("authorization_response_iss_parameter_supported") is True and sent_iss is None:
        raise FlowError(
            "iss_mismatch",
            "The issuer promises an 'iss' parameter on the callback, but it is missing.",
            "Start the sign-in again; if it keeps happening the callback is being tampered with.",
            400,
        )
    ours = client.issuer.identifier
    if sent_iss is not None and sent_iss != ours:
        raise FlowError(
            "iss_mismatch",
            f"The callback came from issuer {plain_text(sent_iss, 200)!r}, not {ours!r}.",
            "Start the sign-in again; the answer came from a different issuer than the one we asked.",
            400,
        )


def _check_for_error(params: Mapping[str, str], pending: Mapping) -> None:
    """3. RFC 6749 §4.1.2.1: the issuer's refusal (the user said no, the login failed), as plain text.

    A sign-in that pushed its request (RFC 9126) and is told its
    ``request_uri`` was refused gets the clear "it expired, try again" error.
    """
    if params.get("error"):
        refused = request_uri_refused(str(params["error"]), pending)
        if refused is not None:
            raise refused
        description = plain_text(params.get("error_description") or "The issuer did not grant the request.")
        raise FlowError(
            error_code(params["error"], "authorization_error"),
            f"The issuer answered: {description}",
            "Try signing in again. If you cancelled on purpose, nothing else is needed.",
            400,
        )


def _check_age(client: Client, pending: dict) -> float:
    """4. A bounded lifetime for the pending sign-in (``LOGIN_TIMEOUT``); return its age in seconds."""
    try:
        age = time.time() - float(pending.get("created_at", 0))
    except (TypeError, ValueError):
        age = float("inf")
    limit = client.settings.login_timeout
    if not age <= limit:
        raise FlowError(
            "login_expired", f"The sign-in took longer than {limit} seconds.", "Start the sign-in again.", 400
        )
    return age
