"""Helpers for the backend-for-frontend tests: a browser's requests, without a browser.

``requests`` plays the page: a top-level navigation to ``/bff/login``, the
issuer's sign-in form, the callback; then ``fetch``-like calls with
``X-CSRF: 1``.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import redis
import requests

from common.session import load_stored_session
from common.session_store import encode_session_data
from tests.issuer_helpers import sign_in_and_get_redirect

#: The BFF's session cookie (http base URL: no ``__Host-`` prefix).
COOKIE = "spa_bff_session"

#: What the page's fetch calls send.
CSRF = {"X-CSRF": "1"}

#: A JWT in compact serialisation (RFC 7519 §3.1): three base64url parts, the first a JSON object.
JWT_SHAPE = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")


def bff_sign_in(http: requests.Session, base: str, username: str, password: str, return_to="/?mode=bff"):
    """Sign in through ``/bff/login`` and the issuer's form; return the callback's answer (a redirect)."""
    login = http.get(base + "/bff/login", params={"returnTo": return_to}, allow_redirects=False, timeout=10)
    assert login.status_code == 302, login.text[:1000]
    location = sign_in_and_get_redirect(http, login.headers["Location"], username, password)
    assert urlsplit(location).path == "/bff/callback", location
    callback = http.get(location, allow_redirects=False, timeout=10)
    assert callback.status_code == 302, callback.text[:2000]
    return callback


def redis_of(env: dict) -> redis.Redis:
    """The suite's Redis."""
    return redis.Redis.from_url(env["REDIS_URL"])


def session_key(http: requests.Session) -> str:
    """The Redis key of this browser's BFF session."""
    return f"spa_app:session:{http.cookies.get(COOKIE)}"


def stored_session(env: dict, http: requests.Session) -> dict:
    """This browser's BFF session as stored in Redis (``{}`` when gone)."""
    return load_stored_session(redis_of(env).get(session_key(http)))


def rewrite_session(env: dict, http: requests.Session, change) -> None:
    """Change this browser's stored session in place (``change(data)``), keeping its expiry."""
    client = redis_of(env)
    key = session_key(http)
    data = load_stored_session(client.get(key))
    change(data)
    client.set(key, encode_session_data(data), keepttl=True)


def expire_access_token(env: dict, http: requests.Session) -> None:
    """Make the BFF believe the access token has expired (it is still valid at the API)."""
    rewrite_session(env, http, lambda data: data["tokens"].update(expires_at=1))


def refresh_steps(http: requests.Session, base: str) -> list[dict]:
    """The flow inspector's refresh steps of this session."""
    steps = http.get(base + "/bff/inspector", headers=CSRF, timeout=10).json()["steps"]
    return [step for step in steps if step["title"].startswith("Token request (refresh")]
