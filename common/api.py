"""Calling the API: one request with the access token, as a Bearer token or DPoP-bound.

Every app that holds an access token (the web app for its user, the
native app for its user, the service for itself) calls the resource server
the same way, RFC 6750 §2.1: ``Authorization: Bearer <token>`` on the
request, and the token never in the URL (§2.3 would put it in logs and
browser history).  A DPoP-bound token (RFC 9449 §7.1) goes as
``Authorization: DPoP <token>`` with a proof of possession of its key
(:func:`common.dpop_client.send_authorized`).  What an app does with the answer, say a ``401``
(refresh and retry once, or ask the user to sign in again), is its own
policy and stays in the app.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests

from .dpop import DPoPKey
from .dpop_client import proof_display, send_authorized
from .errors import FlowError
from .failures import failure_reason
from .http import http_session
from .recorder import NULL_RECORDER, FlowRecorder

#: Longest non-JSON answer kept (and shown): an error page from a proxy can be long.
MAX_TEXT_BODY = 4000


@dataclass(frozen=True)
class ApiAnswer:
    """What the API answered.

    :param status: the HTTP status.
    :param body: the decoded JSON, or the text (at most :data:`MAX_TEXT_BODY` characters).
    :param www_authenticate: the ``WWW-Authenticate`` header; on a ``401`` or
        ``403`` it says why the token was refused (RFC 6750 §3), e.g.
        ``Bearer error="invalid_token"``.
    """

    status: int
    body: Any
    www_authenticate: str = ""

    @property
    def ok(self) -> bool:
        """True for a 2xx answer."""
        return 200 <= self.status < 300


def call_api(
    url: str,
    access_token: str,
    *,
    http: requests.Session | None = None,
    recorder: FlowRecorder = NULL_RECORDER,
    dpop_key: DPoPKey | None = None,
) -> ApiAnswer:
    """``GET url`` with ``Authorization: Bearer access_token`` (RFC 6750 §2.1), or DPoP with ``dpop_key``.

    With ``dpop_key`` (the key the token is bound to) the request carries
    ``Authorization: DPoP`` and a proof with ``ath`` (RFC 9449 §7.1); an API
    asking for a nonce (§9) gets one more request with it.  The step is
    recorded with the Authorization header redacted and the proof decoded
    (the inspector never shows a usable token).

    :param url: the API route, e.g. ``API_URL + "/api/messages"``.
    :param access_token: the access token, sent as it was issued.
    :param http: a session with a timeout (default: :func:`common.http.http_session`).
    :param recorder: the flow recorder (default: records nothing).
    :param dpop_key: the DPoP key of a bound token (``None``: a Bearer token).
    :return: the answer, whatever its status.
    :raises FlowError: ``api_unreachable`` when the API cannot be reached or does not answer in time.
    """
    try:
        # No redirects: the token goes only to the URL we chose, not wherever
        # an answer points (RFC 6750 §5.3: don't hand bearer tokens around).
        attempts = send_authorized(
            http or http_session(), "GET", url, access_token, dpop_key, headers={"Accept": "application/json"}
        )
    except requests.RequestException as exc:
        raise api_unreachable(exc, url, recorder, f"The API at {url}") from None
    for number, (headers, response) in enumerate(attempts, 1):
        request = {"method": "GET", "url": url, "headers": headers}
        if number < len(attempts):
            recorder.step(
                "dpop.api_nonce_requested",
                request=request,
                response={"status": response.status_code, "body": _body_of(response)},
            )
            continue
        if dpop_key is not None:
            request["proof"] = proof_display(headers["DPoP"], "GET", url, access_token)
        answer = ApiAnswer(
            response.status_code, _body_of(response), response.headers.get("WWW-Authenticate", "")
        )
        recorder.step(
            "dpop.api_call" if dpop_key is not None else "api_call",
            request=request,
            response={"status": answer.status, "body": answer.body},
            url=url,
        )
    return answer


def api_unreachable(exc: requests.RequestException, url: str, recorder: FlowRecorder, what: str) -> FlowError:
    """The ``api_unreachable`` error (502) for a call to ``url`` that failed, recorded as the failed call.

    :param what: how the message names the API (the BFF's page is not told the API's URL).
    """
    error = FlowError(
        "api_unreachable",
        f"{what} could not be reached: {failure_reason(exc)}.",
        "Check that the resource server is running at API_URL, then try again.",
        502,
    )
    recorder.failure("api_call", error, url=url)
    return error


def _body_of(response: requests.Response) -> Any:
    """The answer's JSON, or its text (bounded) when it is not JSON."""
    try:
        return response.json()
    except (ValueError, RecursionError):
        return response.text[:MAX_TEXT_BODY]
