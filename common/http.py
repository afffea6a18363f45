"""Outbound HTTP for every call a client or the resource server makes to the issuer.

Two rules of the suite (README.md, "What every client app does") live here, once:

* every outbound request has a timeout (``Settings.http_timeout``), and its
  whole answer a deadline (twice that) and a size cap: a hung or trickling
  issuer must never hang a gunicorn worker (RFC 9700 does not say it, every
  operator does);
* plain ``http://`` is acceptable only where nothing leaves the machine
  (loopback) or for the reserved ``.test`` names the tests use (RFC 2606);
  everything else must be ``https://`` (RFC 6749 §3.1 and §3.2, RFC 9700 §2.6).

Besides :func:`http_session` and :class:`IssuerUnreachable`, the module
offers small helpers the rest of ``common/`` uses:

* :func:`is_local_or_test_host` / :func:`require_secure_url` — the transport rule;
* :func:`get_json` / :func:`parse_json_response` — a GET (or an answer) that must be
  a JSON object, turning connection errors, timeouts, 5xx and HTML answers into
  :class:`IssuerUnreachable` with a hint.

``http_session`` accepts optional ``settings=`` or ``timeout=`` keyword arguments;
with neither it uses the default of ``HTTP_TIMEOUT``.
"""

from __future__ import annotations

import io
import time
from ipaddress import ip_address
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3
from requests.cookies import extract_cookies_to_jar

from .config import DEFAULTS, Settings
from .errors import FlowError
from .failures import failure_reason
from .untrusted import plain_text

#: Sent on every request so that issuer logs show who called.
USER_AGENT = "oauth-flask-samples/1.0 (+common.http)"

#: JSON answers larger than this are refused (a discovery document or JWKS
#: is a few KiB; an endless body is an attack or a misconfiguration).
MAX_RESPONSE_BYTES = 512 * 1024

#: The whole answer must be in within this many times the timeout, counted
#: from sending the request.  requests' ``timeout`` bounds each socket read,
#: not the answer: a server trickling one byte per read never trips it.
#: Twice, so that a server that is slow to start but then answers at once
#: (a cold JWKS, a busy token endpoint) still gets through.
DEADLINE_FACTOR = 2

#: Bytes read from the socket at a time.
_CHUNK = 16 * 1024


class ResponseTooSlow(requests.Timeout):
    """The answer did not arrive completely within the deadline (DEADLINE_FACTOR x timeout)."""


class ResponseTooLarge(requests.RequestException):
    """The answer's body is larger than MAX_RESPONSE_BYTES."""


class IssuerUnreachable(FlowError):
    """The issuer could not be reached or answered nonsense.

    Raised for connection errors, timeouts, 5xx answers and answers that are
    not JSON (an HTML error page from a proxy, say).  Status 502: the fault
    is upstream, not in the user's request.

    :param description: what went wrong, in one sentence.
    :param hint: what to check.
    :param error: the error code; ``issuer_unreachable`` unless a caller
        reports a failed token request (``token_error``).
    """

    def __init__(
        self, description: str, hint: str = "", *, error: str = "issuer_unreachable", status: int = 502
    ):
        super().__init__(
            error,
            description,
            hint or "Check that the issuer (ISSUER) is running and reachable from this app, then try again.",
            status,
        )


class TimeoutSession(requests.Session):
    """A :class:`requests.Session` with a default timeout, a total deadline and a size cap.

    Every answer is read here, in chunks, before the caller sees it: it must
    be complete within ``DEADLINE_FACTOR`` times the timeout of sending the
    request (:class:`ResponseTooSlow`, a :class:`requests.Timeout`) and be at
    most :data:`MAX_RESPONSE_BYTES` (:class:`ResponseTooLarge`), so a hostile
    or broken server can neither hold a worker (nor the one key-set or discovery
    fetch others wait for) nor fill its memory.  Both are :class:`requests.RequestException`,
    which every caller already handles; :func:`send` turns them into
    :class:`IssuerUnreachable`.

    The status line and headers are not under the deadline (requests gives
    no hook before them): each of their reads is bounded by the timeout, and
    http.client limits their number and length.

    Redirects are not followed unless a caller passes ``allow_redirects=True``
    (requests follows them by default, to any scheme and host): a discovery
    document or JWKS fetched over ``https`` must not come from wherever a
    ``Location`` header points, plain ``http`` included, and a form with a
    client secret must never be re-sent somewhere else (RFC 9700 §2.6).
    :func:`parse_json_response` answers a redirect with a clear error.
    """

    def __init__(self, timeout: float):
        super().__init__()
        self.timeout = timeout
        self.headers["User-Agent"] = USER_AGENT

    def get(self, url, **kwargs):  # noqa: D401 - same as requests
        """Like :meth:`requests.Session.get`, but following no redirect unless told to."""
        kwargs.setdefault("allow_redirects", False)
        return self.request("GET", url, **kwargs)

    def request(self, method, url, **kwargs):  # noqa: D401 - same as requests
        """Like :meth:`requests.Session.request`, with ``timeout`` defaulted and the body read by a deadline.

        A caller passing ``stream=True`` reads the body itself, unbounded.
        """
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        kwargs.setdefault("allow_redirects", False)
        if kwargs.get("stream"):
            return super().request(method, url, **kwargs)
        timeout = kwargs["timeout"]
        # A (connect, read) pair counts as its sum.
        budget = sum(t for t in timeout if t) if isinstance(timeout, tuple) else timeout
        deadline = time.monotonic() + DEADLINE_FACTOR * budget

        def read_by_deadline(response, **_):
            _read_body(response, deadline, self.cookies)
            return response

        # A response hook runs on every answer, redirects included, before
        # requests reads any body (it would read it whole, without a limit);
        # one deadline covers the whole chain of redirects.
        hooks = dict(kwargs.get("hooks") or {})
        theirs = hooks.get("response") or []
        hooks["response"] = [read_by_deadline, *([theirs] if callable(theirs) else theirs)]
        kwargs["hooks"] = hooks
        return super().request(method, url, **kwargs)


def _read_body(response: requests.Response, deadline: float, cookies) -> None:
    """Read ``response``'s body by the deadline and within the size cap, before requests does.

    Only public API: the body is read from ``response.raw`` (urllib3's
    ``read1``), the connection handed back with urllib3's ``release_conn``,
    and ``response.raw`` replaced by an in-memory file holding the body.
    ``Response.raw`` may be any file-like object, and requests then reads
    ``.content`` (hence ``.text`` and ``.json()``) from it as usual.  The
    session's cookies are taken from the real answer first, because
    requests takes them from ``response.raw`` right after this hook.

    :param cookies: the session's cookie jar.
    """
    try:
        body = _read_chunks(response, deadline)
    except BaseException:
        response.close()  # a half-read connection is dropped, never pooled
        raise
    extract_cookies_to_jar(cookies, response.request, response.raw)
    response.raw.release_conn()  # the body is consumed: the connection goes back to the pool
    response.raw = io.BytesIO(bytes(body))


def _read_chunks(response: requests.Response, deadline: float) -> bytearray:
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > MAX_RESPONSE_BYTES:
        raise ResponseTooLarge(f"the answer declares {declared} bytes", response=response)
    body = bytearray()
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise ResponseTooSlow("the answer was not complete in time", response=response)
        # One read may not wait past the deadline either.  Looked up afresh
        # each time: once the last byte is in, urllib3 hands the connection
        # back to the pool, where another thread may already be using (or
        # closing) its socket.
        sock = getattr(getattr(response.raw, "connection", None), "sock", None)
        if sock is not None:
            try:
                sock.settimeout(left)
            except OSError:
                pass  # closed meanwhile: the read below ends the body
        try:
            # read1: return what one socket read brought (read(n) would wait for n bytes).
            chunk = response.raw.read1(_CHUNK, decode_content=True)
        except (TimeoutError, urllib3.exceptions.ReadTimeoutError):
            raise ResponseTooSlow("the answer was not complete in time", response=response) from None
        except (OSError, urllib3.exceptions.HTTPError) as exc:
            raise requests.ConnectionError(
                f"reading the answer failed ({type(exc).__name__})", response=response
            ) from None
        if not chunk:
            break
        body += chunk
        # Counted after decoding, so a small gzip bomb is caught as well.
        if len(body) > MAX_RESPONSE_BYTES:
            raise ResponseTooLarge(f"the answer is over {MAX_RESPONSE_BYTES} bytes", response=response)
    return body


def http_session(settings: Settings | None = None, *, timeout: float | None = None) -> requests.Session:
    """A session for talking to the issuer, with a default timeout and a User-Agent.

    :param settings: the app's settings; ``Settings.http_timeout`` is used.
    :param timeout: an explicit timeout in seconds (wins over ``settings``).
    :return: a :class:`requests.Session` whose every request has a timeout.
    """
    if timeout is None:
        timeout = settings.http_timeout if settings is not None else float(DEFAULTS["HTTP_TIMEOUT"])
    return TimeoutSession(timeout)


def is_local_or_test_host(hostname: str | None) -> bool:
    """True for loopback hosts (``localhost``, 127/8, ``::1``) and ``*.test`` names.

    :param hostname: a host name as :func:`urllib.parse.urlsplit` returns it.
    """
    if not hostname:
        return False
    hostname = hostname.lower().rstrip(".")
    if hostname in ("localhost", "test") or hostname.endswith((".localhost", ".test")):
        return True
    try:
        return ip_address(hostname).is_loopback
    except ValueError:
        return False


def require_secure_url(url: str, what: str) -> str:
    """Refuse a URL that is not ``https`` (loopback and ``.test`` hosts may use ``http``).

    Tokens, codes and client secrets travel to these URLs, so TLS is
    mandatory (RFC 6749 §3.1, §3.2; RFC 9700 §2.6).

    :param url: the endpoint URL (typically from the discovery document).
    :param what: a human name for it, used in the error message.
    :return: ``url`` unchanged.
    :raises FlowError: ``issuer_misconfigured`` when the URL is unacceptable.
    """
    parts = urlsplit(url or "")
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http" and is_local_or_test_host(parts.hostname):
        return url
    raise FlowError(
        "issuer_misconfigured",
        f"The issuer's {what} ({url!r}) is not an https URL.",
        "Tokens and secrets may only travel over TLS; fix the issuer's configuration "
        "(plain http is allowed only for localhost).",
        502,
    )


def parse_json_response(
    response: requests.Response,
    what: str,
    *,
    error: str = "issuer_unreachable",
    allow_error_status: bool = False,
) -> dict[str, Any]:
    """Decode an issuer answer that must be a JSON object.

    :param response: the answer.
    :param what: a human name of the endpoint, for messages.
    :param error: the error code to raise (``issuer_unreachable`` or ``token_error``).
    :param allow_error_status: when true, 4xx answers are decoded too (the token
        endpoint answers errors as JSON with status 400/401, RFC 6749 §5.2).
    :return: the decoded object.
    :raises IssuerUnreachable: on a redirect (``issuer_misconfigured``), 5xx, unexpected 4xx,
        or a body that is not a JSON object.
    """
    status = response.status_code
    if 300 <= status < 400:
        _refuse_redirect(response, what)
    if status >= 500:
        raise IssuerUnreachable(
            f"The issuer's {what} answered with HTTP {status}.",
            "The issuer had an internal error; try again in a moment, or check its log.",
            error=error,
        )
    if status >= 400 and not allow_error_status:
        raise IssuerUnreachable(
            f"The issuer's {what} answered with HTTP {status}.",
            "Check the issuer URL (ISSUER) and that this endpoint exists.",
            error=error,
        )
    if len(response.content) > MAX_RESPONSE_BYTES:
        raise IssuerUnreachable(f"The issuer's {what} sent an oversized answer.", error=error)
    try:
        body = response.json()
    except (ValueError, RecursionError):
        # RecursionError: JSON nested thousands deep, which fits well within
        # MAX_RESPONSE_BYTES; uncaught it would be a 500.
        content_type = response.headers.get("Content-Type", "unknown")
        raise IssuerUnreachable(
            f"The issuer's {what} did not answer with JSON (got {content_type.split(';')[0]}).",
            "An HTML page usually means a proxy or a wrong ISSUER URL is in the way.",
            error=error,
        ) from None
    if not isinstance(body, dict):
        raise IssuerUnreachable(f"The issuer's {what} answered JSON that is not an object.", error=error)
    return body


def _refuse_redirect(response: requests.Response, what: str) -> None:
    """A redirect from the issuer is its misconfiguration, never followed (RFC 9700 §2.6).

    Following it would take the answer (keys, endpoints) from a URL that was
    never checked against the rules the first one passed (``https``, or
    loopback ``http``); so the redirect itself is the error.

    :raises IssuerUnreachable: ``issuer_misconfigured``, naming where it pointed.
    """
    target = plain_text(response.headers.get("Location", ""), 200)
    raise IssuerUnreachable(
        f"The issuer's {what} answered with a redirect (HTTP {response.status_code}"
        + (f" to {target!r}" if target else "")
        + "), which is not followed.",
        "Point ISSUER (or the issuer's discovery document) at the final URL: answers from the "
        "issuer are taken only from the URL that was checked, never from a redirect.",
        error="issuer_misconfigured",
    )


def send(
    http: requests.Session, method: str, url: str, what: str, *, error: str = "issuer_unreachable", **kwargs
) -> requests.Response:
    """Send one request, turning network failures into :class:`IssuerUnreachable`.

    :param http: the session (with its default timeout).
    :param method: ``GET`` or ``POST``.
    :param url: where to.
    :param what: a human name of the endpoint, for messages.
    :param error: the error code to raise.
    :return: the response, whatever its status.
    """
    try:
        return http.request(method, url, **kwargs)
    except ResponseTooLarge:
        raise IssuerUnreachable(f"The issuer's {what} sent an oversized answer.", error=error) from None
    except requests.Timeout:
        raise IssuerUnreachable(
            f"The issuer's {what} did not answer in time.",
            "The issuer may be overloaded or down; try again, or raise HTTP_TIMEOUT.",
            error=error,
        ) from None
    except requests.RequestException as exc:
        raise IssuerUnreachable(
            f"The issuer's {what} could not be reached: {failure_reason(exc)}.",
            error=error,
        ) from None


def get_json(
    http: requests.Session, url: str, what: str, *, error: str = "issuer_unreachable"
) -> dict[str, Any]:
    """GET a JSON object from the issuer (discovery, JWKS).

    :param http: the session (with its default timeout).
    :param url: the URL.
    :param what: a human name of the endpoint, for messages.
    :return: the decoded JSON object.
    :raises IssuerUnreachable: network error, timeout, error status or non-JSON body.
    """
    response = send(http, "GET", url, what, error=error, headers={"Accept": "application/json"})
    return parse_json_response(response, what, error=error)
