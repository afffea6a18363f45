"""Pushed authorization requests (RFC 9126): the authorization request goes server to server first.

Without PAR every parameter of the authorization request (``redirect_uri``,
``scope``, ``state``, ``nonce``, the PKCE challenge) travels in the address
bar, where the user, a browser extension or a proxy log can read or change
it.  With PAR the client POSTs them to the issuer's
``pushed_authorization_request_endpoint``, authenticated like a token
request (RFC 9126 §2.1), and gets back a one-time ``request_uri`` that
lives ``expires_in`` seconds (§2.2).  The browser then carries only
``client_id`` and ``request_uri`` (§4), and the issuer has checked the
client and its redirect URI before the user sees a page.

:func:`should_push` decides (``PAR=auto|on|off`` against the issuer's
metadata, §5); :func:`push_authorization_request` makes the push;
:func:`pushed_authorization_url` is the short URL.
:func:`common.authorization.build_authorization_request` calls them.
"""

from __future__ import annotations

import time
from typing import Mapping

from authlib.common.urls import add_params_to_uri

from .client import Client
from .errors import FlowError
from .untrusted import error_code, plain_text

#: RFC 9126 §5: the metadata key that names the endpoint.
PAR_ENDPOINT = "pushed_authorization_request_endpoint"

#: RFC 9126 §5: the metadata key by which an issuer says it accepts only pushed requests.
PAR_REQUIRED = "require_pushed_authorization_requests"

#: The longest ``expires_in`` we believe (RFC 9126 §2.2 expects a short one; 60 s is typical).
MAX_EXPIRES_IN = 3600

#: Error codes of an authorization response that mean "the request_uri was not accepted"
#: (RFC 9126 §4 and §7.3: ``invalid_request_uri``; some issuers answer ``invalid_request``).
REQUEST_URI_REFUSED = ("invalid_request_uri", "invalid_request")


def should_push(client: Client) -> bool:
    """Whether this sign-in pushes its authorization request (``PAR`` against the metadata, RFC 9126 §5).

    * ``auto``: push when the issuer advertises ``pushed_authorization_request_endpoint``
      (the only sign that counts: some issuers that support PAR still say
      ``request_uri_parameter_supported: false``);
    * ``on``: always; an issuer without the endpoint is a clear error;
    * ``off``: never; an issuer that says ``require_pushed_authorization_requests``
      would refuse every request, so that is a clear error before the user is sent anywhere.

    :raises FlowError: ``par_unsupported`` or ``par_required`` (502: the
        configuration and the issuer disagree).
    """
    mode = client.settings.par
    metadata = client.metadata()
    advertised = bool(metadata.get(PAR_ENDPOINT))
    if mode == "off":
        if metadata.get(PAR_REQUIRED) is True:
            raise FlowError(
                "par_required",
                "The issuer accepts only pushed authorization requests (its metadata says "
                "require_pushed_authorization_requests), but this app is configured with PAR=off.",
                "Set PAR=auto (or on) and restart the app.",
                502,
            )
        return False
    if mode == "on" and not advertised:
        raise FlowError(
            "par_unsupported",
            "PAR=on, but the issuer advertises no pushed_authorization_request_endpoint (RFC 9126 §5).",
            "Set PAR=auto or PAR=off, or use an authorization server that supports PAR.",
            502,
        )
    return advertised


def push_authorization_request(client: Client, params: Mapping[str, str]) -> dict:
    """POST every authorization-request parameter to the PAR endpoint; return the push's record.

    RFC 9126 §2.1: the request is the authorization request's parameters
    as a form, with the client's own authentication, the same as at the
    token endpoint (public clients: ``client_id`` only).  §2.2: the answer
    is ``201`` with ``request_uri`` and ``expires_in``.  §2.3: a refusal is
    a JSON error, shown here as a clear page (the user has not left the app).

    :param params: the whole authorization request, ``client_id`` included.
    :return: ``{"request_uri", "expires_in", "expires_at"}``: kept with the pending sign-in.
    :raises FlowError: ``par_refused`` (the issuer said no) or ``par_error`` (a malformed answer).
    """
    form = dict(params)
    if client.auth_method != "client_secret_basic":
        # Authlib's client_secret_post and none encodings add client_id to the
        # body themselves, and private_key_jwt sets it: sending it twice would
        # be a repeated parameter, which issuers refuse (RFC 6749 §3.1).
        form.pop("client_id", None)
    status, body = client.post_form(
        PAR_ENDPOINT,
        form,
        what="pushed authorization request endpoint",
        step="pushed_authorization_request",
        error="par_error",
    )
    with client.recorder.failures("pushed_authorization_request"):
        if status != 201 and not (status == 200 and "request_uri" in body):
            raise _refusal(status, body)
        return _pushed(body)


def _refusal(status: int, body: Mapping) -> FlowError:
    """The issuer's refusal of a push (RFC 9126 §2.3), as bounded plain text."""
    code = error_code(body.get("error"), "par_refused")
    description = plain_text(body.get("error_description") or "no description")
    return FlowError(
        "par_refused",
        f"The issuer refused the pushed authorization request (HTTP {status}, {code}): {description}",
        "Check this app's registration at the issuer: client id and secret, the sign-in redirect URI "
        "(exactly), the grant type and the scopes.",
        502,
    )


def _pushed(body: Mapping) -> dict:
    """The answer's ``request_uri`` and ``expires_in`` (RFC 9126 §2.2), checked before they are used."""
    request_uri, expires_in = body.get("request_uri"), body.get("expires_in")
    if not isinstance(request_uri, str) or not 0 < len(request_uri) <= 512:
        raise FlowError(
            "par_error",
            "The issuer's answer to the pushed authorization request carries no usable request_uri.",
            "The issuer does not follow RFC 9126 §2.2; set PAR=off to sign in without it.",
            502,
        )
    if (
        isinstance(expires_in, bool)
        or not isinstance(expires_in, int)
        or not 0 < expires_in <= MAX_EXPIRES_IN
    ):
        raise FlowError(
            "par_error",
            f"The issuer's answer to the pushed authorization request has no usable expires_in "
            f"(RFC 9126 §2.2: a positive number of seconds, at most {MAX_EXPIRES_IN}).",
            "The issuer does not follow RFC 9126 §2.2; set PAR=off to sign in without it.",
            502,
        )
    return {"request_uri": request_uri, "expires_in": expires_in, "expires_at": int(time.time()) + expires_in}


def pushed_authorization_url(authorization_endpoint: str, client_id: str, request_uri: str) -> str:
    """The browser's URL after a push: ``client_id`` and ``request_uri``, nothing else (RFC 9126 §4)."""
    return add_params_to_uri(authorization_endpoint, [("client_id", client_id), ("request_uri", request_uri)])


def request_uri_refused(error: str, pending: Mapping) -> FlowError | None:
    """The clear error for an answer saying our pushed request was not accepted, or ``None``.

    The issuer redirects back with ``invalid_request_uri`` (RFC 9126 §4,
    §7.3) when the ``request_uri`` had expired (the user took longer than
    ``expires_in`` to get there) or was used before; a new sign-in pushes a
    new one.  Only for a sign-in that pushed; other errors stay the issuer's.
    """
    pushed = pending.get("par") if isinstance(pending, Mapping) else None
    if not isinstance(pushed, Mapping) or error not in REQUEST_URI_REFUSED:
        return None
    expires_at = pushed.get("expires_at")
    lapsed = isinstance(expires_at, (int, float)) and time.time() > expires_at
    if error != "invalid_request_uri" and not lapsed:
        return None
    why = (
        f"it is valid for {pushed.get('expires_in')} seconds only, and that time had passed"
        if lapsed
        else "it had expired or had been used already"
    )
    return FlowError(
        "request_uri_expired",
        f"The issuer no longer accepted this sign-in's pushed authorization request: {why} (RFC 9126 §4).",
        "Try again: a new sign-in pushes a new request. Finish signing in within a minute of starting.",
        400,
    )
