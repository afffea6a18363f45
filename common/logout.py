"""Ending a sign-in: token revocation (RFC 7009) and RP-initiated logout.

The logout URL is OpenID Connect RP-Initiated Logout 1.0 §2.

Both are best effort by design: the user must be able to sign out of the
app even while the issuer is down, so neither raises.

A client holding the DPoP key of the tokens (RFC 9449;
:func:`common.tokens.holding_key`) sends the revocation request with a
proof of that key, through :meth:`common.client.Client.post_form`.
"""

from __future__ import annotations

import logging

import requests
from authlib.common.urls import add_params_to_uri

from .client import Client
from .errors import FlowError

logger = logging.getLogger(__name__)


def revoke_token(client: Client, token: str, token_type_hint: str = "refresh_token") -> bool | str:
    """Revoke a token at the issuer (RFC 7009 §2), best effort.

    Failures are logged, recorded and returned, never raised.

    :param token: the refresh (or access) token.
    :param token_type_hint: ``refresh_token`` or ``access_token`` (RFC 7009 §2.1).
    :return: ``True`` when the issuer confirmed (RFC 7009 §2.2: HTTP 200) or has
        no revocation endpoint (the token then simply expires); otherwise one
        sentence saying why the revocation failed.
    """
    try:
        if not client.endpoint("revocation_endpoint", required=False):
            client.recorder.step("revocation.no_endpoint")
            return True
        status, data = client.post_form(
            "revocation_endpoint",
            {"token": token, "token_type_hint": token_type_hint},
            what="revocation endpoint",
            step="revocation",
            error="issuer_unreachable",
            body_required=False,
        )
    except (FlowError, requests.RequestException) as exc:
        logger.warning("token revocation failed: %s", exc)
        return getattr(exc, "description", None) or f"the revocation failed ({type(exc).__name__})"
    except Exception:  # noqa: BLE001 - best effort by contract: sign-out must go on, and it is logged
        logger.exception("token revocation failed unexpectedly")
        return "the revocation failed unexpectedly (see the log)"
    if status >= 400:
        logger.warning("token revocation refused: HTTP %s %s", status, data.get("error"))
        return f"the revocation endpoint answered HTTP {status}"
    return True


def end_session_url(
    client: Client, id_token_hint: str | None, post_logout_redirect_uri: str | None, state: str | None
) -> str | None:
    """The issuer's logout URL (OpenID Connect RP-Initiated Logout 1.0 §2).

    The browser is sent there so that the user's session *at the issuer*
    ends too; the issuer then redirects to ``post_logout_redirect_uri``
    (which must be registered) with ``state``.

    :return: the URL, or ``None`` when the issuer has no ``end_session_endpoint``
        (or cannot be reached: local sign-out still completes).
    """
    try:
        endpoint = client.issuer.endpoint("end_session_endpoint", required=False)
    except FlowError as exc:
        logger.warning("no end-session URL: %s", exc.description)
        return None
    if not endpoint:
        return None
    params = [("client_id", client.client_id)]
    if id_token_hint:
        params.append(("id_token_hint", id_token_hint))
    if post_logout_redirect_uri:
        params.append(("post_logout_redirect_uri", post_logout_redirect_uri))
    if state:
        params.append(("state", state))
    url = add_params_to_uri(endpoint, params)
    client.recorder.step("end_session", request={"method": "GET", "url": url, "params": dict(params)})
    return url
