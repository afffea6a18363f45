"""HTTP-level helpers for talking to an issuer's sign-in page with ``requests``.

They do what a browser does, without a browser: follow the authorization
request to the sign-in form, submit it with its CSRF token, and stop at
the redirect aimed at the client (which the test then inspects instead of
following).  They work with the dev issuer's page (ids ``username``,
``password``, ``sign-in``) and are used by other parts' integration tests.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
import secrets
from urllib.parse import parse_qs, urljoin, urlsplit

import requests

TIMEOUT = 10


def pkce_pair() -> tuple[str, str]:
    """A fresh PKCE ``(code_verifier, code_challenge)`` for S256 (RFC 7636 §4.1-4.2)."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _hidden(page: str, name: str) -> str | None:
    match = re.search(rf'name="{name}" value="([^"]*)"', page)
    return html.unescape(match.group(1)) if match else None


def follow_on_issuer(
    session: requests.Session, response: requests.Response, issuer_origin: str
) -> requests.Response:
    """Follow redirects while they stay on the issuer; return the first response that does not."""
    for _ in range(10):
        location = response.headers.get("Location")
        if not response.is_redirect or not location:
            return response
        target = urljoin(response.url, location)
        if _origin(target) != issuer_origin:
            return response
        response = session.get(target, allow_redirects=False, timeout=TIMEOUT)
    raise AssertionError("too many redirects at the issuer")


def sign_in(session: requests.Session, authorize_url: str, username: str, password: str) -> requests.Response:
    """Run an authorization request through the issuer's sign-in form.

    :return: the issuer's last response: a redirect to the client (3xx with
        ``Location``), a form_post page (200), or an error page.
    """
    issuer_origin = _origin(authorize_url)
    response = follow_on_issuer(
        session, session.get(authorize_url, allow_redirects=False, timeout=TIMEOUT), issuer_origin
    )
    page = response.text if response.status_code == 200 else ""
    if 'id="sign-in-form"' not in page:
        return response  # SSO session, or an error shown by the issuer
    form = {
        "csrf_token": _hidden(page, "csrf_token"),
        "next": _hidden(page, "next"),
        "username": username,
        "password": password,
    }
    posted = session.post(urljoin(response.url, "/signin"), data=form, allow_redirects=False, timeout=TIMEOUT)
    return follow_on_issuer(session, posted, issuer_origin)


def sign_in_and_get_redirect(
    session: requests.Session, authorize_url: str, username: str, password: str
) -> str:
    """Sign in at the issuer and return the ``Location`` aimed at the client (not followed)."""
    response = sign_in(session, authorize_url, username, password)
    if not response.is_redirect:
        raise AssertionError(
            f"the issuer did not redirect to the client (HTTP {response.status_code}):\n"
            f"{response.text[:2000]}"
        )
    return urljoin(response.url, response.headers["Location"])


def callback_params(location: str) -> dict[str, str]:
    """The query and fragment parameters of a redirect to the client, merged."""
    parts = urlsplit(location)
    params = {k: v[0] for k, v in parse_qs(parts.query).items()}
    params.update({k: v[0] for k, v in parse_qs(parts.fragment).items()})
    return params
