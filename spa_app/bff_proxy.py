"""The backend-for-frontend's API proxy: ``/bff/api/<path>`` to ``{API_URL}/api/<path>``, and nowhere else.

The OAuth 2.0 for Browser-Based Applications BCP (§6.1.1) has the BFF
forward the page's API calls with the access token it keeps, the
browser's cookie removed.  A proxy that holds tokens is worth attacking
(§6.1.3.6, "Proxy Restrictions": an allowlist of destinations, strict
validation of dynamic paths), so this one can only ever reach one prefix
of one origin:

* the path is checked on the **raw** request URI, before any decoding: an
  encoded slash or backslash (``%2f``, ``%5c``), an encoded dot or percent
  (``%2e``, ``%25``), a backslash, an empty segment (``//``) or a dot
  segment (``.``, ``..``) is refused with ``400``; the decoded segments
  must then be plain names (letters, digits, ``-``, ``_``, ``.``, ``~``), so
  no ``@`` userinfo, ``:`` scheme or port, or absolute URL can be spelled;
* the target URL is built from ``API_URL`` and those segments, and checked
  once more to have ``API_URL``'s scheme and host and a path under
  ``/api/``;
* only :data:`FORWARDED_REQUEST_HEADERS` travel on (never the browser's
  ``Cookie``, ``Authorization``, ``X-CSRF``, nor a hop-by-hop header,
  RFC 9110 §7.6.1); the answer's status, ``Content-Type`` and
  ``WWW-Authenticate`` (RFC 6750 §3) come back, nothing else (no
  ``Set-Cookie``, no ``Location``, no CORS header of the API's);
* request bodies are bounded by the app's ``MAX_CONTENT_LENGTH`` (64 KiB),
  answers by :data:`common.http.MAX_RESPONSE_BYTES`, and the call by
  ``HTTP_TIMEOUT``; redirects are never followed (RFC 6750 §5.3: a bearer
  token goes only where we chose).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import requests
from flask import Request

from common.api import api_unreachable
from common.dpop import DPoPKey
from common.dpop_client import send_authorized
from common.errors import FlowError
from common.recorder import FlowRecorder

#: Request headers the page may send on to the API; everything else stays here.
FORWARDED_REQUEST_HEADERS = ("Accept", "Accept-Language", "Content-Type", "Content-Language", "If-None-Match")

#: Answer headers the page gets back from the API (besides the status and body).  No
#: ``Cache-Control``: every BFF answer is ``no-store`` (it is about one signed-in user).
RETURNED_RESPONSE_HEADERS = ("Content-Type", "WWW-Authenticate")

#: The type of an answer that names none: never sniffed as a page of this origin.
DEFAULT_CONTENT_TYPE = "application/octet-stream"

#: Methods the proxy forwards (the page's ``fetch`` calls; no ``CONNECT``/``TRACE``).
PROXIED_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")

#: What one decoded path segment may be: a plain name.
SAFE_SEGMENT = re.compile(r"[A-Za-z0-9_~-][A-Za-z0-9._~-]*")

#: Encoded characters refused in the raw path: ``/``, ``\\``, ``.`` and ``%`` itself (double encoding).
ENCODED_TRICKS = ("%2f", "%5c", "%2e", "%25", "%00")

#: The route prefix the page calls.
PREFIX = "/bff/api/"


def bad_path(description: str) -> FlowError:
    """The ``400`` for a path the proxy will not forward."""
    return FlowError(
        "invalid_path",
        description,
        "The proxy forwards /bff/api/<path> to the API's /api/<path> only, with plain path segments.",
        400,
    )


def raw_path(request: Request) -> str:
    """The request's path as the browser sent it (before the server decoded ``%xx``)."""
    raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI")
    if not raw:
        return request.path
    path = raw.split("?", 1)[0]
    if "://" in path[:16]:  # an absolute-form request target (RFC 9112 §3.2.2)
        path = "/" + path.split("://", 1)[1].partition("/")[2]
    return path


def api_target(request: Request, api_url: str) -> str:
    """The one URL ``request`` may reach: ``{API_URL}/api/<segments>?<query>``.

    :raises FlowError: ``invalid_path`` (400) for any trick in the module docstring.
    """
    path = raw_path(request)
    lowered = path.lower()
    if not lowered.startswith(PREFIX):
        raise bad_path("The path does not start with /bff/api/ as sent.")
    if any(trick in lowered for trick in ENCODED_TRICKS) or "\\" in path:
        raise bad_path("The path contains an encoded slash, backslash, dot or percent sign.")
    segments = [unquote(segment) for segment in path[len(PREFIX) :].split("/")]
    for segment in segments:
        if segment in ("", ".", ".."):
            raise bad_path("The path contains an empty or dot segment.")
        if not SAFE_SEGMENT.fullmatch(segment):
            raise bad_path("A path segment holds characters other than letters, digits and - _ . ~.")
    query = request.query_string.decode("ascii", "replace")
    if any(ord(ch) < 0x21 or ord(ch) > 0x7E or ch == "#" for ch in query):
        raise bad_path("The query string holds characters that must be percent-encoded.")
    target = f"{api_url.rstrip('/')}/api/{'/'.join(segments)}" + (f"?{query}" if query else "")
    # Belt and braces: whatever was built, it must still be the API's origin and prefix.
    base, built = urlsplit(api_url), urlsplit(target)
    if (built.scheme, built.netloc) != (base.scheme, base.netloc) or not built.path.startswith(
        base.path.rstrip("/") + "/api/"
    ):
        raise bad_path("The path would leave the API.")
    return target


def forwarded_headers(request: Request) -> dict[str, str]:
    """The request headers that travel on: :data:`FORWARDED_REQUEST_HEADERS` only."""
    return {name: request.headers[name] for name in FORWARDED_REQUEST_HEADERS if name in request.headers}


@dataclass(frozen=True)
class ProxiedAnswer:
    """What the API answered, as the page will get it."""

    status: int
    headers: dict
    body: bytes


def forward(
    http: requests.Session,
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes,
    access_token: str,
    recorder: FlowRecorder,
    dpop_key: DPoPKey | None = None,
) -> ProxiedAnswer:
    """Send one request to the API with ``Authorization: Bearer`` (RFC 6750 §2.1), or DPoP.

    With ``dpop_key`` (the session's key, to which the token is bound) the
    request carries ``Authorization: DPoP`` and a proof for this method and
    URL with ``ath`` (RFC 9449 §7.1); an API that answers ``401`` asking for
    a nonce (§9) gets one retry with it.  The ``htu`` is the target without
    its query, as RFC 9449 §4.2 says.

    ``http`` is the client's :class:`common.http.TimeoutSession`: a timeout,
    a total deadline, a size cap, and no redirect followed.

    :raises FlowError: ``api_unreachable`` (502) when the API cannot be
        reached, is too slow, or answers too much.
    """
    try:
        *_, (_, response) = send_authorized(
            http, method, url, access_token, dpop_key, headers=headers, data=body or None
        )
    except requests.RequestException as exc:
        raise api_unreachable(exc, url, recorder, "The API") from None
    kept = {name: response.headers[name] for name in RETURNED_RESPONSE_HEADERS if name in response.headers}
    kept.setdefault("Content-Type", DEFAULT_CONTENT_TYPE)
    return ProxiedAnswer(response.status_code, kept, response.content)
