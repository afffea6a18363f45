"""The SPA's backend-for-frontend against an independent OpenID Provider, by environment variables alone.

oidc-provider (``server.js``) is a certified OpenID Provider written by
other people to the same standards: if the BFF signs in, reads the user,
calls the API through its proxy, renews the access token and signs out
against it, configured only by ``ISSUER``, ``SPA_BFF_CLIENT_ID``,
``SPA_BFF_CLIENT_SECRET``, ``SPA_BASE_URL``, ``API_URL``, ``API_AUDIENCE``
and ``REDIS_URL``, then the BFF speaks OAuth 2.0 and OpenID Connect, not
the dev issuer's dialect.  The hostile cases stay with the scriptable
fake issuer (``tests/fake_issuer.py``).
"""

from __future__ import annotations

import json
import re
import time
from urllib.parse import parse_qs, urlsplit

import redis
import requests

from common.session import load_stored_session
from common.tokens import TokenSet
from tests.second_issuer.conftest import BFF_CLIENT_ID, confirm_logout_at_provider, sign_in_at_provider

COOKIE = "spa_bff_session"
CSRF = {"X-CSRF": "1"}
#: Anything shaped like a JWT (RFC 7519: three base64url parts, a JSON header).
JWT = re.compile(r"eyJ[\w-]+\.[\w-]+\.[\w-]*")


def bff_sign_in(http: requests.Session, env: dict, login: str) -> requests.Response:
    """``GET /bff/login``, the provider's sign-in and consent pages, then ``/bff/callback``.

    :return: the callback's answer (a redirect to the page).
    """
    base = env["SPA_BASE_URL"]
    started = http.get(base + "/bff/login", params={"returnTo": "/?mode=bff"}, allow_redirects=False)
    assert started.status_code == 302, started.text[:2000]
    authorization = urlsplit(started.headers["Location"])
    assert f"{authorization.scheme}://{authorization.netloc}" == env["ISSUER"]
    query = parse_qs(authorization.query)
    assert query["client_id"] == [BFF_CLIENT_ID]
    # The provider offers PAR (RFC 9126), so PAR=auto pushed the request (PKCE, redirect_uri and
    # all): the browser carries only client_id and request_uri (test_par_second_issuer.py).
    assert set(query) == {"client_id", "request_uri"}

    callback = sign_in_at_provider(http, started.headers["Location"], login)
    assert callback.startswith(base + "/bff/callback?"), callback
    landed = http.get(callback, allow_redirects=False, timeout=10)
    assert landed.status_code == 302, landed.text[:2000]
    assert landed.headers["Location"] == "/?mode=bff"
    return landed


def stored_tokens(env: dict, http: requests.Session) -> TokenSet:
    """The tokens the BFF keeps for this browser, read straight from its Redis."""
    sid = http.cookies.get(COOKIE)
    store = redis.Redis.from_url(env["REDIS_URL"])
    keys = [key for key in store.keys(f"*session:{sid}") if b":lock:" not in key]
    assert len(keys) == 1, keys
    return TokenSet.from_dict(load_stored_session(store.get(keys[0]))["tokens"])


def test_bff_signs_in_reads_the_user_calls_the_api_and_signs_out(second_stack):
    """The whole BFF flow at oidc-provider; no token ever reaches the browser."""
    base = second_stack["SPA_BASE_URL"]
    http = requests.Session()
    landed = bff_sign_in(http, second_stack, "alice")
    # The browser holds the BFF's HttpOnly session cookie, nothing else of the SPA's.
    cookie = next(c for c in http.cookies if c.name == COOKIE)
    assert cookie.has_nonstandard_attr("HttpOnly") and not JWT.search(cookie.value)
    tokens = stored_tokens(second_stack, http)
    assert tokens.refresh_token and JWT.fullmatch(tokens.access_token) and JWT.fullmatch(tokens.id_token)

    assert http.get(base + "/bff/user").status_code == 403  # no X-CSRF: refused first
    user = http.get(base + "/bff/user", headers=CSRF)
    assert user.status_code == 200
    claims = user.json()
    assert claims["sub"] == "alice" and claims["email"] == "alice@example.test"

    # Through the proxy to the resource server, which checks the provider's
    # JWT access token: its signature with the provider's keys, iss, and aud = API_AUDIENCE.
    answer = http.get(base + "/bff/api/messages", headers=CSRF)
    assert answer.status_code == 200, answer.text[:2000]
    result = answer.json()
    assert result["sub"] == "alice" and result["client_id"] == BFF_CLIENT_ID

    for body in (landed.text, user.text, answer.text):
        assert not JWT.search(body), body[:500]

    signed_out = http.post(base + "/bff/logout", headers=CSRF)
    assert signed_out.status_code == 200, signed_out.text[:2000]
    logout_url = signed_out.json()["logout_url"]
    assert logout_url.startswith(second_stack["ISSUER"] + "/session/end?"), logout_url
    logout = parse_qs(urlsplit(logout_url).query)
    assert logout["post_logout_redirect_uri"] == [base + "/"] and logout["state"]
    assert http.get(base + "/bff/user", headers=CSRF).status_code == 401

    # Signed out at the provider too: it confirms, then sends the browser
    # back to the registered post-logout URI with our state.
    back = urlsplit(confirm_logout_at_provider(http, logout_url))
    assert f"{back.scheme}://{back.netloc}{back.path}" == base + "/"
    assert parse_qs(back.query)["state"] == logout["state"]
    # The refresh token was revoked at sign-out (RFC 7009): the provider no longer honours it.
    refused = requests.post(
        second_stack["ISSUER"] + "/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens.refresh_token},
        auth=(BFF_CLIENT_ID, second_stack["SPA_BFF_CLIENT_SECRET"]),
        timeout=10,
    )
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"


def test_bff_renews_the_access_token_with_the_providers_refresh_token(second_stack):
    """An access token about to expire is renewed at oidc-provider before the proxied call."""
    base = second_stack["SPA_BASE_URL"]
    http = requests.Session()
    bff_sign_in(http, second_stack, "bob")
    before = stored_tokens(second_stack, http)
    # The provider's access tokens live ACCESS_TOKEN_TTL seconds, just over
    # the BFF's 30-second renewal margin: wait until the BFF must renew.
    while not before.expired():
        time.sleep(0.1)
    answer = http.get(base + "/bff/api/messages", headers=CSRF)
    assert answer.status_code == 200, answer.text[:2000]
    assert answer.json()["sub"] == "bob"
    after = stored_tokens(second_stack, http)
    assert after.access_token != before.access_token
    assert json.loads(http.get(base + "/bff/user", headers=CSRF).text)["sub"] == "bob"
